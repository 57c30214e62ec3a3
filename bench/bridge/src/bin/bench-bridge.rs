//! `bench-bridge`: measures Convene's bridge forwarding N senders x M receivers against a
//! bare UDP relay carrying the same packets, in one run.
//!
//! `cargo run --release -p convene-bench-bridge --bin bench-bridge -- --scenarios 2x4,5x10`

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use convene_bench_bridge::control::{BridgeTuning, ServerKind};
use convene_bench_bridge::report::{Figures, table};
use convene_bench_bridge::scenario::{self, RunSettings, Scenario};
use convene_bench_bridge::server;

#[derive(Parser)]
#[command(
    about = "Bridge (SFU) benchmark against a bare UDP relay",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Internal: the server process the benchmark starts and measures.
    Server {
        kind: ServerKind,
        #[command(flatten)]
        tuning: BridgeTuning,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Comma-separated SENDERSxRECEIVERS conferences, run one after the other.
    #[arg(long, value_delimiter = ',', default_value = "2x4,5x10,10x20")]
    scenarios: Vec<Scenario>,
    /// Servers to measure, each scenario on each.
    #[arg(long, value_delimiter = ',', default_value = "relay,bridge")]
    servers: Vec<ServerKind>,
    /// Seconds to wait for all streams to arrive.
    #[arg(long, default_value_t = 20)]
    connect_timeout_secs: u64,
    /// Seconds of media before measuring, for congestion control and layers to settle.
    #[arg(long, default_value_t = 8)]
    warmup_secs: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10)]
    window_secs: u64,
    #[command(flatten)]
    tuning: BridgeTuning,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Server { kind, tuning }) => server::serve(kind, tuning).await,
        None => run(cli.run).await,
    }
}

async fn run(args: RunArgs) -> Result<()> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let settings = RunSettings {
        tuning: args.tuning,
        connect_timeout: Duration::from_secs(args.connect_timeout_secs),
        warmup: Duration::from_secs(args.warmup_secs),
        window: Duration::from_secs(args.window_secs),
    };
    println!(
        "# Bridge benchmark: {} CPU(s), {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model()
    );
    println!(
        "Per sender: 3 VP8 simulcast layers (150 + 500 + 1850 kb/s, 30 fps bursts), or for \
         `NxMsvc` AV1 L2T3_KEY on one SSRC with dependency descriptors (500 + 1850 kb/s, \
         temporal layers 0-2-1-2), + 40 kb/s Opus at 50 packets/s. Receivers are unconstrained \
         (top layer). CPU and memory are the server process's own, from /proc.\n"
    );
    let mut headline = Vec::new();
    for scenario in &args.scenarios {
        let mut bridge = None;
        let mut relay = None;
        for kind in &args.servers {
            eprintln!("running {scenario} on the {kind:?} ...");
            let measurement = scenario::run(&exe, *kind, *scenario, settings)
                .await
                .with_context(|| format!("{scenario} on the {kind:?}"))?;
            match kind {
                ServerKind::Bridge => bridge = Some(measurement),
                ServerKind::Relay => relay = Some(measurement),
            }
        }
        println!("{}", table(bridge.as_ref(), relay.as_ref()));
        if let (Some(b), Some(r)) = (&bridge, &relay) {
            let (b, r) = (Figures::from_measurement(b), Figures::from_measurement(r));
            headline.push(format!(
                "{scenario}: bridge forwards {:.2}x the relay's packets per CPU-second",
                b.packets_per_cpu_second / r.packets_per_cpu_second
            ));
        }
    }
    if !headline.is_empty() {
        println!("Aim: at least 0.5x.");
        for line in headline {
            println!("- {line}");
        }
    }
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
