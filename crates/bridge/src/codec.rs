//! The little codec knowledge a forwarder needs: where keyframes start (layer switches
//! may only happen there) and, for VP8, the frame size a keyframe announces.
//!
//! Hand-written because str0m only exposes VP8 descriptor parsing; each function reads a
//! few header bits and never trusts a length it has not checked.

use str0m::rtp::Vp8Descriptor;

use crate::media::CodecKind;

/// Whether `payload` is the first packet of a keyframe (audio: always true).
pub fn starts_keyframe(codec: CodecKind, payload: &[u8]) -> bool {
    match codec {
        CodecKind::Opus => true,
        CodecKind::Vp8 => Vp8Descriptor::parse(payload).is_ok_and(|d| d.starts_keyframe(payload)),
        CodecKind::Vp9 => vp9_starts_keyframe(payload),
        CodecKind::H264 => h264_has_keyframe(payload),
        CodecKind::Av1 => payload.first().is_some_and(|b| b & 0x08 != 0),
    }
}

/// RFC 9628 descriptor: I|P|L|F|B|E|V|Z; a keyframe start is B=1 with P=0 and, when layer
/// indices are present, spatial layer 0.
fn vp9_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let (picture_id, inter_predicted, layers, begin) = (
        first & 0x80 != 0,
        first & 0x40 != 0,
        first & 0x20 != 0,
        first & 0x08 != 0,
    );
    if inter_predicted || !begin {
        return false;
    }
    if !layers {
        return true;
    }
    let layer_byte = match (picture_id, payload.get(1)) {
        (false, _) => 1,
        (true, Some(b)) if b & 0x80 != 0 => 3,
        (true, Some(_)) => 2,
        (true, None) => return false,
    };
    payload
        .get(layer_byte)
        .is_some_and(|b| (b >> 1) & 0x07 == 0)
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

/// Width and height from the first packet of a VP8 keyframe (RFC 6386 §9.1).
pub fn vp8_keyframe_size(payload: &[u8]) -> Option<(u16, u16)> {
    let start = vp8_descriptor_len(payload)?;
    let frame = payload.get(start..start + 10)?;
    let is_key = frame[0] & 0x01 == 0;
    if !is_key || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((width, height))
}

/// Length of the RFC 7741 payload descriptor.
fn vp8_descriptor_len(payload: &[u8]) -> Option<usize> {
    let first = *payload.first()?;
    if first & 0x80 == 0 {
        return Some(1);
    }
    let ext = *payload.get(1)?;
    let mut len = 2;
    if ext & 0x80 != 0 {
        len += if payload.get(len)? & 0x80 != 0 { 2 } else { 1 };
    }
    if ext & 0x40 != 0 {
        len += 1;
    }
    if ext & 0x30 != 0 {
        len += 1;
    }
    Some(len)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A VP8 packet: descriptor with 15-bit picture id and TL0PICIDX, then a frame header.
    pub fn vp8_packet(keyframe: bool, picture_id: u16, tl0: u8, size: (u16, u16)) -> Vec<u8> {
        let mut p = vec![
            0x90,
            0xe0,
            0x80 | (picture_id >> 8) as u8,
            picture_id as u8,
            tl0,
            0x00,
        ];
        if keyframe {
            p.extend_from_slice(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
            p.extend_from_slice(&size.0.to_le_bytes());
            p.extend_from_slice(&size.1.to_le_bytes());
        } else {
            p.extend_from_slice(&[0x01, 0x00, 0x00]);
        }
        p.extend_from_slice(&[0u8; 20]);
        p
    }

    #[test]
    fn vp8_keyframe_and_size() {
        let key = vp8_packet(true, 300, 7, (640, 360));
        assert!(starts_keyframe(CodecKind::Vp8, &key));
        assert_eq!(vp8_keyframe_size(&key), Some((640, 360)));
        let delta = vp8_packet(false, 301, 7, (0, 0));
        assert!(!starts_keyframe(CodecKind::Vp8, &delta));
        assert_eq!(vp8_keyframe_size(&delta), None);
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
        assert_eq!(vp8_keyframe_size(&[0x90, 0xe0]), None);
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
    }
}
