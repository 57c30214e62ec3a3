//! The `convene` binary as an operator sees it: `/about/health`, `/metrics` read by the
//! official Prometheus client library, and a graceful stop on SIGTERM watched by a
//! connected XMPP client (`tests/peers/`, run with `$CONVENE_PYTHON`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Convene, DOMAIN};

use serde_json::Value;

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
    "convene_http_connections",
    "convene_http_connections_refused",
    "convene_http_connections_timed_out",
];

/// Every family must carry one of the role prefixes.
const ROLE_PREFIXES: &[&str] = &[
    "convene_xmpp_",
    "convene_focus_",
    "convene_bridge_",
    "convene_http_",
];

/// What SIGTERM promises: every role stopped and the process gone within 10 s; the extra
/// second covers the runtime's own shutdown.
const STOP_BOUND: Duration = Duration::from_secs(11);

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
