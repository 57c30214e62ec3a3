//! The token bucket behind every rate in the XMPP server: the per-connection stanza rate,
//! and the rooms' delivery, join and sender budgets (`fanout.rs`).

use std::time::{Duration, Instant};

/// The longest a wait for tokens is put off (a rate of 0 closes the budget).
const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// `rate` tokens per second, at most `burst` saved up. [`take`](Self::take) spends only
/// what is there; [`charge`](Self::charge) may run into debt (down to one burst), for
/// budgets that charge a stanza its whole cost and let the balance decide what goes next.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    pub(crate) fn burst(&self) -> f64 {
        self.burst
    }

    /// The balance at `now`, after the refill since the last look.
    pub(crate) fn balance(&mut self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens
    }

    /// Spends `cost` if the balance covers it.
    pub(crate) fn take(&mut self, now: Instant, cost: f64) -> bool {
        if self.balance(now) >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }

    /// Charges `cost` whatever the balance, down to a debt of one burst.
    pub(crate) fn charge(&mut self, cost: f64) {
        self.tokens = (self.tokens - cost).max(-self.burst);
    }

    /// When the balance reaches `level`.
    pub(crate) fn reaches(&self, level: f64) -> Instant {
        let missing = (level - self.tokens).max(0.0);
        // A millisecond more, so that the balance is there when woken, whatever rounding.
        let wait = Duration::try_from_secs_f64(missing / self.rate + 0.001)
            .unwrap_or(MAX_WAIT)
            .min(MAX_WAIT);
        self.last + wait
    }

    pub(crate) fn full(&mut self, now: Instant) -> bool {
        self.balance(now) >= self.burst
    }
}
