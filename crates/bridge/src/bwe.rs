//! Downlink bandwidth estimation for one receiver, from its transport-wide congestion control
//! feedback: a compact Google Congestion Control (draft-ietf-rmcat-gcc-02, as in libwebrtc's
//! GoogCC) — a delay-gradient trendline with an adaptive over-use threshold, AIMD rate
//! control and a loss-based cap.
//!
//! Why not str0m's own estimator: it is tied to str0m's pacer, which releases one packet per
//! `Rtc` timeout. An SFU forwards media that its senders have already paced (Jitsi
//! Videobridge does not pace either), and the per-packet timeouts — each walking every
//! stream of the receiver — cost more CPU than the forwarding itself.
//!
//! Probing: the bridge has no padding of its own. The estimate may grow up to what the
//! receiver would take ([`DownlinkEstimator::set_desired`]); the layer allocator then
//! upgrades, and the forwarded media itself is the probe. Over-use brings the estimate back
//! to what was delivered, and a hold that doubles while such attempts keep failing spaces
//! them out (10 s, 20 s, … 2 min).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Packets sent within this span of the first one form one group (a burst).
const BURST: Duration = Duration::from_millis(5);
/// Delay samples in the trendline's linear regression.
const TREND_WINDOW: usize = 20;
const TREND_SMOOTHING: f64 = 0.9;
const TREND_GAIN: f64 = 4.0;
/// Adaptive threshold (ms) bounds and gains (GCC section 5.4).
const THRESHOLD_INITIAL: f64 = 12.5;
const THRESHOLD_RANGE: (f64, f64) = (6.0, 600.0);
const THRESHOLD_UP: f64 = 0.0087;
const THRESHOLD_DOWN: f64 = 0.039;
/// Over-use must last this long before the rate is cut.
const OVERUSE_TIME: Duration = Duration::from_millis(10);
/// The rate is cut at most this often, about one round trip plus feedback interval.
const DECREASE_INTERVAL: Duration = Duration::from_millis(300);
const DECREASE_FACTOR: f64 = 0.85;
/// Growth per second: before the first congestion signal (the start-up ramp that
/// libwebrtc does with probes), and afterwards far from / near the last known capacity.
const STARTUP_GROWTH: f64 = 1.5;
const STEADY_GROWTH: f64 = 1.08;
const NEAR_CAPACITY_BPS_PER_SEC: f64 = 60_000.0;
/// After congestion the estimate stays within this factor of the capacity then seen, for a
/// hold period from `HOLD_MIN` doubling up to `HOLD_MAX` while congestion recurs.
const HOLD_HEADROOM: f64 = 1.1;
const HOLD_MIN: Duration = Duration::from_secs(10);
const HOLD_MAX: Duration = Duration::from_secs(120);
/// Delivered bitrate is measured over this window of arrival times.
const ACKED_WINDOW: Duration = Duration::from_millis(500);
/// Loss above this fraction cuts the rate (GCC section 6); the window it is counted over.
const LOSS_HIGH: f64 = 0.10;
const LOSS_WINDOW: Duration = Duration::from_millis(1000);
/// Sent packets remembered for feedback; older ones are forgotten.
const MAX_SENT: usize = 8192;
const MIN_BPS: f64 = 100_000.0;
const MAX_BPS: f64 = 100_000_000.0;

#[derive(Debug, Clone, Copy)]
struct Sent {
    at: Instant,
    bytes: u32,
}

#[derive(Debug, Clone, Copy)]
struct Group {
    first_send: Instant,
    last_send: Instant,
    last_arrival: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Normal,
    Overuse,
    Underuse,
}

#[derive(Debug)]
pub struct DownlinkEstimator {
    /// Send records by extended transport-wide sequence number, from `first_seq` on.
    sent: VecDeque<Option<Sent>>,
    first_seq: u64,
    last_seq: Option<u64>,
    group: Option<Group>,
    previous_group: Option<Group>,
    /// Trendline state: accumulated and smoothed delay (ms), regression window.
    accumulated_ms: f64,
    smoothed_ms: f64,
    samples: VecDeque<(f64, f64)>,
    sample_count: usize,
    origin: Option<Instant>,
    threshold_ms: f64,
    last_threshold_update: Option<Instant>,
    overuse_since: Option<Instant>,
    previous_trend: f64,
    signal: Signal,
    /// Arrivals (time, bytes) within the delivered-rate window.
    arrivals: VecDeque<(Instant, u32)>,
    arrived_bytes: u64,
    losses: VecDeque<(Instant, u32, u32)>,
    estimate_bps: f64,
    desired_bps: f64,
    /// Delivered rate when over-use was last seen: the link's capacity, roughly.
    capacity_bps: Option<f64>,
    last_decrease: Option<Instant>,
    /// Until then the estimate stays near `capacity_bps`; the current hold period.
    hold_until: Option<Instant>,
    hold: Duration,
    last_update: Option<Instant>,
    time_zero: Instant,
}

impl DownlinkEstimator {
    pub fn new(now: Instant, initial_bps: u64) -> Self {
        Self {
            time_zero: now,
            sent: VecDeque::new(),
            first_seq: 0,
            last_seq: None,
            group: None,
            previous_group: None,
            accumulated_ms: 0.0,
            smoothed_ms: 0.0,
            samples: VecDeque::with_capacity(TREND_WINDOW),
            sample_count: 0,
            origin: None,
            threshold_ms: THRESHOLD_INITIAL,
            last_threshold_update: None,
            overuse_since: None,
            previous_trend: 0.0,
            signal: Signal::Normal,
            arrivals: VecDeque::new(),
            arrived_bytes: 0,
            losses: VecDeque::new(),
            estimate_bps: (initial_bps as f64).clamp(MIN_BPS, MAX_BPS),
            desired_bps: initial_bps as f64,
            capacity_bps: None,
            last_decrease: None,
            hold_until: None,
            hold: HOLD_MIN,
            last_update: None,
        }
    }

    pub fn estimate_bps(&self) -> u64 {
        self.estimate_bps as u64
    }

    /// What the receiver would take with unlimited bandwidth: the estimate grows no higher.
    pub fn set_desired(&mut self, bps: u64) {
        self.desired_bps = bps as f64;
    }

    /// The extended sequence number the next feedback's base sequence is near.
    pub fn last_seq(&self) -> u64 {
        self.last_seq.unwrap_or(0)
    }

    /// The fixed instant feedback reference times count from: arrival times of different
    /// reports must be comparable.
    pub fn time_zero(&self) -> Instant {
        self.time_zero
    }

    /// A packet left with transport-wide sequence number `seq` (16 bits on the wire).
    pub fn on_sent(&mut self, now: Instant, seq: u16, bytes: usize) {
        let extended = match self.last_seq {
            None => u64::from(seq),
            Some(last) => {
                // The nearest extension of `seq` to the last one (RFC 3550 A.1 style).
                let candidate = (last & !0xffff) | u64::from(seq);
                if candidate + 0x8000 < last {
                    candidate + 0x1_0000
                } else if candidate > last + 0x8000 && candidate >= 0x1_0000 {
                    candidate - 0x1_0000
                } else {
                    candidate
                }
            }
        };
        if self.sent.is_empty() {
            self.first_seq = extended;
        }
        if extended < self.first_seq {
            return;
        }
        let index = (extended - self.first_seq) as usize;
        if index >= self.sent.len() {
            self.sent.resize(index + 1, None);
        }
        self.sent[index] = Some(Sent {
            at: now,
            bytes: bytes as u32,
        });
        self.last_seq = Some(self.last_seq.map_or(extended, |l| l.max(extended)));
        while self.sent.len() > MAX_SENT {
            self.sent.pop_front();
            self.first_seq += 1;
        }
    }

    fn sent(&self, seq: u64) -> Option<Sent> {
        let index = seq.checked_sub(self.first_seq)?;
        self.sent
            .get(usize::try_from(index).ok()?)
            .copied()
            .flatten()
    }

    /// One feedback report: each reported sequence number with its arrival time, or
    /// `None` when the receiver says it was lost. Sequence numbers we never sent are ignored.
    pub fn on_feedback(
        &mut self,
        now: Instant,
        report: impl IntoIterator<Item = (u64, Option<Instant>)>,
    ) {
        let (mut received, mut lost) = (0u32, 0u32);
        for (seq, arrival) in report {
            let Some(sent) = self.sent(seq) else { continue };
            match arrival {
                None => lost += 1,
                Some(arrival) => {
                    received += 1;
                    self.on_arrival(now, sent, arrival);
                }
            }
        }
        if received + lost > 0 {
            self.losses.push_back((now, received, lost));
        }
        while self
            .losses
            .front()
            .is_some_and(|(t, _, _)| now.saturating_duration_since(*t) > LOSS_WINDOW)
        {
            self.losses.pop_front();
        }
        self.update_rate(now);
    }

    fn on_arrival(&mut self, now: Instant, sent: Sent, arrival: Instant) {
        self.arrivals.push_back((arrival, sent.bytes));
        self.arrived_bytes += u64::from(sent.bytes);
        while let Some(&(t, bytes)) = self.arrivals.front() {
            // The length bound holds even when a receiver reports arrivals going backwards.
            if arrival.saturating_duration_since(t) <= ACKED_WINDOW
                && self.arrivals.len() <= MAX_SENT
            {
                break;
            }
            self.arrivals.pop_front();
            self.arrived_bytes -= u64::from(bytes);
        }
        match &mut self.group {
            Some(g) if sent.at.saturating_duration_since(g.first_send) <= BURST => {
                g.last_send = g.last_send.max(sent.at);
                g.last_arrival = g.last_arrival.max(arrival);
            }
            current => {
                let finished = current.replace(Group {
                    first_send: sent.at,
                    last_send: sent.at,
                    last_arrival: arrival,
                });
                if let Some(finished) = finished {
                    if let Some(previous) = self.previous_group {
                        self.on_group_delta(now, previous, finished);
                    }
                    self.previous_group = Some(finished);
                }
            }
        }
    }

    /// The delay variation between two consecutive groups feeds the trendline.
    fn on_group_delta(&mut self, now: Instant, previous: Group, current: Group) {
        let ms = |later: Instant, earlier: Instant| -> f64 {
            if later >= earlier {
                (later - earlier).as_secs_f64() * 1000.0
            } else {
                -((earlier - later).as_secs_f64() * 1000.0)
            }
        };
        let send_delta = ms(current.last_send, previous.last_send);
        let arrival_delta = ms(current.last_arrival, previous.last_arrival);
        // Reordered or wildly late feedback says nothing about queues.
        if send_delta < 0.0 || arrival_delta < 0.0 {
            return;
        }
        let origin = *self.origin.get_or_insert(current.last_arrival);
        self.accumulated_ms += arrival_delta - send_delta;
        self.smoothed_ms =
            TREND_SMOOTHING * self.smoothed_ms + (1.0 - TREND_SMOOTHING) * self.accumulated_ms;
        if self.samples.len() == TREND_WINDOW {
            self.samples.pop_front();
        }
        self.samples
            .push_back((ms(current.last_arrival, origin), self.smoothed_ms));
        self.sample_count += 1;
        if self.samples.len() < TREND_WINDOW {
            return;
        }
        let trend = slope(&self.samples) * (self.sample_count.min(60) as f64) * TREND_GAIN;
        self.detect(now, trend);
    }

    fn detect(&mut self, now: Instant, trend: f64) {
        if trend > self.threshold_ms {
            let since = *self.overuse_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= OVERUSE_TIME && trend >= self.previous_trend
            {
                self.signal = Signal::Overuse;
            }
        } else {
            self.overuse_since = None;
            self.signal = if trend < -self.threshold_ms {
                Signal::Underuse
            } else {
                Signal::Normal
            };
        }
        self.previous_trend = trend;
        // The threshold follows the trend slowly so that competing flows are not starved,
        // but ignores spikes far above it.
        let dt_ms = self
            .last_threshold_update
            .map_or(0.0, |t| {
                now.saturating_duration_since(t).as_secs_f64() * 1000.0
            })
            .min(100.0);
        self.last_threshold_update = Some(now);
        if trend.abs() < self.threshold_ms + 15.0 {
            let gain = if trend.abs() < self.threshold_ms {
                THRESHOLD_DOWN
            } else {
                THRESHOLD_UP
            };
            self.threshold_ms += gain * (trend.abs() - self.threshold_ms) * dt_ms;
            self.threshold_ms = self
                .threshold_ms
                .clamp(THRESHOLD_RANGE.0, THRESHOLD_RANGE.1);
        }
    }

    fn delivered_bps(&self) -> Option<f64> {
        let (first, _) = self.arrivals.front()?;
        let (last, _) = self.arrivals.back()?;
        let span = last.saturating_duration_since(*first).max(ACKED_WINDOW / 2);
        Some(self.arrived_bytes as f64 * 8.0 / span.as_secs_f64())
    }

    fn loss_fraction(&self) -> f64 {
        let (received, lost) = self
            .losses
            .iter()
            .fold((0u32, 0u32), |(r, l), (_, rr, ll)| (r + rr, l + ll));
        f64::from(lost) / f64::from((received + lost).max(1))
    }

    fn update_rate(&mut self, now: Instant) {
        let dt = self
            .last_update
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
            .min(Duration::from_secs(1));
        self.last_update = Some(now);
        let delivered = self.delivered_bps();
        let may_decrease = self
            .last_decrease
            .is_none_or(|t| now.saturating_duration_since(t) >= DECREASE_INTERVAL);
        let loss = self.loss_fraction();
        if self.signal == Signal::Overuse && may_decrease {
            let capacity = self.on_congestion(now, delivered.unwrap_or(self.estimate_bps));
            self.estimate_bps = (DECREASE_FACTOR * capacity).min(self.estimate_bps);
            self.signal = Signal::Normal;
        } else if loss > LOSS_HIGH && may_decrease {
            self.on_congestion(now, delivered.unwrap_or(self.estimate_bps));
            self.estimate_bps *= 1.0 - 0.5 * loss;
        } else if self.signal == Signal::Normal {
            let secs = dt.as_secs_f64();
            let near_capacity = self
                .capacity_bps
                .is_some_and(|c| self.estimate_bps < c * 1.2 && self.estimate_bps > c * 0.8);
            let previous = self.estimate_bps;
            let grown = match (self.capacity_bps, near_capacity) {
                (None, _) => previous * STARTUP_GROWTH.powf(secs),
                (Some(_), true) => previous + NEAR_CAPACITY_BPS_PER_SEC * secs,
                (Some(_), false) => previous * STEADY_GROWTH.powf(secs),
            };
            // Grow no further than the receiver wants, nor, for a while after congestion,
            // past the capacity then seen; an estimate already above that stays.
            let mut ceiling = self.desired_bps;
            if let Some(capacity) = self.capacity_bps
                && self.hold_until.is_some_and(|t| now < t)
            {
                ceiling = ceiling.min(capacity * HOLD_HEADROOM);
            }
            if self.hold_until.is_some_and(|t| now >= t + self.hold) {
                // A whole hold period more without congestion: the link is fine again.
                self.hold = HOLD_MIN;
            }
            self.estimate_bps = grown.min(ceiling.max(previous));
        }
        self.estimate_bps = self.estimate_bps.clamp(MIN_BPS, MAX_BPS);
    }

    /// Congestion at `delivered` b/s: that is the link's capacity for now (returned), and
    /// the estimate stays near it for a hold period that doubles with each congestion in a
    /// row, so that a failing upgrade (see the module comment) is not retried every few
    /// seconds. Within a hold, the highest capacity seen counts: while a queue drains and
    /// the allocator steps down, less is delivered than the link carries.
    fn on_congestion(&mut self, now: Instant, delivered: f64) -> f64 {
        let in_hold = self.hold_until.is_some_and(|t| now < t);
        let capacity = match self.capacity_bps {
            Some(c) if in_hold => c.max(delivered),
            _ => delivered,
        };
        self.capacity_bps = Some(capacity);
        self.last_decrease = Some(now);
        // Losses already reacted to must not cut the estimate again.
        self.losses.clear();
        // Congestion soon after a hold ended is a failed attempt to go higher.
        if self
            .hold_until
            .is_some_and(|t| now >= t && now < t + self.hold)
        {
            self.hold = (self.hold * 2).min(HOLD_MAX);
        }
        self.hold_until = Some(now + self.hold);
        capacity
    }
}

/// Least-squares slope of `(x, y)` samples.
fn slope(samples: &VecDeque<(f64, f64)>) -> f64 {
    let n = samples.len() as f64;
    let (sx, sy) = samples
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = samples.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated path: packets of `bytes` every `interval`, each delivered after
    /// `delay(i)` or lost when it returns `None`; feedback every 50 ms.
    fn run(
        estimator: &mut DownlinkEstimator,
        start: Instant,
        seconds: u64,
        interval: Duration,
        mut delay: impl FnMut(u64) -> Option<Duration>,
    ) {
        let mut pending = Vec::new();
        let packets = seconds * 1_000_000 / interval.as_micros() as u64;
        let mut next_feedback = start + Duration::from_millis(50);
        let first = estimator.last_seq.map_or(0, |l| l + 1);
        for i in 0..packets {
            let at = start + interval * i as u32;
            let seq = first + i;
            estimator.on_sent(at, seq as u16, 1200);
            pending.push((seq, delay(i).map(|d| at + d)));
            if at >= next_feedback {
                let report: Vec<_> = std::mem::take(&mut pending);
                estimator.on_feedback(at, report);
                next_feedback = at + Duration::from_millis(50);
            }
        }
    }

    /// The delay of packet `i` of a 4.8 Mb/s flow (1200 bytes every 2 ms) through a
    /// `link_bps` bottleneck 20 ms away: its queue grows when the link is slower.
    fn through_bottleneck(link_bps: f64) -> impl FnMut(u64) -> Option<Duration> {
        move |i| {
            let backlog_ms = i as f64 * (1200.0 * 8.0 * 1000.0 / link_bps - 2.0);
            Some(Duration::from_secs_f64(backlog_ms.max(0.0) / 1000.0 + 0.02))
        }
    }

    #[test]
    fn grows_towards_what_the_receiver_wants_on_a_clean_path() {
        let start = Instant::now();
        let mut e = DownlinkEstimator::new(start, 1_000_000);
        e.set_desired(8_000_000);
        // 1200 bytes every 2 ms = 4.8 Mb/s delivered with a constant delay.
        run(&mut e, start, 8, Duration::from_millis(2), |_| {
            Some(Duration::from_millis(20))
        });
        let estimate = e.estimate_bps();
        assert!(estimate > 5_000_000, "estimate {estimate}");
        assert!(estimate <= 8_000_000, "estimate {estimate}");
    }

    #[test]
    fn a_growing_queue_cuts_the_estimate_below_what_was_delivered() {
        let start = Instant::now();
        let mut e = DownlinkEstimator::new(start, 10_000_000);
        e.set_desired(10_000_000);
        // 4.8 Mb/s offered into a 3 Mb/s link: the queue (and the delay) grows.
        run(
            &mut e,
            start,
            3,
            Duration::from_millis(2),
            through_bottleneck(3e6),
        );
        let estimate = e.estimate_bps();
        assert!(estimate < 4_000_000, "estimate {estimate}");
    }

    #[test]
    fn after_congestion_the_estimate_holds_near_the_capacity_then_tries_higher_again() {
        let start = Instant::now();
        let mut e = DownlinkEstimator::new(start, 10_000_000);
        e.set_desired(20_000_000);
        // 4.8 Mb/s into a 3 Mb/s link for a second.
        run(
            &mut e,
            start,
            1,
            Duration::from_millis(2),
            through_bottleneck(3e6),
        );
        let after_congestion = e.estimate_bps();
        assert!(after_congestion < 3_500_000, "estimate {after_congestion}");
        // Then a clean path: the estimate stays near what the link carried for the hold...
        let clean = |_| Some(Duration::from_millis(20));
        run(
            &mut e,
            start + Duration::from_secs(1),
            8,
            Duration::from_millis(4),
            clean,
        );
        let held = e.estimate_bps();
        assert!(held < 3_600_000, "estimate {held} during the hold");
        // ...and grows again once it is over.
        run(
            &mut e,
            start + Duration::from_secs(9),
            12,
            Duration::from_millis(4),
            clean,
        );
        let later = e.estimate_bps();
        assert!(
            later > held * 5 / 4,
            "estimate {later} after the hold ({held} during)"
        );
    }

    #[test]
    fn heavy_loss_cuts_the_estimate() {
        let start = Instant::now();
        let mut e = DownlinkEstimator::new(start, 5_000_000);
        e.set_desired(5_000_000);
        run(&mut e, start, 2, Duration::from_millis(2), |i| {
            (i % 4 != 0).then_some(Duration::from_millis(20))
        });
        let estimate = e.estimate_bps();
        assert!(estimate < 4_000_000, "estimate {estimate}");
    }

    #[test]
    fn hostile_feedback_keeps_the_estimate_bounded() {
        let start = Instant::now();
        let mut e = DownlinkEstimator::new(start, 2_000_000);
        e.set_desired(u64::MAX);
        // A receiver's feedback is its own to invent: arrival times hours apart or out of
        // order, sequence numbers near and far from what was sent, everything lost.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..2_000u64 {
            let now = start + Duration::from_millis(round * 10);
            e.on_sent(now, round as u16, 1200);
            let report: Vec<_> = (0..20)
                .map(|_| {
                    let seq = round.saturating_sub(next() % 64) + next() % 3 * (1 << 20);
                    let arrival = (next() % 4 != 0)
                        .then(|| start + Duration::from_millis(next() % 10_000_000));
                    (seq, arrival)
                })
                .collect();
            e.on_feedback(now, report);
            let estimate = e.estimate_bps();
            assert!(
                (100_000..=100_000_000).contains(&estimate),
                "estimate {estimate}"
            );
        }
        // The same packets reported again and again, arriving ever earlier: memory stays
        // bounded.
        for round in 0..20_000u64 {
            let arrival = start + Duration::from_secs(100_000) - Duration::from_millis(round);
            e.on_feedback(start, (1990..2000).map(|seq| (seq, Some(arrival))));
        }
        assert!(
            e.arrivals.len() <= MAX_SENT,
            "{} arrivals kept",
            e.arrivals.len()
        );
    }

    #[test]
    fn unknown_and_wrapped_sequence_numbers_are_handled() {
        let start = Instant::now();
        let mut e = DownlinkEstimator::new(start, 1_000_000);
        for i in 0..70_000u64 {
            e.on_sent(start + Duration::from_micros(i * 100), i as u16, 100);
        }
        assert_eq!(e.last_seq(), 69_999);
        // Feedback for packets never sent (or long forgotten) changes nothing.
        e.on_feedback(start, [(5, Some(start)), (1 << 40, None)]);
        assert_eq!(e.estimate_bps(), 1_000_000);
    }
}
