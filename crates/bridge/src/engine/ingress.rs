//! What one endpoint may make the bridge do: its RTP per SSRC and in all, and its RTCP,
//! are metered before str0m decrypts them, so that a participant sending ten times its
//! budget (valid SRTP on signalled SSRCs) or a storm of feedback costs the others nothing:
//! the excess is dropped and counted, unparsed. Jitsi Videobridge and mediasoup bound a
//! sender the same way, before the expensive work.
//!
//! Token buckets by hand rather than `governor`: time is an input of this sans-IO core,
//! and governor reads its own clock.

use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt};

use crate::metrics::DropReason;

/// How much of each rate an endpoint may save up: a keyframe arrives as a burst.
const INGRESS_BURST: Duration = Duration::from_millis(200);

/// The per-endpoint ingress limits (`[bridge]` keys `ingress_*`).
#[derive(Debug, Clone, Copy)]
pub struct IngressLimits {
    /// RTP bits per second per signalled SSRC (a simulcast layer, its RTX, an audio stream).
    pub ssrc_bps: u64,
    pub ssrc_packets_per_sec: u32,
    /// RTP bits per second of all of one endpoint's SSRCs together.
    pub endpoint_bps: u64,
    pub endpoint_packets_per_sec: u32,
    /// RTCP packets per second from one endpoint (feedback: NACK, PLI, TWCC, reports).
    pub rtcp_packets_per_sec: u32,
}

/// Token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug)]
pub(super) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(super) fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// A full bucket saving up [`INGRESS_BURST`] of `rate`.
    fn ingress(rate: f64, now: Instant) -> Self {
        Self::new(rate, rate * INGRESS_BURST.as_secs_f64(), now)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
    }

    pub(super) fn take(&mut self, now: Instant, cost: f64) -> bool {
        self.refill(now);
        if self.tokens < cost {
            return false;
        }
        self.tokens -= cost;
        true
    }
}

/// Packets and bits per second, both of which a packet must fit.
#[derive(Debug)]
struct Rate {
    packets: TokenBucket,
    bits: TokenBucket,
}

impl Rate {
    fn new(packets_per_sec: u32, bps: u64, now: Instant) -> Self {
        Self {
            packets: TokenBucket::ingress(f64::from(packets_per_sec), now),
            bits: TokenBucket::ingress(bps as f64, now),
        }
    }

    fn admit(&mut self, now: Instant, bytes: usize) -> bool {
        let bits = bytes as f64 * 8.0;
        self.packets.refill(now);
        self.bits.refill(now);
        if self.packets.tokens < 1.0 || self.bits.tokens < bits {
            return false;
        }
        self.packets.tokens -= 1.0;
        self.bits.tokens -= bits;
        true
    }
}

/// One endpoint's ingress meters.
#[derive(Debug)]
pub(super) struct IngressBudget {
    limits: IngressLimits,
    /// Every signalled SSRC including RTX: RTP with any other SSRC is dropped.
    ssrcs: HashMap<u32, Rate>,
    endpoint: Rate,
    rtcp: TokenBucket,
}

impl IngressBudget {
    pub(super) fn new(limits: IngressLimits, now: Instant) -> Self {
        Self {
            limits,
            ssrcs: HashMap::new(),
            endpoint: Rate::new(limits.endpoint_packets_per_sec, limits.endpoint_bps, now),
            rtcp: TokenBucket::ingress(f64::from(limits.rtcp_packets_per_sec), now),
        }
    }

    /// The endpoint's signalled SSRCs changed: SSRCs it keeps keep their meters.
    pub(super) fn set_ssrcs(&mut self, ssrcs: impl Iterator<Item = u32>, now: Instant) {
        let mut old = std::mem::take(&mut self.ssrcs);
        let limits = self.limits;
        self.ssrcs = ssrcs
            .map(|ssrc| {
                let rate = old.remove(&ssrc).unwrap_or_else(|| {
                    Rate::new(limits.ssrc_packets_per_sec, limits.ssrc_bps, now)
                });
                (ssrc, rate)
            })
            .collect();
    }

    /// An RTP datagram of `bytes` on `ssrc` (read from its clear-text header).
    pub(super) fn admit_rtp(
        &mut self,
        now: Instant,
        ssrc: u32,
        bytes: usize,
    ) -> Result<(), DropReason> {
        let rate = self.ssrcs.get_mut(&ssrc).ok_or(DropReason::UnknownSsrc)?;
        if !rate.admit(now, bytes) {
            return Err(DropReason::SsrcBudget);
        }
        // Refused here after the SSRC's meter took it: the sender's excess counts against
        // both, which only makes a flooder wait longer.
        if !self.endpoint.admit(now, bytes) {
            return Err(DropReason::EndpointBudget);
        }
        Ok(())
    }

    pub(super) fn admit_rtcp(&mut self, now: Instant) -> Result<(), DropReason> {
        if self.rtcp.take(now, 1.0) {
            Ok(())
        } else {
            Err(DropReason::RtcpBudget)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: IngressLimits = IngressLimits {
        ssrc_bps: 800_000,
        ssrc_packets_per_sec: 1000,
        endpoint_bps: 1_000_000,
        endpoint_packets_per_sec: 10_000,
        rtcp_packets_per_sec: 50,
    };

    /// Feeds `pps` packets of `bytes` per second on each of `ssrcs` for a second;
    /// returns how many were admitted and the reasons of the rest.
    fn feed(
        budget: &mut IngressBudget,
        start: Instant,
        ssrcs: &[u32],
        pps: u32,
        bytes: usize,
    ) -> (u32, Vec<DropReason>) {
        let mut admitted = 0;
        let mut refused = Vec::new();
        for i in 0..pps {
            let now = start + Duration::from_secs(1) * i / pps;
            for ssrc in ssrcs {
                match budget.admit_rtp(now, *ssrc, bytes) {
                    Ok(()) => admitted += 1,
                    Err(reason) => refused.push(reason),
                }
            }
        }
        (admitted, refused)
    }

    #[test]
    fn each_ssrc_and_the_endpoint_get_their_rate_plus_a_short_burst() {
        let t0 = Instant::now();
        let mut budget = IngressBudget::new(LIMITS, t0);
        budget.set_ssrcs([1, 2].into_iter(), t0);
        // 1000 B packets, 10× the SSRC's 800 kb/s: 800 kb/s for a second plus 200 ms
        // saved up pass, 120 packets.
        let (admitted, refused) = feed(&mut budget, t0, &[1], 1000, 1000);
        assert!((118..=122).contains(&admitted), "{admitted}");
        assert!(refused.iter().all(|r| *r == DropReason::SsrcBudget));
        // Two SSRCs within their own rate (720 kb/s each), over the endpoint's 1 Mb/s.
        let t1 = t0 + Duration::from_secs(2);
        let (admitted, refused) = feed(&mut budget, t1, &[1, 2], 100, 900);
        let expected = (1_000_000 + 200_000) / 7200;
        assert!(admitted.abs_diff(expected) <= 2, "{admitted}");
        assert!(refused.iter().all(|r| *r == DropReason::EndpointBudget));
        assert_eq!(
            budget.admit_rtp(t1, 3, 100),
            Err(DropReason::UnknownSsrc),
            "unsignalled SSRC"
        );
    }

    #[test]
    fn rtcp_is_metered_and_resignalling_keeps_an_ssrcs_meter() {
        let t0 = Instant::now();
        let mut budget = IngressBudget::new(LIMITS, t0);
        let rtcp = (0..100).filter(|_| budget.admit_rtcp(t0).is_ok()).count();
        assert_eq!(rtcp, 10, "50/s saves up 200 ms");
        budget.set_ssrcs([1].into_iter(), t0);
        feed(&mut budget, t0, &[1], 1000, 1000);
        // Right after the flood emptied it.
        let t1 = t0 + Duration::from_millis(999);
        budget.set_ssrcs([1, 2].into_iter(), t1);
        assert!(budget.admit_rtp(t1, 1, 1000).is_err(), "meter reset");
    }
}
