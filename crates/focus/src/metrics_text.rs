//! The focus's metrics in the Prometheus text exposition format: the core's gauges and
//! counters, and the bridge request latency the shell measures.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use convene_colibri::BridgeRequest;

use crate::Metrics;

/// Upper bounds (seconds) of the latency buckets: an in-process bridge answers in well under
/// a millisecond, a remote one in tens, a struggling one in about a second.
const BUCKETS: [f64; 6] = [0.001, 0.005, 0.025, 0.1, 0.5, 2.5];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Per bucket, the observations at most its bound (cumulative, as exposed).
    cumulative: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Bridge request latency by request kind.
#[derive(Debug, Default)]
pub(crate) struct BridgeLatency {
    by_kind: BTreeMap<&'static str, Histogram>,
}

impl BridgeLatency {
    pub fn observe(&mut self, kind: &'static str, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let histogram = self.by_kind.entry(kind).or_default();
        for (count, bound) in histogram.cumulative.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        histogram.sum += seconds;
        histogram.count += 1;
    }
}

/// The `kind` label of a bridge request.
pub(crate) fn request_kind(request: &BridgeRequest) -> &'static str {
    match request {
        BridgeRequest::AllocateEndpoint { .. } => "allocate-endpoint",
        BridgeRequest::ConfigureEndpoint { .. } => "configure-endpoint",
        BridgeRequest::AddRemoteCandidates { .. } => "add-remote-candidates",
        BridgeRequest::AddSources { .. } => "add-sources",
        BridgeRequest::RemoveSources { .. } => "remove-sources",
        BridgeRequest::ForceMute { .. } => "force-mute",
        BridgeRequest::ExpireEndpoint { .. } => "expire-endpoint",
        BridgeRequest::ExpireConference { .. } => "expire-conference",
    }
}

fn header(text: &mut String, name: &str, typ: &str, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {typ}");
}

pub(crate) fn render(metrics: &Metrics, latency: &BridgeLatency) -> String {
    let mut text = String::new();
    let gauges = [
        (
            "convene_focus_conferences",
            "Conferences the focus is in.",
            metrics.conferences as u64,
        ),
        (
            "convene_focus_participants",
            "Participants (occupants other than the focus) in all conferences.",
            metrics.participants as u64,
        ),
    ];
    for (name, help, value) in gauges {
        header(&mut text, name, "gauge", help);
        let _ = writeln!(text, "{name} {value}");
    }
    let name = "convene_focus_conference_requests_total";
    header(&mut text, name, "counter", "Conference requests received.");
    let _ = writeln!(text, "{name} {}", metrics.conference_requests);
    let name = "convene_focus_jingle_errors_total";
    header(
        &mut text,
        name,
        "counter",
        "Jingle requests refused and bridge requests failed, by kind.",
    );
    for (kind, count) in &metrics.jingle_errors {
        let _ = writeln!(text, "{name}{{kind=\"{}\"}} {count}", kind.label());
    }
    let name = "convene_focus_bridge_request_duration_seconds";
    header(
        &mut text,
        name,
        "histogram",
        "Time from sending a bridge request to its response, by request kind.",
    );
    for (kind, histogram) in &latency.by_kind {
        for (bound, count) in BUCKETS.iter().zip(histogram.cumulative) {
            let _ = writeln!(
                text,
                "{name}_bucket{{kind=\"{kind}\",le=\"{bound}\"}} {count}"
            );
        }
        let count = histogram.count;
        let _ = writeln!(text, "{name}_bucket{{kind=\"{kind}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(text, "{name}_sum{{kind=\"{kind}\"}} {}", histogram.sum);
        let _ = writeln!(text, "{name}_count{{kind=\"{kind}\"}} {count}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JingleErrorKind;
    use crate::jingle::Action;

    #[test]
    fn every_metric_has_help_and_type_and_the_histogram_is_cumulative() {
        let metrics = Metrics {
            conferences: 1,
            participants: 2,
            conference_requests: 3,
            jingle_errors: vec![
                (JingleErrorKind::UnknownSession, 4),
                (JingleErrorKind::Refused(Action::SessionAccept), 5),
            ],
        };
        let mut latency = BridgeLatency::default();
        latency.observe("allocate-endpoint", Duration::from_millis(3));
        latency.observe("allocate-endpoint", Duration::from_millis(200));
        let text = render(&metrics, &latency);
        for line in [
            "convene_focus_conferences 1",
            "convene_focus_participants 2",
            "convene_focus_conference_requests_total 3",
            "convene_focus_jingle_errors_total{kind=\"unknown-session\"} 4",
            "convene_focus_jingle_errors_total{kind=\"refused-session-accept\"} 5",
            "convene_focus_bridge_request_duration_seconds_bucket{kind=\"allocate-endpoint\",le=\"0.001\"} 0",
            "convene_focus_bridge_request_duration_seconds_bucket{kind=\"allocate-endpoint\",le=\"0.005\"} 1",
            "convene_focus_bridge_request_duration_seconds_bucket{kind=\"allocate-endpoint\",le=\"0.5\"} 2",
            "convene_focus_bridge_request_duration_seconds_bucket{kind=\"allocate-endpoint\",le=\"+Inf\"} 2",
            "convene_focus_bridge_request_duration_seconds_count{kind=\"allocate-endpoint\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        let samples = text.lines().filter(|l| !l.starts_with('#'));
        for sample in samples {
            let name = sample.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| text.contains(&format!("# TYPE {base} histogram")))
                .unwrap_or(name);
            assert!(text.contains(&format!("# HELP {family} ")), "{family}");
            assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
        }
    }
}
