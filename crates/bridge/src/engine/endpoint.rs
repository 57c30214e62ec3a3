//! Per-endpoint state: the tracks it sends (layers by SSRC), the tracks it receives (one
//! [`OutStream`] each), its downlink estimate and bridge-channel state.

use std::time::Instant;

use foldhash::HashMap;
use str0m::media::Rid;
use str0m::rtp::Ssrc;

use super::ingress::{IngressBudget, TokenBucket};
use super::rtc::GuardedRtc;
use super::{EndpointKey, mid_of};
use crate::allocator::{self, Constraints};
use crate::api::{ConferenceId, EndpointId, MediaKind, SourceSet};
use crate::bwe::DownlinkEstimator;
use crate::meter::Meter;
use crate::rewrite::Rewriter;
use crate::svc::{SvcSelector, SvcStream};
use crate::sync::SenderClock;

/// Height assumed for layers whose size we cannot read, by rank from the top.
const ASSUMED_TOP_HEIGHT: u32 = 720;

/// One incoming SSRC (a simulcast layer, or the only stream of a track).
#[derive(Debug)]
pub(super) struct Layer {
    pub(super) ssrc: u32,
    pub(super) rtx: Option<u32>,
    /// From the last VP8 keyframe, when known.
    pub(super) height: Option<u32>,
    pub(super) meter: Meter,
    pub(super) last_keyframe_request: Option<Instant>,
    /// Its SVC layers (AV1 dependency descriptor, VP9 layer indices), when it has any.
    pub(super) svc: SvcStream,
}

impl Layer {
    pub(super) fn new(ssrc: u32, rtx: Option<u32>) -> Self {
        Self {
            ssrc,
            rtx,
            height: None,
            meter: Meter::default(),
            last_keyframe_request: None,
            svc: SvcStream::default(),
        }
    }
}

/// One source an endpoint sends: a simulcast group (lowest layer first) or a lone SSRC.
#[derive(Debug)]
pub(super) struct Track {
    /// The SSRC receivers know (first of the SIM group) and its RTX partner.
    pub(super) primary: u32,
    pub(super) primary_rtx: Option<u32>,
    pub(super) kind: MediaKind,
    pub(super) name: String,
    pub(super) layers: Vec<Layer>,
    /// The sender said `videoType: none` (camera off): nothing of it is forwarded.
    pub(super) muted: bool,
}

impl Track {
    pub(super) fn assumed_height(&self, layer: usize) -> u32 {
        self.layers[layer].height.unwrap_or_else(|| {
            let from_top = (self.layers.len() - 1 - layer) as u32;
            ASSUMED_TOP_HEIGHT >> from_top
        })
    }

    /// The SSRC whose decode targets are selected within it, and its SVC stream: a lone
    /// SSRC that carries more than one decode target, or, where a simulcast group is
    /// signalled, the one SSRC still sending, when that one carries several (lib-jitsi-meet
    /// signals three SSRCs and sends AV1/VP9 SVC on one). Simulcast tracks switch SSRCs.
    pub(super) fn svc(&self, now: Instant) -> Option<(usize, &SvcStream)> {
        let l = match self.layers.as_slice() {
            [_] => 0,
            layers => layers.iter().position(|layer| layer.meter.is_active(now))?,
        };
        let svc = &self.layers[l].svc;
        (self.sends_alone(l, now) && svc.is_scalable()).then_some((l, svc))
    }

    /// Whether no layer of the track but `l` is sending.
    pub(super) fn sends_alone(&self, l: usize, now: Instant) -> bool {
        (self.layers.iter().enumerate())
            .all(|(other, layer)| other == l || !layer.meter.is_active(now))
    }

    /// What the allocator chooses from, lowest first, and what each choice stands for:
    /// the decode targets of an SVC stream, else the simulcast layers; none is active while
    /// the sender turned the track off or a moderator `force_muted` it.
    pub(super) fn choices(
        &self,
        now: Instant,
        force_muted: bool,
    ) -> (Vec<allocator::Layer>, Vec<usize>) {
        let off = self.muted || force_muted;
        if let Some((_, svc)) = self.svc(now) {
            return svc
                .targets(now)
                .into_iter()
                .map(|t| {
                    let layer = allocator::Layer {
                        height: t.height,
                        bitrate_bps: t.bitrate_bps,
                        active: !off && t.active,
                    };
                    (layer, t.dt)
                })
                .unzip();
        }
        (0..self.layers.len())
            .map(|l| {
                let height = self.assumed_height(l);
                let layer = allocator::Layer {
                    height,
                    bitrate_bps: self.layers[l].meter.expected_bps(height),
                    active: !off && self.layers[l].meter.is_active(now),
                };
                (layer, l)
            })
            .unzip()
    }

    pub(super) fn same_layout(&self, other: &Track) -> bool {
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
pub(super) struct OutStream {
    pub(super) sender: EndpointKey,
    pub(super) rid: Rid,
    pub(super) rewriter: Rewriter,
    /// The allocator's choice: a simulcast layer, switched to on its next keyframe, or
    /// for an SVC stream a decode target, switched to where `svc` finds it decodable.
    pub(super) target: Option<usize>,
    pub(super) svc: SvcSelector,
}

impl OutStream {
    /// The sender's SSRC layer this stream forwards, or would (keyframe requests go there).
    pub(super) fn ssrc_layer(&self, track_layers: usize) -> Option<usize> {
        if track_layers == 1 {
            return Some(0);
        }
        self.rewriter.layer().or(self.target)
    }
}

pub(super) struct Endpoint {
    pub(super) id: EndpointId,
    pub(super) conference: ConferenceId,
    pub(super) rtc: GuardedRtc,
    pub(super) ufrag: String,
    pub(super) channel_pwd: String,
    pub(super) next_timeout: Instant,
    pub(super) last_activity: Instant,
    pub(super) dtls_started: bool,
    pub(super) feedback: SourceSet,
    pub(super) sources: SourceSet,
    pub(super) tracks: Vec<Track>,
    /// Main SSRC → (track, layer).
    pub(super) layer_of: HashMap<u32, (usize, usize)>,
    /// Its signalled SSRCs and what it may send on them.
    pub(super) ingress: IngressBudget,
    pub(super) next_rid: u32,
    /// Forwarded tracks by their primary SSRC.
    pub(super) out: HashMap<u32, OutStream>,
    pub(super) out_by_rid: HashMap<Rid, u32>,
    pub(super) constraints: Constraints,
    /// The downlink estimate the allocator last worked with.
    pub(super) bandwidth_bps: u64,
    pub(super) downlink: DownlinkEstimator,
    pub(super) channel_open: bool,
    pub(super) forwarded_sources: Option<Vec<String>>,
    pub(super) sent_sender_constraints: HashMap<String, i32>,
    pub(super) nacks_seen: HashMap<Rid, u64>,
    /// Bridge-channel messages this endpoint may still send right now.
    pub(super) channel_budget: TokenBucket,
    /// Maps this endpoint's capture times (from its sender reports) onto our clock.
    pub(super) capture_clock: SenderClock,
    /// (sustained, desired) bitrates last computed for this receiver, in bps.
    pub(super) bwe_target: (u64, u64),
    /// Forwarded media was handed to its `Rtc` and is not sent yet (it is listed in
    /// `Core::unsent`).
    pub(super) unsent: bool,
    /// The kinds of media a moderator muted (`BridgeRequest::ForceMute`): none of the
    /// endpoint's packets of these kinds is forwarded.
    pub(super) force_muted: Vec<MediaKind>,
}

/// Bridge-channel messages per second an endpoint may send, and the burst it may save up:
/// a client relaying to everyone must not be able to flood the conference.
const CHANNEL_MESSAGES_PER_SEC: f64 = 20.0;
const CHANNEL_BURST: f64 = 60.0;

/// A full bridge-channel budget.
pub(super) fn channel_budget(now: Instant) -> TokenBucket {
    TokenBucket::new(CHANNEL_MESSAGES_PER_SEC, CHANNEL_BURST, now)
}

impl Endpoint {
    pub(super) fn next_rid(&mut self, prefix: char) -> Rid {
        self.next_rid += 1;
        Rid::from(format!("{prefix}{}", self.next_rid).as_str())
    }
}

/// Declares a send stream on `receiver` for one of `sender`'s tracks.
pub(super) fn declare_out(receiver: &mut Endpoint, sender: EndpointKey, track: &Track) {
    let rid = receiver.next_rid('t');
    let (ssrc, rtx) = (Ssrc::from(track.primary), track.primary_rtx.map(Ssrc::from));
    let mid = mid_of(track.kind);
    receiver.rtc.call(|rtc| {
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
            svc: SvcSelector::default(),
        },
    );
}

pub(super) fn remove_out(receiver: &mut Endpoint, primary: u32) {
    if let Some(out) = receiver.out.remove(&primary) {
        receiver.out_by_rid.remove(&out.rid);
        receiver.nacks_seen.remove(&out.rid);
        receiver
            .rtc
            .call(|rtc| rtc.direct_api().remove_stream_tx(Ssrc::from(primary)));
    }
}
