//! XMPP benchmark: the same workloads against Convene and Prosody, each on a fresh server
//! process on loopback, reported per wall second and per server CPU-second.

mod client;
mod scram;
mod server;
mod workloads;

use std::path::PathBuf;

use clap::Parser;

use server::{Kind, Programs, Server};
use workloads::{FanoutParams, Mechanism};

#[derive(Parser, Debug)]
#[command(about)]
struct Cli {
    /// The Convene binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/convene")]
    convene: PathBuf,
    #[arg(long, default_value = "prosody")]
    prosody: PathBuf,
    #[arg(long, default_value = "prosodyctl")]
    prosodyctl: PathBuf,
    /// Servers to measure.
    #[arg(long, value_delimiter = ',', default_values = ["convene", "prosody"])]
    servers: Vec<ServerArg>,
    /// Workloads to run.
    #[arg(long, value_delimiter = ',', default_values = ["anonymous", "scram", "fanout", "memory"])]
    workloads: Vec<Workload>,
    /// Logins per login workload.
    #[arg(long, default_value_t = 3000)]
    logins: usize,
    /// Logins in progress at once.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Password accounts the SCRAM logins cycle through.
    #[arg(long, default_value_t = 20)]
    users: usize,
    /// Room occupants in the fan-out workload.
    #[arg(long, default_value_t = 50)]
    occupants: usize,
    /// Messages sent at `paced-rate` per second (latency below saturation).
    #[arg(long, default_value_t = 500)]
    paced_messages: usize,
    #[arg(long, default_value_t = 100.0)]
    paced_rate: f64,
    /// Messages sent as fast as the window allows (throughput).
    #[arg(long, default_value_t = 3000)]
    saturated_messages: usize,
    /// Messages not yet delivered to every occupant, at most, in the saturated phase.
    #[arg(long, default_value_t = 50)]
    window: usize,
    /// Idle logged-in clients for the memory figures.
    #[arg(long, default_value_t = 2000)]
    idle_clients: usize,
    /// Runs of every workload on every server; the table shows the median.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ServerArg {
    Convene,
    Prosody,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Workload {
    Anonymous,
    Scram,
    Fanout,
    Memory,
}

/// One figure of the table: the values measured on each server, and whether more is
/// better.
struct Figure {
    name: String,
    higher_is_better: bool,
    values: [Vec<f64>; 2],
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

fn slot(kind: Kind) -> usize {
    match kind {
        Kind::Convene => 0,
        Kind::Prosody => 1,
    }
}

struct Report {
    figures: Vec<Figure>,
}

impl Report {
    fn set(&mut self, name: &str, higher_is_better: bool, kind: Kind, value: f64) {
        if !value.is_finite() {
            // E.g. a per-CPU-second figure when the server used less than one clock tick.
            eprintln!("  {kind}: no value for {name:?} (measured {value}); run a larger workload");
            return;
        }
        let index = match self.figures.iter().position(|f| f.name == name) {
            Some(index) => index,
            None => {
                self.figures.push(Figure {
                    name: name.to_owned(),
                    higher_is_better,
                    values: [Vec::new(), Vec::new()],
                });
                self.figures.len() - 1
            }
        };
        self.figures[index].values[slot(kind)].push(value);
    }

    fn print(&self, runs: usize) {
        println!();
        if runs > 1 {
            println!("median of {runs} runs");
        }
        println!(
            "{:<52} {:>12} {:>12} {:>10}",
            "figure", "Convene", "Prosody", "advantage"
        );
        for figure in &self.figures {
            let cell = |value: Option<f64>| match value {
                Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
                Some(v) => format!("{v:.2}"),
                None => "—".to_owned(),
            };
            let (convene, prosody) = (median(&figure.values[0]), median(&figure.values[1]));
            let advantage = match (convene, prosody) {
                (Some(convene), Some(prosody)) if convene > 0.0 && prosody > 0.0 => {
                    let ratio = if figure.higher_is_better {
                        convene / prosody
                    } else {
                        prosody / convene
                    };
                    format!("{ratio:.2}×")
                }
                _ => "—".to_owned(),
            };
            println!(
                "{:<52} {:>12} {:>12} {:>10}",
                figure.name,
                cell(convene),
                cell(prosody),
                advantage
            );
        }
        println!();
        println!("advantage: how many times better Convene is (>1: Convene better).");
    }
}

fn run_workload(
    runtime: &tokio::runtime::Runtime,
    cli: &Cli,
    workload: Workload,
    kind: Kind,
    report: &mut Report,
) -> anyhow::Result<()> {
    let programs = Programs {
        convene: cli.convene.clone(),
        prosody: cli.prosody.clone(),
        prosodyctl: cli.prosodyctl.clone(),
    };
    let users = if workload == Workload::Scram {
        cli.users
    } else {
        0
    };
    let server = Server::start(kind, &programs, users)?;
    let (addr, pid) = (server.c2s, server.pid());
    let outcome = runtime.block_on(async {
        match workload {
            Workload::Anonymous | Workload::Scram => {
                let (mechanism, label) = match workload {
                    Workload::Anonymous => (Mechanism::Anonymous, "anonymous"),
                    _ => (Mechanism::ScramSha1, "SCRAM-SHA-1"),
                };
                let result =
                    workloads::logins(addr, pid, mechanism, cli.logins, cli.concurrency, cli.users)
                        .await?;
                eprintln!("  {kind} {label}: {result:?}");
                if result.failed > 0 {
                    anyhow::bail!(
                        "{} of {} {label} logins failed; first error: {}",
                        result.failed,
                        cli.logins,
                        result.first_error.unwrap_or_default()
                    );
                }
                let completed = result.completed as f64;
                report.set(
                    &format!("{label} logins / s"),
                    true,
                    kind,
                    completed / result.cost.wall,
                );
                report.set(
                    &format!("{label} logins / server CPU-s"),
                    true,
                    kind,
                    completed / result.cost.server_cpu,
                );
            }
            Workload::Fanout => {
                let params = FanoutParams {
                    occupants: cli.occupants,
                    paced_messages: cli.paced_messages,
                    paced_rate: cli.paced_rate,
                    saturated_messages: cli.saturated_messages,
                    window: cli.window,
                };
                let result = workloads::fanout(addr, pid, &params).await?;
                eprintln!("  {kind} fan-out: {result:?}");
                let saturated = &result.saturated;
                let deliveries = saturated.deliveries as f64;
                let room = cli.occupants;
                report.set(
                    &format!("MUC fan-out ({room} occupants) deliveries / s"),
                    true,
                    kind,
                    deliveries / saturated.cost.wall,
                );
                report.set(
                    &format!("MUC fan-out ({room} occupants) deliveries / CPU-s"),
                    true,
                    kind,
                    deliveries / saturated.cost.server_cpu,
                );
                report.set(
                    &format!("MUC p99 latency, saturated, window {} (ms)", cli.window),
                    false,
                    kind,
                    saturated.p99_ms,
                );
                report.set(
                    &format!("MUC p99 latency at {} msg/s (ms)", cli.paced_rate),
                    false,
                    kind,
                    result.paced.p99_ms,
                );
                report.set(
                    &format!("MUC server CPU at {} msg/s (% of a core)", cli.paced_rate),
                    false,
                    kind,
                    100.0 * result.paced.cost.server_cpu / result.paced.cost.wall,
                );
                report.set(
                    &format!("MUC p50 latency at {} msg/s (ms)", cli.paced_rate),
                    false,
                    kind,
                    result.paced.p50_ms,
                );
            }
            Workload::Memory => {
                let result = workloads::idle_memory(addr, pid, cli.idle_clients).await?;
                eprintln!("  {kind} memory: {result:?}");
                let clients = cli.idle_clients;
                report.set(
                    &format!("RSS per idle client, 0 → {clients} clients (KiB)"),
                    false,
                    kind,
                    result.bytes_per_client() / 1024.0,
                );
                report.set(
                    &format!(
                        "RSS per idle client, {} → {clients} clients (KiB)",
                        clients / 2
                    ),
                    false,
                    kind,
                    result.marginal_bytes_per_client() / 1024.0,
                );
            }
        }
        anyhow::Ok(())
    });
    let log = server.log_tail();
    if !log.is_empty() {
        eprintln!("  {kind} logged:\n{log}");
    }
    server.stop();
    outcome
}

impl Cli {
    fn validate(&self) -> anyhow::Result<()> {
        let at_least_one = [
            ("--logins", self.logins),
            ("--concurrency", self.concurrency),
            ("--users", self.users),
            ("--window", self.window),
            ("--idle-clients", self.idle_clients),
            ("--repeat", self.repeat),
        ];
        for (flag, value) in at_least_one {
            anyhow::ensure!(value >= 1, "{flag} must be at least 1");
        }
        anyhow::ensure!(self.occupants >= 2, "--occupants must be at least 2");
        anyhow::ensure!(self.paced_rate > 0.0, "--paced-rate must be positive");
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.validate()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut report = Report {
        figures: Vec::new(),
    };
    let mut failures = 0;
    for (run, &workload) in
        (0..cli.repeat).flat_map(|run| cli.workloads.iter().map(move |w| (run, w)))
    {
        for &server in &cli.servers {
            let kind = match server {
                ServerArg::Convene => Kind::Convene,
                ServerArg::Prosody => Kind::Prosody,
            };
            // Other processes competing for the CPUs distort every figure: show it.
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            let load = load.split(' ').next().unwrap_or("?");
            eprintln!(
                "run {}: {workload:?} against a fresh {kind} (load average {load})...",
                run + 1
            );
            if let Err(error) = run_workload(&runtime, &cli, workload, kind, &mut report) {
                failures += 1;
                eprintln!("  {kind} {workload:?} FAILED: {error:#}");
            }
        }
    }
    report.print(cli.repeat);
    if failures > 0 {
        anyhow::bail!("{failures} workload runs failed (see above)");
    }
    Ok(())
}
