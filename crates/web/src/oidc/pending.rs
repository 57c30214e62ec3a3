//! Sign-ins in progress: what the callback needs to finish one (the PKCE verifier, the
//! nonce, the room, the redirect URI), found by the `state` the provider sends back.
//!
//! Sans-IO: fed `now`. Bounded in count (the oldest is dropped for a new one) and in time
//! (an entry older than the login timeout is gone). The `state` is `<id>.<secret>`: `id`
//! finds the entry, `secret` is compared in constant time, and an entry is used once.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// What a pending sign-in keeps until the provider sends the browser back.
#[derive(Clone)]
pub struct PendingLogin {
    pub pkce_verifier: String,
    pub nonce: String,
    /// The meeting the sign-in is for (its token opens that room only).
    pub room: String,
    /// The redirect URI sent to the provider; the code exchange must repeat it.
    pub redirect_uri: String,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

/// Why a callback's `state` finds no sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the sign-in state is malformed")]
    Malformed,
    #[error("no sign-in is pending for this state (unknown, already used or expired)")]
    Unknown,
    #[error("the sign-in state does not match")]
    Mismatch,
}

struct Entry {
    secret: String,
    created: Instant,
    login: PendingLogin,
}

pub struct PendingLogins {
    entries: HashMap<String, Entry>,
    /// Ids in insertion order, for expiry and eviction (may name entries already taken).
    order: VecDeque<String>,
    max: usize,
    ttl: Duration,
}

impl PendingLogins {
    pub fn new(max: usize, ttl: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
            ttl,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Keeps `login` under `id` (public, unique) with `secret`; returns the `state` value
    /// to send to the provider.
    pub fn insert(
        &mut self,
        now: Instant,
        id: String,
        secret: String,
        login: PendingLogin,
    ) -> String {
        self.expire(now);
        while self.entries.len() >= self.max {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        let state = format!("{id}.{secret}");
        self.order.push_back(id.clone());
        self.entries.insert(
            id,
            Entry {
                secret,
                created: now,
                login,
            },
        );
        state
    }

    /// The sign-in `state` names, taken out (a state is good once); the secret part is
    /// compared in constant time. A wrong secret leaves the entry for the real callback.
    pub fn take(&mut self, now: Instant, state: &str) -> Result<PendingLogin, StateError> {
        self.expire(now);
        let (id, secret) = state.split_once('.').ok_or(StateError::Malformed)?;
        let entry = self.entries.get(id).ok_or(StateError::Unknown)?;
        if !bool::from(entry.secret.as_bytes().ct_eq(secret.as_bytes())) {
            return Err(StateError::Mismatch);
        }
        let entry = self.entries.remove(id).ok_or(StateError::Unknown)?;
        Ok(entry.login)
    }

    fn expire(&mut self, now: Instant) {
        while let Some(id) = self.order.front() {
            match self.entries.get(id) {
                Some(entry) if now.saturating_duration_since(entry.created) < self.ttl => break,
                Some(_) => {
                    self.entries.remove(id);
                }
                None => {}
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(room: &str) -> PendingLogin {
        PendingLogin {
            pkce_verifier: "v".into(),
            nonce: "n".into(),
            room: room.into(),
            redirect_uri: "http://x/cb".into(),
        }
    }

    #[test]
    fn a_state_is_good_once_and_only_with_its_secret() {
        let now = Instant::now();
        let mut pending = PendingLogins::new(8, Duration::from_secs(60));
        let state = pending.insert(now, "id1".into(), "s3cret".into(), login("standup"));
        assert_eq!(state, "id1.s3cret");
        assert_eq!(
            pending.take(now, "id1.wrong").unwrap_err(),
            StateError::Mismatch
        );
        assert_eq!(pending.take(now, "id1").unwrap_err(), StateError::Malformed);
        assert_eq!(
            pending.take(now, "id2.s3cret").unwrap_err(),
            StateError::Unknown
        );
        assert_eq!(pending.take(now, &state).unwrap().room, "standup");
        assert_eq!(pending.take(now, &state).unwrap_err(), StateError::Unknown);
    }

    #[test]
    fn entries_expire_and_the_count_is_bounded() {
        let start = Instant::now();
        let mut pending = PendingLogins::new(3, Duration::from_secs(60));
        let first = pending.insert(start, "a".into(), "1".into(), login("a"));
        for (i, id) in ["b", "c", "d", "e"].into_iter().enumerate() {
            pending.insert(
                start + Duration::from_secs(i as u64),
                id.into(),
                "1".into(),
                login(id),
            );
            assert!(pending.len() <= 3);
        }
        // The oldest gave way to the newer ones.
        assert_eq!(
            pending.take(start, &first).unwrap_err(),
            StateError::Unknown
        );
        assert_eq!(
            pending
                .take(start + Duration::from_secs(59), "c.1")
                .unwrap()
                .room,
            "c"
        );
        // Past the timeout, nothing is left.
        let late = start + Duration::from_secs(70);
        assert_eq!(pending.take(late, "e.1").unwrap_err(), StateError::Unknown);
        assert_eq!(pending.len(), 0);
    }
}
