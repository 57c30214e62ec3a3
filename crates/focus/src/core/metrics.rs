//! What the core counts, as plain data; the shell renders it for Prometheus.

use std::collections::BTreeMap;

use crate::jingle::Action;

/// Why a Jingle exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JingleErrorKind {
    /// A request for a session the focus does not know (or from a non-occupant).
    UnknownSession,
    /// A `<jingle>` element that does not parse.
    Malformed,
    /// A well-formed request the focus refused (bad sources, wrong state, rate limit, ...).
    Refused(Action),
    /// The bridge failed a request made for a session.
    BridgeFailure,
}

impl JingleErrorKind {
    /// The value of the `kind` label.
    pub fn label(self) -> String {
        match self {
            JingleErrorKind::UnknownSession => "unknown-session".into(),
            JingleErrorKind::Malformed => "malformed".into(),
            JingleErrorKind::Refused(action) => format!("refused-{action}"),
            JingleErrorKind::BridgeFailure => "bridge-failure".into(),
        }
    }
}

/// Counters that only grow.
#[derive(Debug, Clone, Default)]
pub(super) struct Counters {
    pub conference_requests: u64,
    pub jingle_errors: BTreeMap<JingleErrorKind, u64>,
}

impl Counters {
    pub fn jingle_error(&mut self, kind: JingleErrorKind) {
        *self.jingle_errors.entry(kind).or_default() += 1;
    }
}

/// A snapshot of the focus's state and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub conferences: usize,
    /// Occupants other than the focus, over all conferences.
    pub participants: usize,
    /// Conference requests received, answered or refused.
    pub conference_requests: u64,
    pub jingle_errors: Vec<(JingleErrorKind, u64)>,
}
