//! VP9 (RFC 9628): keyframe starts, the payload descriptor's picture id and TL0PICIDX,
//! which a layer switch rewrites, and its SVC fields (layer indices, flexible-mode
//! references, scalability structure), which layer selection reads. Hand-written: str0m has a VP8 descriptor
//! patch (`Vp8Patch`) but nothing for VP9.

use std::sync::Arc;

/// RFC 9628: a keyframe start is B=1 with P=0 and, when layer indices are present,
/// spatial layer 0.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    Vp9Descriptor::parse(payload).is_some_and(|d| d.starts_keyframe())
}

/// A VP9 picture id as the sender wrote it: 7-bit (M=0) or 15-bit (M=1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp9PictureId {
    pub value: u16,
    pub wide: bool,
}

/// The most spatial layers a scalability structure may describe (N_S has 3 bits).
pub const MAX_SPATIAL_LAYERS: usize = 8;
/// Flexible mode lists at most three reference pictures (P_DIFF) per frame.
const MAX_P_DIFFS: usize = 3;

/// The layer indices of an SVC frame (L=1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp9Layers {
    pub spatial: u8,
    pub temporal: u8,
    /// U: a switching-up point (later frames of this temporal layer reference only frames
    /// of lower layers from here on).
    pub switching_up: bool,
    /// D: the frame depends on the spatial layer below in the same picture.
    pub inter_layer: bool,
}

/// The scalability structure (V=1): the spatial layer count and, when given (Y=1), their
/// resolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp9Ss {
    pub spatial_layers: u8,
    resolutions: [(u16, u16); MAX_SPATIAL_LAYERS],
    has_resolutions: bool,
}

impl Vp9Ss {
    pub fn resolution(&self, spatial: u8) -> Option<(u16, u16)> {
        (self.has_resolutions && spatial < self.spatial_layers)
            .then(|| self.resolutions[usize::from(spatial)])
    }
}

/// An RFC 9628 payload descriptor: the fields an SFU rewrites (picture id, TL0PICIDX)
/// and those it selects SVC layers by (layer indices, frame boundaries, flexible-mode
/// references, the scalability structure). Hand-written: str0m has a VP8 descriptor
/// patch (`Vp8Patch`) but nothing for VP9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp9Descriptor {
    /// Present when I=1; it always starts at byte [`Vp9Descriptor::PICTURE_ID_AT`].
    pub picture_id: Option<Vp9PictureId>,
    /// TL0PICIDX and its byte offset: only with layer indices in non-flexible mode.
    pub tl0_pic_idx: Option<(u8, usize)>,
    pub layers: Option<Vp9Layers>,
    /// Flexible mode's reference picture id diffs (P_DIFF), at most three.
    p_diffs: [u8; MAX_P_DIFFS],
    p_diff_count: u8,
    pub ss: Option<Vp9Ss>,
    pub inter_predicted: bool,
    pub begins_frame: bool,
    pub ends_frame: bool,
}

impl Vp9Descriptor {
    pub const PICTURE_ID_AT: usize = 1;

    /// Reads the descriptor; `None` when the payload ends before a field its flags
    /// announce, or lists more references than RFC 9628 allows.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let first = *payload.first()?;
        let (has_picture_id, inter_predicted, has_layers, flexible) = (
            first & 0x80 != 0,
            first & 0x40 != 0,
            first & 0x20 != 0,
            first & 0x10 != 0,
        );
        let mut at = Self::PICTURE_ID_AT;
        let picture_id = if has_picture_id {
            let high = *payload.get(at)?;
            let id = if high & 0x80 != 0 {
                let low = *payload.get(at + 1)?;
                at += 2;
                Vp9PictureId {
                    value: u16::from_be_bytes([high & 0x7f, low]),
                    wide: true,
                }
            } else {
                at += 1;
                Vp9PictureId {
                    value: u16::from(high),
                    wide: false,
                }
            };
            Some(id)
        } else {
            None
        };
        let mut layers = None;
        let mut tl0_pic_idx = None;
        if has_layers {
            let byte = *payload.get(at)?;
            at += 1;
            layers = Some(Vp9Layers {
                temporal: byte >> 5,
                switching_up: byte & 0x10 != 0,
                spatial: (byte >> 1) & 0x07,
                inter_layer: byte & 0x01 != 0,
            });
            if !flexible {
                tl0_pic_idx = Some((*payload.get(at)?, at));
                at += 1;
            }
        }
        let (mut p_diffs, mut p_diff_count) = ([0u8; MAX_P_DIFFS], 0u8);
        if flexible && inter_predicted {
            loop {
                let byte = *payload.get(at)?;
                at += 1;
                *p_diffs.get_mut(usize::from(p_diff_count))? = byte >> 1;
                p_diff_count += 1;
                if byte & 0x01 == 0 {
                    break;
                }
            }
        }
        let ss = if first & 0x02 != 0 {
            Some(read_ss(payload, at)?)
        } else {
            None
        };
        Some(Self {
            picture_id,
            tl0_pic_idx,
            layers,
            p_diffs,
            p_diff_count,
            ss,
            inter_predicted,
            begins_frame: first & 0x08 != 0,
            ends_frame: first & 0x04 != 0,
        })
    }

    /// Flexible mode: how many pictures back each reference is.
    pub fn p_diffs(&self) -> &[u8] {
        &self.p_diffs[..usize::from(self.p_diff_count)]
    }

    /// RFC 9628: B=1 with P=0 and, when layer indices are present, spatial layer 0.
    pub fn starts_keyframe(&self) -> bool {
        self.begins_frame && !self.inter_predicted && self.layers.is_none_or(|l| l.spatial == 0)
    }

    pub fn picture_id(&self) -> Option<u16> {
        self.picture_id.map(|p| p.value)
    }

    pub fn tl0_pic_idx(&self) -> Option<u8> {
        self.tl0_pic_idx.map(|(t, _)| t)
    }

    /// Writes the given values over the fields this descriptor has, keeping the picture
    /// id's width (a 7-bit id takes the low 7 bits). Returns false, leaving `payload`
    /// untouched, when it is too short for this descriptor.
    pub fn patch(
        &self,
        payload: &mut [u8],
        picture_id: Option<u16>,
        tl0_pic_idx: Option<u8>,
    ) -> bool {
        let at = Self::PICTURE_ID_AT;
        let picture_end = self
            .picture_id
            .map_or(0, |p| at + if p.wide { 2 } else { 1 });
        let tl0_end = self.tl0_pic_idx.map_or(0, |(_, t)| t + 1);
        if payload.len() < picture_end.max(tl0_end) {
            return false;
        }
        if let (Some(id), Some(value)) = (self.picture_id, picture_id) {
            if id.wide {
                let [high, low] = (value & 0x7fff).to_be_bytes();
                payload[at] = 0x80 | high;
                payload[at + 1] = low;
            } else {
                payload[at] = (value & 0x7f) as u8;
            }
        }
        if let (Some((_, t)), Some(value)) = (self.tl0_pic_idx, tl0_pic_idx) {
            payload[t] = value;
        }
        true
    }

    /// `payload` with the given values: the shared buffer itself when they are already
    /// there (a receiver that never switched layers), else a patched copy.
    pub fn patched(
        &self,
        payload: &Arc<[u8]>,
        picture_id: Option<u16>,
        tl0_pic_idx: Option<u8>,
    ) -> Arc<[u8]> {
        let width_mask = |id: Vp9PictureId| if id.wide { 0x7fff } else { 0x7f };
        let same_picture_id = match (self.picture_id, picture_id) {
            (Some(id), Some(value)) => value & width_mask(id) == id.value,
            _ => true,
        };
        let same_tl0 = match (self.tl0_pic_idx(), tl0_pic_idx) {
            (Some(old), Some(new)) => old == new,
            _ => true,
        };
        if same_picture_id && same_tl0 {
            return payload.clone();
        }
        let mut copy = payload.to_vec();
        if self.patch(&mut copy, picture_id, tl0_pic_idx) {
            copy.into()
        } else {
            payload.clone()
        }
    }
}

/// The scalability structure at `at` (RFC 9628 §4.3.1): N_S, resolutions (Y), and the
/// picture group (G), which is only checked for length: selection needs the layer count
/// and sizes.
fn read_ss(payload: &[u8], mut at: usize) -> Option<Vp9Ss> {
    let head = *payload.get(at)?;
    at += 1;
    let spatial_layers = (head >> 5) + 1;
    let mut ss = Vp9Ss {
        spatial_layers,
        resolutions: [(0, 0); MAX_SPATIAL_LAYERS],
        has_resolutions: head & 0x10 != 0,
    };
    if ss.has_resolutions {
        for r in ss.resolutions.iter_mut().take(usize::from(spatial_layers)) {
            let b = payload.get(at..at + 4)?;
            *r = (
                u16::from_be_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]]),
            );
            at += 4;
        }
    }
    if head & 0x08 != 0 {
        let pictures = *payload.get(at)?;
        at += 1;
        for _ in 0..pictures {
            let refs = (*payload.get(at)? >> 2) & 0x03;
            at += 1 + usize::from(refs);
        }
        payload.get(..at)?;
    }
    Some(ss)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A VP9 packet that begins a frame: descriptor with an optional picture id and
    /// optional layer indices `(spatial layer, TL0PICIDX)` (flexible mode when TL0PICIDX is
    /// `None`), then frame bytes.
    pub fn vp9_packet(
        keyframe: bool,
        picture_id: Option<Vp9PictureId>,
        layers: Option<(u8, Option<u8>)>,
    ) -> Vec<u8> {
        let mut first = 0x08;
        if !keyframe {
            first |= 0x40;
        }
        let mut p = vec![0];
        if let Some(id) = picture_id {
            first |= 0x80;
            if id.wide {
                p.extend_from_slice(&(0x8000 | id.value).to_be_bytes());
            } else {
                p.push(id.value as u8 & 0x7f);
            }
        }
        if let Some((spatial, tl0)) = layers {
            first |= 0x20;
            p.push(spatial << 1);
            match tl0 {
                Some(t) => p.push(t),
                None => {
                    first |= 0x10;
                    if !keyframe {
                        p.push(1 << 1); // P_DIFF = 1, N = 0
                    }
                }
            }
        }
        p[0] = first;
        p.extend_from_slice(&[0x82, 0x49, 0x83, 0x42, 0x00]);
        p
    }

    pub fn wide(value: u16) -> Option<Vp9PictureId> {
        Some(Vp9PictureId { value, wide: true })
    }

    pub fn narrow(value: u16) -> Option<Vp9PictureId> {
        Some(Vp9PictureId { value, wide: false })
    }

    #[test]
    fn vp9_descriptor_fields_and_offsets() {
        let d = Vp9Descriptor::parse(&vp9_packet(true, wide(0x1234), Some((0, Some(9))))).unwrap();
        assert_eq!(d.picture_id, wide(0x1234));
        assert_eq!(d.tl0_pic_idx, Some((9, 4)));

        let d = Vp9Descriptor::parse(&vp9_packet(true, narrow(100), Some((0, Some(7))))).unwrap();
        assert_eq!((d.picture_id(), d.tl0_pic_idx), (Some(100), Some((7, 3))));
        assert!(!d.picture_id.unwrap().wide);

        let d = Vp9Descriptor::parse(&vp9_packet(false, wide(5), None)).unwrap();
        assert_eq!((d.picture_id(), d.tl0_pic_idx()), (Some(5), None));

        // Flexible mode: layer indices but no TL0PICIDX.
        let d = Vp9Descriptor::parse(&vp9_packet(false, narrow(5), Some((1, None)))).unwrap();
        assert_eq!((d.picture_id(), d.tl0_pic_idx()), (Some(5), None));

        let d = Vp9Descriptor::parse(&vp9_packet(true, None, Some((0, Some(3))))).unwrap();
        assert_eq!((d.picture_id, d.tl0_pic_idx), (None, Some((3, 2))));
    }

    #[test]
    fn vp9_truncated_descriptors_are_rejected() {
        // I=1 M=1 L=1 F=0: picture id (2 bytes), layer indices, TL0PICIDX.
        let full = vp9_packet(true, wide(300), Some((0, Some(1))));
        for len in 0..5 {
            assert_eq!(Vp9Descriptor::parse(&full[..len]), None, "{len} bytes");
            assert!(!starts_keyframe(&full[..len]));
        }
        assert!(Vp9Descriptor::parse(&full[..5]).is_some());
        // Whatever the bytes, parsing and patching never panic.
        for first in 0..=u8::MAX {
            for tail in [&[][..], &[0xff], &[0xff, 0xff], &[0x00, 0x00, 0x00]] {
                let mut payload = [&[first][..], tail].concat();
                if let Some(d) = Vp9Descriptor::parse(&payload) {
                    assert!(d.patch(&mut payload, Some(0x7fff), Some(0xff)));
                }
            }
        }
    }

    #[test]
    fn vp9_patch_round_trip_keeps_width_and_other_bytes() {
        let original = vp9_packet(false, wide(0x0123), Some((2, Some(40))));
        let d = Vp9Descriptor::parse(&original).unwrap();
        let mut patched = original.clone();
        assert!(d.patch(&mut patched, Some(0x7ffe), Some(41)));
        let p = Vp9Descriptor::parse(&patched).unwrap();
        assert_eq!((p.picture_id, p.tl0_pic_idx()), (wide(0x7ffe), Some(41)));
        assert_eq!(patched[0], original[0]);
        assert_eq!(patched[5..], original[5..]);
        assert_eq!(p.layers.map(|l| l.spatial), Some(2));

        // A 7-bit id takes the low 7 bits; M stays 0.
        let original = vp9_packet(true, narrow(3), None);
        let d = Vp9Descriptor::parse(&original).unwrap();
        let mut patched = original.clone();
        assert!(d.patch(&mut patched, Some(0x0185), None));
        let p = Vp9Descriptor::parse(&patched).unwrap();
        assert_eq!(p.picture_id, narrow(0x05));
        assert_eq!(patched[2..], original[2..]);

        // Too short for the parsed descriptor: untouched.
        let mut short = original[..1].to_vec();
        assert!(!d.patch(&mut short, Some(9), None));
        assert_eq!(short, original[..1]);
    }

    #[test]
    fn vp9_patched_shares_the_payload_when_nothing_changes() {
        let payload: Arc<[u8]> = vp9_packet(true, narrow(0x7f), Some((0, Some(8)))).into();
        let d = Vp9Descriptor::parse(&payload).unwrap();
        // 0x00ff has the same low 7 bits as the 7-bit id 0x7f.
        assert!(Arc::ptr_eq(
            &d.patched(&payload, Some(0x00ff), Some(8)),
            &payload
        ));
        let changed = d.patched(&payload, Some(0x00ff), Some(9));
        assert!(!Arc::ptr_eq(&changed, &payload));
        assert_eq!(
            Vp9Descriptor::parse(&changed).unwrap().tl0_pic_idx(),
            Some(9)
        );
    }
}
