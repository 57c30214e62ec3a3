//! Synthetic single-SSRC SVC senders, for the core's tests and the benchmark: AV1
//! `L2T3_KEY` with dependency descriptors, and VP9 `L3T3_KEY` payload descriptors, as
//! Chrome packetizes them (one frame per spatial layer, temporal pattern 0-2-1-2, spatial
//! layers predicted from the one below only in keyframes, the marker on the picture's
//! last packet).

use std::sync::Arc;

use crate::codec::av1_dd::write;
use crate::codec::av1_dd::{ChainDiffs, Descriptor, Dti, Dtis, Fdiffs, FrameInfo, Structure};

/// Temporal layer of the n-th picture after a keyframe.
const PATTERN: [u8; 4] = [0, 2, 1, 2];

/// Where a sender is in its temporal pattern: pictures since its last keyframe.
#[derive(Debug, Default)]
struct Cadence {
    since_keyframe: usize,
}

impl Cadence {
    /// The next picture's temporal layer, and whether it is a keyframe (asked for, or the
    /// first picture).
    fn next(&mut self, keyframe: bool) -> (u8, bool) {
        if keyframe {
            self.since_keyframe = 0;
        }
        let temporal = PATTERN[self.since_keyframe % PATTERN.len()];
        let key = self.since_keyframe == 0;
        self.since_keyframe += 1;
        (temporal, key)
    }
}

/// One packet of a synthetic SVC stream.
#[derive(Debug, Clone)]
pub struct SvcPacket {
    /// The dependency descriptor's bytes (AV1).
    pub dd: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub marker: bool,
    pub spatial: u8,
    pub temporal: u8,
    /// The picture is a keyframe.
    pub keyframe: bool,
}

/// AV1 `L2T3_KEY`'s template structure: decode target `3 × spatial + temporal`; the
/// structure's templates: keyframe, T0, T1, T2 per spatial layer, 640×360 and 1280×720.
pub fn l2t3_key() -> Structure {
    use Dti::{Discardable as D, NotPresent as N, Required as R, Switch as S};
    let template = |spatial: u8, temporal: u8, dtis: [Dti; 6], fdiff: &[u16], chains: [u16; 2]| {
        let mut d = Dtis::default();
        for (dt, dti) in dtis.into_iter().enumerate() {
            d.set(dt, dti);
        }
        FrameInfo {
            spatial,
            temporal,
            dtis: d,
            fdiffs: Fdiffs::from_slice(fdiff).expect("few fdiffs"),
            chains: ChainDiffs::from_slice(&chains).expect("two chains"),
        }
    };
    let mut protected_by = [0; 32];
    protected_by[3..6].fill(1);
    Structure {
        template_id_offset: 0,
        decode_targets: 6,
        templates: vec![
            template(0, 0, [S, S, S, S, S, S], &[], [0, 0]),
            template(0, 0, [S, S, S, N, N, N], &[8], [8, 1]),
            template(0, 1, [N, S, R, N, N, N], &[4], [4, 5]),
            template(0, 2, [N, N, D, N, N, N], &[2], [2, 3]),
            template(1, 0, [N, N, N, S, S, S], &[1], [1, 1]),
            template(1, 0, [N, N, N, S, S, S], &[8], [1, 8]),
            template(1, 1, [N, N, N, N, S, R], &[4], [5, 4]),
            template(1, 2, [N, N, N, N, N, D], &[2], [3, 2]),
        ],
        chain_count: 2,
        protected_by,
        resolutions: vec![(640, 360), (1280, 720)],
    }
}

/// An AV1 `L2T3_KEY` sender: each picture is an S0 and an S1 frame.
#[derive(Debug)]
pub struct Av1L2T3 {
    structure: Arc<Structure>,
    frame_number: u16,
    cadence: Cadence,
}

impl Default for Av1L2T3 {
    fn default() -> Self {
        Self {
            structure: Arc::new(l2t3_key()),
            frame_number: 1000,
            cadence: Cadence::default(),
        }
    }
}

impl Av1L2T3 {
    /// The next picture's packets: per spatial layer, `per_frame[spatial]` packets of
    /// `size` payload bytes.
    pub fn next_picture(
        &mut self,
        keyframe: bool,
        per_frame: [usize; 2],
        size: usize,
    ) -> Vec<SvcPacket> {
        let (temporal, key) = self.cadence.next(keyframe);
        let mut packets = Vec::new();
        for spatial in 0..2u8 {
            let index = match (key, temporal) {
                (true, _) => 0,
                (false, 0) => 1,
                (false, t) => 1 + usize::from(t),
            } + 4 * usize::from(spatial);
            let frame = self.structure.templates[index];
            let per_frame = per_frame[usize::from(spatial)];
            for i in 0..per_frame {
                let first = i == 0;
                let d = Descriptor {
                    start_of_frame: first,
                    end_of_frame: i + 1 == per_frame,
                    template_id: index as u8,
                    frame_number: self.frame_number,
                    attached: (key && spatial == 0 && first).then(|| self.structure.clone()),
                    active_decode_targets: None,
                    frame,
                    custom: (false, false, false),
                };
                let mut payload = vec![0u8; size.max(2)];
                // AV1 aggregation header: N (new coded video sequence) on a keyframe.
                payload[0] = if key && spatial == 0 && first {
                    0x18
                } else {
                    0x10
                };
                packets.push(SvcPacket {
                    dd: Some(write::descriptor(&d, &self.structure)),
                    payload,
                    marker: spatial == 1 && i + 1 == per_frame,
                    spatial,
                    temporal,
                    keyframe: key,
                });
            }
            self.frame_number = self.frame_number.wrapping_add(1);
        }
        packets
    }
}

/// A VP9 `L3T3_KEY` sender in non-flexible mode: layer indices and TL0PICIDX in every
/// packet, the scalability structure (with resolutions) on keyframes.
#[derive(Debug, Default)]
pub struct Vp9L3T3 {
    picture_id: u16,
    tl0: u8,
    cadence: Cadence,
}

impl Vp9L3T3 {
    /// The next picture's packets: three frames (180p, 360p, 720p), `per_frame[spatial]`
    /// packets of `size` bytes each.
    pub fn next_picture(
        &mut self,
        keyframe: bool,
        per_frame: [usize; 3],
        size: usize,
    ) -> Vec<SvcPacket> {
        let (temporal, key) = self.cadence.next(keyframe);
        if temporal == 0 {
            self.tl0 = self.tl0.wrapping_add(1);
        }
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        let mut packets = Vec::new();
        for spatial in 0..3u8 {
            let per_frame = per_frame[usize::from(spatial)];
            for i in 0..per_frame {
                let (begins, ends) = (i == 0, i + 1 == per_frame);
                let with_ss = key && spatial == 0 && begins;
                let mut first = 0x80 | 0x20; // I, L; non-flexible
                if !key {
                    first |= 0x40; // P
                }
                if begins {
                    first |= 0x08;
                }
                if ends {
                    first |= 0x04;
                }
                if with_ss {
                    first |= 0x02;
                }
                let inter_layer = u8::from(key && spatial > 0);
                let mut p = vec![
                    first,
                    0x80 | (self.picture_id >> 8) as u8,
                    self.picture_id as u8,
                    (temporal << 5) | (spatial << 1) | inter_layer,
                    self.tl0,
                ];
                if with_ss {
                    p.push((2 << 5) | 0x10); // N_S = 2 (three layers), Y
                    for (w, h) in [(320u16, 180u16), (640, 360), (1280, 720)] {
                        p.extend_from_slice(&w.to_be_bytes());
                        p.extend_from_slice(&h.to_be_bytes());
                    }
                }
                p.resize(p.len() + size, 0);
                packets.push(SvcPacket {
                    dd: None,
                    payload: p,
                    marker: spatial == 2 && ends,
                    spatial,
                    temporal,
                    keyframe: key,
                });
            }
        }
        packets
    }
}
