//! Occupant presence: joining (limits, password, members-only, nick conflicts), presence
//! updates and leaving, and what of a client's presence reaches the other occupants.

use std::time::SystemTime;

use jid::{BareJid, Jid};
use minidom::{Element, NSChoice};
use rand::Rng;

use super::Muc;
use super::roles::Affiliation;
use super::room::{Notice, Occupant, Room, Status};
use crate::component::Sender;
use crate::identity::Identity;
use crate::stanza::{Delivery, StanzaError, error_reply, n, ns, push_reply, reply_error};

impl Muc {
    pub(super) fn presence(
        &mut self,
        now: SystemTime,
        sender: Sender<'_>,
        to: &Jid,
        stanza: Element,
        out: &mut Vec<Delivery>,
    ) {
        if to.node().is_none() {
            return;
        }
        let room_jid = to.to_bare();
        match stanza.attr("type") {
            Some("unavailable") => {
                let presence = occupant_presence(stanza, sender.identity);
                self.leave(&room_jid, sender.jid, presence, out);
            }
            None => {
                let Some(nick) = to.resource().map(|r| r.as_str().to_owned()) else {
                    reply_error(&stanza, StanzaError::BadRequest, out);
                    return;
                };
                let existing = self
                    .rooms
                    .get(&room_jid)
                    .and_then(|room| room.index_of_real(sender.jid));
                match existing {
                    Some(index) => {
                        self.update_presence(&room_jid, index, &nick, sender, stanza, out)
                    }
                    None => self.join(now, room_jid, nick, sender, stanza, out),
                }
            }
            // Errors and subscription requests are not meaningful to a room.
            _ => {}
        }
    }

    fn join(
        &mut self,
        now: SystemTime,
        room_jid: BareJid,
        nick: String,
        sender: Sender<'_>,
        stanza: Element,
        out: &mut Vec<Delivery>,
    ) {
        let from = sender.jid;
        let trusted = sender.is_internal();
        // As `mod_token_verification` does before a room is created or joined.
        let rooms = sender.identity.and_then(|identity| identity.rooms.as_ref());
        if !trusted && rooms.is_some_and(|rooms| !rooms.allows(&room_jid)) {
            reply_token_mismatch(&stanza, out);
            return;
        }
        if let Some(error) = self.limit_error(&room_jid, sender) {
            reply_join_error(&stanza, error, out);
            return;
        }
        let created = !self.rooms.contains_key(&room_jid);
        let room = self.rooms.entry(room_jid.clone()).or_insert_with(|| {
            let meeting_id = uuid_v4(self.rng.random::<u128>());
            Room::new(room_jid, from.to_bare(), meeting_id)
        });
        let stored = room.affiliation_of(from);
        // As Jitsi's token moderator modules do: the authenticator's moderator right makes
        // its holder an owner, though not over a ban.
        let moderator = sender.identity.is_some_and(|identity| identity.moderator);
        let affiliation = if trusted || (moderator && stored != Affiliation::Outcast) {
            Affiliation::Owner
        } else {
            stored
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
        if moderator && !trusted {
            room.affiliations.insert(from.to_bare(), Affiliation::Owner);
        }
        let occupant = Occupant {
            nick,
            real: from.clone(),
            role: affiliation.default_role(),
            affiliation,
            internal: trusted,
            presence: occupant_presence(stanza, sender.identity),
        };
        for other in &room.occupants {
            out.push(room.presence_of(other, &occupant.real, &Notice::default()));
        }
        room.occupants.push(occupant);
        // As Jitsi's mod_conference_duration: the meeting starts when a second occupant
        // (the first participant beside the focus) joins.
        if room.occupants.len() > 1 && room.created_ms.is_none() {
            let since_epoch = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            room.created_ms = Some(since_epoch.as_millis());
        }
        let newcomer = room.occupants.len() - 1;
        let statuses: &[Status] = if created {
            &[Status::NonAnonymous, Status::SelfPresence, Status::Created]
        } else {
            &[Status::NonAnonymous, Status::SelfPresence]
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

    /// What stops a client from joining `room_jid` whatever the room says: the number of
    /// rooms it is in, or a full room (`muc_max_occupants`, counting clients only, as
    /// Jitsi's `mod_muc_max_occupants` with the focus whitelisted). Internal entities are
    /// exempt.
    fn limit_error(&self, room_jid: &BareJid, sender: Sender<'_>) -> Option<StanzaError> {
        if sender.is_internal() {
            return None;
        }
        let joined = self
            .rooms
            .values()
            .filter(|room| room.index_of_real(sender.jid).is_some())
            .count();
        let full = self
            .rooms
            .get(room_jid)
            .is_some_and(|room| room.clients() >= self.limits.max_occupants);
        if joined >= self.limits.max_rooms_per_session {
            Some(StanzaError::PolicyViolation)
        } else if full {
            Some(StanzaError::ServiceUnavailable)
        } else {
            None
        }
    }

    fn update_presence(
        &mut self,
        room_jid: &BareJid,
        index: usize,
        nick: &str,
        sender: Sender<'_>,
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
        room.occupants[index].presence = occupant_presence(stanza, sender.identity);
        room.broadcast_presence(index, &[Status::SelfPresence], &Notice::default(), out);
    }

    /// `real` leaves `room_jid`, its last presence being `presence`; the last one out
    /// destroys the room.
    pub(super) fn leave(
        &mut self,
        room_jid: &BareJid,
        real: &Jid,
        presence: Element,
        out: &mut Vec<Delivery>,
    ) {
        let Some(room) = self.rooms.get_mut(room_jid) else {
            return;
        };
        let Some(index) = room.index_of_real(real) else {
            return;
        };
        room.occupants[index].presence = presence;
        room.remove_occupant(index, &Notice::default(), out);
        if room.occupants.is_empty() {
            self.rooms.remove(room_jid);
        }
    }
}

/// A client's presence as the other occupants get it. Its payload is forwarded as received
/// (the Jitsi clients keep their state there) except for what only the server may vouch
/// for: the join element, any `muc#user` element (which would forge roles or real JIDs)
/// and any `<identity>` (which would forge who the user is), in whatever namespace. When
/// the authenticator vouched for user fields, the server's own `<identity>` goes in
/// instead, as Prosody's `mod_presence_identity` does.
pub(super) fn occupant_presence(mut presence: Element, identity: Option<&Identity>) -> Element {
    while presence.remove_child("x", ns::MUC).is_some() {}
    while presence.remove_child("x", ns::MUC_USER).is_some() {}
    while presence.remove_child("identity", NSChoice::Any).is_some() {}
    if let Some(identity) = identity.and_then(identity_element) {
        presence.append_child(identity);
    }
    presence
}

/// `<identity><user><id/><name/><email/><avatar/></user></identity>` with the fields the
/// authenticator filled in (lib-jitsi-meet reads them into the participant's identity);
/// `None` when it filled in none.
fn identity_element(identity: &Identity) -> Option<Element> {
    let fields = [
        ("id", &identity.user_id),
        ("name", &identity.display_name),
        ("email", &identity.email),
        ("avatar", &identity.avatar),
    ];
    let mut user = Element::builder("user", ns::CLIENT);
    let mut any = false;
    for (name, value) in fields {
        if let Some(value) = value {
            user = user.append(
                Element::builder(name, ns::CLIENT)
                    .append(value.as_str())
                    .build(),
            );
            any = true;
        }
    }
    any.then(|| {
        Element::builder("identity", ns::CLIENT)
            .append(user.build())
            .build()
    })
}

/// The join error of `mod_token_verification`: `not-allowed` with its text and the
/// `room-mismatch` condition of the Jitsi namespace, which the clients show as "not
/// allowed to join this call".
fn reply_token_mismatch(stanza: &Element, out: &mut Vec<Delivery>) {
    let Some(mut reply) = error_reply(stanza, StanzaError::NotAllowed) else {
        return;
    };
    if let Some(error) = reply.get_child_mut("error", ns::CLIENT) {
        error.append_child(
            Element::builder("text", ns::STANZAS)
                .append("Room and token mismatched")
                .build(),
        );
        error.append_child(Element::bare("room-mismatch", ns::JITMEET));
    }
    reply.append_child(Element::bare("x", ns::MUC));
    push_reply(reply, out);
}

/// XEP-0045 echoes the join element in join errors; clients match on it.
pub(crate) fn reply_join_error(stanza: &Element, error: StanzaError, out: &mut Vec<Delivery>) {
    if let Some(mut reply) = error_reply(stanza, error) {
        reply.append_child(Element::bare("x", ns::MUC));
        push_reply(reply, out);
    }
}

/// A random (version 4) UUID in its text form, as Prosody's `util.uuid` draws meeting ids.
fn uuid_v4(random: u128) -> String {
    let bits = (random & !(0xf000 << 64) & !(0xc << 60)) | (0x4000 << 64) | (0x8 << 60);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
