//! Bridge-wide and per-conference counters, rendered in the Prometheus text format.
//!
//! Hand-rolled: a handful of counters owned by the single-threaded core need neither
//! atomics nor a registry; the text format is a few lines.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Why a datagram or packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// Longer than the configured maximum.
    Oversized,
    /// Neither STUN, DTLS, RTP nor RTCP (RFC 7983 first byte).
    Garbage,
    /// From an address no endpoint has authenticated (ICE) and not a valid STUN check.
    Unauthenticated,
    /// RTP whose SSRC the endpoint never signalled.
    UnknownSsrc,
    /// RTCP whose header is inconsistent with the datagram.
    MalformedRtcp,
    /// str0m rejected the input.
    RtcError,
    /// A bridge-channel message beyond the endpoint's rate limit.
    ChannelFlood,
    /// RTP beyond its SSRC's ingress budget.
    SsrcBudget,
    /// RTP beyond its endpoint's ingress budget (all its SSRCs together).
    EndpointBudget,
    /// RTCP beyond its endpoint's budget.
    RtcpBudget,
    /// AV1 RTP whose dependency descriptor is malformed or names a template structure
    /// never received (its frame cannot be placed in a layer).
    MalformedDependencyDescriptor,
    /// RTP of a kind of media a moderator muted on this endpoint.
    ForceMuted,
}

impl DropReason {
    fn label(self) -> &'static str {
        match self {
            Self::Oversized => "oversized",
            Self::Garbage => "garbage",
            Self::Unauthenticated => "unauthenticated",
            Self::UnknownSsrc => "unknown_ssrc",
            Self::MalformedRtcp => "malformed_rtcp",
            Self::RtcError => "rtc_error",
            Self::ChannelFlood => "channel_flood",
            Self::SsrcBudget => "ssrc_budget",
            Self::EndpointBudget => "endpoint_budget",
            Self::RtcpBudget => "rtcp_budget",
            Self::MalformedDependencyDescriptor => "malformed_dependency_descriptor",
            Self::ForceMuted => "force_muted",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    /// RTP packets handed to a receiver's stream.
    pub rtp_forwarded: u64,
    pub keyframe_requests: u64,
    pub nacks_received: u64,
    pub endpoints_expired: u64,
    pub dropped: BTreeMap<DropReason, u64>,
}

impl Counters {
    pub fn drop(&mut self, reason: DropReason) {
        *self.dropped.entry(reason).or_default() += 1;
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(&reason).copied().unwrap_or(0)
    }
}

/// A live snapshot of one conference for the gauges.
pub struct ConferenceGauges<'a> {
    pub name: &'a str,
    pub endpoints: usize,
    pub estimated_bandwidth_bps: u64,
    pub counters: &'a Counters,
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Name, help text and accessor of one counter family.
type CounterFamily = (&'static str, &'static str, fn(&Counters) -> u64);

pub fn render(total: &Counters, endpoints: usize, conferences: &[ConferenceGauges]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP convene_bridge_{name} {help}");
        let _ = writeln!(out, "# TYPE convene_bridge_{name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "convene_bridge_{name}{labels} {value}");
        }
    };
    let per_conf = |f: &dyn Fn(&ConferenceGauges) -> u64| -> Vec<(String, u64)> {
        conferences
            .iter()
            .map(|c| (format!("{{conference=\"{}\"}}", escape(c.name)), f(c)))
            .collect()
    };
    let with_total = |value: u64, f: &dyn Fn(&ConferenceGauges) -> u64| {
        let mut rows = vec![(String::new(), value)];
        rows.extend(per_conf(f));
        rows
    };
    family(
        "conferences",
        "gauge",
        "Conferences on this bridge.",
        vec![(String::new(), conferences.len() as u64)],
    );
    family(
        "endpoints",
        "gauge",
        "Endpoints allocated.",
        with_total(endpoints as u64, &|c| c.endpoints as u64),
    );
    let counters: [CounterFamily; 8] = [
        (
            "packets_in_total",
            "Datagrams received and accepted.",
            |c| c.packets_in,
        ),
        ("bytes_in_total", "Bytes of accepted datagrams.", |c| {
            c.bytes_in
        }),
        ("packets_out_total", "Datagrams sent.", |c| c.packets_out),
        ("bytes_out_total", "Bytes sent.", |c| c.bytes_out),
        (
            "rtp_forwarded_total",
            "RTP packets forwarded to a receiver.",
            |c| c.rtp_forwarded,
        ),
        (
            "keyframe_requests_total",
            "Keyframe requests sent to senders.",
            |c| c.keyframe_requests,
        ),
        (
            "nacks_total",
            "NACK feedback packets received from receivers.",
            |c| c.nacks_received,
        ),
        (
            "endpoints_expired_total",
            "Endpoints expired by the bridge itself.",
            |c| c.endpoints_expired,
        ),
    ];
    for (name, help, get) in counters {
        family(
            name,
            "counter",
            help,
            with_total(get(total), &|c| get(c.counters)),
        );
    }
    let reasons = [
        DropReason::Oversized,
        DropReason::Garbage,
        DropReason::Unauthenticated,
        DropReason::UnknownSsrc,
        DropReason::MalformedRtcp,
        DropReason::RtcError,
        DropReason::ChannelFlood,
        DropReason::SsrcBudget,
        DropReason::EndpointBudget,
        DropReason::RtcpBudget,
        DropReason::MalformedDependencyDescriptor,
    ];
    family(
        "dropped_total",
        "counter",
        "Datagrams or packets dropped, by reason.",
        reasons
            .iter()
            .map(|r| (format!("{{reason=\"{}\"}}", r.label()), total.dropped(*r)))
            .collect(),
    );
    family(
        "estimated_bandwidth_bps",
        "gauge",
        "Sum of receivers' estimated downlink bandwidth.",
        per_conf(&|c| c.estimated_bandwidth_bps),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_totals_per_conference_and_drop_reasons() {
        let mut total = Counters {
            packets_in: 7,
            ..Default::default()
        };
        total.drop(DropReason::Garbage);
        let conf = Counters {
            packets_in: 5,
            ..Default::default()
        };
        let text = render(
            &total,
            2,
            &[ConferenceGauges {
                name: "room\"1",
                endpoints: 2,
                estimated_bandwidth_bps: 9,
                counters: &conf,
            }],
        );
        assert!(text.contains("convene_bridge_packets_in_total 7\n"));
        assert!(text.contains("convene_bridge_packets_in_total{conference=\"room\\\"1\"} 5\n"));
        assert!(text.contains("convene_bridge_dropped_total{reason=\"garbage\"} 1\n"));
        assert!(text.contains("# TYPE convene_bridge_endpoints gauge\n"));
    }
}
