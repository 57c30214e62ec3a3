//! The `convene` binary as an operator sees it: `/about/health`, `/metrics` read by the
//! official Prometheus client library, and a graceful stop on SIGTERM watched by a
//! connected XMPP client (`tests/peers/`, run with `$CONVENE_PYTHON`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const DOMAIN: &str = "convene.test";
const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/peers");

/// Metric families `/metrics` must contain, by role: the one list to extend as the roles
/// gain metrics. Names as `prometheus_client` reports them: a counter `x_total` is the
/// family `x`.
const REQUIRED_FAMILIES: &[&str] = &[
    "convene_xmpp_connections",
    "convene_xmpp_sessions",
    "convene_xmpp_parked_sessions",
    "convene_xmpp_rooms",
    "convene_xmpp_occupants",
    "convene_xmpp_stanzas_in",
    "convene_xmpp_stanzas_out",
    "convene_xmpp_stream_errors",
    "convene_xmpp_throttled",
    "convene_xmpp_resumed",
    "convene_focus_conferences",
    "convene_focus_participants",
    "convene_focus_conference_requests",
    "convene_focus_jingle_errors",
    "convene_focus_bridge_request_duration_seconds",
    "convene_bridge_endpoints",
    "convene_bridge_conferences",
];

/// Every family must carry one of the role prefixes.
const ROLE_PREFIXES: &[&str] = &["convene_xmpp_", "convene_focus_", "convene_bridge_"];

/// What SIGTERM promises: every role stopped and the process gone within 10 s; the extra
/// second covers the runtime's own shutdown.
const STOP_BOUND: Duration = Duration::from_secs(11);

/// A running `convene` on free loopback ports with a temporary data directory.
struct Convene {
    child: Child,
    http: SocketAddr,
    c2s: SocketAddr,
    data_dir: PathBuf,
}

impl Convene {
    fn start(name: &str) -> Convene {
        let data_dir = std::env::temp_dir().join(format!(
            "convene-ops-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&data_dir).unwrap();
        let (http, c2s) = (free_port(), free_port());
        let config = data_dir.join("convene.toml");
        std::fs::write(
            &config,
            format!(
                "domain = \"{DOMAIN}\"\n\
                 data_dir = \"{data}\"\n\
                 http_listen = \"{http}\"\n\
                 [xmpp]\n\
                 c2s_listen = \"{c2s}\"\n\
                 [bridge]\n\
                 udp_port = 0\n\
                 ice_tcp = false\n\
                 addresses = [\"127.0.0.1\"]\n",
                data = data_dir.display()
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_convene"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the convene binary");
        let convene = Convene {
            child,
            http,
            c2s,
            data_dir,
        };
        convene.wait_until_serving();
        convene
    }

    fn wait_until_serving(&self) {
        let started = Instant::now();
        while http_get(self.http, "/about/health").is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "convene does not answer HTTP on {}",
                self.http
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn get(&self, path: &str) -> Response {
        http_get(self.http, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
    }

    fn wait_for_exit(&mut self, bound: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < bound,
                "convene still running {bound:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Convene {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A port nobody listens on now (the kernel's pick, released again).
fn free_port() -> SocketAddr {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
}

struct Response {
    status: u16,
    content_type: String,
    body: String,
}

/// A one-shot HTTP/1.1 GET (`Connection: close`, so the body ends with the connection).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP head in {raw:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked bodies are not decoded here: {head}"
    );
    Ok(Response {
        status,
        content_type,
        body: body.to_owned(),
    })
}

fn python() -> Command {
    Command::new(std::env::var("CONVENE_PYTHON").unwrap_or_else(|_| "python3".into()))
}

fn next_json_line(lines: &mut impl BufRead, what: &str) -> Value {
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{what}: {e} in {line:?}"))
}

#[test]
fn health_names_every_role_ok() {
    let convene = Convene::start("health");
    let response = convene.get("/about/health");
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response.content_type.starts_with("application/json"),
        "{}",
        response.content_type
    );
    let body: Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(body["status"], "ok", "{body}");
    for role in ["xmpp", "focus", "bridge"] {
        assert_eq!(body["roles"][role], "ok", "{role} in {body}");
    }
}

#[test]
fn metrics_parse_with_the_prometheus_client_library() {
    let convene = Convene::start("metrics");
    let response = convene.get("/metrics");
    assert_eq!(response.status, 200);
    assert!(
        response
            .content_type
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        response.content_type
    );
    let mut parser = python()
        .arg(format!("{PEERS}/metrics_families.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python with prometheus_client (set CONVENE_PYTHON)");
    parser
        .stdin
        .take()
        .unwrap()
        .write_all(response.body.as_bytes())
        .unwrap();
    let output = parser.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "prometheus_client refused /metrics:\n{}\n--- document\n{}",
        String::from_utf8_lossy(&output.stderr),
        response.body
    );
    let families: serde_json::Map<String, Value> = serde_json::from_slice(&output.stdout).unwrap();
    for required in REQUIRED_FAMILIES {
        assert!(
            families.contains_key(*required),
            "{required} missing from /metrics: {:?}",
            families.keys().collect::<Vec<_>>()
        );
    }
    for (name, family) in &families {
        assert!(
            ROLE_PREFIXES.iter().any(|prefix| name.starts_with(prefix)),
            "{name} has no role prefix"
        );
        assert_ne!(family["type"], "unknown", "{name} has no # TYPE");
        assert_ne!(family["help"], "", "{name} has no # HELP");
    }
}

#[test]
fn sigterm_ends_streams_and_exits_zero_in_bounded_time() {
    let mut convene = Convene::start("sigterm");
    let mut watcher = python()
        .arg(format!("{PEERS}/stream_watch.py"))
        .arg("watch")
        .arg(format!("port={}", convene.c2s.port()))
        .arg(format!("domain={DOMAIN}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python (set CONVENE_PYTHON)");
    let mut events: BufReader<ChildStdout> = BufReader::new(watcher.stdout.take().unwrap());
    assert_eq!(next_json_line(&mut events, "bound")["event"], "bound");

    let signalled = Instant::now();
    convene.terminate();
    let status = convene.wait_for_exit(STOP_BOUND);
    assert!(
        status.success(),
        "convene exited with {status} after SIGTERM"
    );

    let closed = next_json_line(&mut events, "closed");
    assert_eq!(closed["event"], "closed", "{closed}");
    assert_eq!(closed["stream_error"], "system-shutdown", "{closed}");
    assert_eq!(closed["stream_end"], true, "{closed}");
    assert!(watcher.wait().unwrap().success());
    println!("stopped {:?} after SIGTERM: {closed}", signalled.elapsed());
}
