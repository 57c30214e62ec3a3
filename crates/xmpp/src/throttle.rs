//! Failed-login throttling across every connection, sans-IO, as fail2ban and Prosody's
//! `mod_limit_auth` do it: failures are counted per source address (over all accounts), per
//! account and source address, and per account (over all sources); each failure doubles
//! the wait before the next attempt its keys govern. The per-account count applies only to
//! sources that failed recently themselves, so a guesser spread over many addresses is
//! slowed, while the real user logging in from a clean address is never delayed by it.
//!
//! Attempts are admitted, not merely delayed: an attempt whose keys are busy or backing
//! off waits here until they are free, so parallel connections from one source wait
//! their turn instead of each getting a guess at once.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures older than this are forgotten.
const MEMORY: Duration = Duration::from_secs(600);
/// Records kept before the forgotten ones are swept out.
const SWEEP_ABOVE: usize = 100_000;

#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    /// Wait after the first failure; each further one doubles it...
    pub initial_backoff: Duration,
    /// ...up to this.
    pub max_backoff: Duration,
    /// Exchanges on one account from one source at once while neither has failed recently
    /// (a few devices of one user behind one address); after a failure, one at a time.
    pub parallel_per_account: usize,
}

/// What failures are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Source(IpAddr),
    AccountSource(String, IpAddr),
    Account(String),
}

#[derive(Debug, Default)]
struct Record {
    failures: u32,
    last_failure: Option<Instant>,
    /// Admitted attempts not concluded yet.
    busy: usize,
}

impl Record {
    fn recent_failures(&self, now: Instant) -> u32 {
        match self.last_failure {
            Some(at) if now.saturating_duration_since(at) < MEMORY => self.failures,
            _ => 0,
        }
    }
}

/// An attempt: which source, which account.
#[derive(Debug, Clone)]
struct Attempt {
    source: IpAddr,
    account: String,
}

pub struct Throttle<Id> {
    config: ThrottleConfig,
    records: HashMap<Key, Record>,
    waiting: VecDeque<(Id, Attempt)>,
    /// Admitted attempts and the keys they hold busy.
    admitted: HashMap<Id, (Attempt, Vec<Key>)>,
    /// When the first waiting attempt's backoff ends, if one waits on time.
    wake: Option<Instant>,
}

impl<Id: Copy + Eq + Hash> Throttle<Id> {
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            records: HashMap::new(),
            waiting: VecDeque::new(),
            admitted: HashMap::new(),
            wake: None,
        }
    }

    /// `id` is admitted already (a later step of its exchange goes on at once).
    pub fn is_admitted(&self, id: Id) -> bool {
        self.admitted.contains_key(&id)
    }

    /// `id` wants to try a login on `account` from `source`; it waits until
    /// [`Self::admit`] names it.
    pub fn attempt(&mut self, id: Id, source: IpAddr, account: &str) {
        let attempt = Attempt {
            source: source_key(source),
            account: account.to_owned(),
        };
        self.waiting.push_back((id, attempt));
    }

    /// The waiting attempts that may go on now, in the order they came.
    pub fn admit(&mut self, now: Instant) -> Vec<Id> {
        let mut admitted = Vec::new();
        let mut wake: Option<Instant> = None;
        let mut still_waiting = VecDeque::new();
        while let Some((id, attempt)) = self.waiting.pop_front() {
            let keys = self.keys(&attempt, now);
            match self.free_at(&keys, now) {
                Some(at) if at <= now => {
                    for key in &keys {
                        self.records.entry(key.clone()).or_default().busy += 1;
                    }
                    self.admitted.insert(id, (attempt, keys));
                    admitted.push(id);
                }
                at => {
                    if let Some(at) = at {
                        wake = Some(wake.map_or(at, |w| w.min(at)));
                    }
                    still_waiting.push_back((id, attempt));
                }
            }
        }
        self.waiting = still_waiting;
        self.wake = wake;
        admitted
    }

    /// When a waiting attempt's backoff ends; call [`Self::admit`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wake
    }

    /// Attempts that wait now.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The admitted attempt of `id` failed.
    pub fn failed(&mut self, id: Id, now: Instant) {
        let Some((attempt, _)) = self.conclude(id) else {
            return;
        };
        if self.records.len() > SWEEP_ABOVE {
            self.records
                .retain(|_, r| r.busy > 0 || r.recent_failures(now) > 0);
        }
        let Attempt { source, account } = attempt;
        // Counted on every key, the account's too, whether or not it governed this attempt.
        let counted = [
            Key::Source(source),
            Key::AccountSource(account.clone(), source),
            Key::Account(account),
        ];
        for key in counted {
            let record = self.records.entry(key).or_default();
            record.failures = record.recent_failures(now).saturating_add(1);
            record.last_failure = Some(now);
        }
    }

    /// The admitted attempt of `id` succeeded: the account's counts are cleared (the user
    /// knows the password). The source's count stays, or a guesser could clear it by
    /// logging in to an account of its own between guesses.
    pub fn succeeded(&mut self, id: Id) {
        if let Some((attempt, _)) = self.conclude(id) {
            self.records
                .remove(&Key::AccountSource(attempt.account.clone(), attempt.source));
            self.records.remove(&Key::Account(attempt.account));
        }
    }

    /// `id` is gone (its connection closed): its attempt waits or holds keys no more.
    pub fn gone(&mut self, id: Id) {
        self.waiting.retain(|(waiting, _)| *waiting != id);
        self.conclude(id);
    }

    fn conclude(&mut self, id: Id) -> Option<(Attempt, Vec<Key>)> {
        let (attempt, keys) = self.admitted.remove(&id)?;
        for key in &keys {
            if let Some(record) = self.records.get_mut(key) {
                record.busy = record.busy.saturating_sub(1);
                if record.busy == 0 && record.failures == 0 {
                    self.records.remove(key);
                }
            }
        }
        Some((attempt, keys))
    }

    /// The keys that govern `attempt`: the account's own count only for a source that
    /// failed recently.
    fn keys(&self, attempt: &Attempt, now: Instant) -> Vec<Key> {
        let source = Key::Source(attempt.source);
        let mut keys = vec![
            source.clone(),
            Key::AccountSource(attempt.account.clone(), attempt.source),
        ];
        if self
            .records
            .get(&source)
            .is_some_and(|r| r.recent_failures(now) > 0)
        {
            keys.push(Key::Account(attempt.account.clone()));
        }
        keys
    }

    /// When every key lets one more attempt through: `None` while one of them is busy to
    /// its limit (an attempt concluding frees it).
    fn free_at(&self, keys: &[Key], now: Instant) -> Option<Instant> {
        let mut free = now;
        for key in keys {
            let Some(record) = self.records.get(key) else {
                continue;
            };
            let failures = record.recent_failures(now);
            let parallel = match key {
                // A clean source is limited by its accounts' counts only.
                Key::Source(_) if failures == 0 => usize::MAX,
                Key::AccountSource(..) if failures == 0 => self.config.parallel_per_account,
                _ => 1,
            };
            if record.busy >= parallel {
                return None;
            }
            if let Some(at) = record.last_failure.filter(|_| failures > 0) {
                free = free.max(at + self.backoff(failures));
            }
        }
        Some(free)
    }

    fn backoff(&self, failures: u32) -> Duration {
        self.config
            .initial_backoff
            .saturating_mul(1 << failures.saturating_sub(1).min(20))
            .min(self.config.max_backoff)
    }
}

/// IPv6 sources are counted by their /64, which one host can fill with addresses.
fn source_key(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V4(_) => source,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: ThrottleConfig = ThrottleConfig {
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(30),
        parallel_per_account: 4,
    };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// Runs `attempts` parallel connections from `source` that each fail whenever admitted,
    /// for `span` of simulated time in 10 ms steps; returns the guesses made.
    fn guesses(
        throttle: &mut Throttle<u32>,
        source: &str,
        attempts: u32,
        span: Duration,
        now: &mut Instant,
    ) -> usize {
        for id in 0..attempts {
            throttle.attempt(id, ip(source), "alice");
        }
        let end = *now + span;
        let mut made = 0;
        while *now < end {
            for id in throttle.admit(*now) {
                made += 1;
                throttle.failed(id, *now);
                throttle.attempt(id, ip(source), "alice");
            }
            *now += Duration::from_millis(10);
        }
        made
    }

    #[test]
    fn parallel_guessers_get_a_handful_of_guesses_and_the_real_user_none_of_the_wait() {
        let mut throttle = Throttle::new(CONFIG);
        let mut now = Instant::now();
        let made = guesses(
            &mut throttle,
            "192.0.2.1",
            60,
            Duration::from_secs(10),
            &mut now,
        );
        assert!(made <= 8, "{made} guesses in 10 s");
        assert!(made >= 4, "the first ones are not delayed: {made}");

        // The real user, from an address that has not failed, goes on at once.
        throttle.attempt(1000, ip("198.51.100.7"), "alice");
        assert_eq!(throttle.admit(now), [1000]);
        throttle.succeeded(1000);
        // And a stranger from a clean address, on another account, too.
        throttle.attempt(1001, ip("198.51.100.8"), "bob");
        assert_eq!(throttle.admit(now), [1001]);
    }

    #[test]
    fn the_account_count_slows_a_spread_guesser_but_not_a_clean_source() {
        let mut throttle = Throttle::new(CONFIG);
        let now = Instant::now();
        // Guesses from many addresses, one each: each source has one failure, the account
        // many.
        for n in 0..10u32 {
            throttle.attempt(n, ip(&format!("203.0.113.{n}")), "alice");
            assert_eq!(throttle.admit(now), [n]);
            throttle.failed(n, now);
        }
        // A guessing source waits for the account's backoff (10 failures: capped).
        throttle.attempt(20, ip("203.0.113.1"), "alice");
        assert!(throttle.admit(now + Duration::from_secs(1)).is_empty());
        assert_eq!(throttle.poll_timeout(), Some(now + CONFIG.max_backoff));
        assert_eq!(throttle.admit(now + CONFIG.max_backoff), [20]);
        // A clean source does not.
        throttle.attempt(21, ip("198.51.100.7"), "alice");
        assert_eq!(throttle.admit(now), [21]);
    }

    #[test]
    fn backoff_doubles_is_capped_and_is_forgotten() {
        let mut throttle = Throttle::new(CONFIG);
        let source = ip("192.0.2.1");
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for id in 0..10u32 {
            throttle.attempt(id, source, "alice");
            let mut waited = Duration::ZERO;
            while throttle.admit(now).is_empty() {
                now += Duration::from_millis(100);
                waited += Duration::from_millis(100);
            }
            waits.push(waited.as_millis());
            throttle.failed(id, now);
        }
        assert_eq!(
            waits,
            [0, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000]
        );
        now += MEMORY;
        throttle.attempt(99, source, "alice");
        assert_eq!(throttle.admit(now), [99], "old failures are forgotten");
    }

    #[test]
    fn a_success_clears_the_account_not_the_source_and_a_gone_attempt_frees_its_keys() {
        let mut throttle = Throttle::new(CONFIG);
        let source = ip("192.0.2.1");
        let now = Instant::now();
        throttle.attempt(1, source, "alice");
        throttle.admit(now);
        throttle.failed(1, now);
        throttle.attempt(2, source, "alice");
        let later = now + Duration::from_secs(1);
        assert_eq!(throttle.admit(later), [2]);
        // Held busy: a dirty source lets one attempt through at a time.
        throttle.attempt(3, source, "mallory");
        assert!(throttle.admit(later).is_empty());
        assert_eq!(
            throttle.poll_timeout(),
            None,
            "waits on the busy key, not on time"
        );
        throttle.gone(2);
        assert_eq!(throttle.admit(later), [3]);
        throttle.succeeded(3);
        // The source still has its failure: the next one waits its turn after it.
        throttle.attempt(4, source, "alice");
        assert!(throttle.admit(now + Duration::from_millis(100)).is_empty());
        assert!(!throttle.is_admitted(4));
        throttle.gone(4);
        assert_eq!(throttle.waiting(), 0);
    }

    #[test]
    fn ipv6_sources_count_by_their_prefix() {
        assert_eq!(
            source_key(ip("2001:db8:1:2:aaaa::1")),
            source_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            source_key(ip("2001:db8:1:2::1")),
            source_key(ip("2001:db8:1:3::1"))
        );
    }
}
