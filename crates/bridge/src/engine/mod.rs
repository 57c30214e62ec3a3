//! The bridge's sans-IO core: conferences, endpoints (one str0m `Rtc` each) and the
//! forwarding between them. Fed with `(now, input)`; everything it wants done (datagrams
//! to send, bridge-channel messages, events for the focus) is queued for [`Core::poll_output`].
//! The tokio shell in `lib.rs` only owns sockets, WebSockets and the timer.

mod bridge_channel;
mod requests;

use std::collections::VecDeque;

// A seeded fast hasher: these maps are looked up several times per forwarded packet.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distr::Alphanumeric;
use str0m::ice::StunMessage;
use str0m::media::{KeyframeRequest, KeyframeRequestKind, Mid, Rid};
use str0m::net::{Protocol, Receive, TcpType, Transmit};
use str0m::rtp::rtcp::Rtcp;
use str0m::rtp::{RawPacket, RtpPacket, RtpWrite, Ssrc, Vp8Descriptor};
use str0m::{Candidate, Event, IceCreds, Input, Output, Rtc};
use subtle::ConstantTimeEq;
use tracing::{debug, info, warn};

use crate::allocator::{self, Constraints};
use crate::api::{
    BridgeError, BridgeEvent, BridgeRequest, BridgeResponse, ConferenceId, DtlsSetup, EndpointId,
    EndpointOffer, Fingerprint, GroupSemantics, IceCandidate, MediaKind, Source, SourceSet,
    TransportDescription,
};
use crate::bwe::DownlinkEstimator;
use crate::channel::{self, ClientMessage};
use crate::codec;
use crate::media::{self, CodecKind};
use crate::metrics::{self, Counters, DropReason};
use crate::rewrite::{Incoming, Rewriter};
use crate::speaker::SpeakerDetector;
use crate::sync::SenderClock;

/// Identifies an endpoint inside the core (ids are only unique per conference).
pub type EndpointKey = u64;

/// The most SSRCs one endpoint may signal (Jicofo allows 20 sources and 20 groups).
const MAX_SSRCS_PER_ENDPOINT: usize = 64;
/// Due str0m timeouts served per endpoint in one `handle_timeout`, so that one endpoint
/// with a long pacer queue cannot starve the others.
const MAX_TIMEOUTS_PER_TURN: usize = 64;
/// Keyframe requests towards one sender layer are at most this frequent.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);
/// How often speakers, allocations and idle endpoints are looked at.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(250);
/// How often each receiver is told its estimated downlink (`ConnectionStats`).
const CONNECTION_STATS_INTERVAL: Duration = Duration::from_secs(5);
/// A layer that sent nothing for this long is considered off (sender's own BWE).
const LAYER_INACTIVE_AFTER: Duration = Duration::from_millis(1500);
/// Height assumed for layers whose size we cannot read, by rank from the top.
const ASSUMED_TOP_HEIGHT: u32 = 720;
/// What an unconstrained receiver wants, for `SenderSourceConstraints`.
const UNCONSTRAINED_HEIGHT: i32 = 2160;

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

/// One incoming SSRC (a simulcast layer, or the only stream of a track).
#[derive(Debug)]
struct Layer {
    ssrc: u32,
    rtx: Option<u32>,
    /// From the last VP8 keyframe, when known.
    height: Option<u32>,
    bitrate_bps: u64,
    window_bytes: u64,
    window_start: Option<Instant>,
    last_packet: Option<Instant>,
    last_keyframe_request: Option<Instant>,
}

impl Layer {
    fn new(ssrc: u32, rtx: Option<u32>) -> Self {
        Self {
            ssrc,
            rtx,
            height: None,
            bitrate_bps: 0,
            window_bytes: 0,
            window_start: None,
            last_packet: None,
            last_keyframe_request: None,
        }
    }

    fn is_active(&self, now: Instant) -> bool {
        self.last_packet
            .is_some_and(|t| now.saturating_duration_since(t) < LAYER_INACTIVE_AFTER)
    }

    /// Counts a packet; returns true when the layer just became active.
    fn on_packet(&mut self, now: Instant, bytes: usize) -> bool {
        let was_active = self.is_active(now);
        self.last_packet = Some(now);
        let start = *self.window_start.get_or_insert(now);
        self.window_bytes += bytes as u64;
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= Duration::from_millis(500) {
            self.bitrate_bps = self.window_bytes * 8 * 1_000_000 / elapsed.as_micros() as u64;
            self.window_bytes = 0;
            self.window_start = Some(now);
        }
        !was_active
    }
}

/// One source an endpoint sends: a simulcast group (lowest layer first) or a lone SSRC.
#[derive(Debug)]
struct Track {
    /// The SSRC receivers know (first of the SIM group) and its RTX partner.
    primary: u32,
    primary_rtx: Option<u32>,
    kind: MediaKind,
    name: String,
    layers: Vec<Layer>,
    /// The sender said `videoType: none` (camera off): nothing of it is forwarded.
    muted: bool,
}

impl Track {
    fn assumed_height(&self, layer: usize) -> u32 {
        self.layers[layer].height.unwrap_or_else(|| {
            let from_top = (self.layers.len() - 1 - layer) as u32;
            ASSUMED_TOP_HEIGHT >> from_top
        })
    }

    /// The layer's measured bitrate; before a measurement, what such a height usually
    /// needs (counting an unmeasured layer as free would overcommit the receiver's link).
    fn expected_bitrate(&self, layer: usize) -> u64 {
        match self.layers[layer].bitrate_bps {
            0 => match self.assumed_height(layer) {
                h if h <= 180 => 150_000,
                h if h <= 360 => 500_000,
                h if h <= 720 => 1_500_000,
                _ => 2_500_000,
            },
            measured => measured,
        }
    }

    fn same_layout(&self, other: &Track) -> bool {
        self.kind == other.kind
            && self.layers.len() == other.layers.len()
            && self
                .layers
                .iter()
                .zip(&other.layers)
                .all(|(a, b)| a.ssrc == b.ssrc && a.rtx == b.rtx)
    }
}

/// A track forwarded to one receiver.
#[derive(Debug)]
struct OutStream {
    sender: EndpointKey,
    rid: Rid,
    rewriter: Rewriter,
    /// The layer the allocator wants; the rewriter switches to it on its next keyframe.
    target: Option<usize>,
}

struct Endpoint {
    id: EndpointId,
    conference: ConferenceId,
    rtc: Rtc,
    ufrag: String,
    channel_pwd: String,
    next_timeout: Instant,
    last_activity: Instant,
    dtls_started: bool,
    /// str0m failed or panicked: the endpoint is dropped at the end of the operation.
    broken: bool,
    feedback: SourceSet,
    sources: SourceSet,
    tracks: Vec<Track>,
    /// Main SSRC → (track, layer).
    layer_of: HashMap<u32, (usize, usize)>,
    /// Every signalled SSRC including RTX: RTP with any other SSRC is dropped.
    known_ssrcs: HashSet<u32>,
    next_rid: u32,
    /// Forwarded tracks by their primary SSRC.
    out: HashMap<u32, OutStream>,
    out_by_rid: HashMap<Rid, u32>,
    constraints: Constraints,
    /// The downlink estimate the allocator last worked with.
    bandwidth_bps: u64,
    downlink: DownlinkEstimator,
    channel_open: bool,
    forwarded_sources: Option<Vec<String>>,
    sent_sender_constraints: HashMap<String, i32>,
    nacks_seen: HashMap<Rid, u64>,
    /// Bridge-channel messages this endpoint may still send right now.
    channel_budget: TokenBucket,
    /// Maps this endpoint's capture times (from its sender reports) onto our clock.
    capture_clock: SenderClock,
    /// (sustained, desired) bitrates last computed for this receiver, in bps.
    bwe_target: (u64, u64),
}

/// Bridge-channel messages per second an endpoint may send, and the burst it may save up:
/// a client relaying to everyone must not be able to flood the conference.
const CHANNEL_MESSAGES_PER_SEC: f64 = 20.0;
const CHANNEL_BURST: f64 = 60.0;

#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn full(now: Instant) -> Self {
        Self {
            tokens: CHANNEL_BURST,
            at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let refill =
            now.saturating_duration_since(self.at).as_secs_f64() * CHANNEL_MESSAGES_PER_SEC;
        self.tokens = (self.tokens + refill).min(CHANNEL_BURST);
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

impl Endpoint {
    fn next_rid(&mut self, prefix: char) -> Rid {
        self.next_rid += 1;
        Rid::from(format!("{prefix}{}", self.next_rid).as_str())
    }
}

struct Conference {
    /// The conference's id in colibri-ws URLs (the room JID does not belong in a path).
    url_id: String,
    endpoints: Vec<EndpointKey>,
    speakers: SpeakerDetector<EndpointKey>,
    counters: Counters,
    dirty: bool,
}

pub struct Core {
    settings: Settings,
    conferences: HashMap<ConferenceId, Conference>,
    conference_by_url: HashMap<String, ConferenceId>,
    endpoints: HashMap<EndpointKey, Endpoint>,
    next_key: EndpointKey,
    by_ufrag: HashMap<String, EndpointKey>,
    /// (protocol, remote, local) → endpoint, learnt from authenticated STUN and from our
    /// own sends.
    by_addr: HashMap<(Protocol, SocketAddr, SocketAddr), EndpointKey>,
    pending: VecDeque<(EndpointKey, Event)>,
    output: VecDeque<CoreOutput>,
    counters: Counters,
    next_housekeeping: Instant,
    next_connection_stats: Instant,
}

fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
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

/// Runs `f` on the endpoint's `Rtc`; a str0m panic marks the endpoint broken instead of
/// taking the process down.
fn with_rtc<R>(ep: &mut Endpoint, f: impl FnOnce(&mut Rtc) -> R) -> Option<R> {
    if ep.broken {
        return None;
    }
    match catch_unwind(AssertUnwindSafe(|| f(&mut ep.rtc))) {
        Ok(r) => Some(r),
        Err(_) => {
            warn!(endpoint = %ep.id.0, "str0m panicked; dropping the endpoint");
            ep.broken = true;
            None
        }
    }
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

/// Sent packets and the receiver's transport-wide feedback feed its downlink estimate; a
/// change of more than a tenth has its conference's layers re-allocated.
fn on_raw_packet(
    now: Instant,
    ep: &mut Endpoint,
    conferences: &mut HashMap<ConferenceId, Conference>,
    counters: &mut Counters,
    raw: RawPacket,
) {
    match raw {
        RawPacket::RtpTx(header, payload) => {
            if let Some(seq) = header.ext_vals.transport_cc {
                ep.downlink
                    .on_sent(now, seq, header.header_len + payload.len());
            }
        }
        RawPacket::RtcpRx(Rtcp::Twcc(twcc)) => {
            let (time_zero, extend_from) = (ep.downlink.time_zero(), ep.downlink.last_seq());
            // str0m's iterator panics on some malformed reports: the endpoint's input.
            let report = catch_unwind(AssertUnwindSafe(|| {
                twcc.into_iter(time_zero, extend_from.into())
                    .map(|(seq, _, arrival)| (*seq, arrival))
                    .collect::<Vec<_>>()
            }));
            let Ok(report) = report else {
                counters.drop(DropReason::RtcError);
                return;
            };
            ep.downlink.on_feedback(now, report);
            let new = ep.downlink.estimate_bps();
            let old = ep.bandwidth_bps.max(1);
            if new.abs_diff(old) * 10 > old {
                ep.bandwidth_bps = new;
                if let Some(c) = conferences.get_mut(&ep.conference) {
                    c.dirty = true;
                }
            }
        }
        _ => {}
    }
}

/// Splits a signalled source set into tracks; `None` if it is inconsistent.
fn tracks_of(set: &SourceSet) -> Result<Vec<Track>, String> {
    let sources: HashMap<u32, &Source> = set.sources.iter().map(|s| (s.ssrc, s)).collect();
    if sources.len() != set.sources.len() {
        return Err("duplicate SSRC".into());
    }
    if set.sources.iter().any(|s| s.ssrc == 0) {
        return Err("SSRC 0".into());
    }
    if set.sources.len() > MAX_SSRCS_PER_ENDPOINT || set.groups.len() > MAX_SSRCS_PER_ENDPOINT {
        return Err("too many sources".into());
    }
    let mut rtx_of = HashMap::new();
    for g in &set.groups {
        if g.ssrcs.iter().any(|s| !sources.contains_key(s)) {
            return Err("group refers to an unsignalled SSRC".into());
        }
        match g.semantics {
            GroupSemantics::Fid if g.ssrcs.len() != 2 => {
                return Err("FID group without exactly two SSRCs".into());
            }
            GroupSemantics::Fid => {
                rtx_of.insert(g.ssrcs[0], g.ssrcs[1]);
            }
            GroupSemantics::Sim if g.ssrcs.is_empty() || g.ssrcs.len() > 4 => {
                return Err("SIM group with no or too many layers".into());
            }
            GroupSemantics::Sim => {}
        }
    }
    let rtx_ssrcs: HashSet<u32> = rtx_of.values().copied().collect();
    let mut layouts: Vec<Vec<u32>> = Vec::new();
    let mut in_track = HashSet::new();
    for g in set
        .groups
        .iter()
        .filter(|g| g.semantics == GroupSemantics::Sim)
    {
        if g.ssrcs
            .iter()
            .any(|s| in_track.contains(s) || rtx_ssrcs.contains(s))
        {
            return Err("SSRC in two simulcast groups".into());
        }
        in_track.extend(g.ssrcs.iter().copied());
        layouts.push(g.ssrcs.clone());
    }
    for s in &set.sources {
        if !in_track.contains(&s.ssrc) && !rtx_ssrcs.contains(&s.ssrc) {
            layouts.push(vec![s.ssrc]);
        }
    }
    let tracks = layouts
        .into_iter()
        .map(|layers| {
            let source = sources[&layers[0]];
            Track {
                primary: layers[0],
                primary_rtx: rtx_of.get(&layers[0]).copied(),
                kind: source.kind,
                name: source
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("ssrc-{}", layers[0])),
                layers: layers
                    .iter()
                    .map(|&s| Layer::new(s, rtx_of.get(&s).copied()))
                    .collect(),
                muted: false,
            }
        })
        .collect();
    Ok(tracks)
}

fn all_ssrcs(set: &SourceSet) -> impl Iterator<Item = u32> + '_ {
    set.sources.iter().map(|s| s.ssrc)
}

/// Remote candidate from Jingle; mDNS names cannot reach us here (IpAddr only), and
/// peer-reflexive candidates learnt from checks cover them.
fn remote_candidate(c: &IceCandidate) -> Option<Candidate> {
    let protocol = c.protocol.to_ascii_lowercase();
    if c.component != 1 || !matches!(protocol.as_str(), "udp" | "tcp") {
        return None;
    }
    let mut sdp = format!(
        "candidate:{} 1 {protocol} {} {} {} typ {}",
        c.foundation, c.priority, c.ip, c.port, c.typ
    );
    if c.typ != "host" {
        let unspecified = match c.ip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        sdp.push_str(&format!(" raddr {unspecified} rport 9"));
    }
    if protocol == "tcp" {
        sdp.push_str(&format!(
            " tcptype {}",
            c.tcptype.as_deref().unwrap_or("active")
        ));
    }
    Candidate::from_sdp_string(&sdp).ok()
}

impl Core {
    pub fn new(settings: Settings, now: Instant) -> Self {
        Self {
            settings,
            conferences: HashMap::new(),
            conference_by_url: HashMap::new(),
            endpoints: HashMap::new(),
            next_key: 1,
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            pending: VecDeque::new(),
            output: VecDeque::new(),
            counters: Counters::default(),
            next_housekeeping: now + HOUSEKEEPING_INTERVAL,
            next_connection_stats: now + CONNECTION_STATS_INTERVAL,
        }
    }

    pub fn poll_output(&mut self) -> Option<CoreOutput> {
        self.output.pop_front()
    }

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

    // ---- datagrams -----------------------------------------------------------------------

    /// One UDP datagram, or one RFC 4571 frame of an ICE-TCP connection.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        if let Err(reason) = self.accept_datagram(now, proto, source, destination, data) {
            self.counters.drop(reason);
            debug!(%source, ?reason, len = data.len(), "datagram dropped");
        }
        self.settle(now);
    }

    fn accept_datagram(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> Result<(), DropReason> {
        if data.len() > self.settings.max_datagram_bytes {
            return Err(DropReason::Oversized);
        }
        // RFC 7983 demultiplexing by the first byte.
        let first = *data.first().ok_or(DropReason::Garbage)?;
        let is_stun = first <= 3;
        let is_rtp_or_rtcp = (128..=191).contains(&first);
        if !is_stun && !(20..=63).contains(&first) && !is_rtp_or_rtcp {
            return Err(DropReason::Garbage);
        }
        let key = match self.by_addr.get(&(proto, source, destination)) {
            Some(key) => *key,
            None if is_stun => {
                let stun = StunMessage::parse(data).map_err(|_| DropReason::Garbage)?;
                let (local_ufrag, _) = stun.split_username().ok_or(DropReason::Unauthenticated)?;
                *self
                    .by_ufrag
                    .get(local_ufrag)
                    .ok_or(DropReason::Unauthenticated)?
            }
            None => return Err(DropReason::Unauthenticated),
        };
        let contents = data.try_into().map_err(|_| DropReason::Garbage)?;
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );
        let ep = self
            .endpoints
            .get_mut(&key)
            .ok_or(DropReason::Unauthenticated)?;
        if !ep.rtc.accepts(&input) {
            return Err(DropReason::Unauthenticated);
        }
        if is_rtp_or_rtcp {
            check_rtp_or_rtcp(data, &ep.known_ssrcs)?;
        }
        if is_stun {
            self.by_addr.insert((proto, source, destination), key);
        }
        ep.last_activity = now;
        count(
            &mut self.counters,
            &mut self.conferences,
            &ep.conference,
            |c| {
                c.packets_in += 1;
                c.bytes_in += data.len() as u64;
            },
        );
        match with_rtc(ep, |rtc| rtc.handle_input(input)) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                debug!(endpoint = %ep.id.0, "str0m rejected input: {e}");
                self.counters.drop(DropReason::RtcError);
            }
            None => {}
        }
        self.drain(now, key);
        Ok(())
    }

    // ---- time ----------------------------------------------------------------------------

    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<EndpointKey> = self
            .endpoints
            .iter()
            .filter(|(_, e)| e.next_timeout <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            // str0m's pacer releases one packet per timeout and asks to be woken again
            // at once: serve those here rather than one loop turn of the shell each.
            for _ in 0..MAX_TIMEOUTS_PER_TURN {
                let Some(ep) = self.endpoints.get_mut(&key) else {
                    break;
                };
                if ep.broken || ep.next_timeout > now {
                    break;
                }
                if let Some(Err(e)) = with_rtc(ep, |rtc| rtc.handle_input(Input::Timeout(now))) {
                    warn!(endpoint = %ep.id.0, "str0m timeout failed: {e}");
                    ep.broken = true;
                }
                self.drain(now, key);
            }
        }
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + HOUSEKEEPING_INTERVAL;
            self.housekeeping(now);
        }
        self.settle(now);
    }

    fn housekeeping(&mut self, now: Instant) {
        let idle: Vec<EndpointKey> = self
            .endpoints
            .iter()
            .filter(|(_, e)| {
                now.saturating_duration_since(e.last_activity) > self.settings.idle_timeout
                    || (e.dtls_started && !e.rtc.is_alive())
            })
            .map(|(k, _)| *k)
            .collect();
        for key in idle {
            info!(endpoint = %self.endpoints[&key].id.0, "endpoint idle or disconnected; expiring");
            self.expire(now, key, true);
        }
        if now >= self.next_connection_stats {
            self.next_connection_stats = now + CONNECTION_STATS_INTERVAL;
            for (key, ep) in self.endpoints.iter().filter(|(_, e)| e.channel_open) {
                let text = channel::connection_stats(ep.bandwidth_bps);
                self.output.push_back(CoreOutput::Channel {
                    endpoint: *key,
                    text,
                });
            }
        }
        let conferences: Vec<ConferenceId> = self.conferences.keys().cloned().collect();
        for id in conferences {
            let conf = self.conferences.get_mut(&id).expect("listed above");
            if conf.speakers.evaluate(now) {
                let dominant = conf.speakers.dominant().copied();
                let previous = previous_speaker_ids(&conf.speakers, &self.endpoints);
                if let Some(name) = dominant
                    .and_then(|k| self.endpoints.get(&k))
                    .map(|e| e.id.0.clone())
                {
                    let text = channel::dominant_speaker(&name, &previous);
                    self.broadcast(&id, None, &text);
                }
            }
            self.allocate_layers(now, &id);
        }
    }

    // ---- str0m output and events ---------------------------------------------------------

    /// Polls the endpoint's `Rtc` until it only has a timeout left.
    fn drain(&mut self, now: Instant, key: EndpointKey) {
        let Some(ep) = self.endpoints.get_mut(&key) else {
            return;
        };
        loop {
            let polled = with_rtc(ep, |rtc| rtc.poll_output());
            match polled {
                Some(Ok(Output::Timeout(t))) => {
                    ep.next_timeout = t;
                    break;
                }
                Some(Ok(Output::Transmit(t))) => {
                    self.by_addr
                        .entry((t.proto, t.destination, t.source))
                        .or_insert(key);
                    let len = t.contents.len() as u64;
                    count(
                        &mut self.counters,
                        &mut self.conferences,
                        &ep.conference,
                        |c| {
                            c.packets_out += 1;
                            c.bytes_out += len;
                        },
                    );
                    self.output.push_back(CoreOutput::Transmit(t));
                }
                // One per sent packet: handled here rather than queued with the others.
                Some(Ok(Output::Event(Event::RawPacket(raw)))) => {
                    on_raw_packet(now, ep, &mut self.conferences, &mut self.counters, *raw);
                }
                Some(Ok(Output::Event(e))) => self.pending.push_back((key, e)),
                Some(Err(e)) => {
                    warn!(endpoint = %ep.id.0, "str0m failed: {e}");
                    ep.broken = true;
                    break;
                }
                None => break,
            }
        }
    }

    /// Handles queued str0m events, then drops endpoints whose `Rtc` failed.
    fn settle(&mut self, now: Instant) {
        while let Some((key, event)) = self.pending.pop_front() {
            self.handle_event(now, key, event);
        }
        let broken: Vec<EndpointKey> = self
            .endpoints
            .iter()
            .filter(|(_, e)| e.broken)
            .map(|(k, _)| *k)
            .collect();
        for key in broken {
            self.expire(now, key, true);
        }
        let dirty: Vec<ConferenceId> = self
            .conferences
            .iter()
            .filter(|(_, c)| c.dirty)
            .map(|(id, _)| id.clone())
            .collect();
        for id in dirty {
            self.allocate_layers(now, &id);
        }
        while let Some((key, event)) = self.pending.pop_front() {
            self.handle_event(now, key, event);
        }
    }

    fn handle_event(&mut self, now: Instant, key: EndpointKey, event: Event) {
        match event {
            Event::Connected => {
                if let Some(ep) = self.endpoints.get(&key) {
                    info!(endpoint = %ep.id.0, "ICE and DTLS connected");
                }
            }
            Event::RtpPacket(packet) => self.forward(now, key, packet),
            Event::KeyframeRequest(request) => self.on_keyframe_request(now, key, request),
            Event::MediaEgressStats(stats) => {
                let Some(ep) = self.endpoints.get_mut(&key) else {
                    return;
                };
                let Some(rid) = stats.rid else { return };
                let seen = ep.nacks_seen.entry(rid).or_default();
                let new = stats.nacks.saturating_sub(*seen);
                *seen = stats.nacks;
                count(
                    &mut self.counters,
                    &mut self.conferences,
                    &ep.conference,
                    |c| {
                        c.nacks_received += new;
                    },
                );
            }
            Event::Closed => {
                if let Some(ep) = self.endpoints.get_mut(&key) {
                    ep.broken = true;
                }
            }
            _ => {}
        }
    }

    /// The hot path: one decrypted RTP packet from `sender_key`, to every receiver that
    /// has the packet's layer selected.
    fn forward(&mut self, now: Instant, sender_key: EndpointKey, packet: RtpPacket) {
        let Some(sender) = self.endpoints.get_mut(&sender_key) else {
            return;
        };
        let ssrc = *packet.header.ssrc;
        let Some(&(t, l)) = sender.layer_of.get(&ssrc) else {
            self.counters.drop(DropReason::UnknownSsrc);
            return;
        };
        let Some(codec) = media::codec_of(packet.header.payload_type) else {
            return;
        };
        let clock_rate = if codec == CodecKind::Opus {
            48_000
        } else {
            90_000
        };
        let report = packet
            .last_sender_info
            .map(|sr| (sr.ntp_time, sr.rtp_time.numer() as u32));
        let captured =
            sender
                .capture_clock
                .capture_time(now, packet.header.timestamp, clock_rate, report);
        let track = &mut sender.tracks[t];
        let primary = track.primary;
        let is_audio = track.kind == MediaKind::Audio;
        let layer = &mut track.layers[l];
        let became_active = layer.on_packet(now, packet.payload.len());
        let keyframe = codec::starts_keyframe(codec, &packet.payload);
        if keyframe
            && codec == CodecKind::Vp8
            && let Some((_, height)) = codec::vp8_keyframe_size(&packet.payload)
        {
            layer.height = Some(u32::from(height));
        }
        let conference_id = sender.conference.clone();
        let Some(conf) = self.conferences.get_mut(&conference_id) else {
            return;
        };
        if became_active {
            conf.dirty = true;
        }
        if is_audio && let Some(level) = packet.header.ext_vals.audio_level {
            conf.speakers.on_level(now, sender_key, level);
        }
        let vp8 = (codec == CodecKind::Vp8)
            .then(|| Vp8Descriptor::parse(&packet.payload).ok())
            .flatten();
        let vp9 = (codec == CodecKind::Vp9)
            .then(|| codec::Vp9Descriptor::parse(&packet.payload))
            .flatten();
        let incoming = Incoming {
            layer: l,
            seq: *packet.seq_no,
            timestamp: packet.header.timestamp,
            picture_id: vp8
                .and_then(|d| d.picture_id())
                .or(vp9.and_then(|d| d.picture_id())),
            tl0_pic_idx: vp8
                .and_then(|d| d.tl0_pic_idx())
                .or(vp9.and_then(|d| d.tl0_pic_idx())),
        };
        let mut ext_vals = packet.header.ext_vals.clone();
        // Per-hop values: str0m stamps its own transport-wide sequence numbers.
        ext_vals.transport_cc = None;
        ext_vals.mid = None;
        ext_vals.rid = None;
        ext_vals.rid_repair = None;

        let receivers: Vec<EndpointKey> = conf
            .endpoints
            .iter()
            .copied()
            .filter(|k| *k != sender_key)
            .collect();
        let mut want_keyframe = false;
        let mut forwarded = 0;
        for r in receivers {
            let Some(receiver) = self.endpoints.get_mut(&r) else {
                continue;
            };
            let Some(out) = receiver.out.get_mut(&primary) else {
                continue;
            };
            let current = out.rewriter.layer() == Some(l);
            let switch_here = out.target == Some(l) && keyframe;
            if !current && !switch_here {
                want_keyframe |= out.target == Some(l);
                continue;
            }
            if out.target.is_none() {
                continue;
            }
            let Some(rewritten) = out.rewriter.rewrite(now, incoming) else {
                continue;
            };
            // str0m patches only VP8 at serialization: a VP9 receiver whose numbering
            // differs from the sender's gets a patched copy.
            let payload = match vp9 {
                Some(d) => d.patched(&packet.payload, rewritten.picture_id, rewritten.tl0_pic_idx),
                None => packet.payload.clone(),
            };
            let mut write = RtpWrite::new(
                packet.header.payload_type,
                rewritten.seq.into(),
                rewritten.timestamp,
                captured,
                payload,
            )
            .marker(packet.header.marker)
            .nackable(!is_audio)
            .ext_vals(ext_vals.clone());
            if let Some(d) = vp8 {
                let patch = |picture_id: Option<u16>| {
                    let mut b = d.patch();
                    if let Some(p) = picture_id {
                        b = b.picture_id(p);
                    }
                    if let Some(t) = rewritten.tl0_pic_idx {
                        b = b.tl0_pic_idx(t);
                    }
                    b.build()
                };
                // A 7-bit picture id only takes the low bits.
                if let Ok(p) = patch(rewritten.picture_id)
                    .or_else(|_| patch(rewritten.picture_id.map(|p| p & 0x7f)))
                {
                    write = write.vp8_patch(p);
                }
            }
            let out_ssrc = Ssrc::from(primary);
            with_rtc(receiver, |rtc| {
                if let Some(tx) = rtc.direct_api().stream_tx(&out_ssrc) {
                    tx.write_rtp(write);
                }
            });
            forwarded += 1;
            // str0m sends queued media on its next timeout; polling it here would only
            // compute that timeout once per packet. `handle_timeout` serves it in this turn.
            receiver.next_timeout = now;
        }
        count(
            &mut self.counters,
            &mut self.conferences,
            &conference_id,
            |c| {
                c.rtp_forwarded += forwarded;
            },
        );
        if want_keyframe {
            self.request_keyframe(now, sender_key, primary, l);
        }
    }

    fn on_keyframe_request(
        &mut self,
        now: Instant,
        receiver_key: EndpointKey,
        request: KeyframeRequest,
    ) {
        let Some(receiver) = self.endpoints.get(&receiver_key) else {
            return;
        };
        let Some(rid) = request.rid else { return };
        let Some(primary) = receiver.out_by_rid.get(&rid) else {
            return;
        };
        let out = &receiver.out[primary];
        let Some(layer) = out.rewriter.layer().or(out.target) else {
            return;
        };
        let (sender, primary) = (out.sender, *primary);
        self.request_keyframe(now, sender, primary, layer);
    }

    /// Asks the sender for a keyframe on one layer, at most every 300 ms.
    fn request_keyframe(
        &mut self,
        now: Instant,
        sender_key: EndpointKey,
        primary: u32,
        layer: usize,
    ) {
        let Some(sender) = self.endpoints.get_mut(&sender_key) else {
            return;
        };
        let Some(&(t, _)) = sender.layer_of.get(&primary) else {
            return;
        };
        let Some(layer) = sender.tracks[t].layers.get_mut(layer) else {
            return;
        };
        if layer
            .last_keyframe_request
            .is_some_and(|at| now.saturating_duration_since(at) < KEYFRAME_REQUEST_INTERVAL)
        {
            return;
        }
        layer.last_keyframe_request = Some(now);
        let ssrc = Ssrc::from(layer.ssrc);
        with_rtc(sender, |rtc| {
            if let Some(rx) = rtc.direct_api().stream_rx(&ssrc) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
            }
        });
        count(
            &mut self.counters,
            &mut self.conferences,
            &sender.conference,
            |c| {
                c.keyframe_requests += 1;
            },
        );
        self.drain(now, sender_key);
    }

    // ---- layer allocation ----------------------------------------------------------------

    fn allocate_layers(&mut self, now: Instant, conference: &ConferenceId) {
        let Some(conf) = self.conferences.get_mut(conference) else {
            return;
        };
        conf.dirty = false;
        let members = conf.endpoints.clone();
        let mut rank: Vec<EndpointKey> = conf.speakers.recent().copied().collect();
        let silent: Vec<EndpointKey> = members
            .iter()
            .copied()
            .filter(|k| !rank.contains(k))
            .collect();
        rank.extend(silent);

        // Per video track of every sender: (sender, primary, name, rank, layers).
        let mut videos = Vec::new();
        for &k in &members {
            let Some(ep) = self.endpoints.get(&k) else {
                continue;
            };
            let speaker_rank = rank.iter().position(|r| *r == k).unwrap_or(usize::MAX);
            for track in ep.tracks.iter().filter(|t| t.kind == MediaKind::Video) {
                let layers: Vec<allocator::Layer> = (0..track.layers.len())
                    .map(|l| allocator::Layer {
                        height: track.assumed_height(l),
                        bitrate_bps: track.expected_bitrate(l),
                        active: !track.muted && track.layers[l].is_active(now),
                    })
                    .collect();
                videos.push((k, track.primary, track.name.clone(), speaker_rank, layers));
            }
        }

        let mut keyframes = Vec::new();
        let mut messages = Vec::new();
        for &r in &members {
            let Some(receiver) = self.endpoints.get_mut(&r) else {
                continue;
            };
            let mine: Vec<_> = videos.iter().filter(|v| v.0 != r).collect();
            let candidates: Vec<allocator::Candidate> = mine
                .iter()
                .map(|v| allocator::Candidate {
                    name: &v.2,
                    speaker_rank: v.3,
                    layers: &v.4,
                })
                .collect();
            // A tenth of the estimate stays free for audio, RTCP and retransmissions.
            let budget = receiver.bandwidth_bps / 10 * 9;
            let chosen = allocator::allocate(&receiver.constraints, &candidates, budget);
            // What the receiver would get with unlimited bandwidth: the estimate may grow
            // until its budget share affords that (see `crate::bwe`).
            let cost = |choice: &[Option<usize>]| -> u64 {
                choice
                    .iter()
                    .zip(&candidates)
                    .filter_map(|(l, c)| Some(c.layers[(*l)?].bitrate_bps))
                    .sum()
            };
            let ideal = allocator::allocate(&receiver.constraints, &candidates, u64::MAX);
            let wanted = (cost(&chosen), cost(&ideal));
            let changed = |old: u64, new: u64| new.abs_diff(old) * 10 > old.max(1);
            if changed(receiver.bwe_target.0, wanted.0) || changed(receiver.bwe_target.1, wanted.1)
            {
                receiver.bwe_target = wanted;
                // A quarter above the ideal: 90 % of it still covers the ideal while
                // the layers' measured bitrates wobble.
                receiver
                    .downlink
                    .set_desired(wanted.1.max(wanted.0).saturating_mul(5) / 4);
            }
            let mut forwarded = Vec::new();
            for (v, target) in mine.iter().zip(chosen) {
                let Some(out) = receiver.out.get_mut(&v.1) else {
                    continue;
                };
                if target.is_some() {
                    forwarded.push(v.2.clone());
                }
                if out.target != target {
                    out.target = target;
                    match target {
                        None => out.rewriter.pause(),
                        Some(l) if out.rewriter.layer() != Some(l) => keyframes.push((v.0, v.1, l)),
                        Some(_) => {}
                    }
                }
            }
            forwarded.sort();
            let Some(receiver) = self.endpoints.get_mut(&r) else {
                continue;
            };
            if receiver.forwarded_sources.as_ref() != Some(&forwarded) {
                if receiver.channel_open {
                    messages.push((r, channel::forwarded_sources(&forwarded)));
                }
                receiver.forwarded_sources = Some(forwarded);
            }
        }

        // What each sender should send at most: the highest any receiver accepts.
        for &s in &members {
            let Some(sender) = self.endpoints.get(&s) else {
                continue;
            };
            if !sender.channel_open || members.len() < 2 {
                continue;
            }
            let mut updates = Vec::new();
            for track in sender.tracks.iter().filter(|t| t.kind == MediaKind::Video) {
                let wanted = members
                    .iter()
                    .filter(|r| **r != s)
                    .filter_map(|r| self.endpoints.get(r))
                    .map(|r| match r.constraints.max_height_of(&track.name) {
                        h if h < 0 => UNCONSTRAINED_HEIGHT,
                        h => h,
                    })
                    .max()
                    .unwrap_or(UNCONSTRAINED_HEIGHT);
                if sender.sent_sender_constraints.get(&track.name) != Some(&wanted) {
                    updates.push((track.name.clone(), wanted));
                }
            }
            for (name, height) in updates {
                messages.push((s, channel::sender_source_constraints(&name, height)));
                if let Some(sender) = self.endpoints.get_mut(&s) {
                    sender.sent_sender_constraints.insert(name, height);
                }
            }
        }
        for (endpoint, text) in messages {
            self.output
                .push_back(CoreOutput::Channel { endpoint, text });
        }
        for (sender, primary, layer) in keyframes {
            self.request_keyframe(now, sender, primary, layer);
        }
    }

    // ---- expiry --------------------------------------------------------------------------

    fn expire(&mut self, now: Instant, key: EndpointKey, by_bridge: bool) {
        let Some(ep) = self.endpoints.remove(&key) else {
            return;
        };
        self.by_ufrag.remove(&ep.ufrag);
        self.by_addr.retain(|_, k| *k != key);
        self.output.push_back(CoreOutput::CloseChannel(key));
        if by_bridge {
            self.counters.endpoints_expired += 1;
            self.output
                .push_back(CoreOutput::Event(BridgeEvent::EndpointExpired {
                    conference: ep.conference.clone(),
                    endpoint: ep.id.clone(),
                }));
        }
        let Some(conf) = self.conferences.get_mut(&ep.conference) else {
            return;
        };
        conf.endpoints.retain(|k| *k != key);
        conf.speakers.remove(&key);
        conf.dirty = true;
        if by_bridge {
            conf.counters.endpoints_expired += 1;
        }
        let others = conf.endpoints.clone();
        if others.is_empty() {
            // Nobody left: the conference goes too (the focus may not say so itself).
            let url_id = conf.url_id.clone();
            self.conferences.remove(&ep.conference);
            self.conference_by_url.remove(&url_id);
        }
        for other in others {
            if let Some(receiver) = self.endpoints.get_mut(&other) {
                for track in &ep.tracks {
                    remove_out(receiver, track.primary);
                }
            }
            self.drain(now, other);
        }
        info!(conference = %ep.conference.0, endpoint = %ep.id.0, by_bridge, "endpoint expired");
    }
}

/// Declares a send stream on `receiver` for one of `sender`'s tracks.
fn declare_out(receiver: &mut Endpoint, sender: EndpointKey, track: &Track) {
    let rid = receiver.next_rid('t');
    let (ssrc, rtx) = (Ssrc::from(track.primary), track.primary_rtx.map(Ssrc::from));
    let mid = mid_of(track.kind);
    with_rtc(receiver, |rtc| {
        rtc.direct_api()
            .declare_stream_tx(ssrc, rtx, mid, Some(rid));
    });
    let clock_rate = match track.kind {
        MediaKind::Audio => 48_000,
        MediaKind::Video => 90_000,
    };
    // Audio has one layer and no allocation: always forwarded.
    let target = (track.kind == MediaKind::Audio).then_some(0);
    receiver.out_by_rid.insert(rid, track.primary);
    receiver.out.insert(
        track.primary,
        OutStream {
            sender,
            rid,
            rewriter: Rewriter::new(clock_rate),
            target,
        },
    );
}

fn remove_out(receiver: &mut Endpoint, primary: u32) {
    if let Some(out) = receiver.out.remove(&primary) {
        receiver.out_by_rid.remove(&out.rid);
        receiver.nacks_seen.remove(&out.rid);
        with_rtc(receiver, |rtc| {
            rtc.direct_api().remove_stream_tx(Ssrc::from(primary))
        });
    }
}

/// Cheap checks on the clear-text parts of SRTP/SRTCP before str0m sees them.
fn check_rtp_or_rtcp(data: &[u8], known_ssrcs: &HashSet<u32>) -> Result<(), DropReason> {
    let payload_type = data.get(1).ok_or(DropReason::Garbage)? & 0x7f;
    if (64..=95).contains(&payload_type) {
        // RTCP (RFC 5761 §4): the first packet's length must fit the datagram.
        let words = data.get(2..4).ok_or(DropReason::MalformedRtcp)?;
        let len = (usize::from(u16::from_be_bytes([words[0], words[1]])) + 1) * 4;
        if data.len() < 8 || len > data.len() {
            return Err(DropReason::MalformedRtcp);
        }
        return Ok(());
    }
    let ssrc = data.get(8..12).ok_or(DropReason::Garbage)?;
    let ssrc = u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]);
    if !known_ssrcs.contains(&ssrc) {
        return Err(DropReason::UnknownSsrc);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
