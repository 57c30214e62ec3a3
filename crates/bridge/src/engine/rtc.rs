//! The one way into str0m: every call on an endpoint's `Rtc`, including the read-only
//! ones fed by untrusted datagrams (`accepts`, `is_alive`), goes through
//! [`GuardedRtc::call`], and the few str0m calls outside an `Rtc` (TWCC report
//! iteration) through [`guard`]. A str0m panic marks the endpoint broken and the core
//! expires it (`BridgeEvent::EndpointExpired`) instead of the process going down. The
//! `Rtc` is a private field so that a bare call does not compile.

use std::panic::{AssertUnwindSafe, catch_unwind};

use str0m::Rtc;
use tracing::warn;

/// Runs a str0m call; `None` when it panicked.
pub(super) fn guard<R>(f: impl FnOnce() -> R) -> Option<R> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

pub(super) struct GuardedRtc {
    rtc: Rtc,
    /// str0m failed or panicked: the endpoint is expired at the end of the operation.
    broken: bool,
}

impl GuardedRtc {
    pub(super) fn new(rtc: Rtc) -> Self {
        Self { rtc, broken: false }
    }

    /// Runs `f` on the `Rtc`; `None` when it panicked now or before.
    pub(super) fn call<R>(&mut self, f: impl FnOnce(&mut Rtc) -> R) -> Option<R> {
        if self.broken {
            return None;
        }
        let result = guard(|| f(&mut self.rtc));
        if result.is_none() {
            warn!("str0m panicked; expiring the endpoint");
            self.broken = true;
        }
        result
    }

    pub(super) fn is_broken(&self) -> bool {
        self.broken
    }

    /// str0m reported an error it does not recover from (or closed the connection).
    pub(super) fn set_broken(&mut self) {
        self.broken = true;
    }
}
