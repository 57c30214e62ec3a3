//! Starting a fresh server on loopback for each workload, reading its CPU time and
//! resident memory from /proc, and stopping it.

use std::fmt;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The XMPP domain both servers serve; guests on `guest.D`, rooms on `conference.D`
/// (Jitsi's layout, which Convene derives from its one domain).
pub const DOMAIN: &str = "localhost";
pub const GUEST_DOMAIN: &str = "guest.localhost";
pub const MUC_DOMAIN: &str = "conference.localhost";
pub const PASSWORD: &str = "bench-password";

/// Linux reports utime/stime in USER_HZ ticks, which is 100 on every Linux ABI.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Convene,
    Prosody,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Convene => "Convene",
            Kind::Prosody => "Prosody",
        })
    }
}

/// Where the server programs are.
pub struct Programs {
    pub convene: PathBuf,
    pub prosody: PathBuf,
    pub prosodyctl: PathBuf,
}

/// A running server with its own temporary directory.
pub struct Server {
    kind: Kind,
    child: Child,
    dir: PathBuf,
    pub c2s: SocketAddr,
}

/// Server CPU time (user + system) in seconds, from /proc/<pid>/stat.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces; the fields after its closing parenthesis are
    // state (field 3) onwards, so utime and stime (fields 14 and 15) are at 11 and 12.
    let rest = &stat[stat.rfind(')').context("malformed /proc stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields[11].parse()?;
    let stime: u64 = fields[12].parse()?;
    Ok((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// Resident set size in bytes, from /proc/<pid>/status.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("malformed VmRSS")?
        .parse()?;
    Ok(kib * 1024)
}

fn free_loopback_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs a set-up command to completion, with `input` on its standard input.
fn run(command: &mut Command, input: &str) -> anyhow::Result<()> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {command:?}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

impl Server {
    /// Starts a fresh server with `users` password accounts `bench0`.. and waits until it
    /// accepts connections.
    pub fn start(kind: Kind, programs: &Programs, users: usize) -> anyhow::Result<Server> {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "convene-bench-xmpp-{}-{kind}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data"))?;
        let port = free_loopback_port()?;
        let c2s = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut command = match kind {
            Kind::Prosody => prosody(&dir, port, users, programs)?,
            Kind::Convene => convene(&dir, port, users, programs)?,
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {kind}"))?;
        let mut server = Server {
            kind,
            child,
            dir,
            c2s,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited at start-up ({status}): {}",
                    self.kind,
                    self.log_tail()
                );
            }
            if std::net::TcpStream::connect(self.c2s).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} does not listen on {}: {}",
                    self.kind,
                    self.c2s,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines the server logged, for error reports.
    /// (Both servers log warnings and errors only: console output and Prosody's log file;
    /// Convene's start-up banner is left out.)
    pub fn log_tail(&self) -> String {
        let log: String = ["server.log", "prosody-warnings.log"]
            .iter()
            .filter_map(|file| std::fs::read_to_string(self.dir.join(file)).ok())
            .collect();
        let lines: Vec<&str> = log
            .lines()
            .filter(|line| !line.trim().is_empty() && !line.starts_with("Convene is running"))
            .collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server and removes its directory.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Prosody 0.12 configured as its operators would for this load: epoll backend (the 0.12
/// default), incremental GC, Nagle off, warnings-only logging, no TLS on loopback, the
/// modules the workload needs, users created with `prosodyctl register`.
fn prosody(dir: &Path, port: u16, users: usize, programs: &Programs) -> anyhow::Result<Command> {
    let config_path = dir.join("prosody.cfg.lua");
    std::fs::create_dir_all(dir.join("certs"))?;
    let config = format!(
        r#"-- Generated by convene-bench-xmpp
run_as_root = true
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
certificates = "{dir}/certs"
log = {{ warn = "{dir}/prosody-warnings.log" }}
gc = {{ mode = "incremental" }}
network_backend = "epoll"
network_settings = {{ nagle = false }}
c2s_ports = {{ {port} }}
c2s_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}
component_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
modules_enabled = {{ "saslauth", "disco", "ping" }}

VirtualHost "{DOMAIN}"
    authentication = "internal_hashed"

VirtualHost "{GUEST_DOMAIN}"
    authentication = "anonymous"

Component "{MUC_DOMAIN}" "muc"
"#,
        dir = dir.display()
    );
    std::fs::write(&config_path, config)?;
    for user in 0..users {
        run(
            Command::new(&programs.prosodyctl)
                .arg("--config")
                .arg(&config_path)
                .args(["register", &format!("bench{user}"), DOMAIN, PASSWORD]),
            "",
        )?;
    }
    let mut command = Command::new(&programs.prosody);
    command.arg("--config").arg(&config_path).arg("-F");
    Ok(command)
}

/// Convene with its XMPP listener on loopback, users created with `convene user add`.
/// Raised, because Prosody 0.12 has no such limits unless mod_limits / mod_muc_limits are
/// loaded and the benchmark measures capacity: the per-address limit on unauthenticated
/// connections (every client of the benchmark comes from 127.0.0.1) and the room's
/// fan-out budgets (the saturated phase sends ~50 messages/s per occupant, beyond a
/// meeting's 10/s sender budget). Everything else (stanza rate limits included) is the
/// default.
fn convene(dir: &Path, port: u16, users: usize, programs: &Programs) -> anyhow::Result<Command> {
    let config_path = dir.join("convene.toml");
    let http_port = free_loopback_port()?;
    let config = format!(
        r#"# Generated by convene-bench-xmpp
domain = "{DOMAIN}"
data_dir = "{dir}/data"
http_listen = "127.0.0.1:{http_port}"

[xmpp]
c2s_listen = "127.0.0.1:{port}"
max_unauthenticated_per_ip = 100000
muc_room_deliveries_per_second = 1000000000.0
muc_room_delivery_burst = 1000000000.0
muc_sender_broadcasts_per_second = 1000000.0
muc_sender_broadcast_burst = 1000000.0
"#,
        dir = dir.display()
    );
    std::fs::write(&config_path, config)?;
    for user in 0..users {
        run(
            Command::new(&programs.convene)
                .arg("--config")
                .arg(&config_path)
                .args(["user", "add", &format!("bench{user}")])
                .env("RUST_LOG", "warn"),
            &format!("{PASSWORD}\n"),
        )?;
    }
    let mut command = Command::new(&programs.convene);
    command
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "warn");
    Ok(command)
}
