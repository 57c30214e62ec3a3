//! The conference request (`<conference xmlns="http://jitsi.org/protocol/focus">` to
//! `focus.D`): the client asks for a room, the focus joins it and answers once it is in.

use std::time::Instant;

use jid::{BareJid, Jid};
use minidom::Element;
use tracing::{debug, info, info_span, warn};

use super::Focus;
use super::bridge_queue::select_bridge;
use super::conference::{Conference, JOIN_GRACE, JOIN_TIMEOUT};
use crate::stanza::{Condition, iq_error};

impl Focus {
    pub(super) fn on_conference_request(
        &mut self,
        now: Instant,
        request: &Element,
        payload: &Element,
    ) {
        self.out.counters.conference_requests += 1;
        let room = payload
            .attr("room")
            .and_then(|room| BareJid::new(room).ok())
            .filter(|room| {
                room.node().is_some() && room.domain().as_str() == self.out.addresses.muc
            });
        let Some(room) = room else {
            self.refuse(
                request,
                Condition::BadRequest,
                "'room' must be a room of this server's MUC service",
            );
            return;
        };
        let room = room.to_string();
        if !self.conferences.contains_key(&room) && !self.may_open(request) {
            // Jicofo's answer to a guest before a host is in: the clients wait for the
            // host and ask again (lib-jitsi-meet: AUTHENTICATION_REQUIRED, every 5 s).
            debug!(%room, "a guest asks for a room no host opened");
            self.refuse(
                request,
                Condition::NotAuthorized,
                "not authorized user domain",
            );
            return;
        }
        if !self.conferences.contains_key(&room)
            && let Err((condition, text)) = self.open_conference(now, &room)
        {
            self.refuse(request, condition, text);
            return;
        }
        let conference = self
            .conferences
            .get_mut(&room)
            .expect("present or just opened");
        let _span = conference.span.clone().entered();
        conference.waiting.push(request.clone());
        if let Some(client) = request.attr("from").and_then(|from| Jid::new(from).ok()) {
            conference.expected.retain(|(jid, _)| *jid != client);
            conference.expected.push((client, now + JOIN_GRACE));
        }
        if conference.joined {
            conference.answer_waiting(&mut self.out, true);
        }
    }

    /// Whether the sender of `request` may open a conference: anyone without
    /// authentication, else only users of the login domain (Jicofo's identity check).
    fn may_open(&self, request: &Element) -> bool {
        !self.out.config.authentication
            || request
                .attr("from")
                .and_then(|from| Jid::new(from).ok())
                .is_some_and(|from| from.domain().as_str() == self.out.addresses.login_domain)
    }

    /// Places a new conference for `room` on a bridge and joins the room; or says why not.
    fn open_conference(
        &mut self,
        now: Instant,
        room: &str,
    ) -> Result<(), (Condition, &'static str)> {
        if self.draining {
            debug!("shutting down; refusing a new conference");
            return Err((Condition::ServiceUnavailable, "the focus is shutting down"));
        }
        if self.conferences.len() >= self.out.config.max_conferences {
            warn!("too many conferences; refusing a new one");
            return Err((Condition::ResourceConstraint, "too many conferences"));
        }
        let placed = self.conferences.values().map(|c| &c.bridge);
        let Some(bridge) = select_bridge(&self.bridges, placed).cloned() else {
            warn!("no bridge available; refusing a new conference");
            return Err((Condition::ServiceUnavailable, "no bridge available"));
        };
        let meeting = self.out.random_id(16);
        debug!(%room, %meeting, %bridge, "new conference");
        let span = info_span!("conference", %meeting);
        let conference = Conference::new(room.to_owned(), bridge, span, now + JOIN_TIMEOUT);
        let _span = conference.span.clone().entered();
        info!("focus joins the room");
        conference.join_room(&mut self.out);
        self.conferences.insert(room.to_owned(), conference);
        Ok(())
    }

    fn refuse(&mut self, request: &Element, condition: Condition, text: &str) {
        self.out
            .send(iq_error(request, condition, None, Some(text)));
    }
}
