//! Everything that reads media payload bytes or codec header extensions to decide
//! forwarding, in one place: where keyframes start (simulcast switches may only happen
//! there), the frame size a VP8 keyframe announces, the VP8/VP9 picture id and TL0PICIDX
//! that a layer switch rewrites, the VP9 SVC fields and the AV1 dependency descriptor
//! (`av1_dd`) that SVC layer selection (`crate::svc`) reads. Under end-to-end encryption
//! only the descriptors stay readable (VP8/VP9 payload descriptors, the dependency
//! descriptor extension); nothing else in the bridge looks past the RTP header.
//!
//! Each parser reads a few header bits and never trusts a length it has not checked.

pub mod av1_dd;
pub mod vp8;
pub mod vp9;

use std::sync::Arc;

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

use crate::media::CodecKind;
use vp9::Vp9Descriptor;

/// What forwarding needs to know about one packet's payload, read once per packet.
#[derive(Debug, Clone, Copy)]
pub struct PayloadInfo {
    /// The packet is the first of a keyframe (audio: always).
    pub keyframe: bool,
    /// The frame height a VP8 keyframe announces.
    pub keyframe_height: Option<u16>,
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
    descriptor: Descriptor,
}

#[derive(Debug, Clone, Copy)]
enum Descriptor {
    None,
    Vp8(Vp8Descriptor),
    Vp9(Vp9Descriptor),
}

/// Reads what forwarding needs from `payload`.
pub fn inspect(codec: CodecKind, payload: &[u8]) -> PayloadInfo {
    let descriptor = match codec {
        CodecKind::Vp8 => Vp8Descriptor::parse(payload).map_or(Descriptor::None, Descriptor::Vp8),
        CodecKind::Vp9 => Vp9Descriptor::parse(payload).map_or(Descriptor::None, Descriptor::Vp9),
        CodecKind::Opus | CodecKind::H264 | CodecKind::Av1 => Descriptor::None,
    };
    let (keyframe, picture_id, tl0_pic_idx) = match &descriptor {
        Descriptor::Vp8(d) => (d.starts_keyframe(payload), d.picture_id(), d.tl0_pic_idx()),
        Descriptor::Vp9(d) => (d.starts_keyframe(), d.picture_id(), d.tl0_pic_idx()),
        Descriptor::None => (starts_keyframe(codec, payload), None, None),
    };
    let keyframe_height = match descriptor {
        Descriptor::Vp8(_) if keyframe => vp8::keyframe_size(payload).map(|(_, height)| height),
        _ => None,
    };
    PayloadInfo {
        keyframe,
        keyframe_height,
        picture_id,
        tl0_pic_idx,
        descriptor,
    }
}

impl PayloadInfo {
    /// The payload a receiver gets whose picture ids / TL0PICIDX continue as given:
    /// the shared buffer unless VP9 needs a patched copy (str0m patches only VP8, at
    /// serialization: see [`PayloadInfo::vp8_patch`]).
    pub fn payload_for(
        &self,
        payload: &Arc<[u8]>,
        picture_id: Option<u16>,
        tl0_pic_idx: Option<u8>,
    ) -> Arc<[u8]> {
        match &self.descriptor {
            Descriptor::Vp9(d) => d.patched(payload, picture_id, tl0_pic_idx),
            Descriptor::Vp8(_) | Descriptor::None => payload.clone(),
        }
    }

    /// The VP9 payload descriptor, when the packet is VP9 and has one.
    pub fn vp9(&self) -> Option<&Vp9Descriptor> {
        match &self.descriptor {
            Descriptor::Vp9(d) => Some(d),
            Descriptor::Vp8(_) | Descriptor::None => None,
        }
    }

    /// For VP8, str0m's patch that writes the given values when the packet is serialized.
    pub fn vp8_patch(&self, picture_id: Option<u16>, tl0_pic_idx: Option<u8>) -> Option<Vp8Patch> {
        match &self.descriptor {
            Descriptor::Vp8(d) => vp8::patch(d, picture_id, tl0_pic_idx),
            Descriptor::Vp9(_) | Descriptor::None => None,
        }
    }
}

/// Whether `payload` is the first packet of a keyframe (audio: always true).
pub fn starts_keyframe(codec: CodecKind, payload: &[u8]) -> bool {
    match codec {
        CodecKind::Opus => true,
        CodecKind::Vp8 => Vp8Descriptor::parse(payload).is_ok_and(|d| d.starts_keyframe(payload)),
        CodecKind::Vp9 => vp9::starts_keyframe(payload),
        CodecKind::H264 => h264_has_keyframe(payload),
        CodecKind::Av1 => payload.first().is_some_and(|b| b & 0x08 != 0),
    }
}

/// RFC 6184: an IDR slice or an SPS, alone, inside a STAP-A or at the start of an FU-A.
fn h264_has_keyframe(payload: &[u8]) -> bool {
    let is_key = |nal_type: u8| nal_type == 5 || nal_type == 7;
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1f {
        24 => {
            let mut rest = &payload[1..];
            while rest.len() > 2 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let Some(nal) = rest.get(2..2 + size) else {
                    return false;
                };
                if nal.first().is_some_and(|h| is_key(h & 0x1f)) {
                    return true;
                }
                rest = &rest[2 + size..];
            }
            false
        }
        28 => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && is_key(fu & 0x1f)),
        nal_type => is_key(nal_type),
    }
}

#[cfg(test)]
mod tests {
    use super::vp8::tests::vp8_packet;
    use super::vp9::tests::{narrow, vp9_packet, wide};
    use super::*;

    #[test]
    fn inspect_reads_keyframes_sizes_and_numbering_once() {
        let key = inspect(CodecKind::Vp8, &vp8_packet(true, 300, 7, (640, 360)));
        assert!(key.keyframe);
        assert_eq!(
            (key.keyframe_height, key.picture_id, key.tl0_pic_idx),
            (Some(360), Some(300), Some(7))
        );
        assert!(key.vp8_patch(Some(301), Some(8)).is_some());
        let delta = inspect(CodecKind::Vp8, &vp8_packet(false, 301, 7, (0, 0)));
        assert!(!delta.keyframe);
        assert_eq!(delta.keyframe_height, None);

        let payload: Arc<[u8]> = vp9_packet(true, wide(9), Some((0, Some(3)))).into();
        let vp9 = inspect(CodecKind::Vp9, &payload);
        assert!(vp9.keyframe && vp9.vp8_patch(Some(1), None).is_none());
        assert_eq!((vp9.picture_id, vp9.tl0_pic_idx), (Some(9), Some(3)));
        assert!(Arc::ptr_eq(
            &vp9.payload_for(&payload, Some(9), Some(3)),
            &payload
        ));
        let patched = vp9.payload_for(&payload, Some(10), Some(3));
        assert_eq!(inspect(CodecKind::Vp9, &patched).picture_id, Some(10));

        let opus = inspect(CodecKind::Opus, &[1, 2, 3]);
        assert!(opus.keyframe && opus.picture_id.is_none());
    }

    #[test]
    fn truncated_payloads_are_not_keyframes() {
        for codec in [
            CodecKind::Vp8,
            CodecKind::Vp9,
            CodecKind::H264,
            CodecKind::Av1,
        ] {
            assert!(!starts_keyframe(codec, &[]));
        }
        assert!(!starts_keyframe(CodecKind::H264, &[24, 0x00, 0x09, 0x65]));
        assert_eq!(vp8::keyframe_size(&[0x90, 0xe0]), None);
    }

    #[test]
    fn h264_idr_in_stap_a_and_fu_a() {
        assert!(starts_keyframe(
            CodecKind::H264,
            &[24, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68]
        ));
        assert!(starts_keyframe(CodecKind::H264, &[28, 0x85, 0xaa]));
        assert!(!starts_keyframe(CodecKind::H264, &[28, 0x05, 0xaa]));
        assert!(!starts_keyframe(CodecKind::H264, &[0x41, 0x9a]));
    }

    #[test]
    fn vp9_keyframe_needs_begin_and_no_inter_prediction() {
        assert!(starts_keyframe(CodecKind::Vp9, &[0x08]));
        assert!(!starts_keyframe(CodecKind::Vp9, &[0x48]));
        assert!(!starts_keyframe(CodecKind::Vp9, &[0x00]));
        assert!(starts_keyframe(
            CodecKind::Vp9,
            &vp9_packet(true, wide(1), Some((0, Some(0))))
        ));
        assert!(!starts_keyframe(
            CodecKind::Vp9,
            &vp9_packet(true, wide(1), Some((1, Some(0))))
        ));
        assert!(starts_keyframe(
            CodecKind::Vp9,
            &vp9_packet(true, narrow(1), Some((0, None)))
        ));
    }
}
