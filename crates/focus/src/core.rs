//! The focus as a sans-IO state machine: fed with stanzas, bridge responses, bridge events
//! and the time; polled for stanzas to send and bridge requests to run.
//!
//! One [`Conference`] per MUC room. Each participant (occupant) gets its own Jingle session
//! with the bridge as soon as it joins, even when alone (the Jitsi client copes, and nobody
//! waits for a second participant's allocation to start). What each participant has been
//! told about the others' sources is kept per session (`signaled`), and every change in the
//! conference ends in [`Conference::sync_sources`], which sends each active session the
//! difference as `source-remove` then `source-add`. Sessions not yet accepted are caught up
//! when they become active, which is Jicofo's "queue until active" without a queue.
//!
//! Bridge requests of one conference run one at a time, in order ([`BridgeQueues`]), so an
//! expiry can never overtake the allocation it undoes; different conferences run in
//! parallel.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use convene_bridge::api::{
    BridgeError, BridgeEvent, BridgeRequest, BridgeResponse, ConferenceId, EndpointId,
    EndpointOffer, MediaKind, SourceSet,
};
use jid::{BareJid, Jid};
use minidom::Element;
use rand::Rng;
use rand::distr::Alphanumeric;
use tracing::{debug, info, warn};

use crate::Config;
use crate::jingle::{
    Action, BRIDGE_OWNER, BridgeSession, Content, Description, Jingle, Reason, Transport,
};
use crate::ns;
use crate::sources::{self, SourceError};
use crate::stanza::{Condition, error_condition, iq, iq_error, iq_result};
use crate::xml::{ElementExt, ParseError};

/// The focus's nickname in every room; the Jitsi clients treat Jingle from any other
/// occupant as peer-to-peer.
pub const FOCUS_NICK: &str = "focus";
/// How long the MUC may take to confirm the focus's join before the conference request is
/// answered `ready="false"` (the client then retries with back-off).
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client that was told the room is ready may take to join it. Until then (or
/// until it joins) the conference stays up even with nobody in the room, so that the focus
/// neither leaves under a joining client's feet nor stays forever for one that never comes.
const JOIN_GRACE: Duration = Duration::from_secs(20);
/// Session restarts allowed per participant within [`RESTART_WINDOW`] (as Jicofo's
/// `restart-request-rate-limits`), whether the client asks or the bridge drops it.
const MAX_RESTARTS: usize = 3;
/// Delay before asking the bridge again for an endpoint it failed to allocate.
const ALLOCATION_RETRY: Duration = Duration::from_secs(2);
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// Identifies a bridge request, so its response can be matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A stanza for the XMPP server.
    Stanza(Element),
    /// A request to run on the bridge; its outcome goes to [`Focus::handle_bridge_response`].
    Bridge {
        id: RequestId,
        request: BridgeRequest,
    },
}

/// The addresses of the focus, all derived from the XMPP domain.
#[derive(Debug, Clone)]
struct Addresses {
    /// `focus.D`, where clients send the conference request.
    component: String,
    /// `focus@auth.D`, announced as `focusjid`.
    bare: String,
    /// `focus@auth.D/focus`, the real JID in every room.
    full: String,
    /// `conference.D`, the only MUC service the focus serves.
    muc: String,
}

/// Everything that leaves the core, plus the state needed to produce it.
struct Outbox {
    addresses: Addresses,
    config: Config,
    outputs: VecDeque<Output>,
    bridge: BridgeQueues,
    next_id: u64,
}

impl Outbox {
    fn send(&mut self, stanza: Element) {
        self.outputs.push_back(Output::Stanza(stanza));
    }

    fn next_iq_id(&mut self) -> String {
        self.next_id += 1;
        format!("focus-{}", self.next_id)
    }

    /// Sends an IQ `set` to an occupant, from the focus's real JID (the MUC rewrites `from`
    /// to `room@conference.D/focus`).
    fn send_set(&mut self, to: &str, payload: Element) {
        let id = self.next_iq_id();
        let stanza = iq("set", &id, &self.addresses.full, to, payload);
        self.send(stanza);
    }

    fn bridge(&mut self, request: BridgeRequest, purpose: Purpose) {
        self.bridge
            .push(request, purpose, &mut self.next_id, &mut self.outputs);
    }
}

/// What a bridge response is for, when it matters.
#[derive(Debug, Clone)]
enum Purpose {
    Allocate {
        room: String,
        nick: String,
        sid: String,
    },
    Other,
}

#[derive(Default)]
struct ConferenceQueue {
    in_flight: Option<(RequestId, Purpose)>,
    waiting: VecDeque<(BridgeRequest, Purpose)>,
}

/// Per-conference FIFO of bridge requests with at most one in flight.
#[derive(Default)]
struct BridgeQueues {
    queues: HashMap<ConferenceId, ConferenceQueue>,
}

impl BridgeQueues {
    fn push(
        &mut self,
        request: BridgeRequest,
        purpose: Purpose,
        next_id: &mut u64,
        outputs: &mut VecDeque<Output>,
    ) {
        let conference = conference_of(&request).clone();
        let queue = self.queues.entry(conference.clone()).or_default();
        queue.waiting.push_back((request, purpose));
        self.pump(&conference, next_id, outputs);
    }

    fn pump(
        &mut self,
        conference: &ConferenceId,
        next_id: &mut u64,
        outputs: &mut VecDeque<Output>,
    ) {
        let Some(queue) = self.queues.get_mut(conference) else {
            return;
        };
        if queue.in_flight.is_some() {
            return;
        }
        match queue.waiting.pop_front() {
            Some((request, purpose)) => {
                *next_id += 1;
                let id = RequestId(*next_id);
                queue.in_flight = Some((id, purpose));
                outputs.push_back(Output::Bridge { id, request });
            }
            None => {
                self.queues.remove(conference);
            }
        }
    }

    /// Ends the in-flight request `id`; returns its conference and purpose.
    fn complete(&mut self, id: RequestId) -> Option<(ConferenceId, Purpose)> {
        self.queues.iter_mut().find_map(|(conference, queue)| {
            queue
                .in_flight
                .take_if(|(in_flight, _)| *in_flight == id)
                .map(|(_, purpose)| (conference.clone(), purpose))
        })
    }
}

fn conference_of(request: &BridgeRequest) -> &ConferenceId {
    match request {
        BridgeRequest::AllocateEndpoint { conference, .. }
        | BridgeRequest::ConfigureEndpoint { conference, .. }
        | BridgeRequest::AddRemoteCandidates { conference, .. }
        | BridgeRequest::AddSources { conference, .. }
        | BridgeRequest::RemoveSources { conference, .. }
        | BridgeRequest::ExpireEndpoint { conference, .. }
        | BridgeRequest::ExpireConference { conference } => conference,
    }
}

fn random_id(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionState {
    /// Waiting for the bridge to allocate the endpoint.
    Allocating,
    /// `session-initiate` sent, waiting for `session-accept`.
    Offered,
    Active,
}

struct Session {
    sid: String,
    bridge_session: String,
    state: SessionState,
    /// What this participant has been told about each other owner's sources.
    signaled: BTreeMap<String, SourceSet>,
}

struct Participant {
    nick: String,
    real_jid: Option<BareJid>,
    role: String,
    affiliation: String,
    session: Option<Session>,
    /// The sources this participant sends, as accepted.
    sources: SourceSet,
    restarts: VecDeque<Instant>,
    /// When to ask the bridge again after a failed allocation.
    retry_at: Option<Instant>,
}

impl Participant {
    fn is_moderator(&self) -> bool {
        self.role == "moderator" || self.affiliation == "owner"
    }

    /// Records a restart unless the rate limit forbids it.
    fn allow_restart(&mut self, now: Instant) -> bool {
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

/// A conference request waiting for the focus to be in the room.
struct WaitingRequest(Element);

struct Conference {
    room: String,
    joined: bool,
    join_deadline: Instant,
    waiting: Vec<WaitingRequest>,
    /// In join order: the first one is elected owner.
    participants: Vec<Participant>,
    /// A participant to whom owner was granted and whose new presence has not come yet.
    owner_granted: Option<String>,
    /// Clients told the room is ready that have not joined yet, with their deadline.
    expected: Vec<(Jid, Instant)>,
    /// Whether any endpoint was ever allocated, so the bridge knows the conference.
    used_bridge: bool,
    /// The bridge's own (feedback) sources, which no participant may claim either.
    bridge_sources: SourceSet,
}

/// Why a Jingle request was refused.
#[derive(Debug)]
struct Refusal {
    condition: Condition,
    unknown_session: bool,
    text: String,
}

impl Refusal {
    fn new(condition: Condition, text: impl Into<String>) -> Self {
        Refusal {
            condition,
            unknown_session: false,
            text: text.into(),
        }
    }

    fn unknown_session() -> Self {
        Refusal {
            condition: Condition::ItemNotFound,
            unknown_session: true,
            text: "unknown session".into(),
        }
    }
}

impl From<ParseError> for Refusal {
    fn from(error: ParseError) -> Self {
        Refusal::new(Condition::BadRequest, error.to_string())
    }
}

impl From<SourceError> for Refusal {
    fn from(error: SourceError) -> Self {
        Refusal::new(Condition::BadRequest, error.to_string())
    }
}

pub struct Focus {
    out: Outbox,
    conferences: HashMap<String, Conference>,
}

impl Addresses {
    fn new(domain: &str) -> Self {
        Addresses {
            component: format!("focus.{domain}"),
            bare: format!("focus@auth.{domain}"),
            full: format!("focus@auth.{domain}/{FOCUS_NICK}"),
            muc: format!("conference.{domain}"),
        }
    }
}

/// The addresses the XMPP server must route to the focus of `domain`: `focus.D`, where
/// clients send the conference request, and `focus@auth.D/focus`, its real JID in rooms.
pub fn addresses(domain: &str) -> Result<Vec<Jid>, jid::Error> {
    let addresses = Addresses::new(domain);
    [addresses.component, addresses.full]
        .iter()
        .map(|address| Jid::new(address))
        .collect()
}

impl Focus {
    pub fn new(domain: &str, config: Config) -> Self {
        Focus {
            out: Outbox {
                addresses: Addresses::new(domain),
                config,
                outputs: VecDeque::new(),
                bridge: BridgeQueues::default(),
                next_id: 0,
            },
            conferences: HashMap::new(),
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
            conference.forget_late_joiners(now);
            conference.retry_allocations(&mut self.out, now);
            if !conference.joined && conference.join_deadline <= now {
                warn!(room = %conference.room, "the MUC did not confirm the focus's join in time");
                ended.push(conference.room.clone());
            } else if conference.joined && conference.is_idle() {
                info!(room = %conference.room, "nobody came; the conference ends");
                ended.push(conference.room.clone());
            }
        }
        for room in ended {
            let mut conference = self.conferences.remove(&room).expect("collected above");
            conference.close(&mut self.out);
        }
    }

    pub fn handle_stanza(&mut self, now: Instant, stanza: Element) {
        match stanza.name() {
            "iq" => self.on_iq(now, stanza),
            "presence" => self.on_presence(now, stanza),
            _ => {}
        }
    }

    pub fn handle_bridge_response(
        &mut self,
        now: Instant,
        id: RequestId,
        result: Result<BridgeResponse, BridgeError>,
    ) {
        let Some((conference, purpose)) = self.out.bridge.complete(id) else {
            warn!(?id, "response to an unknown bridge request");
            return;
        };
        match (purpose, result) {
            (
                Purpose::Allocate { room, nick, sid },
                Ok(BridgeResponse::EndpointAllocated(offer)),
            ) => {
                // A session restarted or ended meanwhile has already queued the expiry of
                // this allocation, so a stale response needs nothing.
                if let Some(conference) = self.conferences.get_mut(&room) {
                    conference.on_allocated(&mut self.out, &nick, &sid, &offer);
                }
            }
            (Purpose::Allocate { room, nick, sid }, other) => {
                warn!(%room, %nick, ?other, "the bridge could not allocate an endpoint");
                if let Some(conference) = self.conferences.get_mut(&room)
                    && let Some(participant) = conference.participant_mut(&nick)
                    && participant.session.as_ref().is_some_and(|s| s.sid == sid)
                {
                    participant.session = None;
                    // Retry later, within the restart budget; then the participant stays
                    // without media until it re-joins.
                    if participant.allow_restart(now) {
                        participant.retry_at = Some(now + ALLOCATION_RETRY);
                    }
                }
            }
            (Purpose::Other, Err(error)) => {
                warn!(conference = %conference.0, %error, "bridge request failed");
            }
            (Purpose::Other, Ok(_)) => {}
        }
        let Outbox {
            bridge,
            next_id,
            outputs,
            ..
        } = &mut self.out;
        bridge.pump(&conference, next_id, outputs);
    }

    pub fn handle_bridge_event(&mut self, now: Instant, event: BridgeEvent) {
        match event {
            BridgeEvent::EndpointExpired {
                conference,
                endpoint,
            } => {
                if let Some(conference) = self.conferences.get_mut(&conference.0) {
                    conference.on_endpoint_expired(&mut self.out, now, &endpoint.0);
                }
            }
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
            } else if !to_component && payload.name() == "mute" && is_mute_ns(&payload.ns()) {
                self.on_mute(&iq, payload);
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

    fn on_conference_request(&mut self, now: Instant, request: &Element, payload: &Element) {
        let room = payload
            .attr("room")
            .and_then(|room| BareJid::new(room).ok())
            .filter(|room| {
                room.node().is_some() && room.domain().as_str() == self.out.addresses.muc
            });
        let Some(room) = room else {
            self.out.send(iq_error(
                request,
                Condition::BadRequest,
                None,
                Some("'room' must be a room of this server's MUC service"),
            ));
            return;
        };
        let room = room.to_string();
        if !self.conferences.contains_key(&room)
            && self.conferences.len() >= self.out.config.max_conferences
        {
            warn!(%room, "too many conferences; refusing a new one");
            self.out.send(iq_error(
                request,
                Condition::ResourceConstraint,
                None,
                Some("too many conferences"),
            ));
            return;
        }
        let conference = self.conferences.entry(room.clone()).or_insert_with(|| {
            info!(%room, "focus joins the room");
            let conference = Conference {
                room: room.clone(),
                joined: false,
                join_deadline: now + JOIN_TIMEOUT,
                waiting: Vec::new(),
                participants: Vec::new(),
                owner_granted: None,
                expected: Vec::new(),
                used_bridge: false,
                bridge_sources: SourceSet::default(),
            };
            conference.join_room(&mut self.out);
            conference
        });
        conference.waiting.push(WaitingRequest(request.clone()));
        if let Some(client) = request.attr("from").and_then(|from| Jid::new(from).ok()) {
            conference.expected.retain(|(jid, _)| *jid != client);
            conference.expected.push((client, now + JOIN_GRACE));
        }
        if conference.joined {
            conference.answer_waiting(&mut self.out, true);
        }
    }

    fn on_presence(&mut self, now: Instant, presence: Element) {
        let Some((room, nick)) = presence.attr("from").and_then(|from| self.occupant(from)) else {
            return;
        };
        let typ = presence.attr("type");
        let conference = self
            .conferences
            .get_mut(&room)
            .expect("occupant() checked the room exists");
        if nick == FOCUS_NICK {
            match typ {
                Some("error") if !conference.joined => {
                    warn!(%room, "the MUC refused the focus's join");
                    let mut conference = self.conferences.remove(&room).expect("present");
                    conference.answer_waiting(&mut self.out, false);
                }
                // Before the join is confirmed, this is the echo of leaving the previous
                // conference in this room.
                Some("unavailable") if conference.joined => {
                    // Kicked, or the room was destroyed: the conference is over.
                    warn!(%room, "the focus was removed from the room");
                    let mut conference = self.conferences.remove(&room).expect("present");
                    conference.close(&mut self.out);
                }
                None if !conference.joined => {
                    info!(%room, "focus joined the room");
                    conference.joined = true;
                    conference.answer_waiting(&mut self.out, true);
                }
                _ => {}
            }
            return;
        }
        match typ {
            None => conference.on_occupant_presence(&mut self.out, &nick, &presence),
            Some("unavailable") => {
                conference.on_occupant_left(&mut self.out, &nick);
                conference.forget_late_joiners(now);
                if conference.is_idle() {
                    info!(%room, "last participant left; the conference ends");
                    let mut conference = self.conferences.remove(&room).expect("present");
                    conference.close(&mut self.out);
                }
            }
            _ => {}
        }
    }

    fn on_jingle(&mut self, now: Instant, request: &Element, payload: &Element) {
        let occupant = request.attr("from").and_then(|from| self.occupant(from));
        let result = match occupant {
            Some((room, nick)) => {
                let conference = self.conferences.get_mut(&room).expect("occupant() checked");
                Jingle::parse(payload)
                    .map_err(Refusal::from)
                    .and_then(|jingle| {
                        conference.on_jingle(&mut self.out, now, request, &nick, jingle)
                    })
            }
            None => Err(Refusal::unknown_session()),
        };
        if let Err(refusal) = result {
            debug!(from = ?request.attr("from"), ?refusal, "Jingle request refused");
            let extra = refusal
                .unknown_session
                .then(|| Element::bare("unknown-session", ns::JINGLE_ERRORS));
            self.out.send(iq_error(
                request,
                refusal.condition,
                extra,
                Some(&refusal.text),
            ));
        }
    }

    /// A moderator mutes someone (`LJM: JitsiConference.ts muteParticipant`), or a
    /// participant unmutes itself after having been muted.
    fn on_mute(&mut self, request: &Element, payload: &Element) {
        let reply = match request.attr("from").and_then(|from| self.occupant(from)) {
            None => Err(Condition::NotAllowed),
            Some((room, nick)) => {
                let conference = &self.conferences[&room];
                conference.on_mute(&mut self.out, &nick, payload)
            }
        };
        let stanza = match reply {
            Ok(()) => iq_result(request, None),
            Err(condition) => iq_error(request, condition, None, None),
        };
        self.out.send(stanza);
    }
}

fn is_mute_ns(namespace: &str) -> bool {
    [ns::MUTE_AUDIO, ns::MUTE_VIDEO, ns::MUTE_DESKTOP].contains(&namespace)
}

impl Conference {
    fn occupant_jid(&self, nick: &str) -> String {
        format!("{}/{nick}", self.room)
    }

    fn participant_mut(&mut self, nick: &str) -> Option<&mut Participant> {
        self.participants.iter_mut().find(|p| p.nick == nick)
    }

    fn conference_id(&self) -> ConferenceId {
        ConferenceId(self.room.clone())
    }

    fn join_room(&self, out: &mut Outbox) {
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

    /// Answers the conference requests that waited for the join.
    fn answer_waiting(&mut self, out: &mut Outbox, ready: bool) {
        for WaitingRequest(request) in self.waiting.drain(..) {
            let property = |name: &'static str, value: &'static str| {
                Element::bare("property", ns::FOCUS)
                    .with_attr("name", name)
                    .with_attr("value", value)
            };
            let answer = Element::bare("conference", ns::FOCUS)
                .with_attr("room", self.room.as_str())
                .with_attr("ready", if ready { "true" } else { "false" })
                .with_attr("focusjid", out.addresses.bare.as_str())
                .with_child(property("authentication", "false"))
                .with_child(property("externalAuth", "false"));
            out.send(iq_result(&request, Some(answer)));
        }
    }

    /// Ends the conference on the bridge, and leaves the room if in it.
    fn close(&mut self, out: &mut Outbox) {
        if self.used_bridge {
            out.bridge(
                BridgeRequest::ExpireConference {
                    conference: self.conference_id(),
                },
                Purpose::Other,
            );
        }
        self.leave_room(out);
        self.answer_waiting(out, false);
    }

    fn next_deadline(&self) -> Option<Instant> {
        if !self.joined {
            Some(self.join_deadline)
        } else if self.participants.is_empty() {
            self.expected.iter().map(|&(_, deadline)| deadline).min()
        } else {
            self.participants.iter().filter_map(|p| p.retry_at).min()
        }
    }

    /// Retries the allocations whose time has come.
    fn retry_allocations(&mut self, out: &mut Outbox, now: Instant) {
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

    fn forget_late_joiners(&mut self, now: Instant) {
        self.expected.retain(|&(_, deadline)| deadline > now);
    }

    /// Nobody in the room and nobody on the way.
    fn is_idle(&self) -> bool {
        self.participants.is_empty() && self.expected.is_empty()
    }

    fn on_occupant_presence(&mut self, out: &mut Outbox, nick: &str, presence: &Element) {
        let item = presence
            .get_child("x", ns::MUC_USER)
            .and_then(|x| x.get_child("item", ns::MUC_USER));
        let attr = |name: &str| {
            item.and_then(|item| item.attr(name))
                .unwrap_or("none")
                .to_owned()
        };
        let full_jid = item
            .and_then(|item| item.attr("jid"))
            .and_then(|jid| Jid::new(jid).ok());
        if let Some(jid) = &full_jid {
            self.expected.retain(|(expected, _)| expected != jid);
        }
        let real_jid = full_jid.map(|jid| jid.to_bare());
        let (role, affiliation) = (attr("role"), attr("affiliation"));
        match self.participant_mut(nick) {
            Some(participant) => {
                participant.role = role;
                participant.affiliation = affiliation;
                if real_jid.is_some() {
                    participant.real_jid = real_jid;
                }
            }
            None => {
                info!(room = %self.room, %nick, "participant joined");
                self.participants.push(Participant {
                    nick: nick.to_owned(),
                    real_jid,
                    role,
                    affiliation,
                    session: None,
                    sources: SourceSet::default(),
                    restarts: VecDeque::new(),
                    retry_at: None,
                });
                self.start_session(out, nick);
            }
        }
        if self
            .participants
            .iter()
            .any(|p| p.is_moderator() && Some(&p.nick) == self.owner_granted.as_ref())
        {
            self.owner_granted = None;
        }
        self.elect_owner(out);
    }

    fn on_occupant_left(&mut self, out: &mut Outbox, nick: &str) {
        let Some(index) = self.participants.iter().position(|p| p.nick == nick) else {
            return;
        };
        info!(room = %self.room, %nick, "participant left");
        self.end_session(out, nick, true);
        self.participants.remove(index);
        if self.owner_granted.as_deref() == Some(nick) {
            self.owner_granted = None;
        }
        self.sync_sources(out);
        self.elect_owner(out);
    }

    /// Grants `owner` to the longest-present participant when nobody moderates (Jicofo's
    /// "auto owner").
    fn elect_owner(&mut self, out: &mut Outbox) {
        if !out.config.auto_owner
            || self.owner_granted.is_some()
            || self.participants.iter().any(Participant::is_moderator)
        {
            return;
        }
        let Some(next) = self.participants.iter().find(|p| p.real_jid.is_some()) else {
            return;
        };
        let jid = next.real_jid.as_ref().expect("filtered").to_string();
        info!(room = %self.room, nick = %next.nick, "granting owner");
        self.owner_granted = Some(next.nick.clone());
        let query = Element::bare("query", ns::MUC_ADMIN).with_child(
            Element::bare("item", ns::MUC_ADMIN)
                .with_attr("affiliation", "owner")
                .with_attr("jid", jid),
        );
        out.send_set(&self.room, query);
    }

    fn start_session(&mut self, out: &mut Outbox, nick: &str) {
        let conference = self.conference_id();
        let room = self.room.clone();
        self.used_bridge = true;
        let Some(participant) = self.participant_mut(nick) else {
            return;
        };
        let sid = random_id(12);
        participant.session = Some(Session {
            sid: sid.clone(),
            bridge_session: random_id(8),
            state: SessionState::Allocating,
            signaled: BTreeMap::new(),
        });
        out.bridge(
            BridgeRequest::AllocateEndpoint {
                conference,
                endpoint: EndpointId(nick.to_owned()),
            },
            Purpose::Allocate {
                room,
                nick: nick.to_owned(),
                sid,
            },
        );
    }

    /// Drops a participant's session and sources; `expire` also frees its bridge endpoint.
    /// The caller then runs [`Conference::sync_sources`].
    fn end_session(&mut self, out: &mut Outbox, nick: &str, expire: bool) {
        let conference = self.conference_id();
        let Some(participant) = self.participant_mut(nick) else {
            return;
        };
        participant.sources = SourceSet::default();
        if participant.session.take().is_some() && expire {
            out.bridge(
                BridgeRequest::ExpireEndpoint {
                    conference,
                    endpoint: EndpointId(nick.to_owned()),
                },
                Purpose::Other,
            );
        }
    }

    /// What `receiver` should know: the receiver view of every other participant's sources.
    fn desired_for(&self, receiver: &str) -> BTreeMap<String, SourceSet> {
        self.participants
            .iter()
            .filter(|p| p.nick != receiver && !p.sources.is_empty())
            .map(|p| (p.nick.clone(), p.sources.receiver_view()))
            .collect()
    }

    fn on_allocated(&mut self, out: &mut Outbox, nick: &str, sid: &str, offer: &EndpointOffer) {
        self.bridge_sources = offer.feedback_sources.clone();
        let desired = self.desired_for(nick);
        let to = self.occupant_jid(nick);
        let Some(participant) = self.participant_mut(nick) else {
            return;
        };
        let Some(session) = participant
            .session
            .as_mut()
            .filter(|s| s.sid == sid && s.state == SessionState::Allocating)
        else {
            return;
        };
        let transport = Transport::offer(&offer.transport, &offer.colibri_ws_url);
        let contents: Vec<Content> = offer
            .media
            .iter()
            .map(|media| {
                let mut description = Description::offer(media);
                description.add_sources(BRIDGE_OWNER, &offer.feedback_sources);
                for (owner, set) in &desired {
                    description.add_sources(owner, set);
                }
                Content {
                    name: description.media.clone(),
                    creator: Some("initiator".into()),
                    senders: Some("both".into()),
                    description: Some(description),
                    transport: Some(transport.clone()),
                }
            })
            .collect();
        let jingle = Jingle {
            action: Action::SessionInitiate,
            sid: sid.to_owned(),
            initiator: Some(out.addresses.full.clone()),
            responder: None,
            bundle: Some(contents.iter().map(|c| c.name.clone()).collect()),
            contents,
            bridge_session: Some(BridgeSession {
                id: Some(session.bridge_session.clone()),
                restart: false,
                ice_restart: false,
            }),
            reason: None,
            json_sources: Vec::new(),
        };
        session.signaled = desired;
        session.state = SessionState::Offered;
        debug!(room = %self.room, %nick, %sid, "sending session-initiate");
        out.send_set(&to, jingle.to_element());
    }

    /// Brings every active session up to date with the others' sources.
    fn sync_sources(&mut self, out: &mut Outbox) {
        let receivers: Vec<(String, BTreeMap<String, SourceSet>)> = self
            .participants
            .iter()
            .filter(|p| {
                p.session
                    .as_ref()
                    .is_some_and(|s| s.state == SessionState::Active)
            })
            .map(|p| (p.nick.clone(), self.desired_for(&p.nick)))
            .collect();
        for (nick, desired) in receivers {
            let to = self.occupant_jid(&nick);
            let session = self
                .participant_mut(&nick)
                .and_then(|p| p.session.as_mut())
                .expect("filtered above");
            let mut removed = BTreeMap::new();
            let mut added = BTreeMap::new();
            let empty = SourceSet::default();
            for owner in session.signaled.keys().chain(desired.keys()) {
                let old = session.signaled.get(owner).unwrap_or(&empty);
                let new = desired.get(owner).unwrap_or(&empty);
                let (gone, new) = sources::diff(old, new);
                if !gone.is_empty() {
                    removed.insert(owner.clone(), gone);
                }
                if !new.is_empty() {
                    added.insert(owner.clone(), new);
                }
            }
            for (action, sets) in [(Action::SourceRemove, removed), (Action::SourceAdd, added)] {
                if sets.is_empty() {
                    continue;
                }
                let jingle = source_update(action, &session.sid, &sets);
                out.send_set(&to, jingle.to_element());
            }
            session.signaled = desired;
        }
    }

    fn on_jingle(
        &mut self,
        out: &mut Outbox,
        now: Instant,
        request: &Element,
        nick: &str,
        jingle: Jingle,
    ) -> Result<(), Refusal> {
        let conference = self.conference_id();
        let endpoint = EndpointId(nick.to_owned());
        let others: Vec<SourceSet> = self
            .participants
            .iter()
            .filter(|p| p.nick != nick)
            .map(|p| p.sources.clone())
            .chain([self.bridge_sources.clone()])
            .collect();
        let participant = self
            .participant_mut(nick)
            .ok_or_else(Refusal::unknown_session)?;
        let session = participant
            .session
            .as_mut()
            .filter(|s| s.sid == jingle.sid)
            .ok_or_else(Refusal::unknown_session)?;
        let state = session.state;
        let require_active = || {
            if state == SessionState::Active {
                Ok(())
            } else {
                Err(Refusal::new(
                    Condition::UnexpectedRequest,
                    "the session is not active yet",
                ))
            }
        };
        match jingle.action {
            Action::SessionAccept => {
                if state != SessionState::Offered {
                    return Err(Refusal::new(
                        Condition::UnexpectedRequest,
                        "the session was already accepted",
                    ));
                }
                let transport = jingle
                    .transport()
                    .ok_or(ParseError::MissingElement {
                        element: "transport",
                    })?
                    .description()?;
                let accepted = jingle.sources();
                sources::validate(nick, &accepted, &others)?;
                out.send(iq_result(request, None));
                session.state = SessionState::Active;
                participant.sources = accepted.clone();
                info!(room = %self.room, %nick, "session accepted");
                out.bridge(
                    BridgeRequest::ConfigureEndpoint {
                        conference,
                        endpoint,
                        transport,
                        media: jingle.media(),
                        sources: accepted,
                    },
                    Purpose::Other,
                );
                self.sync_sources(out);
            }
            Action::TransportInfo => {
                out.send(iq_result(request, None));
                let candidates = jingle.candidates();
                if state != SessionState::Allocating && !candidates.is_empty() {
                    out.bridge(
                        BridgeRequest::AddRemoteCandidates {
                            conference,
                            endpoint,
                            candidates,
                        },
                        Purpose::Other,
                    );
                }
            }
            Action::SourceAdd => {
                require_active()?;
                let added = jingle.sources();
                let updated = sources::add(&participant.sources, &added);
                sources::validate(nick, &updated, &others)?;
                out.send(iq_result(request, None));
                participant.sources = updated;
                out.bridge(
                    BridgeRequest::AddSources {
                        conference,
                        endpoint,
                        sources: added,
                    },
                    Purpose::Other,
                );
                self.sync_sources(out);
            }
            Action::SourceRemove => {
                require_active()?;
                let removed = jingle.sources();
                let updated = sources::remove(&participant.sources, &removed)?;
                sources::validate(nick, &updated, &others)?;
                out.send(iq_result(request, None));
                participant.sources = updated;
                out.bridge(
                    BridgeRequest::RemoveSources {
                        conference,
                        endpoint,
                        sources: removed,
                    },
                    Purpose::Other,
                );
                self.sync_sources(out);
            }
            Action::SessionTerminate => {
                let restart = jingle.bridge_session.as_ref().filter(|b| b.restart);
                if let Some(requested) = restart {
                    if requested.id.as_deref() != Some(session.bridge_session.as_str()) {
                        return Err(Refusal::new(
                            Condition::ItemNotFound,
                            "unknown bridge session",
                        ));
                    }
                    if !participant.allow_restart(now) {
                        return Err(Refusal::new(
                            Condition::ResourceConstraint,
                            "too many session restarts",
                        ));
                    }
                }
                out.send(iq_result(request, None));
                info!(room = %self.room, %nick, restart = restart.is_some(), "session terminated by the participant");
                self.end_session(out, nick, true);
                self.sync_sources(out);
                if restart.is_some() {
                    self.start_session(out, nick);
                }
            }
            Action::SessionInfo => {
                if jingle
                    .bridge_session
                    .as_ref()
                    .is_some_and(|b| b.ice_restart)
                {
                    // The client falls back to a full restart (session-terminate).
                    return Err(Refusal::new(
                        Condition::FeatureNotImplemented,
                        "in-place ICE restart is not supported",
                    ));
                }
                out.send(iq_result(request, None));
            }
            Action::SessionInitiate => {
                return Err(Refusal::new(
                    Condition::BadRequest,
                    "the focus initiates sessions",
                ));
            }
        }
        Ok(())
    }

    /// The bridge dropped a participant's endpoint (ICE failed, idle): end the session and
    /// offer a fresh one, as Jicofo's "restart Jingle" re-invite.
    fn on_endpoint_expired(&mut self, out: &mut Outbox, now: Instant, nick: &str) {
        let to = self.occupant_jid(nick);
        let Some(participant) = self.participant_mut(nick) else {
            return;
        };
        let Some(session) = participant
            .session
            .as_ref()
            .filter(|s| s.state != SessionState::Allocating)
        else {
            return;
        };
        let terminate = Jingle {
            action: Action::SessionTerminate,
            sid: session.sid.clone(),
            initiator: None,
            responder: None,
            contents: Vec::new(),
            bundle: None,
            bridge_session: None,
            reason: Some(Reason {
                condition: "success".into(),
                text: Some("the bridge expired the endpoint".into()),
            }),
            json_sources: Vec::new(),
        };
        let restart = participant.allow_restart(now);
        info!(room = %self.room, %nick, restart, "the bridge expired an endpoint");
        out.send_set(&to, terminate.to_element());
        self.end_session(out, nick, false);
        self.sync_sources(out);
        if restart {
            self.start_session(out, nick);
        }
    }

    fn on_mute(&self, out: &mut Outbox, nick: &str, payload: &Element) -> Result<(), Condition> {
        let actor = self
            .participants
            .iter()
            .find(|p| p.nick == nick)
            .ok_or(Condition::NotAllowed)?;
        let target = payload
            .attr("jid")
            .and_then(|jid| Jid::new(jid).ok())
            .filter(|jid| jid.to_bare().as_str() == self.room)
            .and_then(|jid| jid.resource().map(|r| r.as_str().to_owned()))
            .ok_or(Condition::BadRequest)?;
        let mute = payload.text().trim() == "true";
        if target == nick && !mute {
            // Unmuting oneself after a remote mute is always allowed.
            return Ok(());
        }
        if !actor.is_moderator() {
            return Err(Condition::NotAllowed);
        }
        if !self.participants.iter().any(|p| p.nick == target) {
            return Err(Condition::ItemNotFound);
        }
        if mute {
            let forwarded = Element::bare("mute", payload.ns())
                .with_attr("jid", self.occupant_jid(&target))
                .with_attr("actor", self.occupant_jid(nick))
                .with_text("true");
            out.send_set(&self.occupant_jid(&target), forwarded);
        }
        Ok(())
    }
}

/// A `source-add` or `source-remove` carrying several owners' sources, one content per media.
fn source_update(action: Action, sid: &str, sets: &BTreeMap<String, SourceSet>) -> Jingle {
    let contents = [MediaKind::Audio, MediaKind::Video]
        .into_iter()
        .filter_map(|kind| {
            let mut description = Description::new(kind);
            for (owner, set) in sets {
                description.add_sources(owner, set);
            }
            (!description.sources.is_empty() || !description.groups.is_empty()).then(|| Content {
                name: description.media.clone(),
                creator: None,
                senders: None,
                description: Some(description),
                transport: None,
            })
        })
        .collect();
    Jingle {
        action,
        sid: sid.to_owned(),
        initiator: None,
        responder: None,
        contents,
        bundle: None,
        bridge_session: None,
        reason: None,
        json_sources: Vec::new(),
    }
}
