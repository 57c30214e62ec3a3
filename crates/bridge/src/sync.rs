//! Lip sync across the bridge.
//!
//! str0m writes the sender reports of each outgoing stream from the `wallclock` given with
//! every forwarded packet, and receivers align a sender's audio and video by those reports.
//! Arrival time would do, but network jitter differs per packet; the sender's own reports
//! say when each packet was captured. One sender's streams share its NTP clock, so they
//! are all mapped onto our monotonic clock through the same base.

use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Default)]
pub struct SenderClock {
    /// A capture time on the sender's clock and the instant we took it to be.
    base: Option<(SystemTime, Instant)>,
}

impl SenderClock {
    /// When a packet was captured, on our clock: from its stream's latest sender report
    /// (`(ntp_time, rtp_timestamp)`) when there is one, else its arrival time.
    pub fn capture_time(
        &mut self,
        arrival: Instant,
        timestamp: u32,
        clock_rate: u32,
        report: Option<(SystemTime, u32)>,
    ) -> Instant {
        let Some((report_ntp, report_rtp)) = report else {
            return arrival;
        };
        if clock_rate == 0 {
            return arrival;
        }
        let ticks = i64::from(timestamp.wrapping_sub(report_rtp) as i32);
        let offset =
            Duration::from_micros(ticks.unsigned_abs() * 1_000_000 / u64::from(clock_rate));
        let captured = if ticks >= 0 {
            report_ntp.checked_add(offset)
        } else {
            report_ntp.checked_sub(offset)
        };
        let Some(captured) = captured else {
            return arrival;
        };
        let (base_ntp, base_at) = *self.base.get_or_insert((captured, arrival));
        match captured.duration_since(base_ntp) {
            Ok(later) => base_at + later,
            Err(earlier) => base_at.checked_sub(earlier.duration()).unwrap_or(base_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_of_one_sender_share_its_capture_clock() {
        let t0 = Instant::now();
        let ntp0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut clock = SenderClock::default();
        // No report yet: arrival time.
        assert_eq!(clock.capture_time(t0, 1234, 90_000, None), t0);

        // Video: SR says ts 90_000 was captured at ntp0; a packet 1 s later in RTP time
        // arrives (late, jittery) 1.2 s after the first one.
        let video_sr = Some((ntp0, 90_000));
        let first = clock.capture_time(t0, 90_000, 90_000, video_sr);
        assert_eq!(first, t0);
        let late = clock.capture_time(t0 + Duration::from_millis(1200), 180_000, 90_000, video_sr);
        assert_eq!(late, t0 + Duration::from_secs(1));

        // Audio of the same sender, captured 500 ms after ntp0, maps onto the same base
        // whatever its own RTP timestamps and arrival.
        let audio_sr = Some((ntp0 + Duration::from_millis(100), 7_000));
        let audio = clock.capture_time(
            t0 + Duration::from_secs(3),
            7_000 + 19_200,
            48_000,
            audio_sr,
        );
        assert_eq!(audio, t0 + Duration::from_millis(500));

        // Timestamps before the report and across the 32-bit wrap.
        let wrap_sr = Some((ntp0, u32::MAX - 899));
        assert_eq!(
            clock.capture_time(t0, 8_100, 90_000, wrap_sr),
            t0 + Duration::from_millis(100)
        );
        let before = clock.capture_time(t0, u32::MAX - 9_899, 90_000, wrap_sr);
        assert_eq!(
            before,
            t0.checked_sub(Duration::from_millis(100)).unwrap_or(t0)
        );
    }
}
