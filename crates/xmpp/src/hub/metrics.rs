//! What the hub counts, and its Prometheus text exposition.

use std::fmt::Write;

use minidom::Element;

use crate::session::StreamError;

/// How a connection ended, as its shell reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ending {
    /// The stream error it was closed with, if any.
    pub error: Option<StreamError>,
    /// It was closed for exceeding the stanza rate limit.
    pub rate_limited: bool,
}

#[derive(Debug, Default)]
pub(super) struct Metrics {
    pub stanzas_in: u64,
    pub stanzas_out: u64,
    pub stanza_errors: u64,
    /// By [`StreamError::ALL`] index.
    pub stream_errors: [u64; StreamError::ALL.len()],
    pub rate_limited: u64,
    pub login_throttled: u64,
    pub connection_limited: u64,
    pub resumed: u64,
    /// Room broadcasts and joins held by the fan-out budgets, and refused by them.
    pub broadcasts_held: u64,
    pub broadcasts_refused: u64,
    pub joins_held: u64,
    pub joins_refused: u64,
    /// Held presence updates replaced by a later one.
    pub coalesced: u64,
}

/// The levels read from the hub's state when the metrics are asked for.
pub(super) struct Gauges {
    pub tcp_connections: usize,
    pub websocket_connections: usize,
    pub sessions: usize,
    pub parked: usize,
    pub rooms: usize,
    pub occupants: usize,
}

impl Metrics {
    pub fn delivered(&mut self, stanza: &Element) {
        self.stanzas_out += 1;
        if stanza.attr("type") == Some("error") {
            self.stanza_errors += 1;
        }
    }

    pub fn held(&mut self, join: bool) {
        *if join {
            &mut self.joins_held
        } else {
            &mut self.broadcasts_held
        } += 1;
    }

    pub fn refused(&mut self, join: bool) {
        *if join {
            &mut self.joins_refused
        } else {
            &mut self.broadcasts_refused
        } += 1;
    }

    pub fn ended(&mut self, ending: Ending) {
        if let Some(error) = ending.error {
            let index = StreamError::ALL
                .iter()
                .position(|e| *e == error)
                .expect("ALL lists every condition");
            self.stream_errors[index] += 1;
        }
        if ending.rate_limited {
            self.rate_limited += 1;
        }
    }

    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let connections = [
            ("transport=\"tcp\"", gauges.tcp_connections as u64),
            (
                "transport=\"websocket\"",
                gauges.websocket_connections as u64,
            ),
        ];
        family(
            &mut out,
            "connections",
            "gauge",
            "Open client connections, by transport.",
            &connections,
        );
        let gauge_rows = [
            (
                "sessions",
                "Bound client sessions on a live connection.",
                gauges.sessions,
            ),
            (
                "parked_sessions",
                "Detached sessions awaiting resumption.",
                gauges.parked,
            ),
            ("rooms", "MUC rooms that exist now.", gauges.rooms),
            (
                "occupants",
                "MUC occupants over all rooms.",
                gauges.occupants,
            ),
        ];
        for (name, help, value) in gauge_rows {
            family(&mut out, name, "gauge", help, &[("", value as u64)]);
        }
        let counter_rows = [
            (
                "stanzas_in_total",
                "Stanzas received from sessions and internal entities.",
                self.stanzas_in,
            ),
            (
                "stanzas_out_total",
                "Stanzas routed to sessions and internal entities.",
                self.stanzas_out,
            ),
            (
                "stanza_errors_total",
                "Routed stanzas of type error.",
                self.stanza_errors,
            ),
            (
                "resumed_total",
                "Sessions resumed (XEP-0198).",
                self.resumed,
            ),
        ];
        for (name, help, value) in counter_rows {
            family(&mut out, name, "counter", help, &[("", value)]);
        }
        let conditions: Vec<(String, u64)> = StreamError::ALL
            .iter()
            .zip(self.stream_errors)
            .map(|(error, count)| (format!("condition=\"{}\"", error.condition()), count))
            .collect();
        let conditions: Vec<(&str, u64)> =
            conditions.iter().map(|(l, c)| (l.as_str(), *c)).collect();
        family(
            &mut out,
            "stream_errors_total",
            "counter",
            "Connections closed with a stream error, by condition.",
            &conditions,
        );
        let throttled = [
            ("reason=\"rate_limit\"", self.rate_limited),
            ("reason=\"login\"", self.login_throttled),
            ("reason=\"unauthenticated_limit\"", self.connection_limited),
            ("reason=\"room_broadcast_held\"", self.broadcasts_held),
            ("reason=\"room_broadcast_refused\"", self.broadcasts_refused),
            ("reason=\"room_join_held\"", self.joins_held),
            ("reason=\"room_join_refused\"", self.joins_refused),
            ("reason=\"presence_coalesced\"", self.coalesced),
        ];
        family(
            &mut out,
            "throttled_total",
            "counter",
            "Clients held back: stanza rate limit exceeded, login delayed after failures, \
             too many unauthenticated connections from one address, room broadcasts and \
             joins held or refused by the fan-out budgets, held presence updates replaced.",
            &throttled,
        );
        out
    }
}

/// One metric family: `# HELP`, `# TYPE` and its samples (labels without braces).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP convene_xmpp_{name} {help}");
    let _ = writeln!(out, "# TYPE convene_xmpp_{name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "convene_xmpp_{name} {value}");
        } else {
            let _ = writeln!(out, "convene_xmpp_{name}{{{labels}}} {value}");
        }
    }
}
