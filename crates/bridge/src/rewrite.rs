//! Per receiver and per forwarded track: maps whichever simulcast layer is forwarded onto
//! one continuous outgoing stream (sequence numbers, RTP timestamps, VP8/VP9 picture ids
//! and TL0PICIDX), and closes the gaps that SVC layer selection leaves by dropping
//! packets within a layer ([`Rewriter::skip`]).
//!
//! Sans-IO: fed with the incoming packet's fields and the arrival time, it returns the
//! outgoing fields or `None` for a packet that must not be forwarded (an old layer's
//! stragglers after a switch).

use std::collections::VecDeque;
use std::time::Instant;

/// Outgoing values for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Extended outgoing sequence number (str0m tracks the rollover counter).
    pub seq: u64,
    pub timestamp: u32,
    /// VP8/VP9 picture id / TL0PICIDX to write, when the packet carried them.
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
}

/// What the rewriter needs from one incoming packet.
#[derive(Debug, Clone, Copy)]
pub struct Incoming {
    pub layer: usize,
    /// str0m's extended (rollover-free) sequence number.
    pub seq: u64,
    pub timestamp: u32,
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    seq: u64,
    timestamp: u32,
    picture_id: Option<u16>,
    tl0_pic_idx: Option<u8>,
    at: Instant,
}

#[derive(Debug)]
pub struct Rewriter {
    clock_rate: u32,
    layer: Option<usize>,
    /// Sequence number offsets of the current run, oldest first: (first incoming
    /// sequence number it applies to, offset). The first entry starts the run: older
    /// packets belong to the previous run and would collide with what was already sent;
    /// each skipped packet starts a new entry one lower, so that the packets after it
    /// close the gap while late packets before it keep their own numbers.
    offsets: VecDeque<(u64, i64)>,
    /// Newest incoming sequence number of the run, forwarded or skipped.
    newest_in: u64,
    ts_offset: u32,
    picture_offset: u16,
    tl0_offset: u8,
    last: Option<Last>,
}

const PICTURE_ID_MODULUS: u16 = 0x8000;
/// Offset changes remembered per run: a packet older than all of them is not forwarded.
const MAX_OFFSETS: usize = 64;

impl Rewriter {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            layer: None,
            offsets: VecDeque::new(),
            newest_in: 0,
            ts_offset: 0,
            picture_offset: 0,
            tl0_offset: 0,
            last: None,
        }
    }

    /// The layer currently forwarded, if any.
    pub fn layer(&self) -> Option<usize> {
        self.layer
    }

    /// Stops forwarding; the next packet (of any layer) starts a new run.
    pub fn pause(&mut self) {
        self.layer = None;
    }

    /// A packet of the current layer that is not forwarded (SVC selection dropped its
    /// frame): the packets after it move down to close the gap.
    pub fn skip(&mut self, seq: u64) {
        if self.layer.is_none() || seq <= self.newest_in {
            return;
        }
        self.newest_in = seq;
        let Some(&(from, offset)) = self.offsets.back() else {
            return;
        };
        if from == seq && self.offsets.len() > 1 {
            // Consecutive skips widen one entry.
            self.offsets.pop_back();
        } else if self.offsets.len() == MAX_OFFSETS {
            self.offsets.pop_front();
        }
        self.offsets.push_back((seq + 1, offset - 1));
    }

    pub fn rewrite(&mut self, now: Instant, packet: Incoming) -> Option<Rewritten> {
        if self.layer != Some(packet.layer) {
            self.start_run(now, &packet);
        }
        let &(_, offset) = self
            .offsets
            .iter()
            .rev()
            .find(|(from, _)| *from <= packet.seq)?;
        self.newest_in = self.newest_in.max(packet.seq);
        let seq = u64::try_from(packet.seq as i64 + offset).ok()?;
        let out = Rewritten {
            seq,
            timestamp: packet.timestamp.wrapping_add(self.ts_offset),
            picture_id: packet
                .picture_id
                .map(|p| p.wrapping_add(self.picture_offset) % PICTURE_ID_MODULUS),
            tl0_pic_idx: packet.tl0_pic_idx.map(|t| t.wrapping_add(self.tl0_offset)),
        };
        let newest = self.last.is_none_or(|last| out.seq > last.seq);
        if newest {
            self.last = Some(Last {
                seq: out.seq,
                timestamp: out.timestamp,
                picture_id: out.picture_id.or(self.last.and_then(|l| l.picture_id)),
                tl0_pic_idx: out.tl0_pic_idx.or(self.last.and_then(|l| l.tl0_pic_idx)),
                at: now,
            });
        }
        Some(out)
    }

    /// Chooses offsets so that the new run continues right after what was last sent.
    fn start_run(&mut self, now: Instant, packet: &Incoming) {
        self.layer = Some(packet.layer);
        self.newest_in = packet.seq;
        self.offsets.clear();
        let Some(last) = self.last else {
            // A fresh outgoing stream starts below 2^15 so that the receiver's rollover
            // counter starts at zero whatever the sender's extended sequence number is.
            let offset = (packet.seq & 0x7fff) as i64 - packet.seq as i64;
            self.offsets.push_back((packet.seq, offset));
            return;
        };
        self.offsets
            .push_back((packet.seq, (last.seq + 1) as i64 - packet.seq as i64));
        let elapsed_ticks = now.saturating_duration_since(last.at).as_micros() as u64
            * u64::from(self.clock_rate)
            / 1_000_000;
        let next_ts = last.timestamp.wrapping_add(elapsed_ticks.max(1) as u32);
        self.ts_offset = next_ts.wrapping_sub(packet.timestamp);
        if let (Some(out), Some(incoming)) = (last.picture_id, packet.picture_id) {
            let next = (out + 1) % PICTURE_ID_MODULUS;
            self.picture_offset = next.wrapping_sub(incoming) % PICTURE_ID_MODULUS;
        }
        if let (Some(out), Some(incoming)) = (last.tl0_pic_idx, packet.tl0_pic_idx) {
            self.tl0_offset = out.wrapping_add(1).wrapping_sub(incoming);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::codec::vp9::Vp9Descriptor;
    use crate::codec::vp9::tests::{narrow, vp9_packet, wide};

    fn packet(layer: usize, seq: u64, timestamp: u32, picture_id: u16, tl0: u8) -> Incoming {
        Incoming {
            layer,
            seq,
            timestamp,
            picture_id: Some(picture_id),
            tl0_pic_idx: Some(tl0),
        }
    }

    #[test]
    fn continuity_across_a_layer_switch() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000);
        let a = r.rewrite(t0, packet(0, 70_000, 1000, 500, 10)).unwrap();
        assert!(a.seq < 0x8000, "fresh stream starts below 2^15");
        let b = r.rewrite(t0, packet(0, 70_001, 1000, 500, 10)).unwrap();
        assert_eq!(b.seq, a.seq + 1);
        let t1 = t0 + Duration::from_millis(33);
        let c = r
            .rewrite(t1, packet(0, 70_002, 1000 + 2970, 501, 11))
            .unwrap();
        assert_eq!(c.picture_id, Some(501 % PICTURE_ID_MODULUS));

        // Switch to layer 2, whose numbering is unrelated, 33 ms later.
        let t2 = t1 + Duration::from_millis(33);
        let d = r
            .rewrite(t2, packet(2, 9, 4_000_000_000, 32_767, 200))
            .unwrap();
        assert_eq!(d.seq, c.seq + 1);
        assert_eq!(d.timestamp, c.timestamp.wrapping_add(2970));
        assert_eq!(d.picture_id, Some(c.picture_id.unwrap() + 1));
        assert_eq!(d.tl0_pic_idx, Some(c.tl0_pic_idx.unwrap() + 1));
        // Later packets of the new layer keep their spacing, picture id wraps at 2^15.
        let e = r.rewrite(t2, packet(2, 10, 4_000_000_000, 0, 201)).unwrap();
        assert_eq!(e.seq, d.seq + 1);
        assert_eq!(e.timestamp, d.timestamp);
        assert_eq!(
            e.picture_id,
            Some((d.picture_id.unwrap() + 1) % PICTURE_ID_MODULUS)
        );
        assert_eq!(e.tl0_pic_idx, Some(d.tl0_pic_idx.unwrap() + 1));
    }

    /// Forwards one VP9 payload the way the engine does: rewrite, then patch the descriptor.
    fn forward_vp9(
        r: &mut Rewriter,
        now: Instant,
        layer: usize,
        seq: u64,
        payload: Vec<u8>,
    ) -> Vp9Descriptor {
        let d = Vp9Descriptor::parse(&payload).unwrap();
        let incoming = Incoming {
            layer,
            seq,
            timestamp: 0,
            picture_id: d.picture_id(),
            tl0_pic_idx: d.tl0_pic_idx(),
        };
        let out = r.rewrite(now, incoming).unwrap();
        let patched = d.patched(&payload.into(), out.picture_id, out.tl0_pic_idx);
        Vp9Descriptor::parse(&patched).unwrap()
    }

    #[test]
    fn vp9_switch_on_a_keyframe_continues_picture_id_and_tl0() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000);
        let a = forward_vp9(
            &mut r,
            t0,
            0,
            10,
            vp9_packet(true, wide(700), Some((0, Some(20)))),
        );
        let b = forward_vp9(
            &mut r,
            t0,
            0,
            11,
            vp9_packet(false, wide(701), Some((0, Some(21)))),
        );
        assert_eq!((a.picture_id(), a.tl0_pic_idx()), (Some(700), Some(20)));
        assert_eq!((b.picture_id(), b.tl0_pic_idx()), (Some(701), Some(21)));

        // Layer 1's keyframe, numbered near the 15-bit wrap and its TL0PICIDX near 255.
        let c = forward_vp9(
            &mut r,
            t0,
            1,
            500,
            vp9_packet(true, wide(0x7fff), Some((0, Some(255)))),
        );
        let d = forward_vp9(
            &mut r,
            t0,
            1,
            501,
            vp9_packet(false, wide(0), Some((0, Some(0)))),
        );
        assert_eq!(c.picture_id, wide(702));
        assert_eq!(c.tl0_pic_idx(), Some(22));
        assert_eq!((d.picture_id(), d.tl0_pic_idx()), (Some(703), Some(23)));
    }

    #[test]
    fn vp9_switch_with_7_bit_picture_ids_continues_in_the_low_bits() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000);
        let a = forward_vp9(&mut r, t0, 2, 1, vp9_packet(true, narrow(126), None));
        let b = forward_vp9(&mut r, t0, 2, 2, vp9_packet(false, narrow(127), None));
        assert_eq!((a.picture_id, b.picture_id), (narrow(126), narrow(127)));
        // Flexible mode on the new layer: no TL0PICIDX, picture id wraps to 0.
        let c = forward_vp9(
            &mut r,
            t0,
            0,
            900,
            vp9_packet(true, narrow(40), Some((0, None))),
        );
        let d = forward_vp9(
            &mut r,
            t0,
            0,
            901,
            vp9_packet(false, narrow(41), Some((0, None))),
        );
        assert_eq!((c.picture_id, d.picture_id), (narrow(0), narrow(1)));
        assert_eq!(c.tl0_pic_idx, None);
    }

    #[test]
    fn skipped_packets_leave_no_gap_and_late_packets_keep_their_numbers() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000);
        let a = r.rewrite(t0, packet(0, 10, 0, 1, 1)).unwrap();
        // 11 arrives late; 12 and 13 are dropped (a frame the receiver does not get).
        r.skip(12);
        r.skip(13);
        let b = r.rewrite(t0, packet(0, 14, 0, 1, 1)).unwrap();
        let late = r.rewrite(t0, packet(0, 11, 0, 1, 1)).unwrap();
        assert_eq!((late.seq - a.seq, b.seq - a.seq), (1, 2));
        // A skip older than what was already seen changes nothing.
        r.skip(12);
        assert_eq!(
            r.rewrite(t0, packet(0, 15, 0, 1, 1)).unwrap().seq,
            b.seq + 1
        );
        // Many separate skips: numbering stays gap-free; too old packets are refused.
        let mut last = b.seq + 1;
        for seq in (16..400).step_by(2) {
            r.skip(seq);
            let out = r.rewrite(t0, packet(0, seq + 1, 0, 1, 1)).unwrap();
            assert_eq!(out.seq, last + 1);
            last = out.seq;
        }
        assert_eq!(r.rewrite(t0, packet(0, 14, 0, 1, 1)), None);
        // Skips while paused do nothing; the next run continues after the last sent.
        r.pause();
        r.skip(1000);
        assert_eq!(r.rewrite(t0, packet(1, 5, 0, 1, 1)).unwrap().seq, last + 1);
    }

    #[test]
    fn stragglers_of_a_run_are_dropped_and_reordering_is_kept() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000);
        let first = r.rewrite(t0, packet(1, 100, 0, 1, 1)).unwrap();
        assert_eq!(r.rewrite(t0, packet(1, 99, 0, 1, 1)), None);
        let late = r.rewrite(t0, packet(1, 103, 0, 1, 1)).unwrap();
        let early = r.rewrite(t0, packet(1, 102, 0, 1, 1)).unwrap();
        assert_eq!((late.seq - first.seq, early.seq - first.seq), (3, 2));
        // After a pause the next run continues the numbering.
        r.pause();
        let resumed = r.rewrite(t0, packet(1, 500, 0, 9, 9)).unwrap();
        assert_eq!(resumed.seq, late.seq + 1);
    }
}
