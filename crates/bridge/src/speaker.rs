//! Dominant speaker identification from RFC 6464 audio levels.
//!
//! Each endpoint's speech energy is an exponentially decaying sum of its audio levels
//! (louder = higher; silence below a floor counts as nothing). The dominant speaker
//! changes only when a challenger's energy exceeds the incumbent's by a margin, which
//! keeps short interjections and noise from flipping the speaker back and forth.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Levels quieter than this (in -dBov) count as silence.
const SILENCE_DBOV: i8 = -70;
/// Energy half-life.
const DECAY: Duration = Duration::from_millis(600);
/// A challenger needs this factor over the incumbent's energy.
const MARGIN: f64 = 1.5;
/// Minimum energy to be considered speaking at all.
const MIN_ENERGY: f64 = 200.0;

#[derive(Debug, Clone, Copy)]
struct Energy {
    value: f64,
    at: Instant,
}

impl Energy {
    fn at(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.value * 0.5f64.powf(elapsed / DECAY.as_secs_f64())
    }
}

#[derive(Debug)]
pub struct SpeakerDetector<K> {
    energy: HashMap<K, Energy>,
    dominant: Option<K>,
    /// Most recent dominant speakers first, excluding the current one.
    previous: Vec<K>,
}

impl<K: Clone + Eq + Hash> Default for SpeakerDetector<K> {
    fn default() -> Self {
        Self {
            energy: HashMap::new(),
            dominant: None,
            previous: Vec::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> SpeakerDetector<K> {
    /// One audio packet's level: 0 (loudest) to -127 dBov, as str0m parses it.
    pub fn on_level(&mut self, now: Instant, who: K, level_dbov: i8) {
        let loudness = f64::from(level_dbov.saturating_sub(SILENCE_DBOV).max(0));
        let entry = self.energy.entry(who).or_insert(Energy {
            value: 0.0,
            at: now,
        });
        entry.value = entry.at(now) + loudness;
        entry.at = now;
    }

    pub fn remove(&mut self, who: &K) {
        self.energy.remove(who);
        self.previous.retain(|k| k != who);
        if self.dominant.as_ref() == Some(who) {
            self.dominant = None;
        }
    }

    pub fn dominant(&self) -> Option<&K> {
        self.dominant.as_ref()
    }

    /// Most recent speakers first: the dominant one, then the previous ones.
    pub fn recent(&self) -> impl Iterator<Item = &K> {
        self.dominant.iter().chain(self.previous.iter())
    }

    pub fn previous(&self) -> &[K] {
        &self.previous
    }

    /// Re-evaluates; returns true when the dominant speaker changed.
    pub fn evaluate(&mut self, now: Instant) -> bool {
        let Some((loudest, energy)) = self
            .energy
            .iter()
            .map(|(k, e)| (k, e.at(now)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
        else {
            return false;
        };
        if energy < MIN_ENERGY || self.dominant.as_ref() == Some(loudest) {
            return false;
        }
        let incumbent = self
            .dominant
            .as_ref()
            .and_then(|d| self.energy.get(d))
            .map_or(0.0, |e| e.at(now));
        if energy < incumbent * MARGIN {
            return false;
        }
        let loudest = loudest.clone();
        self.previous.retain(|k| *k != loudest);
        if let Some(old) = self.dominant.replace(loudest) {
            self.previous.insert(0, old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds 20 ms audio packets for `duration` from each (speaker, level).
    fn talk(
        d: &mut SpeakerDetector<&'static str>,
        now: &mut Instant,
        ms: u64,
        who: &[(&'static str, i8)],
    ) {
        for _ in 0..ms / 20 {
            *now += Duration::from_millis(20);
            for (k, level) in who {
                d.on_level(*now, k, *level);
            }
        }
    }

    #[test]
    fn loudest_speaker_becomes_dominant_with_hysteresis() {
        let mut d = SpeakerDetector::default();
        let mut now = Instant::now();
        talk(&mut d, &mut now, 1000, &[("a", -127), ("b", -127)]);
        assert!(!d.evaluate(now), "silence elects nobody");

        talk(&mut d, &mut now, 1000, &[("a", -20), ("b", -127)]);
        assert!(d.evaluate(now));
        assert_eq!(d.dominant(), Some(&"a"));

        // b only slightly louder for a moment: a stays.
        talk(&mut d, &mut now, 100, &[("a", -22), ("b", -18)]);
        assert!(!d.evaluate(now));
        assert_eq!(d.dominant(), Some(&"a"));

        // a stops, b keeps talking: b takes over, a becomes previous.
        talk(&mut d, &mut now, 2000, &[("a", -127), ("b", -20)]);
        assert!(d.evaluate(now));
        assert_eq!(d.dominant(), Some(&"b"));
        assert_eq!(d.previous(), &["a"]);
        assert_eq!(d.recent().copied().collect::<Vec<_>>(), vec!["b", "a"]);
    }

    #[test]
    fn removed_speaker_is_forgotten() {
        let mut d = SpeakerDetector::default();
        let mut now = Instant::now();
        talk(&mut d, &mut now, 1000, &[("a", -10)]);
        assert!(d.evaluate(now));
        d.remove(&"a");
        assert_eq!(d.dominant(), None);
        assert!(!d.evaluate(now));
    }
}
