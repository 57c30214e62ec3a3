//! Turns measurements into the figures the benchmark promises and prints them side by side
//! with their ratio to the bare relay.

use std::fmt::Write;

use crate::recorder::quantile;
use crate::scenario::Measurement;
use crate::traffic::{Media, TOP_LAYER};

/// The figures of one scenario on one server.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub packets_per_second: f64,
    pub megabits_per_second: f64,
    /// Server CPU-seconds per wall second.
    pub server_cores: f64,
    pub packets_per_cpu_second: f64,
    /// Percent of one core per forwarded Mb/s.
    pub core_percent_per_mbps: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub audio_latency_p99_ms: f64,
    pub loss_percent: f64,
    pub duplicate_percent: f64,
    pub memory_per_endpoint_kib: f64,
    pub top_layer_percent: f64,
    pub load_generator_cores: f64,
    pub server_socket_drops: f64,
    pub load_generator_socket_drops: f64,
}

impl Figures {
    pub fn from_measurement(m: &Measurement) -> Self {
        let wall = m.wall.as_secs_f64();
        let cpu = m.server_cpu.as_secs_f64();
        let window = &m.window;
        let packets = window.packets as f64;
        let megabits = window.bytes as f64 * 8.0 / 1e6;
        let mut latencies = window.latencies_us.clone();
        let millis = |d: Option<std::time::Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
        let video: u64 = window.video_packets_by_layer.iter().sum();
        let expected = window.expected_packets();
        Self {
            packets_per_second: packets / wall,
            megabits_per_second: megabits / wall,
            server_cores: cpu / wall,
            packets_per_cpu_second: packets / cpu,
            core_percent_per_mbps: 100.0 * cpu / megabits,
            latency_p50_ms: millis(quantile(&mut latencies, 0.50)),
            latency_p99_ms: millis(quantile(&mut latencies, 0.99)),
            audio_latency_p99_ms: millis(quantile(&mut window.audio_latencies_us.clone(), 0.99)),
            loss_percent: 100.0 * window.lost_packets() as f64 / expected.max(1) as f64,
            duplicate_percent: 100.0 * window.duplicates as f64 / packets.max(1.0),
            memory_per_endpoint_kib: m.rss_growth as f64 / 1024.0 / m.scenario.endpoints() as f64,
            top_layer_percent: 100.0 * window.video_packets_by_layer[TOP_LAYER] as f64
                / video.max(1) as f64,
            load_generator_cores: m.load_generator_cpu.as_secs_f64() / wall,
            server_socket_drops: m.server_socket_drops as f64,
            load_generator_socket_drops: m.load_generator_socket_drops as f64,
        }
    }
}

/// A row: label, how to read the figure, and the figure.
type Row = (&'static str, &'static str, fn(&Figures) -> f64);

const ROWS: [Row; 15] = [
    ("packets forwarded /s", "wall", |f| f.packets_per_second),
    ("Mb/s forwarded (RTP)", "wall", |f| f.megabits_per_second),
    ("server CPU (cores)", "wall", |f| f.server_cores),
    ("packets / server CPU-s", "higher=better", |f| {
        f.packets_per_cpu_second
    }),
    ("core-% per forwarded Mb/s", "lower=better", |f| {
        f.core_percent_per_mbps
    }),
    ("latency p50 (ms)", "lower=better", |f| f.latency_p50_ms),
    ("latency p99 (ms)", "lower=better", |f| f.latency_p99_ms),
    ("audio latency p99 (ms)", "lower=better", |f| {
        f.audio_latency_p99_ms
    }),
    ("loss (%)", "lower=better", |f| f.loss_percent),
    ("duplicates, e.g. RTX (%)", "", |f| f.duplicate_percent),
    ("server memory / endpoint (KiB)", "lower=better", |f| {
        f.memory_per_endpoint_kib
    }),
    ("video packets on top layer (%)", "", |f| {
        f.top_layer_percent
    }),
    ("load generator CPU (cores)", "wall", |f| {
        f.load_generator_cores
    }),
    ("kernel drops, server socket", "in window", |f| {
        f.server_socket_drops
    }),
    ("kernel drops, load generator", "in window", |f| {
        f.load_generator_socket_drops
    }),
];

fn number(value: f64) -> String {
    if value.is_nan() {
        "-".into()
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

fn ratio(bridge: f64, relay: f64) -> String {
    if relay == 0.0 || relay.is_nan() || bridge.is_nan() {
        "-".into()
    } else {
        format!("{:.2}", bridge / relay)
    }
}

/// A Markdown table of one scenario: bridge, relay, bridge/relay.
pub fn table(bridge: Option<&Measurement>, relay: Option<&Measurement>) -> String {
    let (Some(first), bridge_figures, relay_figures) = (
        bridge.or(relay),
        bridge.map(Figures::from_measurement),
        relay.map(Figures::from_measurement),
    ) else {
        return String::new();
    };
    let scenario = first.scenario;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### {} senders x {} receivers, {} ({} endpoints, {} forwarded sender->receiver pairs, {:.1} s window)\n",
        scenario.senders,
        scenario.receivers,
        match scenario.media {
            Media::Vp8Simulcast => "VP8 simulcast",
            Media::Av1Svc => "AV1 SVC L2T3_KEY",
        },
        scenario.endpoints(),
        scenario.forwarded_pairs(),
        first.wall.as_secs_f64(),
    );
    let _ = writeln!(out, "| figure | | bridge | relay | bridge/relay |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    for (label, note, get) in ROWS {
        let b = bridge_figures.as_ref().map(get);
        let r = relay_figures.as_ref().map(get);
        let _ = writeln!(
            out,
            "| {label} | {note} | {} | {} | {} |",
            b.map_or("-".into(), number),
            r.map_or("-".into(), number),
            match (b, r) {
                (Some(b), Some(r)) => ratio(b, r),
                _ => "-".into(),
            }
        );
    }
    let _ = writeln!(
        out,
        "\nMachine load average (1 min) at the end of each window: {}.",
        [bridge, relay]
            .into_iter()
            .flatten()
            .map(|m| format!("{:?} {:.2}", m.kind, m.load_average))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for m in [bridge, relay].into_iter().flatten() {
        let (ready, expected) = m.streams_ready;
        if ready < expected {
            let _ = writeln!(
                out,
                "\n{:?}: only {ready} of {expected} streams reached their receivers before the window.",
                m.kind
            );
        }
    }
    out
}
