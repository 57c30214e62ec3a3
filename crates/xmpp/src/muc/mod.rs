//! Multi-user chat (XEP-0045) at `conference.<domain>`, sans-IO: a [`Component`] fed with
//! stanzas whose sender the router has authenticated, appending deliveries to `out`.
//!
//! Rooms are non-anonymous (every occupant item carries the real JID), created on first join
//! and never locked (the Jitsi clients and focus expect that), temporary (gone when the last
//! occupant leaves) and keep no history. Presence payloads are forwarded as received (the
//! Jitsi clients keep their whole state there), but for what only the server may vouch for:
//! the MUC elements and the user's `<identity>` (see `presence::occupant_presence`).
//!
//! `roles`: affiliations and roles; `room`: occupants, presence broadcast, relayed messages
//! and iq; `presence`: join, update, leave; `admin`: `muc#admin`; `config`: `muc#owner`;
//! `disco`: disco#info of the service and of rooms; `services`: the Jitsi room-control
//! services at hosts of their own (end meeting for all), which act on the MUC's rooms.

mod admin;
mod config;
mod disco;
mod presence;
mod roles;
mod room;
mod services;
#[cfg(test)]
mod services_tests;
#[cfg(test)]
mod tests;

pub(crate) use presence::reply_join_error;
pub use roles::{Affiliation, Role};
pub(crate) use services::add_services;

use std::collections::HashMap;
use std::time::SystemTime;

use jid::{BareJid, Jid};
use minidom::Element;
use rand::rngs::StdRng;

use crate::component::{Component, DiscoIdentity, Fanout, Sender};
use crate::router::Domains;
use crate::stanza::{self, Delivery, StanzaError, iq_result_with, ns, reply_error};
use room::Room;

/// Bounds on what clients can make the MUC hold. In-process entities are exempt.
#[derive(Debug, Clone, Copy)]
pub struct MucLimits {
    /// Occupants per room; joining a full room is `service-unavailable` (Jitsi: room full).
    pub max_occupants: usize,
    /// Rooms one session may be in at once (each join may create a room).
    pub max_rooms_per_session: usize,
}

/// The rooms of the MUC service.
pub struct Muc {
    rooms: HashMap<BareJid, Room>,
    limits: MucLimits,
    /// Draws each room's meeting id (production: a CSPRNG, since ids must not be guessable).
    rng: StdRng,
    /// The MUC's host and the hosts of the room-control services it provides.
    domains: Domains,
}

impl Muc {
    pub fn new(limits: MucLimits, rng: StdRng, domains: &Domains) -> Self {
        Self {
            rooms: HashMap::new(),
            limits,
            rng,
            domains: domains.clone(),
        }
    }

    fn message(&mut self, from: &Jid, to: &Jid, stanza: Element, out: &mut Vec<Delivery>) {
        match self.rooms.get_mut(&to.to_bare()) {
            Some(room) => room.relay_message(from, to, stanza, out),
            None => reply_error(&stanza, StanzaError::ItemNotFound, out),
        }
    }

    fn iq(&mut self, sender: Sender<'_>, to: &Jid, stanza: Element, out: &mut Vec<Delivery>) {
        let is_request = matches!(stanza.attr("type"), Some("get") | Some("set"));
        if to.node().is_none() {
            if is_request {
                disco::service_iq(&stanza, out);
            }
            return;
        }
        let room_jid = to.to_bare();
        let Some(room) = self.rooms.get_mut(&room_jid) else {
            reply_error(&stanza, StanzaError::ItemNotFound, out);
            return;
        };
        if let Some(nick) = to.resource() {
            room.iq_to_occupant(sender.jid, nick.as_str(), stanza, out);
            return;
        }
        if !is_request {
            return;
        }
        let namespace = stanza::payload(&stanza)
            .map(Element::ns)
            .unwrap_or_default();
        let setting = stanza.attr("type") == Some("set");
        let is_owner =
            sender.is_internal() || room.affiliation_of(sender.jid) == Affiliation::Owner;
        let reply = match (namespace.as_str(), setting) {
            (ns::DISCO_INFO, false) => Ok(Some(room.disco_info())),
            (ns::PING, false) => Ok(None),
            (ns::MUC_ADMIN, true) => room.admin_set(sender, &stanza, out).map(|_| None),
            (ns::MUC_ADMIN, false) => room.admin_get(sender, &stanza).map(Some),
            (ns::MUC_OWNER, _) if !is_owner => Err(StanzaError::Forbidden),
            (ns::MUC_OWNER, false) => Ok(Some(room.config_form())),
            (ns::MUC_OWNER, true) => {
                let query = stanza::payload(&stanza).expect("namespace came from it");
                if query.get_child("destroy", ns::MUC_OWNER).is_some() {
                    let reason = query
                        .get_child("destroy", ns::MUC_OWNER)
                        .and_then(|d| d.get_child("reason", ns::MUC_OWNER))
                        .map(Element::text)
                        .unwrap_or_default();
                    room.destroy(&reason, out);
                    self.rooms.remove(&room_jid);
                } else {
                    room.configure(query, out);
                }
                Ok(None)
            }
            _ => Err(StanzaError::ServiceUnavailable),
        };
        match reply {
            Ok(payload) => out.push(Delivery {
                to: sender.jid.clone(),
                stanza: iq_result_with(&stanza, payload),
            }),
            Err(error) => reply_error(&stanza, error, out),
        }
    }
}

impl Component for Muc {
    /// `sender`'s trust makes internal entities (the focus) owners of every room, like
    /// Prosody admins; its identity decides what the others learn of who it is.
    fn handle(
        &mut self,
        now: SystemTime,
        sender: Sender<'_>,
        to: &Jid,
        stanza: Element,
        out: &mut Vec<Delivery>,
    ) {
        if to.domain().as_str() != self.domains.conference {
            self.service(sender, to, stanza, out);
            return;
        }
        match stanza.name() {
            "presence" => self.presence(now, sender, to, stanza, out),
            "message" => self.message(sender.jid, to, stanza, out),
            "iq" => self.iq(sender, to, stanza, out),
            _ => {}
        }
    }

    /// Removes `real` from every room.
    fn disconnect(&mut self, real: &Jid, out: &mut Vec<Delivery>) {
        let rooms: Vec<BareJid> = self
            .rooms
            .iter()
            .filter(|(_, room)| room.index_of_real(real).is_some())
            .map(|(jid, _)| jid.clone())
            .collect();
        for room in rooms {
            let presence = Element::builder("presence", ns::CLIENT).build();
            self.leave(&room, real, presence, out);
        }
    }

    fn fanout(&self, from: &Jid, to: &Jid, stanza: &Element) -> Option<Fanout> {
        to.node()?;
        let room = to.to_bare();
        let existing = self.rooms.get(&room);
        let audience = self.audience(&room);
        let occupant = existing.is_some_and(|r| r.index_of_real(from).is_some());
        match (stanza.name(), stanza.attr("type"), to.resource()) {
            ("presence", None, Some(_)) if occupant => Some(Fanout::Broadcast {
                room,
                audience,
                presence: true,
            }),
            ("presence", None, Some(_)) => Some(Fanout::Join { room, audience }),
            // Also from one not in yet: it may cancel a join still waiting.
            ("presence", Some("unavailable"), _) => Some(Fanout::Leave { room, audience }),
            ("message", Some("groupchat"), None) if occupant => Some(Fanout::Broadcast {
                room,
                audience,
                presence: false,
            }),
            _ => None,
        }
    }

    fn audience(&self, room: &BareJid) -> usize {
        self.rooms.get(room).map_or(0, |r| r.occupants.len())
    }

    fn disco_identity(&self) -> DiscoIdentity {
        DiscoIdentity {
            category: "conference",
            kind: "text",
        }
    }

    fn server_features(&self) -> &'static [&'static str] {
        &[ns::MUC]
    }

    fn room_count(&self) -> usize {
        self.rooms.len()
    }

    fn occupant_count(&self) -> usize {
        self.rooms.values().map(|room| room.occupants.len()).sum()
    }
}
