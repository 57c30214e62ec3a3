//! Multi-user chat (XEP-0045) at `conference.<domain>`, sans-IO: fed with stanzas whose
//! `from` the router has already authenticated, it appends deliveries to `out`.
//!
//! Rooms are non-anonymous (every occupant item carries the real JID), created on first join
//! and never locked (the Jitsi clients and focus expect that), temporary (gone when the last
//! occupant leaves) and keep no history. Presence payloads are forwarded unchanged: the Jitsi
//! clients keep their whole state there.

use std::collections::HashMap;

use jid::{BareJid, Jid};
use minidom::Element;
use subtle::ConstantTimeEq;

use crate::router::Delivery;
use crate::stanza::{self, StanzaError, error_reply, iq_result, iq_result_with, n, ns};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Affiliation {
    Outcast,
    None,
    Member,
    Admin,
    Owner,
}

impl Affiliation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Outcast => "outcast",
            Self::None => "none",
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "outcast" => Self::Outcast,
            "none" => Self::None,
            "member" => Self::Member,
            "admin" => Self::Admin,
            "owner" => Self::Owner,
            _ => return None,
        })
    }

    fn default_role(self) -> Role {
        if self >= Self::Admin {
            Role::Moderator
        } else {
            Role::Participant
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    None,
    Visitor,
    Participant,
    Moderator,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Visitor => "visitor",
            Self::Participant => "participant",
            Self::Moderator => "moderator",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "none" => Self::None,
            "visitor" => Self::Visitor,
            "participant" => Self::Participant,
            "moderator" => Self::Moderator,
            _ => return None,
        })
    }
}

struct Occupant {
    nick: String,
    real: Jid,
    role: Role,
    affiliation: Affiliation,
    /// The occupant's last available presence as sent, minus MUC protocol children.
    presence: Element,
}

struct Room {
    jid: BareJid,
    occupants: Vec<Occupant>,
    affiliations: HashMap<BareJid, Affiliation>,
    subject: String,
    password: Option<String>,
    members_only: bool,
    meeting_id: String,
}

/// Extra `<item/>` content and status codes of one broadcast presence.
#[derive(Default)]
struct Notice<'a> {
    statuses: &'a [u16],
    actor: Option<&'a str>,
    reason: Option<&'a str>,
    destroy: bool,
}

/// Bounds on what clients can make the MUC hold. In-process entities are exempt.
#[derive(Debug, Clone, Copy)]
pub struct MucLimits {
    /// Occupants per room; joining a full room is `service-unavailable` (Jitsi: room full).
    pub max_occupants: usize,
    /// Rooms one session may be in at once (each join may create a room).
    pub max_rooms_per_session: usize,
}

/// The rooms of the MUC service (the router sends it what is addressed to its domain).
pub struct Muc {
    rooms: HashMap<BareJid, Room>,
    limits: MucLimits,
}

impl Muc {
    pub fn new(limits: MucLimits) -> Self {
        Self {
            rooms: HashMap::new(),
            limits,
        }
    }

    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Occupants over all rooms (the focus included).
    pub fn occupant_count(&self) -> usize {
        self.rooms.values().map(|room| room.occupants.len()).sum()
    }

    /// A stanza addressed to the MUC service, a room or an occupant. `trusted` senders
    /// (internal entities such as the focus) are owners of every room, like Prosody admins.
    pub fn handle(
        &mut self,
        from: &Jid,
        to: &Jid,
        trusted: bool,
        stanza: Element,
        out: &mut Vec<Delivery>,
    ) {
        match stanza.name() {
            "presence" => self.presence(from, to, trusted, stanza, out),
            "message" => self.message(from, to, stanza, out),
            "iq" => self.iq(from, to, trusted, stanza, out),
            _ => {}
        }
    }

    /// Removes `real` from every room (its session ended).
    pub fn disconnect(&mut self, real: &Jid, out: &mut Vec<Delivery>) {
        let rooms: Vec<BareJid> = self
            .rooms
            .iter()
            .filter(|(_, room)| room.occupants.iter().any(|o| &o.real == real))
            .map(|(jid, _)| jid.clone())
            .collect();
        for room in rooms {
            self.leave(&room, real, None, out);
        }
    }

    fn presence(
        &mut self,
        from: &Jid,
        to: &Jid,
        trusted: bool,
        stanza: Element,
        out: &mut Vec<Delivery>,
    ) {
        if to.node().is_none() {
            return;
        }
        let room_jid = to.to_bare();
        match stanza.attr("type") {
            Some("unavailable") => self.leave(&room_jid, from, Some(&stanza), out),
            None => {
                let Some(nick) = to.resource().map(|r| r.as_str().to_owned()) else {
                    reply_error(&stanza, StanzaError::BadRequest, out);
                    return;
                };
                let existing = self
                    .rooms
                    .get(&room_jid)
                    .and_then(|room| room.occupants.iter().position(|o| &o.real == from));
                match existing {
                    Some(index) => self.update_presence(&room_jid, index, &nick, stanza, out),
                    None => self.join(room_jid, nick, from, trusted, stanza, out),
                }
            }
            // Errors and subscription requests are not meaningful to a room.
            _ => {}
        }
    }

    fn join(
        &mut self,
        room_jid: BareJid,
        nick: String,
        from: &Jid,
        trusted: bool,
        stanza: Element,
        out: &mut Vec<Delivery>,
    ) {
        let joined = self
            .rooms
            .values()
            .filter(|room| room.occupants.iter().any(|o| &o.real == from))
            .count();
        let full = self
            .rooms
            .get(&room_jid)
            .is_some_and(|room| room.occupants.len() >= self.limits.max_occupants);
        let limit_error = if trusted {
            None
        } else if joined >= self.limits.max_rooms_per_session {
            Some(StanzaError::PolicyViolation)
        } else if full {
            Some(StanzaError::ServiceUnavailable)
        } else {
            None
        };
        if let Some(error) = limit_error {
            reply_join_error(&stanza, error, out);
            return;
        }
        let created = !self.rooms.contains_key(&room_jid);
        let room = self.rooms.entry(room_jid.clone()).or_insert_with(|| Room {
            jid: room_jid.clone(),
            occupants: Vec::new(),
            affiliations: HashMap::from([(from.to_bare(), Affiliation::Owner)]),
            subject: String::new(),
            password: None,
            members_only: false,
            meeting_id: random_id(),
        });
        let affiliation = if trusted {
            Affiliation::Owner
        } else {
            room.affiliation_of(from)
        };
        let join_error = if affiliation == Affiliation::Outcast {
            Some(StanzaError::Forbidden)
        } else if !trusted && !room.password_matches(&stanza) {
            Some(StanzaError::NotAuthorized)
        } else if !trusted && room.members_only && affiliation < Affiliation::Member {
            Some(StanzaError::RegistrationRequired)
        } else if room.occupants.iter().any(|o| o.nick == nick) {
            Some(StanzaError::Conflict)
        } else {
            None
        };
        if let Some(error) = join_error {
            reply_join_error(&stanza, error, out);
            return;
        }
        let occupant = Occupant {
            nick,
            real: from.clone(),
            role: affiliation.default_role(),
            affiliation,
            presence: strip_muc_children(stanza),
        };
        for other in &room.occupants {
            out.push(room.presence_of(other, &occupant.real, &Notice::default()));
        }
        room.occupants.push(occupant);
        let newcomer = room.occupants.len() - 1;
        let statuses: &[u16] = if created {
            &[100, 110, 201]
        } else {
            &[100, 110]
        };
        room.broadcast_presence(newcomer, statuses, &Notice::default(), out);
        let subject = Element::builder("message", ns::CLIENT)
            .attr(n("type"), "groupchat")
            .attr(n("from"), room.jid.to_string())
            .attr(n("to"), from.to_string())
            .append(
                Element::builder("subject", ns::CLIENT)
                    .append(room.subject.as_str())
                    .build(),
            )
            .build();
        out.push(Delivery {
            to: from.clone(),
            stanza: subject,
        });
    }

    fn update_presence(
        &mut self,
        room_jid: &BareJid,
        index: usize,
        nick: &str,
        stanza: Element,
        out: &mut Vec<Delivery>,
    ) {
        let room = self
            .rooms
            .get_mut(room_jid)
            .expect("caller found the occupant");
        if room.occupants[index].nick != nick {
            // Nickname changes are not supported: Jitsi nicknames are endpoint ids.
            reply_error(&stanza, StanzaError::NotAcceptable, out);
            return;
        }
        room.occupants[index].presence = strip_muc_children(stanza);
        room.broadcast_presence(index, &[110], &Notice::default(), out);
    }

    fn leave(
        &mut self,
        room_jid: &BareJid,
        real: &Jid,
        stanza: Option<&Element>,
        out: &mut Vec<Delivery>,
    ) {
        let Some(room) = self.rooms.get_mut(room_jid) else {
            return;
        };
        let Some(index) = room.occupants.iter().position(|o| &o.real == real) else {
            return;
        };
        if let Some(stanza) = stanza {
            room.occupants[index].presence = strip_muc_children(stanza.clone());
        } else {
            room.occupants[index].presence = Element::builder("presence", ns::CLIENT).build();
        }
        room.remove_occupant(index, &Notice::default(), out);
        if room.occupants.is_empty() {
            self.rooms.remove(room_jid);
        }
    }

    fn message(&mut self, from: &Jid, to: &Jid, mut stanza: Element, out: &mut Vec<Delivery>) {
        let Some(room) = self.rooms.get_mut(&to.to_bare()) else {
            reply_error(&stanza, StanzaError::ItemNotFound, out);
            return;
        };
        let Some(sender) = room.occupants.iter().position(|o| &o.real == from) else {
            reply_error(&stanza, StanzaError::NotAcceptable, out);
            return;
        };
        let sender_jid = room.occupant_jid(&room.occupants[sender]);
        match (to.resource(), stanza.attr("type")) {
            (None, Some("groupchat")) => {
                let subject = stanza.get_child("subject", ns::CLIENT).map(Element::text);
                if let Some(subject) = subject {
                    if room.occupants[sender].role < Role::Moderator {
                        reply_error(&stanza, StanzaError::Forbidden, out);
                        return;
                    }
                    room.subject = subject;
                }
                stanza::set_attr(&mut stanza, "from", sender_jid);
                for occupant in &room.occupants {
                    let mut copy = stanza.clone();
                    stanza::set_attr(&mut copy, "to", occupant.real.to_string());
                    out.push(Delivery {
                        to: occupant.real.clone(),
                        stanza: copy,
                    });
                }
            }
            (Some(nick), kind) if kind != Some("groupchat") => {
                let Some(target) = room.occupants.iter().find(|o| o.nick == nick.as_str()) else {
                    reply_error(&stanza, StanzaError::ItemNotFound, out);
                    return;
                };
                stanza::set_attr(&mut stanza, "from", sender_jid);
                stanza::set_attr(&mut stanza, "to", target.real.to_string());
                out.push(Delivery {
                    to: target.real.clone(),
                    stanza,
                });
            }
            _ => reply_error(&stanza, StanzaError::BadRequest, out),
        }
    }

    fn iq(
        &mut self,
        from: &Jid,
        to: &Jid,
        trusted: bool,
        stanza: Element,
        out: &mut Vec<Delivery>,
    ) {
        let is_request = matches!(stanza.attr("type"), Some("get") | Some("set"));
        if to.node().is_none() {
            if is_request {
                self.service_iq(stanza, out);
            }
            return;
        }
        let room_jid = to.to_bare();
        let Some(room) = self.rooms.get_mut(&room_jid) else {
            reply_error(&stanza, StanzaError::ItemNotFound, out);
            return;
        };
        if let Some(nick) = to.resource() {
            room.iq_to_occupant(from, nick.as_str(), stanza, out);
            return;
        }
        if !is_request {
            return;
        }
        let namespace = stanza::payload(&stanza)
            .map(Element::ns)
            .unwrap_or_default();
        let setting = stanza.attr("type") == Some("set");
        let reply = match (namespace.as_str(), setting) {
            (ns::DISCO_INFO, false) => Ok(Some(room.disco_info())),
            (ns::PING, false) => Ok(None),
            (ns::MUC_ADMIN, true) => room.admin_set(from, trusted, &stanza, out).map(|_| None),
            (ns::MUC_ADMIN, false) => room.admin_get(from, trusted, &stanza).map(Some),
            (ns::MUC_OWNER, _) if !trusted && room.affiliation_of(from) != Affiliation::Owner => {
                Err(StanzaError::Forbidden)
            }
            (ns::MUC_OWNER, false) => Ok(Some(room.config_form())),
            (ns::MUC_OWNER, true) => {
                let query = stanza::payload(&stanza).expect("namespace came from it");
                if query.get_child("destroy", ns::MUC_OWNER).is_some() {
                    room.destroy(out);
                    self.rooms.remove(&room_jid);
                    Ok(None)
                } else {
                    room.configure(query, out);
                    Ok(None)
                }
            }
            _ => Err(StanzaError::ServiceUnavailable),
        };
        match reply {
            Ok(payload) => out.push(Delivery {
                to: from.clone(),
                stanza: iq_result_with(&stanza, payload),
            }),
            Err(error) => reply_error(&stanza, error, out),
        }
    }

    fn service_iq(&self, stanza: Element, out: &mut Vec<Delivery>) {
        let namespace = stanza::payload(&stanza)
            .map(Element::ns)
            .unwrap_or_default();
        let reply = match namespace.as_str() {
            ns::DISCO_INFO => iq_result_with(
                &stanza,
                Some(stanza::disco_info(
                    &[("conference", "text", "Chatrooms")],
                    &[ns::MUC, ns::DISCO_INFO],
                )),
            ),
            // Rooms are not listed: which meetings exist is nobody else's business.
            ns::DISCO_ITEMS => {
                iq_result_with(&stanza, Some(Element::bare("query", ns::DISCO_ITEMS)))
            }
            ns::PING => iq_result(&stanza),
            _ => {
                reply_error(&stanza, StanzaError::ServiceUnavailable, out);
                return;
            }
        };
        push_reply(reply, out);
    }
}

impl Room {
    fn affiliation_of(&self, real: &Jid) -> Affiliation {
        self.affiliations
            .get(&real.to_bare())
            .copied()
            .unwrap_or(Affiliation::None)
    }

    fn password_matches(&self, join: &Element) -> bool {
        let Some(password) = &self.password else {
            return true;
        };
        let given = join
            .get_child("x", ns::MUC)
            .and_then(|x| x.get_child("password", ns::MUC))
            .map(Element::text)
            .unwrap_or_default();
        bool::from(given.as_bytes().ct_eq(password.as_bytes()))
    }

    fn occupant_jid(&self, occupant: &Occupant) -> String {
        format!("{}/{}", self.jid, occupant.nick)
    }

    fn occupant_by_real(&self, real: &Jid) -> Option<&Occupant> {
        self.occupants.iter().find(|o| &o.real == real)
    }

    /// `occupant`'s presence as seen by `to`.
    fn presence_of(&self, occupant: &Occupant, to: &Jid, notice: &Notice) -> Delivery {
        let mut presence = occupant.presence.clone();
        stanza::set_attr(&mut presence, "from", self.occupant_jid(occupant));
        stanza::set_attr(&mut presence, "to", to.to_string());
        let mut item = Element::builder("item", ns::MUC_USER)
            .attr(n("affiliation"), occupant.affiliation.as_str())
            .attr(n("role"), occupant.role.as_str())
            .attr(n("jid"), occupant.real.to_string());
        if let Some(actor) = notice.actor {
            item = item.append(
                Element::builder("actor", ns::MUC_USER)
                    .attr(n("nick"), actor)
                    .build(),
            );
        }
        if let Some(reason) = notice.reason {
            item = item.append(
                Element::builder("reason", ns::MUC_USER)
                    .append(reason)
                    .build(),
            );
        }
        let mut x = Element::builder("x", ns::MUC_USER).append(item.build());
        if notice.destroy {
            x = x.append(Element::bare("destroy", ns::MUC_USER));
        }
        for code in notice.statuses {
            x = x.append(
                Element::builder("status", ns::MUC_USER)
                    .attr(n("code"), code.to_string())
                    .build(),
            );
        }
        presence.append_child(x.build());
        Delivery {
            to: to.clone(),
            stanza: presence,
        }
    }

    /// Sends occupant `index`'s presence to everyone; the occupant's own copy also carries
    /// `self_statuses` (110 and friends) on top of `notice.statuses`.
    fn broadcast_presence(
        &self,
        index: usize,
        self_statuses: &[u16],
        notice: &Notice,
        out: &mut Vec<Delivery>,
    ) {
        let subject = &self.occupants[index];
        for other in self.occupants.iter().filter(|o| o.real != subject.real) {
            out.push(self.presence_of(subject, &other.real, notice));
        }
        let mut own: Vec<u16> = notice.statuses.to_vec();
        own.extend_from_slice(self_statuses);
        own.sort_unstable();
        let own_notice = Notice {
            statuses: &own,
            ..*notice
        };
        out.push(self.presence_of(subject, &subject.real, &own_notice));
    }

    /// Removes occupant `index`, telling everyone (itself included) it is gone.
    fn remove_occupant(&mut self, index: usize, notice: &Notice, out: &mut Vec<Delivery>) {
        {
            let leaving = &mut self.occupants[index];
            leaving.role = Role::None;
            stanza::set_attr(&mut leaving.presence, "type", "unavailable");
        }
        self.broadcast_presence(index, &[110], notice, out);
        self.occupants.remove(index);
    }

    fn iq_to_occupant(&self, from: &Jid, nick: &str, mut stanza: Element, out: &mut Vec<Delivery>) {
        let Some(sender) = self.occupant_by_real(from) else {
            reply_error(&stanza, StanzaError::NotAcceptable, out);
            return;
        };
        let Some(target) = self.occupants.iter().find(|o| o.nick == nick) else {
            reply_error(&stanza, StanzaError::ItemNotFound, out);
            return;
        };
        stanza::set_attr(&mut stanza, "from", self.occupant_jid(sender));
        stanza::set_attr(&mut stanza, "to", target.real.to_string());
        out.push(Delivery {
            to: target.real.clone(),
            stanza,
        });
    }

    fn actor(&self, from: &Jid, trusted: bool) -> (Affiliation, Role, Option<String>) {
        if trusted {
            let nick = self.occupant_by_real(from).map(|o| o.nick.clone());
            return (Affiliation::Owner, Role::Moderator, nick);
        }
        match self.occupant_by_real(from) {
            Some(o) => (o.affiliation, o.role, Some(o.nick.clone())),
            None => (self.affiliation_of(from), Role::None, None),
        }
    }

    fn admin_set(
        &mut self,
        from: &Jid,
        trusted: bool,
        iq: &Element,
        out: &mut Vec<Delivery>,
    ) -> Result<(), StanzaError> {
        let (actor_affiliation, actor_role, actor_nick) = self.actor(from, trusted);
        let query = stanza::payload(iq).ok_or(StanzaError::BadRequest)?;
        for item in query.children().filter(|c| c.is("item", ns::MUC_ADMIN)) {
            let reason = item.get_child("reason", ns::MUC_ADMIN).map(Element::text);
            let notice_actor = actor_nick.as_deref();
            if let Some(affiliation) = item.attr("affiliation") {
                let affiliation = Affiliation::parse(affiliation).ok_or(StanzaError::BadRequest)?;
                let target = item
                    .attr("jid")
                    .and_then(|j| Jid::new(j).ok())
                    .map(|j| j.to_bare())
                    .ok_or(StanzaError::BadRequest)?;
                let needed = if affiliation >= Affiliation::Admin
                    || self.affiliation_of(&target.clone().into()) >= Affiliation::Admin
                {
                    Affiliation::Owner
                } else {
                    Affiliation::Admin
                };
                if actor_affiliation < needed {
                    return Err(StanzaError::Forbidden);
                }
                self.set_affiliation(target, affiliation, notice_actor, reason.as_deref(), out);
            } else if let Some(role) = item.attr("role") {
                let role = Role::parse(role).ok_or(StanzaError::BadRequest)?;
                let nick = item.attr("nick").ok_or(StanzaError::BadRequest)?;
                let index = self
                    .occupants
                    .iter()
                    .position(|o| o.nick == nick)
                    .ok_or(StanzaError::ItemNotFound)?;
                let target = &self.occupants[index];
                if actor_role < Role::Moderator
                    || (target.affiliation >= Affiliation::Admin
                        && actor_affiliation <= target.affiliation
                        && role < Role::Moderator)
                {
                    return Err(StanzaError::NotAllowed);
                }
                if role == Role::None {
                    let notice = Notice {
                        statuses: &[307],
                        actor: notice_actor,
                        reason: reason.as_deref(),
                        destroy: false,
                    };
                    self.remove_occupant(index, &notice, out);
                } else {
                    self.occupants[index].role = role;
                    self.broadcast_presence(index, &[110], &Notice::default(), out);
                }
            } else {
                return Err(StanzaError::BadRequest);
            }
        }
        Ok(())
    }

    fn set_affiliation(
        &mut self,
        target: BareJid,
        affiliation: Affiliation,
        actor: Option<&str>,
        reason: Option<&str>,
        out: &mut Vec<Delivery>,
    ) {
        if affiliation == Affiliation::None {
            self.affiliations.remove(&target);
        } else {
            self.affiliations.insert(target.clone(), affiliation);
        }
        let mut index = 0;
        while index < self.occupants.len() {
            if self.occupants[index].real.to_bare() != target {
                index += 1;
                continue;
            }
            let occupant = &mut self.occupants[index];
            occupant.affiliation = affiliation;
            if affiliation == Affiliation::Outcast {
                let notice = Notice {
                    statuses: &[301],
                    actor,
                    reason,
                    destroy: false,
                };
                self.remove_occupant(index, &notice, out);
                continue;
            }
            occupant.role = match (affiliation.default_role(), occupant.role) {
                (Role::Moderator, _) => Role::Moderator,
                (_, Role::Moderator) => Role::Participant,
                (_, role) => role,
            };
            self.broadcast_presence(index, &[110], &Notice::default(), out);
            index += 1;
        }
    }

    fn admin_get(&self, from: &Jid, trusted: bool, iq: &Element) -> Result<Element, StanzaError> {
        let (affiliation, role, _) = self.actor(from, trusted);
        if role < Role::Moderator && affiliation < Affiliation::Admin {
            return Err(StanzaError::Forbidden);
        }
        let query = stanza::payload(iq).ok_or(StanzaError::BadRequest)?;
        let wanted = query
            .get_child("item", ns::MUC_ADMIN)
            .ok_or(StanzaError::BadRequest)?;
        let mut result = Element::builder("query", ns::MUC_ADMIN);
        if let Some(wanted) = wanted.attr("affiliation").and_then(Affiliation::parse) {
            for (jid, _) in self.affiliations.iter().filter(|(_, a)| **a == wanted) {
                result = result.append(
                    Element::builder("item", ns::MUC_ADMIN)
                        .attr(n("affiliation"), wanted.as_str())
                        .attr(n("jid"), jid.to_string())
                        .build(),
                );
            }
        } else if let Some(wanted) = wanted.attr("role").and_then(Role::parse) {
            for occupant in self.occupants.iter().filter(|o| o.role == wanted) {
                result = result.append(
                    Element::builder("item", ns::MUC_ADMIN)
                        .attr(n("affiliation"), occupant.affiliation.as_str())
                        .attr(n("role"), occupant.role.as_str())
                        .attr(n("nick"), occupant.nick.as_str())
                        .attr(n("jid"), occupant.real.to_string())
                        .build(),
                );
            }
        } else {
            return Err(StanzaError::BadRequest);
        }
        Ok(result.build())
    }

    fn disco_info(&self) -> Element {
        let features = [
            ns::MUC,
            if self.password.is_some() {
                "muc_passwordprotected"
            } else {
                "muc_unsecured"
            },
            if self.members_only {
                "muc_membersonly"
            } else {
                "muc_open"
            },
            "muc_nonanonymous",
            "muc_temporary",
            "muc_unmoderated",
            "muc_hidden",
        ];
        let name = self.jid.node().map(|n| n.as_str()).unwrap_or_default();
        let mut query = stanza::disco_info(&[("conference", "text", name)], &features);
        query.append_child(data_form(
            "result",
            "http://jabber.org/protocol/muc#roominfo",
            &[
                (
                    "muc#roominfo_occupants",
                    "text-single",
                    &self.occupants.len().to_string(),
                ),
                ("muc#roominfo_meetingId", "text-single", &self.meeting_id),
                ("muc#roominfo_subject", "text-single", &self.subject),
            ],
        ));
        query
    }

    fn config_form(&self) -> Element {
        let bool_text = |b: bool| if b { "1" } else { "0" };
        let mut query = Element::builder("query", ns::MUC_OWNER).build();
        query.append_child(data_form(
            "form",
            "http://jabber.org/protocol/muc#roomconfig",
            &[
                (
                    "muc#roomconfig_roomsecret",
                    "text-private",
                    self.password.as_deref().unwrap_or_default(),
                ),
                (
                    "muc#roomconfig_passwordprotectedroom",
                    "boolean",
                    bool_text(self.password.is_some()),
                ),
                (
                    "muc#roomconfig_membersonly",
                    "boolean",
                    bool_text(self.members_only),
                ),
                ("muc#roomconfig_whois", "list-single", "anyone"),
                ("muc#roomconfig_persistentroom", "boolean", "0"),
            ],
        ));
        query
    }

    fn configure(&mut self, query: &Element, out: &mut Vec<Delivery>) {
        let Some(form) = query.get_child("x", ns::DATA_FORMS) else {
            return;
        };
        if form.attr("type") != Some("submit") {
            return;
        }
        let field = |var: &str| {
            form.children()
                .find(|f| f.is("field", ns::DATA_FORMS) && f.attr("var") == Some(var))
                .map(|f| {
                    f.get_child("value", ns::DATA_FORMS)
                        .map(Element::text)
                        .unwrap_or_default()
                })
        };
        let truthy = |v: &str| v == "1" || v == "true";
        if let Some(secret) = field("muc#roomconfig_roomsecret") {
            self.password = (!secret.is_empty()).then_some(secret);
        }
        if field("muc#roomconfig_passwordprotectedroom").is_some_and(|v| !truthy(&v)) {
            self.password = None;
        }
        if let Some(members_only) = field("muc#roomconfig_membersonly") {
            self.members_only = truthy(&members_only);
        }
        // Status 104: the configuration changed; clients re-read the room's disco#info.
        for occupant in &self.occupants {
            let notice = Element::builder("message", ns::CLIENT)
                .attr(n("type"), "groupchat")
                .attr(n("from"), self.jid.to_string())
                .attr(n("to"), occupant.real.to_string())
                .append(
                    Element::builder("x", ns::MUC_USER)
                        .append(
                            Element::builder("status", ns::MUC_USER)
                                .attr(n("code"), "104")
                                .build(),
                        )
                        .build(),
                )
                .build();
            out.push(Delivery {
                to: occupant.real.clone(),
                stanza: notice,
            });
        }
    }

    fn destroy(&mut self, out: &mut Vec<Delivery>) {
        let notice = Notice {
            destroy: true,
            ..Notice::default()
        };
        while !self.occupants.is_empty() {
            self.remove_occupant(self.occupants.len() - 1, &notice, out);
        }
    }
}

fn data_form(kind: &str, form_type: &str, fields: &[(&str, &str, &str)]) -> Element {
    let field = |var: &str, kind: &str, value: &str| {
        Element::builder("field", ns::DATA_FORMS)
            .attr(n("var"), var)
            .attr(n("type"), kind)
            .append(
                Element::builder("value", ns::DATA_FORMS)
                    .append(value)
                    .build(),
            )
            .build()
    };
    let mut form = Element::builder("x", ns::DATA_FORMS)
        .attr(n("type"), kind)
        .append(field("FORM_TYPE", "hidden", form_type));
    for (var, kind, value) in fields {
        form = form.append(field(var, kind, value));
    }
    form.build()
}

/// Removes what the MUC protocol owns from a client presence: the join element and any
/// client-supplied `muc#user` element (which would let a client forge roles or real JIDs).
fn strip_muc_children(mut presence: Element) -> Element {
    while presence.remove_child("x", ns::MUC).is_some() {}
    while presence.remove_child("x", ns::MUC_USER).is_some() {}
    presence
}

fn reply_error(stanza: &Element, error: StanzaError, out: &mut Vec<Delivery>) {
    if let Some(reply) = error_reply(stanza, error) {
        push_reply(reply, out);
    }
}

/// XEP-0045 echoes the join element in join errors; clients match on it.
fn reply_join_error(stanza: &Element, error: StanzaError, out: &mut Vec<Delivery>) {
    if let Some(mut reply) = error_reply(stanza, error) {
        reply.append_child(Element::bare("x", ns::MUC));
        push_reply(reply, out);
    }
}

fn push_reply(reply: Element, out: &mut Vec<Delivery>) {
    if let Some(to) = reply.attr("to").and_then(|t| Jid::new(t).ok()) {
        out.push(Delivery { to, stanza: reply });
    }
}

fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
