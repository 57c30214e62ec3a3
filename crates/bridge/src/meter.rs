//! What a layer (a simulcast SSRC, or an SVC decode target) currently carries: its bitrate
//! over half-second windows and whether it sent anything lately.

use std::time::{Duration, Instant};

/// A layer that sent nothing for this long is considered off (sender's own BWE).
const INACTIVE_AFTER: Duration = Duration::from_millis(1500);
const WINDOW: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Default)]
pub struct Meter {
    pub bitrate_bps: u64,
    window_bytes: u64,
    window_start: Option<Instant>,
    last_packet: Option<Instant>,
}

impl Meter {
    pub fn is_active(&self, now: Instant) -> bool {
        self.last_packet
            .is_some_and(|t| now.saturating_duration_since(t) < INACTIVE_AFTER)
    }

    /// Counts a packet; returns true when the layer just became active.
    pub fn on_packet(&mut self, now: Instant, bytes: usize) -> bool {
        let was_active = self.is_active(now);
        self.last_packet = Some(now);
        let start = *self.window_start.get_or_insert(now);
        self.window_bytes += bytes as u64;
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= WINDOW {
            self.bitrate_bps = self.window_bytes * 8 * 1_000_000 / elapsed.as_micros() as u64;
            self.window_bytes = 0;
            self.window_start = Some(now);
        }
        !was_active
    }

    /// The measured bitrate; before a measurement, what a layer of that height usually
    /// needs (counting an unmeasured layer as free would overcommit the receiver's link).
    pub fn expected_bps(&self, height: u32) -> u64 {
        match self.bitrate_bps {
            0 => match height {
                h if h <= 180 => 150_000,
                h if h <= 360 => 500_000,
                h if h <= 720 => 1_500_000,
                _ => 2_500_000,
            },
            measured => measured,
        }
    }
}
