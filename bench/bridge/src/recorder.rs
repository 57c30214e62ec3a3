//! What simulated receivers record: which streams reached them (to know when a scenario has
//! warmed up) and, inside the measurement window, packets, bytes, latency and loss.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::traffic::{AUDIO_TAG, LAYERS, read_trailer};

/// Extends 16-bit RTP sequence numbers to 64 bits across wrap-arounds.
#[derive(Debug, Default, Clone, Copy)]
pub struct SeqExtender {
    last: Option<u64>,
}

impl SeqExtender {
    pub fn extend(&mut self, seq: u16) -> u64 {
        let extended = match self.last {
            None => u64::from(seq) + (1 << 16),
            Some(last) => {
                let delta = seq.wrapping_sub(last as u16) as i16;
                last.wrapping_add_signed(i64::from(delta))
            }
        };
        self.last = Some(self.last.map_or(extended, |last| last.max(extended)));
        extended
    }
}

/// Lowest and highest extended sequence number seen on one stream.
#[derive(Debug, Clone, Copy)]
struct SeqSpan {
    lowest: u64,
    highest: u64,
}

/// One stream inside the window: its span and which sequence numbers already arrived.
#[derive(Debug, Default)]
struct StreamWindow {
    span: Option<SeqSpan>,
    arrived: HashSet<u64>,
}

/// Counters of one measurement window.
#[derive(Debug, Default, Clone)]
pub struct Window {
    /// Distinct packets; copies of a packet that already arrived count as duplicates.
    pub packets: u64,
    pub duplicates: u64,
    /// RTP header plus payload (no SRTP tag, no UDP/IP overhead).
    pub bytes: u64,
    pub latencies_us: Vec<u32>,
    /// The audio subset of `latencies_us` (audio is paced ahead of video).
    pub audio_latencies_us: Vec<u32>,
    pub video_packets_by_layer: [u64; LAYERS.len()],
    pub audio_packets: u64,
    spans: Vec<SeqSpan>,
}

impl Window {
    /// Packets the sequence numbers say were sent to this receiver in the window.
    pub fn expected_packets(&self) -> u64 {
        self.spans.iter().map(|s| s.highest - s.lowest + 1).sum()
    }

    pub fn lost_packets(&self) -> u64 {
        self.expected_packets().saturating_sub(self.packets)
    }

    pub fn merge(&mut self, other: Window) {
        self.packets += other.packets;
        self.duplicates += other.duplicates;
        self.bytes += other.bytes;
        self.latencies_us.extend(other.latencies_us);
        self.audio_latencies_us.extend(other.audio_latencies_us);
        for (mine, theirs) in self
            .video_packets_by_layer
            .iter_mut()
            .zip(other.video_packets_by_layer)
        {
            *mine += theirs;
        }
        self.audio_packets += other.audio_packets;
        self.spans.extend(other.spans);
    }
}

#[derive(Debug, Default)]
struct State {
    seen: HashSet<u32>,
    /// Open while measuring; `streams` holds its per-SSRC sequence state.
    window: Option<Window>,
    streams: HashMap<u32, StreamWindow>,
}

/// One receiving endpoint's statistics, shared between its task and the driver.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    state: Arc<Mutex<State>>,
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one received RTP packet; `rtp_len` counts header and payload.
    pub fn record(&self, ssrc: u32, seq: u64, rtp_len: usize, payload: &[u8], at: Instant) {
        let mut state = self.lock();
        let State {
            seen,
            window,
            streams,
        } = &mut *state;
        seen.insert(ssrc);
        let Some(window) = window.as_mut() else {
            return;
        };
        let stream = streams.entry(ssrc).or_default();
        if !stream.arrived.insert(seq) {
            // A retransmission (or RTX probe padding) of a packet already counted: its
            // payload carries the original send time, so it says nothing about latency.
            window.duplicates += 1;
            return;
        }
        let span = stream.span.get_or_insert(SeqSpan {
            lowest: seq,
            highest: seq,
        });
        span.lowest = span.lowest.min(seq);
        span.highest = span.highest.max(seq);
        window.packets += 1;
        window.bytes += rtp_len as u64;
        if let Some(trailer) = read_trailer(payload, at) {
            let micros = trailer.latency.as_micros().min(u128::from(u32::MAX)) as u32;
            window.latencies_us.push(micros);
            match trailer.tag {
                AUDIO_TAG => {
                    window.audio_packets += 1;
                    window.audio_latencies_us.push(micros);
                }
                layer => {
                    if let Some(count) = window.video_packets_by_layer.get_mut(layer as usize) {
                        *count += 1;
                    }
                }
            }
        }
    }

    /// How many distinct SSRCs have reached this endpoint so far.
    pub fn streams_seen(&self) -> usize {
        self.lock().seen.len()
    }

    pub fn start_window(&self) {
        let mut state = self.lock();
        state.window = Some(Window::default());
        state.streams.clear();
    }

    pub fn take_window(&self) -> Window {
        let mut state = self.lock();
        let mut window = state.window.take().unwrap_or_default();
        window.spans = state
            .streams
            .drain()
            .filter_map(|(_, stream)| stream.span)
            .collect();
        window
    }
}

/// The `q`-quantile (0..=1) of `samples`, which it sorts.
pub fn quantile(samples: &mut [u32], q: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = ((samples.len() - 1) as f64 * q).round() as usize;
    Some(Duration::from_micros(u64::from(samples[rank])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::opus_packet;

    #[test]
    fn extender_follows_wraparound_and_reordering() {
        let mut ext = SeqExtender::default();
        let a = ext.extend(65534);
        assert_eq!(ext.extend(65535), a + 1);
        assert_eq!(ext.extend(1), a + 3);
        assert_eq!(ext.extend(0), a + 2);
        assert_eq!(ext.extend(2), a + 4);
    }

    #[test]
    fn window_counts_loss_from_sequence_gaps() {
        let recorder = Recorder::default();
        let now = Instant::now();
        let payload = opus_packet(now);
        recorder.record(7, 1, 112, &payload, now);
        assert!(
            recorder.take_window().packets == 0,
            "nothing outside a window"
        );
        recorder.start_window();
        for seq in [10, 11, 13, 14, 11] {
            recorder.record(7, seq, 112, &payload, now);
        }
        let window = recorder.take_window();
        assert_eq!(window.packets, 4);
        assert_eq!(window.duplicates, 1);
        assert_eq!(window.expected_packets(), 5);
        assert_eq!(window.lost_packets(), 1);
        assert_eq!(window.audio_packets, 4);
        assert_eq!(recorder.streams_seen(), 1);
    }

    #[test]
    fn quantiles_pick_ranked_samples() {
        let mut samples: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(quantile(&mut samples, 0.5), Some(Duration::from_micros(51)));
        assert_eq!(
            quantile(&mut samples, 0.99),
            Some(Duration::from_micros(99))
        );
        assert_eq!(quantile(&mut [], 0.5), None);
    }
}
