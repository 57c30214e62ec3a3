//! The focus as a sans-IO state machine: fed with stanzas, bridge responses, bridge events,
//! the time and (at construction) randomness; polled for stanzas to send and bridge requests
//! to run.
//!
//! One `Conference` per MUC room, placed on one bridge. Each participant (occupant) gets its
//! own Jingle session with that bridge as soon as it joins, even when alone (the Jitsi
//! client copes, and nobody waits for a second participant's allocation to start). What each
//! participant has been told about the others' sources is kept per session (`signaled`),
//! and every change in the conference ends in `Conference::sync_sources`, which sends each
//! active session the difference as `source-remove` then `source-add`. Sessions not yet
//! accepted are caught up when they become active, which is Jicofo's "queue until active"
//! without a queue.
//!
//! Bridge requests of one conference run one at a time, in order (`bridge_queue`), so an
//! expiry can never overtake the allocation it undoes; different conferences run in
//! parallel.
//!
//! Files: `request` (the conference-request IQ), `presence` (MUC presence, owner grants),
//! `mute` (remote mute, enforced on the bridge), `session` (Jingle sessions and source signalling), `conference` (state and
//! lifecycle), `bridge_queue` (placement and ordering), `outbox` (outputs).

mod bridge_queue;
mod conference;
mod metrics;
mod mute;
mod outbox;
mod presence;
mod request;
mod session;

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use convene_colibri::{BridgeError, BridgeEvent, BridgeId, BridgeResponse};
use jid::Jid;
use minidom::Element;
use rand::rngs::StdRng;
use tracing::{debug, info, warn};

use crate::Config;
use crate::ns;
use crate::stanza::{Condition, error_condition, iq_error, iq_result};
use bridge_queue::{BridgeQueues, Purpose};
use conference::Conference;
pub use metrics::{JingleErrorKind, Metrics};
use outbox::{Addresses, Outbox};
pub use outbox::{Output, RequestId, addresses};

/// The focus's nickname in every room; the Jitsi clients treat Jingle from any other
/// occupant as peer-to-peer.
pub const FOCUS_NICK: &str = "focus";

pub struct Focus {
    out: Outbox,
    conferences: HashMap<String, Conference>,
    /// Where new conferences may go, in registration order.
    bridges: Vec<BridgeId>,
    /// Set by [`Focus::shutdown`]: no new conferences.
    draining: bool,
}

impl Focus {
    /// A focus for `domain`. `rng` draws session, bridge-session and meeting ids: pass
    /// `StdRng::from_os_rng()` in production (they must stay unpredictable), a seeded one in
    /// tests.
    pub fn new(domain: &str, config: Config, rng: StdRng) -> Self {
        Focus {
            out: Outbox {
                addresses: Addresses::new(domain),
                config,
                outputs: VecDeque::new(),
                bridge: BridgeQueues::default(),
                next_id: 0,
                rng,
                counters: Default::default(),
            },
            conferences: HashMap::new(),
            bridges: Vec::new(),
            draining: false,
        }
    }

    /// Makes `bridge` available to new conferences.
    pub fn add_bridge(&mut self, bridge: BridgeId) {
        if !self.bridges.contains(&bridge) {
            self.bridges.push(bridge);
        }
    }

    /// Stops taking new conferences (their requests are answered `service-unavailable`);
    /// the current ones go on until their participants leave.
    pub fn shutdown(&mut self) {
        info!(
            conferences = self.conferences.len(),
            "the focus takes no new conferences"
        );
        self.draining = true;
    }

    pub fn conference_count(&self) -> usize {
        self.conferences.len()
    }

    pub fn metrics(&self) -> Metrics {
        let counters = &self.out.counters;
        Metrics {
            conferences: self.conferences.len(),
            participants: self
                .conferences
                .values()
                .map(|c| c.participants.len())
                .sum(),
            conference_requests: counters.conference_requests,
            jingle_errors: counters
                .jingle_errors
                .iter()
                .map(|(&kind, &count)| (kind, count))
                .collect(),
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.outputs.pop_front()
    }

    /// When [`Focus::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conferences
            .values()
            .filter_map(Conference::next_deadline)
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let mut ended = Vec::new();
        for conference in self.conferences.values_mut() {
            let _span = conference.span.clone().entered();
            conference.forget_late_joiners(now);
            conference.retry_allocations(&mut self.out, now);
            if !conference.joined && conference.join_deadline <= now {
                warn!("the MUC did not confirm the focus's join in time");
                ended.push(conference.room.clone());
            } else if conference.joined && conference.is_idle() {
                info!("nobody came; the conference ends");
                ended.push(conference.room.clone());
            }
        }
        for room in ended {
            self.end_conference(&room);
        }
    }

    pub fn handle_stanza(&mut self, now: Instant, stanza: Element) {
        match stanza.name() {
            "iq" => self.on_iq(now, stanza),
            "presence" => self.on_presence(now, stanza),
            _ => {}
        }
    }

    /// The outcome of request `id`, which ran on `bridge`.
    pub fn handle_bridge_response(
        &mut self,
        now: Instant,
        bridge: &BridgeId,
        id: RequestId,
        result: Result<BridgeResponse, BridgeError>,
    ) {
        let Some((conference_id, purpose)) = self.out.bridge.complete(bridge, id) else {
            warn!(?id, %bridge, "response to an unknown bridge request");
            return;
        };
        let conference = self.conferences.get_mut(&conference_id.0);
        let _span = conference.as_ref().map(|c| c.span.clone().entered());
        if result.is_err() {
            self.out
                .counters
                .jingle_error(JingleErrorKind::BridgeFailure);
        }
        match (purpose, result) {
            (Purpose::Allocate { nick, sid, .. }, Ok(BridgeResponse::EndpointAllocated(offer))) => {
                // A session restarted or ended meanwhile has already queued the expiry of
                // this allocation, so a stale response needs nothing.
                if let Some(conference) = conference {
                    conference.on_allocated(&mut self.out, &nick, &sid, &offer);
                }
            }
            (Purpose::Allocate { nick, sid, .. }, other) => {
                warn!(%bridge, %nick, ?other, "the bridge could not allocate an endpoint");
                if let Some(conference) = conference {
                    conference.on_allocation_failed(now, &nick, &sid);
                }
            }
            (Purpose::Other, Err(error)) => {
                warn!(%bridge, %error, "bridge request failed");
            }
            (Purpose::Other, Ok(_)) => {}
        }
        self.out.pump(bridge, &conference_id);
    }

    /// An event from `bridge`; events about conferences placed elsewhere are ignored.
    pub fn handle_bridge_event(&mut self, now: Instant, bridge: &BridgeId, event: BridgeEvent) {
        match event {
            BridgeEvent::EndpointExpired {
                conference,
                endpoint,
            } => match self.conferences.get_mut(&conference.0) {
                Some(conference) if conference.bridge == *bridge => {
                    let _span = conference.span.clone().entered();
                    conference.on_endpoint_expired(&mut self.out, now, &endpoint.0);
                }
                _ => {
                    debug!(%bridge, conference = %conference.0, "event for a conference not on this bridge")
                }
            },
        }
    }

    /// Removes the conference of `room` and ends it on the bridge and in the room.
    fn end_conference(&mut self, room: &str) {
        if let Some(mut conference) = self.conferences.remove(room) {
            let _span = conference.span.clone().entered();
            conference.close(&mut self.out);
        }
    }

    fn on_iq(&mut self, now: Instant, iq: Element) {
        let (Some(typ), Some(from)) = (iq.attr("type"), iq.attr("from")) else {
            return;
        };
        match typ {
            "result" => return,
            "error" => {
                debug!(id = ?iq.attr("id"), %from, condition = %error_condition(&iq), "IQ refused");
                return;
            }
            "get" | "set" => {}
            _ => return,
        }
        let reply = {
            let Some(payload) = iq.children().next() else {
                self.out
                    .send(iq_error(&iq, Condition::BadRequest, None, Some("empty IQ")));
                return;
            };
            let to_component = iq.attr("to") == Some(self.out.addresses.component.as_str());
            if payload.is("ping", ns::PING) {
                Ok(iq_result(&iq, None))
            } else if typ != "set" {
                Err(Condition::ServiceUnavailable)
            } else if to_component && payload.is("conference", ns::FOCUS) {
                self.on_conference_request(now, &iq, payload);
                return;
            } else if !to_component && payload.is("jingle", ns::JINGLE) {
                self.on_jingle(now, &iq, payload);
                return;
            } else if let Some(media) = (!to_component && payload.name() == "mute")
                .then(|| mute::Media::from_ns(&payload.ns()))
                .flatten()
            {
                self.on_mute(&iq, payload, media);
                return;
            } else {
                Err(Condition::ServiceUnavailable)
            }
        };
        let stanza = reply.unwrap_or_else(|condition| iq_error(&iq, condition, None, None));
        self.out.send(stanza);
    }

    /// Parses `from` as an occupant JID of one of our conferences: `(room, nick)`.
    fn occupant(&self, from: &str) -> Option<(String, String)> {
        let jid = Jid::new(from).ok()?;
        let nick = jid.resource()?.as_str().to_owned();
        let room = jid.to_bare().to_string();
        self.conferences.contains_key(&room).then_some((room, nick))
    }
}
