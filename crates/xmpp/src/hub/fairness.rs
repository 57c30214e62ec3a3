//! The hub's side of fairness: login attempts through the throttle, client stanzas to
//! rooms through the fan-out budgets, and the releases the budgets' timers call for.

use std::cmp::Reverse;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use jid::{BareJid, Jid};
use minidom::Element;

use super::{ConnId, Hub, Timer, ToSession};
use crate::component::Fanout;
use crate::fanout::{Held, Verdict};
use crate::stanza::{self, StanzaError, reply_error};

impl Hub {
    /// A SASL step: one naming an account waits for the throttle to admit it (the answer
    /// is then a zero delay); later steps of an admitted exchange, and anonymous logins,
    /// which guess nothing, go on at once.
    pub(super) fn login_attempt(&mut self, now: Instant, conn: ConnId, username: Option<String>) {
        let peer = self.conns.get(&conn).map(|c| c.peer);
        match (peer, username) {
            (Some(peer), Some(account)) if !self.throttle.is_admitted(conn) => {
                self.throttle.attempt(conn, peer, &account);
                let admitted = self.admit_logins(now);
                if !admitted.contains(&conn) {
                    self.metrics.login_throttled += 1;
                }
            }
            _ => self.tell(conn, ToSession::LoginDelay(Duration::ZERO)),
        }
    }

    /// Lets the login attempts the throttle admits now go on.
    pub(super) fn admit_logins(&mut self, now: Instant) -> Vec<ConnId> {
        let admitted = self.throttle.admit(now);
        for conn in &admitted {
            self.tell(*conn, ToSession::LoginDelay(Duration::ZERO));
        }
        admitted
    }

    /// A client's stanza: routed now, unless it fans out to a room whose budgets hold or
    /// refuse it.
    pub(super) fn route_client(&mut self, now: Instant, from: Jid, peer: IpAddr, stanza: Element) {
        let Some(fanout) = self.router.fanout(&from, &stanza) else {
            self.router.route(&from, stanza, &mut self.deliveries);
            return;
        };
        let room = match &fanout {
            Fanout::Join { room, .. }
            | Fanout::Leave { room, .. }
            | Fanout::Broadcast { room, .. } => room.clone(),
        };
        let joining = matches!(fanout, Fanout::Join { .. });
        match self.budgets.admit(now, &from, peer, fanout, stanza) {
            Verdict::Now(stanza) => self.router.route(&from, stanza, &mut self.deliveries),
            Verdict::Queued { wake } => {
                self.metrics.held(joining);
                if let Some(at) = wake {
                    self.timers.push(Reverse((at, Timer::Room(room))));
                }
            }
            Verdict::Coalesced => self.metrics.coalesced += 1,
            Verdict::Cancelled => {}
            Verdict::Refused(mut stanza) => {
                self.metrics.refused(joining);
                stanza::set_attr(&mut stanza, "from", from.to_string());
                if joining {
                    let error = StanzaError::ServiceUnavailable;
                    crate::muc::reply_join_error(&stanza, error, &mut self.deliveries);
                } else {
                    reply_error(&stanza, StanzaError::PolicyViolation, &mut self.deliveries);
                }
            }
        }
    }

    /// Routes what `room`'s budgets let go now, and asks to be woken for the rest.
    pub(super) fn release_room(&mut self, now: Instant, room: &BareJid) {
        let audience = self.router.audience(room);
        let (released, wake) = self.budgets.release(now, room, audience);
        for Held { from, stanza } in released {
            self.router.route(&from, stanza, &mut self.deliveries);
        }
        if let Some(at) = wake {
            self.timers.push(Reverse((at, Timer::Room(room.clone()))));
        }
    }
}
