//! The bridge's sans-IO core: conferences, endpoints (one str0m `Rtc` each) and the
//! forwarding between them. Fed with `(now, input)`; everything it wants done (datagrams
//! to send, bridge-channel messages, events for the focus) is queued for [`Core::poll_output`].
//! The tokio shell in `lib.rs` only owns sockets, WebSockets and the timer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distr::Alphanumeric;
use str0m::bwe::{Bitrate, BweKind};
use str0m::ice::StunMessage;
use str0m::media::{KeyframeRequest, KeyframeRequestKind, Mid, Rid};
use str0m::net::{Protocol, Receive, TcpType, Transmit};
use str0m::rtp::{RtpPacket, RtpWrite, Ssrc, Vp8Descriptor};
use str0m::{Candidate, Event, IceCreds, Input, Output, Rtc};
use subtle::ConstantTimeEq;
use tracing::{debug, info, warn};

use crate::allocator::{self, Constraints};
use crate::api::{
    BridgeError, BridgeEvent, BridgeRequest, BridgeResponse, ConferenceId, DtlsSetup, EndpointId,
    EndpointOffer, Fingerprint, GroupSemantics, IceCandidate, MediaKind, Source, SourceSet,
    TransportDescription,
};
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
    bandwidth_bps: u64,
    channel_open: bool,
    forwarded_sources: Option<Vec<String>>,
    sent_sender_constraints: HashMap<String, i32>,
    nacks_seen: HashMap<Rid, u64>,
    /// Bridge-channel messages this endpoint may still send right now.
    channel_budget: TokenBucket,
    /// Maps this endpoint's capture times (from its sender reports) onto our clock.
    capture_clock: SenderClock,
    /// (minimum, desired) last given to str0m's bandwidth estimator, in bps.
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

    // ---- requests from the focus -------------------------------------------------------

    pub fn handle_request(
        &mut self,
        now: Instant,
        request: BridgeRequest,
    ) -> Result<BridgeResponse, BridgeError> {
        let done = |()| BridgeResponse::Done;
        let result = match request {
            BridgeRequest::AllocateEndpoint {
                conference,
                endpoint,
            } => self
                .allocate(now, conference, endpoint)
                .map(BridgeResponse::EndpointAllocated),
            BridgeRequest::ConfigureEndpoint {
                conference,
                endpoint,
                transport,
                media: _,
                sources,
            } => {
                let key = self.find(&conference, &endpoint)?;
                self.configure(now, key, &transport)?;
                self.set_sources(now, key, sources).map(done)
            }
            BridgeRequest::AddRemoteCandidates {
                conference,
                endpoint,
                candidates,
            } => {
                let key = self.find(&conference, &endpoint)?;
                self.add_candidates(key, &candidates);
                Ok(BridgeResponse::Done)
            }
            BridgeRequest::AddSources {
                conference,
                endpoint,
                sources,
            } => {
                let key = self.find(&conference, &endpoint)?;
                let mut merged = self.endpoints[&key].sources.clone();
                merged.sources.extend(sources.sources);
                merged.groups.extend(sources.groups);
                self.set_sources(now, key, merged).map(done)
            }
            BridgeRequest::RemoveSources {
                conference,
                endpoint,
                sources,
            } => {
                let key = self.find(&conference, &endpoint)?;
                let gone: HashSet<u32> = all_ssrcs(&sources).collect();
                let mut kept = self.endpoints[&key].sources.clone();
                kept.sources.retain(|s| !gone.contains(&s.ssrc));
                kept.groups
                    .retain(|g| !g.ssrcs.iter().any(|s| gone.contains(s)));
                self.set_sources(now, key, kept).map(done)
            }
            BridgeRequest::ExpireEndpoint {
                conference,
                endpoint,
            } => {
                // Expiring what is already gone (the bridge may have expired it first,
                // or the conference went with its last endpoint) is not an error.
                if let Ok(key) = self.find(&conference, &endpoint) {
                    self.expire(key, false);
                }
                Ok(BridgeResponse::Done)
            }
            BridgeRequest::ExpireConference { conference } => {
                let keys = self
                    .conferences
                    .get(&conference)
                    .map(|c| c.endpoints.clone())
                    .unwrap_or_default();
                for key in keys {
                    self.expire(key, false);
                }
                if let Some(c) = self.conferences.remove(&conference) {
                    self.conference_by_url.remove(&c.url_id);
                }
                Ok(BridgeResponse::Done)
            }
        };
        self.settle(now);
        result
    }

    fn find(
        &self,
        conference: &ConferenceId,
        endpoint: &EndpointId,
    ) -> Result<EndpointKey, BridgeError> {
        let conf = self
            .conferences
            .get(conference)
            .ok_or(BridgeError::UnknownConference)?;
        conf.endpoints
            .iter()
            .copied()
            .find(|k| self.endpoints.get(k).is_some_and(|e| e.id == *endpoint))
            .ok_or(BridgeError::UnknownEndpoint)
    }

    fn allocate(
        &mut self,
        now: Instant,
        conference: ConferenceId,
        endpoint: EndpointId,
    ) -> Result<EndpointOffer, BridgeError> {
        if endpoint.0.is_empty() || endpoint.0.len() > 256 {
            return Err(BridgeError::Invalid("endpoint id length".into()));
        }
        if let Ok(old) = self.find(&conference, &endpoint) {
            self.expire(old, false);
        }
        let conf = self
            .conferences
            .entry(conference.clone())
            .or_insert_with(|| {
                let url_id = random_string(16);
                Conference {
                    url_id,
                    endpoints: Vec::new(),
                    speakers: SpeakerDetector::default(),
                    counters: Counters::default(),
                    dirty: true,
                }
            });
        self.conference_by_url
            .insert(conf.url_id.clone(), conference.clone());
        let url_id = conf.url_id.clone();

        let mut rtc = media::rtc_config(self.settings.initial_bandwidth_bps)
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(now);
        let mut candidates = Vec::new();
        for (i, addr) in self.settings.local_addrs.iter().enumerate() {
            let Ok(c) = Candidate::host(*addr, "udp") else {
                continue;
            };
            candidates.push(IceCandidate {
                foundation: (i + 1).to_string(),
                component: 1,
                protocol: "udp".into(),
                priority: c.prio(),
                ip: addr.ip(),
                port: addr.port(),
                typ: "host".into(),
                tcptype: None,
                generation: 0,
            });
            rtc.add_local_candidate(c);
        }
        for addr in &self.settings.tcp_addrs {
            let Ok(c) = Candidate::builder()
                .tcp()
                .host(*addr)
                .tcptype(TcpType::Passive)
                .build()
            else {
                continue;
            };
            candidates.push(IceCandidate {
                foundation: (candidates.len() + 1).to_string(),
                component: 1,
                protocol: "tcp".into(),
                priority: c.prio(),
                ip: addr.ip(),
                port: addr.port(),
                typ: "host".into(),
                tcptype: Some("passive".into()),
                generation: 0,
            });
            rtc.add_local_candidate(c);
        }
        let public: Vec<IceCandidate> = self
            .settings
            .public_ips
            .iter()
            .flat_map(|ip| {
                candidates.iter().map(move |c| IceCandidate {
                    ip: *ip,
                    // Just below the local candidate it stands for.
                    priority: c.priority.saturating_sub(1),
                    ..c.clone()
                })
            })
            .collect();
        for mut c in public {
            c.foundation = (candidates.len() + 1).to_string();
            candidates.push(c);
        }
        let mut api = rtc.direct_api();
        api.set_ice_lite(false);
        api.set_ice_controlling(true);
        api.enable_twcc_feedback();
        api.declare_media(mid_of(MediaKind::Audio), str0m::media::MediaKind::Audio);
        api.declare_media(mid_of(MediaKind::Video), str0m::media::MediaKind::Video);
        let creds = api.local_ice_credentials();
        let fingerprint = api.local_dtls_fingerprint().to_string();
        let (hash, value) = fingerprint
            .split_once(' ')
            .unwrap_or(("sha-256", &fingerprint));
        let mut feedback = SourceSet::default();
        for (kind, label) in [(MediaKind::Audio, "audio"), (MediaKind::Video, "video")] {
            let ssrc = loop {
                let s = *api.new_ssrc();
                if !self.ssrc_in_use(&conference, s) {
                    break s;
                }
            };
            api.declare_stream_tx(Ssrc::from(ssrc), None, mid_of(kind), None);
            feedback.sources.push(Source {
                ssrc,
                kind,
                name: None,
                msid: Some(format!("mixedmslabel mixedlabel{label}0")),
                video_type: None,
            });
        }

        let channel_pwd = random_string(24);
        let key = self.next_key;
        self.next_key += 1;
        let offer = EndpointOffer {
            transport: TransportDescription {
                ufrag: creds.ufrag.clone(),
                pwd: creds.pass.clone(),
                fingerprints: vec![Fingerprint {
                    hash: hash.to_string(),
                    value: value.to_string(),
                    setup: DtlsSetup::Actpass,
                }],
                candidates,
            },
            media: media::offered_media(),
            feedback_sources: feedback.clone(),
            colibri_ws_url: format!(
                "{}/colibri-ws/{}/{}/{}?pwd={}",
                self.settings.colibri_ws_base.trim_end_matches('/'),
                path_segment(&self.settings.server_id),
                url_id,
                path_segment(&endpoint.0),
                channel_pwd
            ),
        };
        self.by_ufrag.insert(creds.ufrag.clone(), key);
        let mut ep = Endpoint {
            id: endpoint,
            conference: conference.clone(),
            rtc,
            ufrag: creds.ufrag,
            channel_pwd,
            next_timeout: now,
            last_activity: now,
            dtls_started: false,
            broken: false,
            feedback,
            sources: SourceSet::default(),
            tracks: Vec::new(),
            layer_of: HashMap::new(),
            known_ssrcs: HashSet::new(),
            next_rid: 0,
            out: HashMap::new(),
            out_by_rid: HashMap::new(),
            constraints: Constraints::default(),
            bandwidth_bps: self.settings.initial_bandwidth_bps,
            channel_open: false,
            forwarded_sources: None,
            sent_sender_constraints: HashMap::new(),
            nacks_seen: HashMap::new(),
            channel_budget: TokenBucket::full(now),
            capture_clock: SenderClock::default(),
            bwe_target: (0, 0),
        };
        let conf = self
            .conferences
            .get_mut(&conference)
            .expect("inserted above");
        for other in &conf.endpoints {
            for track in &self.endpoints[other].tracks {
                declare_out(&mut ep, *other, track);
            }
        }
        conf.endpoints.push(key);
        conf.dirty = true;
        info!(conference = %conference.0, endpoint = %ep.id.0, "endpoint allocated");
        self.endpoints.insert(key, ep);
        self.drain(key);
        Ok(offer)
    }

    fn ssrc_in_use(&self, conference: &ConferenceId, ssrc: u32) -> bool {
        self.conferences.get(conference).is_some_and(|c| {
            c.endpoints
                .iter()
                .filter_map(|k| self.endpoints.get(k))
                .any(|e| {
                    all_ssrcs(&e.sources)
                        .chain(all_ssrcs(&e.feedback))
                        .any(|s| s == ssrc)
                })
        })
    }

    fn configure(
        &mut self,
        now: Instant,
        key: EndpointKey,
        transport: &TransportDescription,
    ) -> Result<(), BridgeError> {
        let remote = transport
            .fingerprints
            .iter()
            .find(|f| f.hash.eq_ignore_ascii_case("sha-256"))
            .or(transport.fingerprints.first())
            .ok_or_else(|| BridgeError::Invalid("no DTLS fingerprint".into()))?;
        let parsed: str0m::config::Fingerprint = format!("{} {}", remote.hash, remote.value)
            .parse()
            .map_err(|_| BridgeError::Invalid("bad DTLS fingerprint".into()))?;
        if transport.ufrag.is_empty()
            || transport.pwd.is_empty()
            || transport.ufrag.len() > 256
            || transport.pwd.len() > 256
        {
            return Err(BridgeError::Invalid("bad ICE credentials".into()));
        }
        // The remote answers `active` normally, making us the DTLS server.
        let we_are_client = remote.setup == DtlsSetup::Passive;
        let ep = self
            .endpoints
            .get_mut(&key)
            .ok_or(BridgeError::UnknownEndpoint)?;
        ep.last_activity = now;
        let creds = IceCreds {
            ufrag: transport.ufrag.clone(),
            pass: transport.pwd.clone(),
        };
        let start = !ep.dtls_started;
        let result = with_rtc(ep, |rtc| {
            let mut api = rtc.direct_api();
            api.set_remote_ice_credentials(creds);
            if start {
                api.set_remote_fingerprint(parsed);
                api.start_dtls(we_are_client)
            } else {
                Ok(())
            }
        });
        match result {
            Some(Ok(())) => ep.dtls_started = true,
            Some(Err(e)) => return Err(BridgeError::Invalid(format!("DTLS: {e}"))),
            None => return Err(BridgeError::Invalid("transport rejected".into())),
        }
        self.add_candidates(key, &transport.candidates);
        Ok(())
    }

    fn add_candidates(&mut self, key: EndpointKey, candidates: &[IceCandidate]) {
        let Some(ep) = self.endpoints.get_mut(&key) else {
            return;
        };
        for c in candidates.iter().take(32) {
            if let Some(candidate) = remote_candidate(c) {
                with_rtc(ep, |rtc| rtc.add_remote_candidate(candidate));
            }
        }
        self.drain(key);
    }

    /// Replaces the endpoint's sources, updating its receive streams and every other
    /// endpoint's send streams.
    fn set_sources(
        &mut self,
        now: Instant,
        key: EndpointKey,
        sources: SourceSet,
    ) -> Result<(), BridgeError> {
        let tracks = tracks_of(&sources).map_err(BridgeError::Invalid)?;
        let conference = self.endpoints[&key].conference.clone();
        let taken: HashSet<u32> = self.conferences[&conference]
            .endpoints
            .iter()
            .filter(|k| **k != key)
            .filter_map(|k| self.endpoints.get(k))
            .flat_map(|e| {
                all_ssrcs(&e.sources)
                    .chain(all_ssrcs(&e.feedback))
                    .collect::<Vec<_>>()
            })
            .chain(all_ssrcs(&self.endpoints[&key].feedback))
            .collect();
        if all_ssrcs(&sources).any(|s| taken.contains(&s)) {
            return Err(BridgeError::Invalid(
                "SSRC already used in the conference".into(),
            ));
        }

        let ep = self.endpoints.get_mut(&key).expect("found above");
        let old = std::mem::take(&mut ep.tracks);
        let (kept, removed): (Vec<Track>, Vec<Track>) = old.into_iter().partition(|t| {
            tracks
                .iter()
                .any(|n| n.primary == t.primary && n.same_layout(t))
        });
        let added: Vec<Track> = tracks
            .into_iter()
            .filter(|n| !kept.iter().any(|k| k.primary == n.primary))
            .collect();
        for track in &removed {
            for layer in &track.layers {
                with_rtc(ep, |rtc| {
                    rtc.direct_api().remove_stream_rx(Ssrc::from(layer.ssrc))
                });
            }
        }
        for track in &added {
            for layer in &track.layers {
                let rid = ep.next_rid('r');
                let (ssrc, rtx) = (Ssrc::from(layer.ssrc), layer.rtx.map(Ssrc::from));
                let mid = mid_of(track.kind);
                with_rtc(ep, |rtc| {
                    rtc.direct_api().expect_stream_rx(ssrc, rtx, mid, Some(rid));
                });
            }
        }
        ep.tracks = kept;
        ep.tracks.extend(added);
        ep.layer_of = ep
            .tracks
            .iter()
            .enumerate()
            .flat_map(|(t, track)| {
                track
                    .layers
                    .iter()
                    .enumerate()
                    .map(move |(l, layer)| (layer.ssrc, (t, l)))
            })
            .collect();
        ep.known_ssrcs = all_ssrcs(&sources).collect();
        ep.sources = sources;
        ep.last_activity = now;

        let others: Vec<EndpointKey> = self.conferences[&conference]
            .endpoints
            .iter()
            .copied()
            .filter(|k| *k != key)
            .collect();
        let removed_primaries: Vec<u32> = removed.iter().map(|t| t.primary).collect();
        let sender_tracks: Vec<usize> = (0..self.endpoints[&key].tracks.len()).collect();
        for other in others {
            let [Some(sender), Some(receiver)] = self.endpoints.get_disjoint_mut([&key, &other])
            else {
                continue;
            };
            for primary in &removed_primaries {
                remove_out(receiver, *primary);
            }
            for &t in &sender_tracks {
                if !receiver.out.contains_key(&sender.tracks[t].primary) {
                    declare_out(receiver, key, &sender.tracks[t]);
                }
            }
            self.drain(other);
        }
        self.drain(key);
        if let Some(c) = self.conferences.get_mut(&conference) {
            c.dirty = true;
        }
        Ok(())
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
        self.counters.packets_in += 1;
        self.counters.bytes_in += data.len() as u64;
        if let Some(c) = self.conferences.get_mut(&ep.conference) {
            c.counters.packets_in += 1;
            c.counters.bytes_in += data.len() as u64;
        }
        match with_rtc(ep, |rtc| rtc.handle_input(input)) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                debug!(endpoint = %ep.id.0, "str0m rejected input: {e}");
                self.counters.drop(DropReason::RtcError);
            }
            None => {}
        }
        self.drain(key);
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
                self.drain(key);
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
            self.expire(key, true);
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
                let previous: Vec<String> = conf
                    .speakers
                    .previous()
                    .iter()
                    .filter_map(|k| self.endpoints.get(k).map(|e| e.id.0.clone()))
                    .collect();
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
    fn drain(&mut self, key: EndpointKey) {
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
                    self.counters.packets_out += 1;
                    self.counters.bytes_out += len;
                    if let Some(c) = self.conferences.get_mut(&ep.conference) {
                        c.counters.packets_out += 1;
                        c.counters.bytes_out += len;
                    }
                    self.output.push_back(CoreOutput::Transmit(t));
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
            self.expire(key, true);
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
            Event::EgressBitrateEstimate(
                BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. },
            ) => {
                if let Some(ep) = self.endpoints.get_mut(&key) {
                    let new = estimate.as_u64();
                    let old = ep.bandwidth_bps.max(1);
                    ep.bandwidth_bps = new;
                    if new.abs_diff(old) * 10 > old
                        && let Some(c) = self.conferences.get_mut(&ep.conference)
                    {
                        c.dirty = true;
                    }
                }
            }
            Event::MediaEgressStats(stats) => {
                let Some(ep) = self.endpoints.get_mut(&key) else {
                    return;
                };
                let Some(rid) = stats.rid else { return };
                let seen = ep.nacks_seen.entry(rid).or_default();
                let new = stats.nacks.saturating_sub(*seen);
                *seen = stats.nacks;
                self.counters.nacks_received += new;
                if let Some(c) = self.conferences.get_mut(&ep.conference) {
                    c.counters.nacks_received += new;
                }
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
        let incoming = Incoming {
            layer: l,
            seq: *packet.seq_no,
            timestamp: packet.header.timestamp,
            picture_id: vp8.and_then(|d| d.picture_id()),
            tl0_pic_idx: vp8.and_then(|d| d.tl0_pic_idx()),
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
            let mut write = RtpWrite::new(
                packet.header.payload_type,
                rewritten.seq.into(),
                rewritten.timestamp,
                captured,
                packet.payload.clone(),
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
            self.drain(r);
        }
        self.counters.rtp_forwarded += forwarded;
        if let Some(c) = self.conferences.get_mut(&conference_id) {
            c.counters.rtp_forwarded += forwarded;
        }
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
        self.counters.keyframe_requests += 1;
        if let Some(c) = self.conferences.get_mut(&sender.conference) {
            c.counters.keyframe_requests += 1;
        }
        self.drain(sender_key);
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
        let mut drained = Vec::new();
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
            // What the receiver would get with unlimited bandwidth: str0m probes up to
            // it, sustaining at least what is forwarded now.
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
                let (minimum, desired) =
                    (Bitrate::bps(wanted.0), Bitrate::bps(wanted.1.max(wanted.0)));
                with_rtc(receiver, |rtc| rtc.bwe().set_bitrate(minimum, desired));
                drained.push(r);
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
        for key in drained {
            self.drain(key);
        }
    }

    // ---- bridge channel ------------------------------------------------------------------

    /// Authenticates a colibri-ws connection; the password is compared in constant time.
    pub fn channel_open(
        &mut self,
        conference_url_id: &str,
        endpoint: &str,
        pwd: &str,
    ) -> Result<EndpointKey, ChannelAuthError> {
        let conference = self
            .conference_by_url
            .get(conference_url_id)
            .ok_or(ChannelAuthError::Unknown)?
            .clone();
        let key = self
            .find(&conference, &EndpointId(endpoint.to_string()))
            .map_err(|_| ChannelAuthError::Unknown)?;
        let ep = self
            .endpoints
            .get_mut(&key)
            .ok_or(ChannelAuthError::Unknown)?;
        if !bool::from(ep.channel_pwd.as_bytes().ct_eq(pwd.as_bytes())) {
            return Err(ChannelAuthError::BadPassword);
        }
        ep.channel_open = true;
        ep.sent_sender_constraints.clear();
        let mut hello = vec![channel::server_hello()];
        if let Some(forwarded) = &ep.forwarded_sources {
            hello.push(channel::forwarded_sources(forwarded));
        }
        if let Some(conf) = self.conferences.get_mut(&conference) {
            conf.dirty = true;
            let previous: Vec<String> = conf
                .speakers
                .previous()
                .iter()
                .filter_map(|k| self.endpoints.get(k).map(|e| e.id.0.clone()))
                .collect();
            if let Some(d) = conf.speakers.dominant().and_then(|k| self.endpoints.get(k)) {
                hello.push(channel::dominant_speaker(&d.id.0, &previous));
            }
        }
        for text in hello {
            self.output.push_back(CoreOutput::Channel {
                endpoint: key,
                text,
            });
        }
        Ok(key)
    }

    pub fn channel_closed(&mut self, key: EndpointKey) {
        if let Some(ep) = self.endpoints.get_mut(&key) {
            ep.channel_open = false;
        }
    }

    pub fn channel_message(&mut self, now: Instant, key: EndpointKey, text: &str) {
        let Some(ep) = self.endpoints.get_mut(&key) else {
            return;
        };
        ep.last_activity = now;
        if !ep.channel_budget.take(now) {
            self.counters.drop(DropReason::ChannelFlood);
            return;
        }
        let message = match channel::parse(text) {
            Ok(m) => m,
            Err(e) => {
                debug!(endpoint = %ep.id.0, "bad bridge-channel message: {e}");
                return;
            }
        };
        let conference = ep.conference.clone();
        let from = ep.id.0.clone();
        match message {
            ClientMessage::ReceiverVideoConstraints(update) => {
                update.apply(&mut ep.constraints);
                self.mark_dirty(&conference);
            }
            ClientMessage::LastNChanged { last_n } => {
                ep.constraints.last_n = last_n;
                self.mark_dirty(&conference);
            }
            ClientMessage::EndpointMessage { to, message } => {
                let text = channel::relayed("EndpointMessage", &from, message);
                let to = (!to.is_empty()).then_some(to);
                self.broadcast(&conference, Some((key, to)), &text);
            }
            ClientMessage::EndpointStats { message } => {
                let text = channel::relayed("EndpointStats", &from, message);
                self.broadcast(&conference, Some((key, None)), &text);
            }
            ClientMessage::SourceVideoType {
                source_name,
                video_type,
            } => {
                for track in ep.tracks.iter_mut().filter(|t| t.name == source_name) {
                    track.muted = video_type == "none";
                }
                self.mark_dirty(&conference);
            }
            ClientMessage::Ignored(_) => {}
        }
        self.settle(now);
    }

    fn mark_dirty(&mut self, conference: &ConferenceId) {
        if let Some(c) = self.conferences.get_mut(conference) {
            c.dirty = true;
        }
    }

    /// Sends `text` to the channels of a conference: everyone, or everyone but the sender
    /// (`Some((sender, None))`), or one endpoint by id (`Some((sender, Some(id)))`).
    fn broadcast(
        &mut self,
        conference: &ConferenceId,
        from: Option<(EndpointKey, Option<String>)>,
        text: &str,
    ) {
        let Some(conf) = self.conferences.get(conference) else {
            return;
        };
        for &k in &conf.endpoints {
            let Some(ep) = self.endpoints.get(&k) else {
                continue;
            };
            let wanted = match &from {
                None => true,
                Some((sender, None)) => *sender != k,
                Some((sender, Some(to))) => *sender != k && ep.id.0 == *to,
            };
            if wanted && ep.channel_open {
                self.output.push_back(CoreOutput::Channel {
                    endpoint: k,
                    text: text.to_string(),
                });
            }
        }
    }

    // ---- expiry --------------------------------------------------------------------------

    fn expire(&mut self, key: EndpointKey, by_bridge: bool) {
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
            self.drain(other);
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
mod tests {
    //! The whole core on simulated time, against str0m clients exchanging datagrams in
    //! memory: simulcast switching only on keyframes, PLI on switch, continuity, last-N.

    use str0m::media::{MediaKind as StrMediaKind, Pt};

    use super::*;
    use crate::api::SsrcGroup;
    use crate::codec::tests::vp8_packet;

    const BRIDGE: &str = "10.0.0.1:10000";
    const LAYERS: [(u32, u32, (u16, u16)); 3] = [
        (100, 101, (320, 180)),
        (200, 201, (640, 360)),
        (300, 301, (1280, 720)),
    ];

    struct Client {
        rtc: Rtc,
        addr: SocketAddr,
        events: Vec<Event>,
    }

    type Datagram = (SocketAddr, SocketAddr, Vec<u8>);

    impl Client {
        /// Polls until timeout (str0m wants this after every input): keeps the events,
        /// returns the datagrams.
        fn drain(&mut self) -> Vec<Datagram> {
            let mut out = Vec::new();
            loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Timeout(_) => return out,
                    Output::Transmit(t) => {
                        out.push((t.source, t.destination, Vec::from(t.contents)))
                    }
                    Output::Event(e) => self.events.push(e),
                }
            }
        }
    }

    fn settings() -> Settings {
        Settings {
            local_addrs: vec![BRIDGE.parse().unwrap()],
            tcp_addrs: vec![],
            public_ips: vec![],
            colibri_ws_base: "ws://localhost".into(),
            server_id: "jvb1".into(),
            idle_timeout: Duration::from_secs(60),
            initial_bandwidth_bps: 10_000_000,
            max_datagram_bytes: 1500,
        }
    }

    /// A client configured from the offer, as a browser would be from the Jingle offer.
    fn client(offer: &EndpointOffer, addr: &str, now: Instant) -> (Client, TransportDescription) {
        let addr: SocketAddr = addr.parse().unwrap();
        let mut rtc = media::rtc_config(10_000_000).build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        for c in &offer.transport.candidates {
            rtc.add_remote_candidate(
                Candidate::host(SocketAddr::new(c.ip, c.port), "udp").unwrap(),
            );
        }
        let fp = &offer.transport.fingerprints[0];
        let mut api = rtc.direct_api();
        api.set_remote_ice_credentials(IceCreds {
            ufrag: offer.transport.ufrag.clone(),
            pass: offer.transport.pwd.clone(),
        });
        api.set_ice_controlling(false);
        api.set_remote_fingerprint(format!("{} {}", fp.hash, fp.value).parse().unwrap());
        api.start_dtls(true).unwrap();
        api.enable_twcc_feedback();
        api.declare_media(mid_of(MediaKind::Audio), StrMediaKind::Audio);
        api.declare_media(mid_of(MediaKind::Video), StrMediaKind::Video);
        let creds = api.local_ice_credentials();
        let local_fp = api.local_dtls_fingerprint().to_string();
        let (hash, value) = local_fp.split_once(' ').unwrap();
        let transport = TransportDescription {
            ufrag: creds.ufrag,
            pwd: creds.pass,
            fingerprints: vec![Fingerprint {
                hash: hash.into(),
                value: value.into(),
                setup: DtlsSetup::Active,
            }],
            candidates: vec![],
        };
        (
            Client {
                rtc,
                addr,
                events: Vec::new(),
            },
            transport,
        )
    }

    fn simulcast_sources() -> SourceSet {
        let video = |ssrc| Source {
            ssrc,
            kind: MediaKind::Video,
            name: Some("s-v0".into()),
            msid: Some("m".into()),
            video_type: None,
        };
        let mut set = SourceSet::default();
        for (ssrc, rtx, _) in LAYERS {
            set.sources.extend([video(ssrc), video(rtx)]);
            set.groups.push(SsrcGroup {
                semantics: GroupSemantics::Fid,
                kind: MediaKind::Video,
                ssrcs: vec![ssrc, rtx],
            });
        }
        set.groups.push(SsrcGroup {
            semantics: GroupSemantics::Sim,
            kind: MediaKind::Video,
            ssrcs: LAYERS.iter().map(|l| l.0).collect(),
        });
        set
    }

    struct World {
        core: Core,
        clients: Vec<Client>,
        now: Instant,
    }

    impl World {
        /// Advances 1 ms: timeouts, then every datagram in flight (zero latency).
        fn tick(&mut self) {
            self.now += Duration::from_millis(1);
            let now = self.now;
            self.core.handle_timeout(now);
            let mut to_core = Vec::new();
            for c in &mut self.clients {
                c.rtc.handle_input(Input::Timeout(now)).unwrap();
                to_core.append(&mut c.drain());
            }
            for _ in 0..50 {
                for (source, destination, data) in std::mem::take(&mut to_core) {
                    self.core
                        .handle_datagram(now, Protocol::Udp, source, destination, &data);
                }
                let mut moved = false;
                while let Some(out) = self.core.poll_output() {
                    let CoreOutput::Transmit(t) = out else {
                        continue;
                    };
                    moved = true;
                    let Some(c) = self.clients.iter_mut().find(|c| c.addr == t.destination) else {
                        continue;
                    };
                    let input = Input::Receive(
                        now,
                        Receive {
                            proto: Protocol::Udp,
                            source: t.source,
                            destination: t.destination,
                            contents: t.contents.as_ref().try_into().unwrap(),
                        },
                    );
                    c.rtc.handle_input(input).unwrap();
                    to_core.append(&mut c.drain());
                }
                if !moved && to_core.is_empty() {
                    break;
                }
            }
        }
    }

    /// (layer marker, seq, picture id, keyframe) of the video packets a client received.
    fn received_video(c: &mut Client) -> Vec<(u8, u64, u16, bool)> {
        c.events
            .drain(..)
            .filter_map(|e| match e {
                Event::RtpPacket(p) if *p.header.ssrc == LAYERS[0].0 => {
                    let picture_id = Vp8Descriptor::parse(&p.payload).ok()?.picture_id()?;
                    let keyframe = codec::starts_keyframe(CodecKind::Vp8, &p.payload);
                    Some((*p.payload.last()?, *p.seq_no, picture_id, keyframe))
                }
                _ => None,
            })
            .collect()
    }

    /// Opens the bridge channel from the URL in the offer, as the WebSocket route does.
    fn open_channel(core: &mut Core, offer: &EndpointOffer) -> EndpointKey {
        let (path, pwd) = offer.colibri_ws_url.split_once("?pwd=").unwrap();
        let mut parts = path.rsplit('/');
        let (endpoint, conference) = (parts.next().unwrap(), parts.next().unwrap());
        assert_eq!(
            core.channel_open(conference, endpoint, "wrong"),
            Err(ChannelAuthError::BadPassword)
        );
        core.channel_open(conference, endpoint, pwd).unwrap()
    }

    #[test]
    fn bridge_channel_relays_and_limits_a_flooding_endpoint() {
        let t0 = Instant::now();
        let mut core = Core::new(settings(), t0);
        let mut offers = Vec::new();
        for id in ["a", "b", "c"] {
            let allocate = BridgeRequest::AllocateEndpoint {
                conference: ConferenceId("room".into()),
                endpoint: EndpointId(id.into()),
            };
            let Ok(BridgeResponse::EndpointAllocated(offer)) = core.handle_request(t0, allocate)
            else {
                panic!("no offer")
            };
            offers.push(offer);
        }
        let keys: Vec<EndpointKey> = offers.iter().map(|o| open_channel(&mut core, o)).collect();
        let inbox = |core: &mut Core| {
            let mut got: HashMap<EndpointKey, Vec<serde_json::Value>> = HashMap::new();
            while let Some(out) = core.poll_output() {
                if let CoreOutput::Channel { endpoint, text } = out {
                    got.entry(endpoint)
                        .or_default()
                        .push(serde_json::from_str(&text).unwrap());
                }
            }
            got
        };
        let hello = inbox(&mut core);
        assert!(
            keys.iter()
                .all(|k| hello[k][0]["colibriClass"] == "ServerHello")
        );

        // Addressed to "c" only, with a forged "from".
        core.channel_message(
            t0,
            keys[0],
            r#"{"colibriClass":"EndpointMessage","from":"x","to":"c","msgPayload":{"n":1}}"#,
        );
        let got = inbox(&mut core);
        let relayed: Vec<_> = got
            .get(&keys[2])
            .into_iter()
            .flatten()
            .filter(|m| m["colibriClass"] == "EndpointMessage")
            .collect();
        assert_eq!(relayed.len(), 1);
        assert_eq!(relayed[0]["from"], "a");
        assert!(
            got.get(&keys[1])
                .is_none_or(|m| m.iter().all(|m| m["colibriClass"] != "EndpointMessage"))
        );

        // A flood: the burst gets through, the rest is dropped and counted; it refills.
        let broadcast = r#"{"colibriClass":"EndpointMessage","to":"","msgPayload":{}}"#;
        for _ in 0..200 {
            core.channel_message(t0, keys[0], broadcast);
        }
        let count = |got: &HashMap<EndpointKey, Vec<serde_json::Value>>| {
            got.get(&keys[1]).map_or(0, Vec::len)
        };
        assert_eq!(count(&inbox(&mut core)), 59);
        assert_eq!(core.counters().dropped(DropReason::ChannelFlood), 141);
        let later = t0 + Duration::from_secs(1);
        for _ in 0..50 {
            core.channel_message(later, keys[0], broadcast);
        }
        assert_eq!(count(&inbox(&mut core)), 20);

        // Every 5 s each channel learns its estimated downlink.
        core.handle_timeout(t0 + Duration::from_secs(6));
        let got = inbox(&mut core);
        for k in &keys {
            let stats = got[k]
                .iter()
                .find(|m| m["colibriClass"] == "ConnectionStats");
            assert_eq!(
                stats.unwrap()["estimatedDownlinkBandwidth"],
                10_000_000,
                "{got:?}"
            );
        }
    }

    #[test]
    fn a_panic_inside_str0m_expires_that_endpoint_only() {
        let t0 = Instant::now();
        let mut core = Core::new(settings(), t0);
        for id in ["a", "b"] {
            let allocate = BridgeRequest::AllocateEndpoint {
                conference: ConferenceId("room".into()),
                endpoint: EndpointId(id.into()),
            };
            core.handle_request(t0, allocate).unwrap();
        }
        let victim = core
            .endpoints
            .iter()
            .find(|(_, e)| e.id.0 == "a")
            .map(|(k, _)| *k)
            .unwrap();
        let ep = core.endpoints.get_mut(&victim).unwrap();
        assert_eq!(
            with_rtc(ep, |_| -> () { panic!("simulated str0m bug") }),
            None
        );
        core.handle_timeout(t0);
        assert!(!core.endpoints.contains_key(&victim));
        assert_eq!(core.endpoints.len(), 1);
        let mut expired = Vec::new();
        while let Some(out) = core.poll_output() {
            if let CoreOutput::Event(BridgeEvent::EndpointExpired { endpoint, .. }) = out {
                expired.push(endpoint.0);
            }
        }
        assert_eq!(expired, vec!["a".to_string()]);
        assert_eq!(core.counters().endpoints_expired, 1);
    }

    #[test]
    fn offer_advertises_local_tcp_and_public_candidates() {
        let t0 = Instant::now();
        let settings = Settings {
            tcp_addrs: vec![BRIDGE.parse().unwrap()],
            public_ips: vec!["203.0.113.7".parse().unwrap()],
            ..settings()
        };
        let mut core = Core::new(settings, t0);
        let allocate = BridgeRequest::AllocateEndpoint {
            conference: ConferenceId("room".into()),
            endpoint: EndpointId("e".into()),
        };
        let Ok(BridgeResponse::EndpointAllocated(offer)) = core.handle_request(t0, allocate) else {
            panic!("no offer")
        };
        let seen: Vec<(String, String, u16)> = offer
            .transport
            .candidates
            .iter()
            .map(|c| (c.protocol.clone(), c.ip.to_string(), c.port))
            .collect();
        let want = [
            ("udp", "10.0.0.1"),
            ("tcp", "10.0.0.1"),
            ("udp", "203.0.113.7"),
            ("tcp", "203.0.113.7"),
        ];
        let want: Vec<(String, String, u16)> = want
            .iter()
            .map(|(p, ip)| (p.to_string(), ip.to_string(), 10000))
            .collect();
        assert_eq!(seen, want);
        let prio: Vec<u32> = offer
            .transport
            .candidates
            .iter()
            .map(|c| c.priority)
            .collect();
        assert!(
            prio[0] > prio[2] && prio[2] > prio[1] && prio[1] > prio[3],
            "{prio:?}"
        );
    }

    #[test]
    fn simulcast_switches_on_keyframes_with_continuous_numbering() {
        let t0 = Instant::now();
        let mut core = Core::new(settings(), t0);
        let conference = ConferenceId("room".into());
        let mut offer = |id: &str| match core
            .handle_request(
                t0,
                BridgeRequest::AllocateEndpoint {
                    conference: conference.clone(),
                    endpoint: EndpointId(id.into()),
                },
            )
            .unwrap()
        {
            BridgeResponse::EndpointAllocated(o) => o,
            BridgeResponse::Done => panic!(),
        };
        let (sender_offer, receiver_offer) = (offer("s"), offer("r"));
        let (mut sender, sender_transport) = client(&sender_offer, "10.0.0.2:5000", t0);
        let (mut receiver, receiver_transport) = client(&receiver_offer, "10.0.0.3:5000", t0);
        for (i, (ssrc, rtx, _)) in LAYERS.iter().enumerate() {
            let rid = Rid::from(format!("l{i}").as_str());
            sender.rtc.direct_api().declare_stream_tx(
                Ssrc::from(*ssrc),
                Some(Ssrc::from(*rtx)),
                mid_of(MediaKind::Video),
                Some(rid),
            );
        }
        receiver.rtc.direct_api().expect_stream_rx(
            Ssrc::from(LAYERS[0].0),
            Some(Ssrc::from(LAYERS[0].1)),
            mid_of(MediaKind::Video),
            None,
        );
        let configure = |id: &str, transport, sources| BridgeRequest::ConfigureEndpoint {
            conference: conference.clone(),
            endpoint: EndpointId(id.into()),
            transport,
            media: vec![],
            sources,
        };
        core.handle_request(t0, configure("s", sender_transport, simulcast_sources()))
            .unwrap();
        core.handle_request(t0, configure("r", receiver_transport, SourceSet::default()))
            .unwrap();
        let mut world = World {
            core,
            clients: vec![sender, receiver],
            now: t0,
        };

        // 30 fps on every layer; a layer sends a keyframe at start and, like a real encoder,
        // a few frames after it is asked (PLI): frames until the next keyframe per layer.
        let mut picture_ids = [1000u16, 5000, 20000];
        let mut seqs = [10u64, 30_000, 50_000];
        let mut want_key = [1u8; 3];
        let mut frame = |world: &mut World, want_key: &mut [u8; 3]| {
            let sender = &mut world.clients[0];
            for e in sender.events.drain(..) {
                if let Event::KeyframeRequest(r) = e {
                    let layer = r
                        .rid
                        .map(|rid| rid.to_string()[1..].parse::<usize>().unwrap())
                        .unwrap();
                    if want_key[layer] == 0 {
                        want_key[layer] = 4;
                    }
                }
            }
            for (l, (ssrc, _, size)) in LAYERS.iter().enumerate() {
                let mut payload = vp8_packet(
                    want_key[l] == 1 || seqs[l] % 30_000 == 10,
                    picture_ids[l],
                    0,
                    *size,
                );
                payload.push(l as u8);
                let write = RtpWrite::new(
                    Pt::from(100),
                    seqs[l].into(),
                    picture_ids[l] as u32 * 3000,
                    world.now,
                    payload,
                )
                .marker(true)
                .nackable(true);
                sender
                    .rtc
                    .direct_api()
                    .stream_tx(&Ssrc::from(*ssrc))
                    .unwrap()
                    .write_rtp(write);
                want_key[l] = want_key[l].saturating_sub(1);
                picture_ids[l] = (picture_ids[l] + 1) % 0x8000;
                seqs[l] += 1;
            }
        };
        let mut received = Vec::new();
        for ms in 0..3000 {
            if ms % 33 == 0 {
                frame(&mut world, &mut want_key);
            }
            world.tick();
            received.extend(received_video(&mut world.clients[1]));
        }
        assert!(received.len() > 50, "too little video: {}", received.len());
        // Unconstrained: the top layer, and nothing else once it started.
        let first_top = received
            .iter()
            .position(|r| r.0 == 2)
            .expect("top layer forwarded");
        assert!(received[first_top..].iter().all(|r| r.0 == 2));
        assert!(received[first_top].3, "started on a delta frame");

        // Constrain to 180p: the switch waits for a keyframe of layer 0 (asked by PLI).
        let key = world
            .core
            .endpoints
            .iter()
            .find(|(_, e)| e.id.0 == "r")
            .map(|(k, _)| *k)
            .unwrap();
        let constraints =
            r#"{"colibriClass":"ReceiverVideoConstraints","defaultConstraints":{"maxHeight":180}}"#;
        world.core.channel_message(world.now, key, constraints);
        let before_switch = received.len();
        for ms in 0..2000 {
            if ms % 33 == 0 {
                frame(&mut world, &mut want_key);
            }
            world.tick();
            received.extend(received_video(&mut world.clients[1]));
        }
        let switch = before_switch
            + received[before_switch..]
                .iter()
                .position(|r| r.0 == 0)
                .expect("switched to layer 0");
        assert!(
            received[switch..].iter().all(|r| r.0 == 0),
            "went back to another layer"
        );
        for pair in received[first_top..].windows(2) {
            assert_eq!(pair[1].1, pair[0].1 + 1, "sequence gap around {pair:?}");
            assert_eq!(
                pair[1].2,
                (pair[0].2 + 1) % 0x8000,
                "picture id gap around {pair:?}"
            );
        }
        assert!(world.core.counters().keyframe_requests >= 2);

        // last-N 0: video stops, ForwardedSources goes empty.
        world.core.channel_message(
            world.now,
            key,
            r#"{"colibriClass":"ReceiverVideoConstraints","lastN":0}"#,
        );
        for _ in 0..5 {
            world.tick();
        }
        received_video(&mut world.clients[1]);
        for ms in 0..500 {
            if ms % 33 == 0 {
                frame(&mut world, &mut want_key);
            }
            world.tick();
        }
        assert!(
            received_video(&mut world.clients[1]).is_empty(),
            "video forwarded despite lastN 0"
        );
        assert_eq!(world.core.endpoints[&key].forwarded_sources, Some(vec![]));

        // Back to all, then the sender turns its camera off (videoType none) and on.
        world.core.channel_message(
            world.now,
            key,
            r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1}"#,
        );
        let sender_key = world
            .core
            .endpoints
            .iter()
            .find(|(_, e)| e.id.0 == "s")
            .map(|(k, _)| *k)
            .unwrap();
        let mut run = |world: &mut World, ms: u32| {
            for i in 0..ms {
                if i % 33 == 0 {
                    frame(world, &mut want_key);
                }
                world.tick();
            }
            received_video(&mut world.clients[1])
        };
        assert!(
            !run(&mut world, 500).is_empty(),
            "video back after lastN -1"
        );
        let video_type = |t: &str| {
            format!(
                r#"{{"colibriClass":"SourceVideoTypeMessage","sourceName":"s-v0","videoType":"{t}"}}"#
            )
        };
        world
            .core
            .channel_message(world.now, sender_key, &video_type("none"));
        run(&mut world, 5);
        assert!(run(&mut world, 300).is_empty(), "muted video forwarded");
        assert_eq!(world.core.endpoints[&key].forwarded_sources, Some(vec![]));
        world
            .core
            .channel_message(world.now, sender_key, &video_type("camera"));
        assert!(!run(&mut world, 500).is_empty(), "video back after unmute");
        assert_eq!(
            world.core.endpoints[&key].forwarded_sources,
            Some(vec!["s-v0".to_string()])
        );
    }
}
