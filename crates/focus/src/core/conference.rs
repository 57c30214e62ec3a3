//! A conference's state (its room, bridge, participants and their sessions) and its
//! lifecycle: the focus's join and leave, the answers to waiting conference requests,
//! deadlines and the end on the bridge.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use convene_colibri::{BridgeId, BridgeRequest, ConferenceId, SourceSet};
use jid::{BareJid, Jid};
use minidom::Element;
use tracing::Span;

use super::FOCUS_NICK;
use super::bridge_queue::Purpose;
use super::mute::Media;
use super::outbox::Outbox;
use crate::codecs::VideoCodec;
use crate::muc::{Affiliation, Role};
use crate::ns;
use crate::stanza::iq_result;
use crate::xml::ElementExt;

/// How long the MUC may take to confirm the focus's join before the conference request is
/// answered `ready="false"` (the client then retries with back-off).
pub(super) const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client that was told the room is ready may take to join it. Until then (or
/// until it joins) the conference stays up even with nobody in the room, so that the focus
/// neither leaves under a joining client's feet nor stays forever for one that never comes.
pub(super) const JOIN_GRACE: Duration = Duration::from_secs(20);
/// Session restarts allowed per participant within [`RESTART_WINDOW`] (as Jicofo's
/// `restart-request-rate-limits`), whether the client asks or the bridge drops it.
const MAX_RESTARTS: usize = 3;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// Delay before asking the bridge again for an endpoint it failed to allocate.
const ALLOCATION_RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SessionState {
    /// Waiting for the bridge to allocate the endpoint.
    Allocating,
    /// `session-initiate` sent, waiting for `session-accept`.
    Offered,
    Active,
}

pub(super) struct Session {
    pub sid: String,
    pub bridge_session: String,
    pub state: SessionState,
    /// What this participant has been told about each other owner's sources.
    pub signaled: BTreeMap<String, SourceSet>,
}

pub(super) struct Participant {
    pub nick: String,
    pub real_jid: Option<BareJid>,
    pub role: Role,
    pub affiliation: Affiliation,
    pub session: Option<Session>,
    /// The sources this participant sends, as accepted.
    pub sources: SourceSet,
    /// The video codecs it can use, preferred first, from its presence.
    pub codecs: Option<Vec<VideoCodec>>,
    restarts: VecDeque<Instant>,
    /// When to ask the bridge again after a failed allocation.
    retry_at: Option<Instant>,
    /// What a moderator muted and the participant has not unmuted since.
    pub force_muted: Vec<Media>,
}

impl Participant {
    pub fn new(
        nick: &str,
        real_jid: Option<BareJid>,
        role: Role,
        affiliation: Affiliation,
    ) -> Self {
        Participant {
            nick: nick.to_owned(),
            real_jid,
            role,
            affiliation,
            session: None,
            sources: SourceSet::default(),
            codecs: None,
            restarts: VecDeque::new(),
            retry_at: None,
            force_muted: Vec::new(),
        }
    }

    pub fn is_moderator(&self) -> bool {
        self.role == Role::Moderator || self.affiliation == Affiliation::Owner
    }

    /// Records a restart unless the rate limit forbids it.
    pub fn allow_restart(&mut self, now: Instant) -> bool {
        while self
            .restarts
            .front()
            .is_some_and(|&at| now.duration_since(at) >= RESTART_WINDOW)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() >= MAX_RESTARTS {
            return false;
        }
        self.restarts.push_back(now);
        true
    }
}

pub(super) struct Conference {
    pub room: String,
    /// The bridge every endpoint of this conference is on.
    pub bridge: BridgeId,
    /// The span of all work done for this conference, named by a random meeting id so that
    /// logs can follow one conference without naming its room.
    pub span: Span,
    pub joined: bool,
    pub join_deadline: Instant,
    /// Conference requests waiting for the focus to be in the room.
    pub waiting: Vec<Element>,
    /// In join order: the first one is elected owner.
    pub participants: Vec<Participant>,
    /// A participant to whom owner was granted and whose new presence has not come yet.
    pub owner_granted: Option<String>,
    /// Clients told the room is ready that have not joined yet, with their deadline.
    pub expected: Vec<(Jid, Instant)>,
    /// Whether any endpoint was ever allocated, so the bridge knows the conference.
    pub used_bridge: bool,
    /// The bridge's own (feedback) sources, which no participant may claim either.
    pub bridge_sources: SourceSet,
}

impl Conference {
    pub fn new(room: String, bridge: BridgeId, span: Span, join_deadline: Instant) -> Self {
        Conference {
            room,
            bridge,
            span,
            joined: false,
            join_deadline,
            waiting: Vec::new(),
            participants: Vec::new(),
            owner_granted: None,
            expected: Vec::new(),
            used_bridge: false,
            bridge_sources: SourceSet::default(),
        }
    }

    pub fn occupant_jid(&self, nick: &str) -> String {
        format!("{}/{nick}", self.room)
    }

    pub fn participant_mut(&mut self, nick: &str) -> Option<&mut Participant> {
        self.participants.iter_mut().find(|p| p.nick == nick)
    }

    pub fn conference_id(&self) -> ConferenceId {
        ConferenceId(self.room.clone())
    }

    pub fn join_room(&self, out: &mut Outbox) {
        let properties = Element::bare("conference-properties", ns::FOCUS).with_child(
            Element::bare("property", ns::FOCUS)
                .with_attr("key", "support-terminate-restart")
                .with_attr("value", "true"),
        );
        let presence = Element::bare("presence", ns::CLIENT)
            .with_attr("from", out.addresses.full.as_str())
            .with_attr("to", self.occupant_jid(FOCUS_NICK))
            .with_child(Element::bare("x", ns::MUC))
            .with_child(properties);
        out.send(presence);
    }

    fn leave_room(&self, out: &mut Outbox) {
        let presence = Element::bare("presence", ns::CLIENT)
            .with_attr("from", out.addresses.full.as_str())
            .with_attr("to", self.occupant_jid(FOCUS_NICK))
            .with_attr("type", "unavailable");
        out.send(presence);
    }

    /// Answers the conference requests that waited for the join (Jicofo's answer shape: the
    /// `authentication` and `externalAuth` properties tell the clients whether to offer a
    /// login while waiting for the host).
    pub fn answer_waiting(&mut self, out: &mut Outbox, ready: bool) {
        for request in self.waiting.drain(..) {
            let property = |name: &'static str, value: &'static str| {
                Element::bare("property", ns::FOCUS)
                    .with_attr("name", name)
                    .with_attr("value", value)
            };
            let answer = Element::bare("conference", ns::FOCUS)
                .with_attr("room", self.room.as_str())
                .with_attr("ready", if ready { "true" } else { "false" })
                .with_attr("focusjid", out.addresses.bare.as_str())
                .with_child(property(
                    "authentication",
                    bool_text(out.config.authentication),
                ))
                .with_child(property(
                    "externalAuth",
                    bool_text(out.config.external_auth),
                ));
            out.send(iq_result(&request, Some(answer)));
        }
    }

    /// Ends the conference on the bridge, and leaves the room if in it.
    pub fn close(&mut self, out: &mut Outbox) {
        if self.used_bridge {
            out.bridge(
                &self.bridge,
                BridgeRequest::ExpireConference {
                    conference: self.conference_id(),
                },
                Purpose::Other,
            );
        }
        self.leave_room(out);
        self.answer_waiting(out, false);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.joined {
            Some(self.join_deadline)
        } else if self.participants.is_empty() {
            self.expected.iter().map(|&(_, deadline)| deadline).min()
        } else {
            self.participants.iter().filter_map(|p| p.retry_at).min()
        }
    }

    /// The bridge failed to allocate `nick`'s session `sid`: retry later, within the restart
    /// budget; then the participant stays without media until it re-joins.
    pub fn on_allocation_failed(&mut self, now: Instant, nick: &str, sid: &str) {
        if let Some(participant) = self.participant_mut(nick)
            && participant.session.as_ref().is_some_and(|s| s.sid == sid)
        {
            participant.session = None;
            if participant.allow_restart(now) {
                participant.retry_at = Some(now + ALLOCATION_RETRY);
            }
        }
    }

    /// Retries the allocations whose time has come.
    pub fn retry_allocations(&mut self, out: &mut Outbox, now: Instant) {
        let due: Vec<String> = self
            .participants
            .iter_mut()
            .filter(|p| p.retry_at.is_some_and(|at| at <= now))
            .map(|p| {
                p.retry_at = None;
                p.nick.clone()
            })
            .collect();
        for nick in due {
            self.start_session(out, &nick);
        }
    }

    pub fn forget_late_joiners(&mut self, now: Instant) {
        self.expected.retain(|&(_, deadline)| deadline > now);
    }

    /// Nobody in the room and nobody on the way.
    pub fn is_idle(&self) -> bool {
        self.participants.is_empty() && self.expected.is_empty()
    }
}

fn bool_text(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}
