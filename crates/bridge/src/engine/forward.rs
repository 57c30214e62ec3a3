//! The hot path: a decrypted RTP packet from a sender to every receiver that has its
//! layer selected (switching layers only on keyframes), and keyframe requests back to
//! senders.

use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequest, KeyframeRequestKind};
use str0m::rtp::{RtpPacket, Ssrc};

use super::receiver::{Forwarded, Receiver};
use super::{Core, EndpointKey, count};
use crate::api::MediaKind;
use crate::codec;
use crate::media::{self, CodecKind};
use crate::metrics::DropReason;
use crate::rewrite::Incoming;

/// Keyframe requests towards one sender layer are at most this frequent.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

impl Core {
    /// The hot path: one decrypted RTP packet from `sender_key`, to every receiver that
    /// has the packet's layer selected.
    pub(super) fn forward(&mut self, now: Instant, sender_key: EndpointKey, packet: RtpPacket) {
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
        let info = codec::inspect(codec, &packet.payload);
        if let Some(height) = info.keyframe_height {
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
        let incoming = Incoming {
            layer: l,
            seq: *packet.seq_no,
            timestamp: packet.header.timestamp,
            picture_id: info.picture_id,
            tl0_pic_idx: info.tl0_pic_idx,
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
        let mut forwarded_count = 0;
        for r in receivers {
            let Some(receiver) = self.endpoints.get_mut(&r) else {
                continue;
            };
            let Some(out) = receiver.out.get_mut(&primary) else {
                continue;
            };
            let current = out.rewriter.layer() == Some(l);
            let switch_here = out.target == Some(l) && info.keyframe;
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
            let (picture_id, tl0_pic_idx) = (rewritten.picture_id, rewritten.tl0_pic_idx);
            let forwarded = Forwarded {
                ssrc: primary,
                payload_type: packet.header.payload_type,
                seq: rewritten.seq,
                timestamp: rewritten.timestamp,
                captured,
                marker: packet.header.marker,
                nackable: !is_audio,
                payload: info.payload_for(&packet.payload, picture_id, tl0_pic_idx),
                ext_vals: &ext_vals,
                vp8_patch: info.vp8_patch(picture_id, tl0_pic_idx),
            };
            if Receiver::Endpoint(receiver).write(forwarded) {
                self.unsent.push(r);
            }
            forwarded_count += 1;
        }
        count(
            &mut self.counters,
            &mut self.conferences,
            &conference_id,
            |c| {
                c.rtp_forwarded += forwarded_count;
            },
        );
        if want_keyframe {
            self.request_keyframe(now, sender_key, primary, l);
        }
    }

    pub(super) fn on_keyframe_request(
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
    pub(super) fn request_keyframe(
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
        sender.rtc.call(|rtc| {
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
}
