//! The bridge's sans-IO core: conferences, endpoints (one str0m `Rtc` each) and the
//! forwarding between them. Fed with `(now, input)` through [`Core::handle_datagram`],
//! [`Core::handle_timeout`], [`Core::handle_request`] and the bridge-channel calls;
//! everything it wants done (datagrams to send, bridge-channel messages, events for the
//! focus) comes out of [`Core::poll_output`], which the shell calls until `None` before it
//! waits again. The tokio shell in `lib.rs` only owns sockets, WebSockets and the timer.
//!
//! Randomness (conference URL ids, ICE credentials, colibri-ws passwords, feedback SSRCs)
//! comes from the generator handed to [`Core::new`]. str0m draws its own DTLS and SRTP
//! keys internally; those never leave str0m.
//!
//! Layout: `demux` (datagrams to endpoints), `forward` and `receiver` (the hot path and
//! where a forwarded packet goes), `allocation` (layer choice per receiver), `output`
//! (draining str0m, its events, sending forwarded media), `ingress` (what one endpoint may send), `expiry` (timers, idle and broken
//! endpoints, shutdown), `requests` (the focus), `bridge_channel` (colibri-ws), `endpoint`
//! and `sources` (per-endpoint state and signalled sources), `rtc` (the str0m guard).

mod allocation;
mod bridge_channel;
mod demux;
// The header checks alone, for the fuzz targets (`fuzz/`), which cannot set up the SRTP
// session that reaches them through `Core::handle_datagram`.
#[cfg(feature = "fuzzing")]
pub use demux::classify_rtp_or_rtcp;
mod endpoint;
mod expiry;
mod forward;
mod ingress;
mod output;
mod receiver;
mod requests;
mod rtc;
mod sources;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

// A seeded fast hasher: these maps are looked up several times per forwarded packet.
use foldhash::{HashMap, HashMapExt};
use rand::Rng;
use rand::distr::Alphanumeric;
use rand::rngs::StdRng;
use str0m::Event;
use str0m::media::Mid;
use str0m::net::{Protocol, Transmit};
use tracing::Span;

use crate::api::{BridgeEvent, ConferenceId, MediaKind};
use crate::metrics::{self, Counters};
use crate::speaker::SpeakerDetector;
use endpoint::Endpoint;
pub use ingress::IngressLimits;

/// Identifies an endpoint inside the core (ids are only unique per conference).
pub type EndpointKey = u64;

/// How often speakers, allocations and idle endpoints are looked at.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(250);
/// How often each receiver is told its estimated downlink (`ConnectionStats`).
const CONNECTION_STATS_INTERVAL: Duration = Duration::from_secs(5);

const AUDIO_MID: &str = "audio";
const VIDEO_MID: &str = "video";

pub struct Settings {
    /// Bound UDP addresses; each is a local ICE host candidate.
    pub local_addrs: Vec<SocketAddr>,
    /// Listening ICE-TCP addresses (RFC 6544 passive candidates, lower priority).
    pub tcp_addrs: Vec<SocketAddr>,
    /// Addresses that NAT maps onto ours: advertised in offers only (str0m sees packets
    /// arrive on the local address either way).
    pub public_ips: Vec<IpAddr>,
    pub colibri_ws_base: String,
    pub server_id: String,
    pub idle_timeout: Duration,
    pub initial_bandwidth_bps: u64,
    pub max_datagram_bytes: usize,
    pub ingress: IngressLimits,
}

#[derive(Debug)]
pub enum CoreOutput {
    Transmit(Transmit),
    /// A bridge-channel message for one endpoint.
    Channel {
        endpoint: EndpointKey,
        text: String,
    },
    /// The endpoint is gone: close its bridge channel.
    CloseChannel(EndpointKey),
    Event(BridgeEvent),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelAuthError {
    #[error("no such conference or endpoint")]
    Unknown,
    #[error("wrong password")]
    BadPassword,
}

struct Conference {
    /// The conference's id in colibri-ws URLs and metrics: random, because the room JID
    /// does not belong in a path, a metric label or a log line.
    url_id: String,
    /// `conference{id=url_id}`: the work done for this conference runs inside it.
    span: Span,
    endpoints: Vec<EndpointKey>,
    speakers: SpeakerDetector<EndpointKey>,
    counters: Counters,
    dirty: bool,
}

pub struct Core {
    settings: Settings,
    rng: StdRng,
    conferences: HashMap<ConferenceId, Conference>,
    conference_by_url: HashMap<String, ConferenceId>,
    endpoints: HashMap<EndpointKey, Endpoint>,
    next_key: EndpointKey,
    by_ufrag: HashMap<String, EndpointKey>,
    /// (protocol, remote, local) → endpoint, learnt from authenticated STUN and from our
    /// own sends.
    by_addr: HashMap<(Protocol, SocketAddr, SocketAddr), EndpointKey>,
    pending: VecDeque<(EndpointKey, Event)>,
    /// Receivers that were handed forwarded media which str0m has not sent yet; see
    /// [`Core::poll_output`].
    unsent: Vec<EndpointKey>,
    output: VecDeque<CoreOutput>,
    counters: Counters,
    next_housekeeping: Instant,
    next_connection_stats: Instant,
}

/// Percent-encodes everything but unreserved characters, for a URL path segment.
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn mid_of(kind: MediaKind) -> Mid {
    Mid::from(match kind {
        MediaKind::Audio => AUDIO_MID,
        MediaKind::Video => VIDEO_MID,
    })
}

/// The endpoint ids of the recent speakers before the dominant one, most recent first, as
/// `DominantSpeakerEndpointChangeEvent.previousSpeakers` carries them.
fn previous_speaker_ids(
    speakers: &SpeakerDetector<EndpointKey>,
    endpoints: &HashMap<EndpointKey, Endpoint>,
) -> Vec<String> {
    speakers
        .previous()
        .iter()
        .filter_map(|k| endpoints.get(k).map(|e| e.id.0.clone()))
        .collect()
}

/// Applies one update to the bridge-wide counters and to the conference's.
fn count(
    total: &mut Counters,
    conferences: &mut HashMap<ConferenceId, Conference>,
    conference: &ConferenceId,
    update: impl Fn(&mut Counters),
) {
    update(total);
    if let Some(c) = conferences.get_mut(conference) {
        update(&mut c.counters);
    }
}

impl Core {
    /// `rng` supplies every id and secret the bridge makes up itself: production passes
    /// `StdRng::from_os_rng()` (ICE passwords and channel passwords must stay
    /// unpredictable), tests a seeded one.
    pub fn new(settings: Settings, now: Instant, rng: StdRng) -> Self {
        Self {
            settings,
            rng,
            conferences: HashMap::new(),
            conference_by_url: HashMap::new(),
            endpoints: HashMap::new(),
            next_key: 1,
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            pending: VecDeque::new(),
            unsent: Vec::new(),
            output: VecDeque::new(),
            counters: Counters::default(),
            next_housekeeping: now + HOUSEKEEPING_INTERVAL,
            next_connection_stats: now + CONNECTION_STATS_INTERVAL,
        }
    }

    /// The next thing for the shell to do, `None` once the core has nothing left.
    ///
    /// Forwarded media is handed to the receivers' `Rtc`s as it is forwarded but
    /// encrypted and sent only here, once per receiver for all the packets of the
    /// preceding inputs: so a loop turn that handled many datagrams serves each
    /// receiver's str0m timeout once, and its datagrams leave as one batch per
    /// destination. The shell must call this until it returns `None` after every input
    /// (with the current time); until then forwarded media waits.
    pub fn poll_output(&mut self, now: Instant) -> Option<CoreOutput> {
        loop {
            if let Some(output) = self.output.pop_front() {
                return Some(output);
            }
            if self.unsent.is_empty() {
                return None;
            }
            self.send_forwarded(now);
        }
    }

    /// When [`Core::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Instant {
        self.endpoints
            .values()
            .map(|e| e.next_timeout)
            .fold(self.next_housekeeping, Instant::min)
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn metrics_text(&self) -> String {
        let gauges: Vec<metrics::ConferenceGauges> = self
            .conferences
            .values()
            // Labelled by the random conference id, not the room name: on a public server
            // room names are what lets people in, and /metrics must not list them.
            .map(|c| metrics::ConferenceGauges {
                name: &c.url_id,
                endpoints: c.endpoints.len(),
                estimated_bandwidth_bps: c
                    .endpoints
                    .iter()
                    .filter_map(|k| self.endpoints.get(k))
                    .map(|e| e.bandwidth_bps)
                    .sum(),
                counters: &c.counters,
            })
            .collect();
        metrics::render(&self.counters, self.endpoints.len(), &gauges)
    }

    fn random_string(&mut self, len: usize) -> String {
        (&mut self.rng)
            .sample_iter(Alphanumeric)
            .take(len)
            .map(char::from)
            .collect()
    }

    /// The span of an endpoint's conference (disabled when it is gone).
    fn span_of(&self, key: EndpointKey) -> Span {
        self.endpoints
            .get(&key)
            .and_then(|e| self.conferences.get(&e.conference))
            .map_or_else(Span::none, |c| c.span.clone())
    }
}

#[cfg(test)]
mod tests;
