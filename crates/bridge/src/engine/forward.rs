//! The hot path: a decrypted RTP packet from a sender to every receiver that has its
//! layer selected (switching simulcast layers only on keyframes, SVC decode targets where
//! `crate::svc` finds the receiver can decode from), and keyframe requests back to
//! senders.

use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequest, KeyframeRequestKind};
use str0m::rtp::{RtpPacket, Ssrc};
use tracing::trace;

use super::receiver::{Forwarded, Receiver};
use super::{Core, EndpointKey, count};
use crate::api::MediaKind;
use crate::codec;
use crate::media::{self, CodecKind, DependencyDescriptor};
use crate::metrics::DropReason;
use crate::rewrite::Incoming;

/// Keyframe requests towards one sender layer are at most this frequent.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

impl Core {
    /// The hot path: one decrypted RTP packet from `sender_key`, to every receiver that
    /// has the packet's layer selected (a simulcast layer, or for an SVC stream a decode
    /// target that needs the packet's frame).
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
        if sender.force_muted.contains(&track.kind) {
            // The allocator has deselected a muted video (`Track::choices`); audio has no
            // allocator, so this is where it stops.
            self.counters.drop(DropReason::ForceMuted);
            return;
        }
        let primary = track.primary;
        let is_audio = track.kind == MediaKind::Audio;
        // As `Track::svc`: this SSRC is the SVC one when no other of the track's is sending.
        let sends_alone = track.sends_alone(l, now);
        let layer = &mut track.layers[l];
        let mut became_active = layer.meter.on_packet(now, packet.payload.len());
        let info = codec::inspect(codec, &packet.payload);
        if let Some(height) = info.keyframe_height {
            layer.height = Some(u32::from(height));
        }
        let (frame, svc_changed) = match codec {
            CodecKind::Av1 => {
                let dd = packet
                    .header
                    .ext_vals
                    .user_values
                    .get::<DependencyDescriptor>();
                match layer
                    .svc
                    .on_av1(now, dd.map(|d| d.0.as_slice()), packet.payload.len())
                {
                    Ok(read) => read,
                    Err(e) => {
                        trace!(ssrc, "dependency descriptor: {e}");
                        self.counters
                            .drop(DropReason::MalformedDependencyDescriptor);
                        return;
                    }
                }
            }
            CodecKind::Vp9 => info.vp9().map_or((None, false), |d| {
                layer.svc.on_vp9(now, d, packet.payload.len())
            }),
            CodecKind::Opus | CodecKind::Vp8 | CodecKind::H264 => (None, false),
        };
        became_active |= svc_changed;
        // Under end-to-end encryption the AV1 payload is unreadable; its descriptor is not.
        let keyframe = match frame {
            Some(f) if codec == CodecKind::Av1 => f.keyframe,
            _ => info.keyframe,
        };
        // Layers are selected within the SSRC when it is the track's SVC one (see
        // `Track::svc`); the stream is taken out of the sender for the receivers' loop and
        // put back after.
        let svc = frame
            .filter(|_| sends_alone && layer.svc.is_scalable())
            .map(|f| (f, std::mem::take(&mut layer.svc)));
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
            let mut marker = packet.header.marker;
            if let Some((frame, stream)) = &svc {
                let decision = out.svc.decide(frame, stream, out.target);
                want_keyframe |= decision.want_keyframe;
                if !decision.forward {
                    out.rewriter.skip(incoming.seq);
                    continue;
                }
                marker |= decision.marker;
            } else {
                let current = out.rewriter.layer() == Some(l);
                let switch_here = out.target == Some(l) && keyframe;
                if !current && !switch_here {
                    want_keyframe |= out.target == Some(l);
                    continue;
                }
                if out.target.is_none() {
                    continue;
                }
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
                marker,
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
        if let Some((_, stream)) = svc
            && let Some(sender) = self.endpoints.get_mut(&sender_key)
        {
            sender.tracks[t].layers[l].svc = stream;
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
        let Some(sender) = self.endpoints.get(&out.sender) else {
            return;
        };
        let Some(&(t, _)) = sender.layer_of.get(primary) else {
            return;
        };
        let Some(layer) = out.ssrc_layer(sender.tracks[t].layers.len()) else {
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
