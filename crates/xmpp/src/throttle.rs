//! Failed-login throttling: each failure for an address or account doubles the delay
//! before that address's or account's next attempt is processed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

const FIRST_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(10);
/// Failures older than this are forgotten.
const MEMORY: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct Throttle {
    failures: HashMap<String, (u32, Instant)>,
}

impl Throttle {
    /// Delay before processing an attempt concerning any of `keys`.
    pub fn delay(&self, keys: &[String], now: Instant) -> Duration {
        keys.iter()
            .filter_map(|k| self.failures.get(k))
            .filter(|(_, at)| now.duration_since(*at) < MEMORY)
            .map(|(count, _)| {
                FIRST_DELAY
                    .saturating_mul(1 << (count - 1).min(10))
                    .min(MAX_DELAY)
            })
            .max()
            .unwrap_or_default()
    }

    pub fn failed(&mut self, keys: &[String], now: Instant) {
        if self.failures.len() > 100_000 {
            self.failures
                .retain(|_, (_, at)| now.duration_since(*at) < MEMORY);
        }
        for key in keys {
            let entry = self.failures.entry(key.clone()).or_insert((0, now));
            *entry = (entry.0.saturating_add(1), now);
        }
    }

    pub fn succeeded(&mut self, keys: &[String]) {
        for key in keys {
            self.failures.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_and_is_capped() {
        let mut throttle = Throttle::default();
        let now = Instant::now();
        let keys = ["ip:127.0.0.1".to_owned()];
        assert_eq!(throttle.delay(&keys, now), Duration::ZERO);
        throttle.failed(&keys, now);
        assert_eq!(throttle.delay(&keys, now), FIRST_DELAY);
        throttle.failed(&keys, now);
        assert_eq!(throttle.delay(&keys, now), FIRST_DELAY * 2);
        for _ in 0..20 {
            throttle.failed(&keys, now);
        }
        assert_eq!(throttle.delay(&keys, now), MAX_DELAY);
        assert_eq!(throttle.delay(&keys, now + MEMORY), Duration::ZERO);
        throttle.succeeded(&keys);
        assert_eq!(throttle.delay(&keys, now), Duration::ZERO);
    }
}
