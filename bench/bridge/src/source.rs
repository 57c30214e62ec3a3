//! A simulated camera and microphone: turns the [`Schedule`]'s ticks into RTP packets
//! (SSRC, sequence number, timestamp, marker, payload, AV1 dependency descriptor) for
//! either transport.

use std::time::{Duration, Instant};

use convene_bridge::testkit::svc::Av1L2T3;

use crate::traffic::{
    Due, FRAMES_PER_SECOND, LAYERS, Media, Schedule, SenderSsrcs, Vp8Frame, av1_frame, opus_packet,
    vp8_frame,
};

const VIDEO_CLOCK: u32 = 90_000;
const AUDIO_SAMPLES_PER_PACKET: u32 = 960;
/// Browsers answer keyframe requests at most this often.
const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(300);

/// One RTP packet to send.
#[derive(Debug, Clone)]
pub struct OutPacket {
    pub ssrc: u32,
    pub seq: u64,
    pub timestamp: u32,
    pub marker: bool,
    pub audio: bool,
    pub payload: Vec<u8>,
    /// The AV1 dependency descriptor (SVC).
    pub dd: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct MediaSource {
    pub ssrcs: SenderSsrcs,
    pub media: Media,
    /// The SVC stream's layer structure and frame numbers.
    svc: Av1L2T3,
    schedule: Schedule,
    audio_seq: u64,
    video_seq: [u64; LAYERS.len()],
    audio_timestamp: u32,
    video_timestamp: u32,
    picture_id: u16,
    tl0_pic_idx: u8,
    keyframe_requested: bool,
    last_keyframe: Option<Instant>,
}

impl MediaSource {
    pub fn new(ssrcs: SenderSsrcs, media: Media, start: Instant) -> Self {
        // Arbitrary, distinct starting points, as real senders pick random ones; sequence
        // numbers stay below 2^16 so that receivers need no out-of-band rollover counter.
        let seed = ssrcs.audio;
        Self {
            ssrcs,
            media,
            svc: Av1L2T3::default(),
            schedule: Schedule::new(start),
            audio_seq: u64::from(seed % 20_000),
            video_seq: [1, 2, 3].map(|l| u64::from((seed / l) % 20_000)),
            audio_timestamp: seed.wrapping_mul(7),
            video_timestamp: seed.wrapping_mul(13),
            picture_id: (seed % 0x8000) as u16,
            tl0_pic_idx: seed as u8,
            keyframe_requested: true,
            last_keyframe: None,
        }
    }

    pub fn next_at(&self) -> Instant {
        self.schedule.next_at()
    }

    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// Every packet due at `now`, frame bursts for all three layers first.
    pub fn due_packets(&mut self, now: Instant) -> Vec<OutPacket> {
        let mut packets = Vec::new();
        while let Some(due) = self.schedule.take_due(now) {
            match due {
                Due::Frame => self.frame(now, &mut packets),
                Due::Audio => {
                    packets.push(OutPacket {
                        ssrc: self.ssrcs.audio,
                        seq: self.audio_seq,
                        timestamp: self.audio_timestamp,
                        marker: false,
                        audio: true,
                        payload: opus_packet(now),
                        dd: None,
                    });
                    self.audio_seq += 1;
                    self.audio_timestamp =
                        self.audio_timestamp.wrapping_add(AUDIO_SAMPLES_PER_PACKET);
                }
            }
        }
        packets
    }

    fn frame(&mut self, now: Instant, packets: &mut Vec<OutPacket>) {
        let keyframe = self.keyframe_requested
            && self
                .last_keyframe
                .is_none_or(|at| now.duration_since(at) >= KEYFRAME_MIN_INTERVAL);
        if keyframe {
            self.keyframe_requested = false;
            self.last_keyframe = Some(now);
        }
        match self.media {
            Media::Vp8Simulcast => self.vp8_frame(now, keyframe, packets),
            Media::Av1Svc => self.av1_picture(now, keyframe, packets),
        }
        self.video_timestamp = self
            .video_timestamp
            .wrapping_add(VIDEO_CLOCK / FRAMES_PER_SECOND);
    }

    /// One picture of AV1 `L2T3_KEY` on the first video SSRC: the descriptors of the
    /// testkit's sender, the payload sizes of the layers they stand for.
    fn av1_picture(&mut self, now: Instant, keyframe: bool, packets: &mut Vec<OutPacket>) {
        let payloads = [av1_frame(0, keyframe, now), av1_frame(1, keyframe, now)];
        let counts = [payloads[0].len(), payloads[1].len()];
        let described = self.svc.next_picture(keyframe, counts, 0);
        let seq = &mut self.video_seq[0];
        for (p, payload) in described.into_iter().zip(payloads.into_iter().flatten()) {
            packets.push(OutPacket {
                ssrc: self.ssrcs.video[0],
                seq: *seq,
                timestamp: self.video_timestamp,
                marker: p.marker,
                audio: false,
                payload,
                dd: p.dd,
            });
            *seq += 1;
        }
    }

    fn vp8_frame(&mut self, now: Instant, keyframe: bool, packets: &mut Vec<OutPacket>) {
        let frame = Vp8Frame {
            picture_id: self.picture_id,
            tl0_pic_idx: self.tl0_pic_idx,
            keyframe,
        };
        for (layer, seq) in self.video_seq.iter_mut().enumerate() {
            let payloads = vp8_frame(layer, frame, now);
            let last = payloads.len() - 1;
            for (index, payload) in payloads.into_iter().enumerate() {
                packets.push(OutPacket {
                    ssrc: self.ssrcs.video[layer],
                    seq: *seq,
                    timestamp: self.video_timestamp,
                    marker: index == last,
                    audio: false,
                    payload,
                    dd: None,
                });
                *seq += 1;
            }
        }
        self.picture_id = (self.picture_id + 1) % 0x8000;
        self.tl0_pic_idx = self.tl0_pic_idx.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::layer_packets_per_second;

    #[test]
    fn one_second_of_media() {
        let start = Instant::now();
        let ssrcs = SenderSsrcs::for_endpoint(3);
        let mut source = MediaSource::new(ssrcs, Media::Vp8Simulcast, start);
        let packets = source.due_packets(start + Duration::from_millis(999));
        let count = |ssrc| packets.iter().filter(|p| p.ssrc == ssrc).count() as u32;
        assert_eq!(count(ssrcs.audio), 50);
        for layer in 0..LAYERS.len() {
            assert_eq!(count(ssrcs.video[layer]), layer_packets_per_second(layer));
        }
        let first_video = packets.iter().find(|p| !p.audio).unwrap();
        assert_eq!(first_video.payload[6] & 1, 0, "starts with a keyframe");
        let later_frame_start = packets
            .iter()
            .filter(|p| p.ssrc == ssrcs.video[0])
            .nth(1)
            .unwrap();
        assert_eq!(later_frame_start.payload[6] & 1, 1, "then interframes");
        let top: Vec<&OutPacket> = packets
            .iter()
            .filter(|p| p.ssrc == ssrcs.video[2])
            .collect();
        assert!(top.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        assert_eq!(top.iter().filter(|p| p.marker).count(), 30);
    }

    #[test]
    fn one_second_of_svc() {
        let start = Instant::now();
        let ssrcs = SenderSsrcs::for_endpoint(3);
        let mut source = MediaSource::new(ssrcs, Media::Av1Svc, start);
        let packets = source.due_packets(start + Duration::from_millis(999));
        let video: Vec<&OutPacket> = packets.iter().filter(|p| !p.audio).collect();
        assert!(
            video
                .iter()
                .all(|p| p.ssrc == ssrcs.video[0] && p.dd.is_some())
        );
        let per_second = layer_packets_per_second(1) + layer_packets_per_second(2);
        assert_eq!(video.len() as u32, per_second);
        assert!(video.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        assert_eq!(video.iter().filter(|p| p.marker).count(), 30);
        // The first descriptor attaches the structure: longer than the one-byte form.
        assert!(video[0].dd.as_ref().unwrap().len() > 16);
        assert_eq!(video[1].dd.as_ref().unwrap().len(), 3);
    }
}
