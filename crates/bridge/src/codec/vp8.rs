//! VP8 (RFC 7741, RFC 6386): the payload descriptor (parsed and patched by str0m's
//! `Vp8Descriptor`) and the frame size a keyframe announces.

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

/// str0m's patch writing `picture_id` and `tl0_pic_idx` over the descriptor's fields at
/// serialization; a 7-bit picture id takes the low bits.
pub fn patch(
    d: &Vp8Descriptor,
    picture_id: Option<u16>,
    tl0_pic_idx: Option<u8>,
) -> Option<Vp8Patch> {
    let build = |picture_id: Option<u16>| {
        let mut b = d.patch();
        if let Some(p) = picture_id {
            b = b.picture_id(p);
        }
        if let Some(t) = tl0_pic_idx {
            b = b.tl0_pic_idx(t);
        }
        b.build()
    };
    build(picture_id)
        .or_else(|_| build(picture_id.map(|p| p & 0x7f)))
        .ok()
}

/// Width and height from the first packet of a VP8 keyframe (RFC 6386 §9.1).
pub fn keyframe_size(payload: &[u8]) -> Option<(u16, u16)> {
    let start = descriptor_len(payload)?;
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
fn descriptor_len(payload: &[u8]) -> Option<usize> {
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
        assert!(Vp8Descriptor::parse(&key).unwrap().starts_keyframe(&key));
        assert_eq!(keyframe_size(&key), Some((640, 360)));
        let delta = vp8_packet(false, 301, 7, (0, 0));
        assert!(
            !Vp8Descriptor::parse(&delta)
                .unwrap()
                .starts_keyframe(&delta)
        );
        assert_eq!(keyframe_size(&delta), None);
    }
}
