//! The innocent occupants: slixmpp clients in `tests/peers/innocents.py`, chatting in one
//! room at a fixed rate, told by the test which phase their messages belong to; at the
//! end their reports give each phase's latencies and every message's receptions.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/peers/innocents.py"
);

struct Peer {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    async fn next(&mut self, event: &str) -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("the innocents said no {event}"))
                .unwrap()
                .unwrap_or_else(|| panic!("the innocents exited before {event}"));
            let value: Value = serde_json::from_str(&line).unwrap();
            if value["event"] == event {
                return value;
            }
        }
    }

    async fn tell(&mut self, message: Value) {
        self.stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
    }
}

/// `clients` occupants in `processes` Python processes (so that parsing what the room
/// sends them does not queue up behind one interpreter).
pub struct Innocents {
    peers: Vec<Peer>,
    clients: usize,
}

/// What the innocents saw, per phase.
pub struct Figures {
    /// Phase → (p50, p99, deliveries measured), in the order the phases ran.
    pub phases: Vec<(String, Duration, Duration, usize)>,
    /// Messages some innocent did not receive, or received twice.
    pub lost: Vec<String>,
    pub doubled: Vec<String>,
    pub disconnected: u64,
    pub sent: usize,
}

impl Innocents {
    /// Started and joined to `room`; together they send `rate` messages a second.
    pub async fn join(
        c2s_port: u16,
        room: &str,
        clients: usize,
        processes: usize,
        rate: f64,
    ) -> Innocents {
        let python = std::env::var("CONVENE_PYTHON").unwrap_or_else(|_| "python3".into());
        let per = clients / processes;
        let mut peers = Vec::new();
        for p in 0..processes {
            let mut child = Command::new(&python)
                .arg(PEER)
                .arg("chat")
                .arg(format!("port={c2s_port}"))
                .arg(format!("domain={}", crate::common::DOMAIN))
                .arg(format!("room={room}"))
                .arg(format!("clients={per}"))
                .arg(format!("first={}", p * per))
                .arg(format!("total={clients}"))
                .arg(format!("rate={rate}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("{python} (set CONVENE_PYTHON to one with slixmpp): {e}")
                });
            let stdin = child.stdin.take().unwrap();
            let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
            peers.push(Peer {
                _child: child,
                stdin,
                stdout,
            });
        }
        for peer in &mut peers {
            peer.next("joined").await;
        }
        Innocents { peers, clients }
    }

    /// Messages sent from now on belong to `phase`.
    pub async fn phase(&mut self, phase: &str) {
        for peer in &mut self.peers {
            peer.tell(json!({ "phase": phase })).await;
        }
    }

    /// Stops the chat and gathers the reports.
    pub async fn stop(mut self, order: &[String]) -> Figures {
        for peer in &mut self.peers {
            peer.tell(json!({ "cmd": "stop" })).await;
        }
        let mut sent = BTreeMap::<String, String>::new();
        let mut received = BTreeMap::<String, Vec<u64>>::new();
        let mut latencies = BTreeMap::<String, Vec<f64>>::new();
        let mut disconnected = 0;
        for peer in &mut self.peers {
            let report = peer.next("report").await;
            for (id, phase) in report["sent"].as_object().unwrap() {
                sent.insert(id.clone(), phase.as_str().unwrap().to_owned());
            }
            for (id, counts) in report["received"].as_object().unwrap() {
                received.entry(id.clone()).or_default().extend(
                    counts
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c.as_u64().unwrap()),
                );
            }
            for (phase, values) in report["latencies"].as_object().unwrap() {
                latencies.entry(phase.clone()).or_default().extend(
                    values
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap()),
                );
            }
            disconnected += report["disconnected"].as_u64().unwrap();
        }
        let lost = sent
            .keys()
            .filter(|id| {
                let counts = received.get(*id).map(Vec::as_slice).unwrap_or_default();
                counts.len() < self.clients || counts.contains(&0)
            })
            .cloned()
            .collect();
        let doubled = received
            .iter()
            .filter(|(_, counts)| counts.iter().any(|c| *c > 1))
            .map(|(id, _)| id.clone())
            .collect();
        let phases = order
            .iter()
            .filter_map(|phase| {
                let mut values = latencies.remove(phase)?;
                values.sort_by(f64::total_cmp);
                let at = |q: usize| {
                    let index = (values.len() * q / 100).min(values.len() - 1);
                    Duration::from_secs_f64(values[index] / 1000.0)
                };
                Some((phase.clone(), at(50), at(99), values.len()))
            })
            .collect();
        Figures {
            phases,
            lost,
            doubled,
            disconnected,
            sent: sent.len(),
        }
    }
}
