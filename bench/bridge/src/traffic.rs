//! The media each simulated sender produces: three VP8 simulcast layers in 30 fps frame
//! bursts, or AV1 `L2T3_KEY` SVC on one SSRC (two spatial × three temporal layers, with
//! dependency descriptors), plus 50 packets/s of Opus, with the send time in a trailer so
//! that receivers can measure one-way latency through the server.
//!
//! The bridge and the bare relay carry exactly these payloads; only the transport differs.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const FRAMES_PER_SECOND: u32 = 30;
pub const AUDIO_PACKETS_PER_SECOND: u32 = 50;
pub const AUDIO_KBPS: u32 = 40;
/// Senders split frames into packets of at most this many payload bytes, like browsers do.
const MAX_PAYLOAD: usize = 1200;

/// What a sender's camera sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// Three VP8 simulcast SSRCs ([`LAYERS`]).
    Vp8Simulcast,
    /// AV1 `L2T3_KEY` on one SSRC: 360p and 720p spatial layers at the rates of
    /// [`LAYERS`]' two upper layers, temporal layers 0-2-1-2 (7.5, 15, 30 fps).
    Av1Svc,
}

/// The [`LAYERS`] entry whose size and rate each AV1 spatial layer has; the trailer tags
/// its packets with that index, so that the top spatial layer counts as the top layer.
pub const SVC_SPATIAL_LAYERS: [usize; 2] = [1, 2];

/// One simulcast layer: resolution and bitrate as a browser sends them for 720p camera video.
#[derive(Debug, Clone, Copy)]
pub struct Layer {
    pub width: u16,
    pub height: u16,
    pub kbps: u32,
}

pub const LAYERS: [Layer; 3] = [
    Layer {
        width: 320,
        height: 180,
        kbps: 150,
    },
    Layer {
        width: 640,
        height: 360,
        kbps: 500,
    },
    Layer {
        width: 1280,
        height: 720,
        kbps: 1850,
    },
];

/// The index the highest layer has in [`LAYERS`]; unconstrained receivers should get it.
pub const TOP_LAYER: usize = LAYERS.len() - 1;

/// Trailer tag marking audio packets (video packets carry their layer index instead).
pub const AUDIO_TAG: u8 = 0xff;
/// `[layer or AUDIO_TAG][send time: u64 ns since CLOCK_BASE, big endian]`.
const TRAILER_LEN: usize = 9;

impl Layer {
    /// Payload sizes of the packets of one frame of this layer.
    pub fn frame_packet_sizes(&self) -> Vec<usize> {
        let frame_bytes = (self.kbps as usize * 1000 / 8) / FRAMES_PER_SECOND as usize;
        let packets = frame_bytes.div_ceil(MAX_PAYLOAD);
        let base = frame_bytes / packets;
        let mut sizes = vec![base; packets];
        sizes[packets - 1] += frame_bytes - base * packets;
        sizes
    }
}

pub fn audio_payload_len() -> usize {
    (AUDIO_KBPS as usize * 1000 / 8) / AUDIO_PACKETS_PER_SECOND as usize
}

/// Video packets per second of one layer.
pub fn layer_packets_per_second(layer: usize) -> u32 {
    LAYERS[layer].frame_packet_sizes().len() as u32 * FRAMES_PER_SECOND
}

/// Every process-local latency measurement counts from this instant.
fn clock_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

pub fn nanos_since_base(at: Instant) -> u64 {
    at.saturating_duration_since(clock_base()).as_nanos() as u64
}

fn write_trailer(payload: &mut [u8], tag: u8, sent_at: Instant) {
    let start = payload.len() - TRAILER_LEN;
    payload[start] = tag;
    payload[start + 1..].copy_from_slice(&nanos_since_base(sent_at).to_be_bytes());
}

/// What a receiver reads back from a payload: the layer (or [`AUDIO_TAG`]) and the latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub tag: u8,
    pub latency: Duration,
}

pub fn read_trailer(payload: &[u8], received_at: Instant) -> Option<Trailer> {
    let start = payload.len().checked_sub(TRAILER_LEN)?;
    let sent = u64::from_be_bytes(payload[start + 1..].try_into().ok()?);
    let received = nanos_since_base(received_at);
    Some(Trailer {
        tag: payload[start],
        latency: Duration::from_nanos(received.saturating_sub(sent)),
    })
}

/// One frame's position in a VP8 stream, for the payload descriptor (RFC 7741).
#[derive(Debug, Clone, Copy)]
pub struct Vp8Frame {
    pub picture_id: u16,
    pub tl0_pic_idx: u8,
    pub keyframe: bool,
}

/// Builds the payloads of one VP8 frame of `layer`: a full payload descriptor with a
/// 15-bit picture id and TL0PICIDX on every packet, the VP8 frame header (with the
/// keyframe start code and dimensions on keyframes) on the first, the trailer at the end.
pub fn vp8_frame(layer: usize, frame: Vp8Frame, sent_at: Instant) -> Vec<Vec<u8>> {
    let spec = LAYERS[layer];
    spec.frame_packet_sizes()
        .into_iter()
        .enumerate()
        .map(|(index, size)| {
            let first = index == 0;
            let mut payload = Vec::with_capacity(size);
            // X=1, S=1 on the first packet of the frame, partition index 0.
            payload.push(if first { 0x90 } else { 0x80 });
            // I (picture id), L (TL0PICIDX), T (temporal layer index) present.
            payload.push(0xe0);
            payload.push(0x80 | ((frame.picture_id >> 8) as u8 & 0x7f));
            payload.push(frame.picture_id as u8);
            payload.push(frame.tl0_pic_idx);
            // TID 0, layer sync bit set.
            payload.push(0x20);
            if first {
                // Frame tag (RFC 6386 9.1): show_frame=1, P=0 on keyframes; size fields 0.
                payload.extend_from_slice(&[if frame.keyframe { 0x10 } else { 0x11 }, 0, 0]);
                if frame.keyframe {
                    payload.extend_from_slice(&[0x9d, 0x01, 0x2a]);
                    payload.extend_from_slice(&spec.width.to_le_bytes());
                    payload.extend_from_slice(&spec.height.to_le_bytes());
                }
            }
            payload.resize(size.max(payload.len() + TRAILER_LEN), 0x5a);
            write_trailer(&mut payload, layer as u8, sent_at);
            payload
        })
        .collect()
}

/// Builds the payloads of one AV1 frame of spatial layer `spatial`: the aggregation
/// header (N on a keyframe's first packet) and the trailer, sized as the [`LAYERS`] entry
/// the layer stands for.
pub fn av1_frame(spatial: usize, keyframe: bool, sent_at: Instant) -> Vec<Vec<u8>> {
    let layer = SVC_SPATIAL_LAYERS[spatial];
    LAYERS[layer]
        .frame_packet_sizes()
        .into_iter()
        .enumerate()
        .map(|(index, size)| {
            let mut payload = vec![0x5a; size.max(1 + TRAILER_LEN)];
            payload[0] = if keyframe && spatial == 0 && index == 0 {
                0x18
            } else {
                0x10
            };
            write_trailer(&mut payload, layer as u8, sent_at);
            payload
        })
        .collect()
}

pub fn opus_packet(sent_at: Instant) -> Vec<u8> {
    let mut payload = vec![0x78; audio_payload_len()];
    write_trailer(&mut payload, AUDIO_TAG, sent_at);
    payload
}

/// The SSRCs of simulated endpoint `index`: audio, three video layers, their RTX partners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderSsrcs {
    pub audio: u32,
    pub video: [u32; 3],
    pub rtx: [u32; 3],
}

impl SenderSsrcs {
    pub fn for_endpoint(index: usize) -> Self {
        let base = 0x1000_0000 + index as u32 * 16;
        Self {
            audio: base,
            video: [base + 1, base + 2, base + 3],
            rtx: [base + 4, base + 5, base + 6],
        }
    }
}

/// When a sender's next frame and next audio packet are due.
#[derive(Debug)]
pub struct Schedule {
    start: Instant,
    frames: u64,
    audio_packets: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Frame,
    Audio,
}

impl Schedule {
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            frames: 0,
            audio_packets: 0,
        }
    }

    fn frame_at(&self) -> Instant {
        self.start + Duration::from_secs(1) * self.frames as u32 / FRAMES_PER_SECOND
    }

    fn audio_at(&self) -> Instant {
        self.start + Duration::from_secs(1) * self.audio_packets as u32 / AUDIO_PACKETS_PER_SECOND
    }

    pub fn next_at(&self) -> Instant {
        self.frame_at().min(self.audio_at())
    }

    /// The next due item at `now`, if any, and advances past it.
    pub fn take_due(&mut self, now: Instant) -> Option<Due> {
        if self.frame_at() <= now {
            self.frames += 1;
            Some(Due::Frame)
        } else if self.audio_at() <= now {
            self.audio_packets += 1;
            Some(Due::Audio)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_add_up_to_the_advertised_bitrate() {
        for layer in LAYERS {
            let bytes: usize = layer.frame_packet_sizes().iter().sum();
            let kbps = bytes * 8 * FRAMES_PER_SECOND as usize / 1000;
            assert!(kbps.abs_diff(layer.kbps as usize) <= 1, "{layer:?}: {kbps}");
            assert!(layer.frame_packet_sizes().iter().all(|s| *s <= MAX_PAYLOAD));
        }
        assert_eq!(layer_packets_per_second(TOP_LAYER), 7 * 30);
    }

    #[test]
    fn keyframe_carries_start_code_and_dimensions() {
        let now = Instant::now();
        let frame = Vp8Frame {
            picture_id: 0x1234,
            tl0_pic_idx: 7,
            keyframe: true,
        };
        let packets = vp8_frame(1, frame, now);
        assert_eq!(packets.len(), 2);
        let first = &packets[0];
        assert_eq!(&first[..6], &[0x90, 0xe0, 0x92, 0x34, 7, 0x20]);
        assert_eq!(first[6] & 1, 0, "P bit clear on keyframes");
        assert_eq!(&first[9..16], &[0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
        assert_eq!(packets[1][0], 0x80);
    }

    #[test]
    fn trailer_round_trips_tag_and_latency() {
        let sent = Instant::now();
        let payload = opus_packet(sent);
        assert_eq!(payload.len(), 100);
        let trailer = read_trailer(&payload, sent + Duration::from_millis(3)).unwrap();
        assert_eq!(trailer.tag, AUDIO_TAG);
        assert_eq!(trailer.latency, Duration::from_millis(3));
        assert_eq!(read_trailer(&[1, 2], sent), None);
    }

    #[test]
    fn schedule_interleaves_frames_and_audio() {
        let start = Instant::now();
        let mut schedule = Schedule::new(start);
        let one_second = start + Duration::from_secs(1) - Duration::from_nanos(1);
        let (mut frames, mut audio) = (0, 0);
        while let Some(due) = schedule.take_due(one_second) {
            match due {
                Due::Frame => frames += 1,
                Due::Audio => audio += 1,
            }
        }
        assert_eq!((frames, audio), (30, 50));
        assert!(schedule.next_at() > one_second);
    }
}
