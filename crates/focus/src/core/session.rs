//! Jingle sessions between each participant and the bridge: allocation and the offer
//! (`session-initiate`), the participant's requests (accept, transport-info, source-add and
//! -remove, terminate and restart), the bridge's expiry of an endpoint, and the source
//! signalling that keeps every active session told the others' sources.

use std::collections::BTreeMap;
use std::time::Instant;

use convene_colibri::{BridgeRequest, EndpointId, EndpointOffer, MediaKind, SourceSet};
use minidom::Element;
use tracing::{debug, info};

use super::Focus;
use super::bridge_queue::Purpose;
use super::conference::{Conference, Session, SessionState};
use super::metrics::JingleErrorKind;
use super::outbox::Outbox;
use crate::codecs::{self, VideoCodec};
use crate::jingle::{
    Action, BRIDGE_OWNER, BridgeSession, Content, Description, Jingle, Reason, Transport,
};
use crate::ns;
use crate::sources::{self, SourceError};
use crate::stanza::{Condition, iq_error, iq_result};
use crate::xml::ParseError;

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

impl Focus {
    pub(super) fn on_jingle(&mut self, now: Instant, request: &Element, payload: &Element) {
        let occupant = request.attr("from").and_then(|from| self.occupant(from));
        let result = match occupant {
            Some((room, nick)) => {
                let conference = self.conferences.get_mut(&room).expect("occupant() checked");
                let _span = conference.span.clone().entered();
                match Jingle::parse(payload) {
                    Err(error) => Err((JingleErrorKind::Malformed, Refusal::from(error))),
                    Ok(jingle) => {
                        let action = jingle.action;
                        conference
                            .on_jingle(&mut self.out, now, request, &nick, jingle)
                            .map_err(|refusal| {
                                let kind = if refusal.unknown_session {
                                    JingleErrorKind::UnknownSession
                                } else {
                                    JingleErrorKind::Refused(action)
                                };
                                (kind, refusal)
                            })
                    }
                }
            }
            None => Err((JingleErrorKind::UnknownSession, Refusal::unknown_session())),
        };
        if let Err((kind, refusal)) = result {
            debug!(from = ?request.attr("from"), ?refusal, "Jingle request refused");
            self.out.counters.jingle_error(kind);
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
}

impl Conference {
    pub(super) fn start_session(&mut self, out: &mut Outbox, nick: &str) {
        let conference = self.conference_id();
        let bridge = self.bridge.clone();
        self.used_bridge = true;
        let Some(participant) = self.participant_mut(nick) else {
            return;
        };
        let sid = out.random_id(12);
        participant.session = Some(Session {
            sid: sid.clone(),
            bridge_session: out.random_id(8),
            state: SessionState::Allocating,
            signaled: BTreeMap::new(),
        });
        out.bridge(
            &bridge,
            BridgeRequest::AllocateEndpoint {
                conference,
                endpoint: EndpointId(nick.to_owned()),
            },
            Purpose::Allocate {
                nick: nick.to_owned(),
                sid,
            },
        );
        self.restore_force_mutes(out, nick);
    }

    /// Drops a participant's session and sources; `expire` also frees its bridge endpoint.
    /// The caller then runs [`Conference::sync_sources`].
    pub(super) fn end_session(&mut self, out: &mut Outbox, nick: &str, expire: bool) {
        let conference = self.conference_id();
        let bridge = self.bridge.clone();
        let Some(participant) = self.participant_mut(nick) else {
            return;
        };
        participant.sources = SourceSet::default();
        if participant.session.take().is_some() && expire {
            out.bridge(
                &bridge,
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

    /// The video codecs to offer `nick` (see [`codecs::video_order`]).
    fn video_order(&self, nick: &str) -> Vec<VideoCodec> {
        let own = self.participants.iter().find(|p| p.nick == nick);
        let others = self
            .participants
            .iter()
            .filter(|p| p.nick != nick)
            .filter_map(|p| p.codecs.as_deref());
        codecs::video_order(own.and_then(|p| p.codecs.as_deref()), others)
    }

    pub(super) fn on_allocated(
        &mut self,
        out: &mut Outbox,
        nick: &str,
        sid: &str,
        offer: &EndpointOffer,
    ) {
        self.bridge_sources = offer.feedback_sources.clone();
        let desired = self.desired_for(nick);
        let video = self.video_order(nick);
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
                let mut description = Description::offer(&codecs::offer(media, &video));
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
            initiator: Some(out.addresses.full.clone()),
            bundle: Some(contents.iter().map(|c| c.name.clone()).collect()),
            contents,
            bridge_session: Some(BridgeSession {
                id: Some(session.bridge_session.clone()),
                restart: false,
                ice_restart: false,
            }),
            ..Jingle::new(Action::SessionInitiate, sid)
        };
        session.signaled = desired;
        session.state = SessionState::Offered;
        debug!(%nick, %sid, "sending session-initiate");
        out.send_set(&to, jingle.to_element());
    }

    /// Brings every active session up to date with the others' sources.
    pub(super) fn sync_sources(&mut self, out: &mut Outbox) {
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
        let bridge = self.bridge.clone();
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
                info!(%nick, "session accepted");
                out.bridge(
                    &bridge,
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
                        &bridge,
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
                    &bridge,
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
                    &bridge,
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
                info!(%nick, restart = restart.is_some(), "session terminated by the participant");
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
    pub(super) fn on_endpoint_expired(&mut self, out: &mut Outbox, now: Instant, nick: &str) {
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
            reason: Some(Reason {
                condition: "success".into(),
                text: Some("the bridge expired the endpoint".into()),
            }),
            ..Jingle::new(Action::SessionTerminate, &session.sid)
        };
        let restart = participant.allow_restart(now);
        info!(%nick, restart, "the bridge expired an endpoint");
        out.send_set(&to, terminate.to_element());
        self.end_session(out, nick, false);
        self.sync_sources(out);
        if restart {
            self.start_session(out, nick);
        }
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
        contents,
        ..Jingle::new(action, sid)
    }
}
