//! One room: its occupants, how their presence is shown to each other, and the messages and
//! iq relayed between them under occupant JIDs.

use std::collections::HashMap;

use jid::{BareJid, Jid};
use minidom::Element;
use subtle::ConstantTimeEq;

use super::roles::{Affiliation, Role};
use crate::stanza::{self, Delivery, StanzaError, n, ns, reply_error};

/// The `muc#user` status codes the service sends (XEP-0045 §15.6), in numeric order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Status {
    /// Every occupant item carries the real JID.
    NonAnonymous = 100,
    /// The room's configuration changed.
    ConfigChanged = 104,
    /// This presence is the recipient's own.
    SelfPresence = 110,
    /// The join created the room.
    Created = 201,
    Banned = 301,
    Kicked = 307,
}

pub(super) struct Occupant {
    pub(super) nick: String,
    pub(super) real: Jid,
    pub(super) role: Role,
    pub(super) affiliation: Affiliation,
    /// An in-process entity (the focus): not counted against the room's size.
    pub(super) internal: bool,
    /// The occupant's last presence as the others see it (see `presence::occupant_presence`).
    pub(super) presence: Element,
}

pub(super) struct Room {
    pub(super) jid: BareJid,
    pub(super) occupants: Vec<Occupant>,
    pub(super) affiliations: HashMap<BareJid, Affiliation>,
    pub(super) subject: String,
    pub(super) password: Option<String>,
    pub(super) members_only: bool,
    pub(super) meeting_id: String,
    /// When the meeting started (ms since the Unix epoch): the second occupant's join.
    pub(super) created_ms: Option<u128>,
}

/// Extra `<item/>` content and status codes of one broadcast presence.
#[derive(Default)]
pub(super) struct Notice<'a> {
    pub(super) statuses: &'a [Status],
    pub(super) actor: Option<&'a str>,
    pub(super) reason: Option<&'a str>,
    /// The room is destroyed, for this reason (empty: none given).
    pub(super) destroy: Option<&'a str>,
}

impl Room {
    /// A new room whose creator (`owner`) is about to join.
    pub(super) fn new(jid: BareJid, creator: BareJid, meeting_id: String) -> Self {
        Self {
            jid,
            occupants: Vec::new(),
            affiliations: HashMap::from([(creator, Affiliation::Owner)]),
            subject: String::new(),
            password: None,
            members_only: false,
            meeting_id,
            created_ms: None,
        }
    }

    pub(super) fn affiliation_of(&self, real: &Jid) -> Affiliation {
        self.affiliations
            .get(&real.to_bare())
            .copied()
            .unwrap_or(Affiliation::None)
    }

    pub(super) fn password_matches(&self, join: &Element) -> bool {
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

    /// Occupants that are clients (the focus is not).
    pub(super) fn clients(&self) -> usize {
        self.occupants.iter().filter(|o| !o.internal).count()
    }

    pub(super) fn occupant_jid(&self, occupant: &Occupant) -> String {
        format!("{}/{}", self.jid, occupant.nick)
    }

    pub(super) fn occupant_by_real(&self, real: &Jid) -> Option<&Occupant> {
        self.occupants.iter().find(|o| &o.real == real)
    }

    pub(super) fn index_of_real(&self, real: &Jid) -> Option<usize> {
        self.occupants.iter().position(|o| &o.real == real)
    }

    /// `occupant`'s presence as seen by `to`.
    pub(super) fn presence_of(&self, occupant: &Occupant, to: &Jid, notice: &Notice) -> Delivery {
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
        if let Some(reason) = notice.destroy {
            let mut destroy = Element::builder("destroy", ns::MUC_USER);
            if !reason.is_empty() {
                destroy = destroy.append(
                    Element::builder("reason", ns::MUC_USER)
                        .append(reason)
                        .build(),
                );
            }
            x = x.append(destroy.build());
        }
        for status in notice.statuses {
            x = x.append(status_element(*status));
        }
        presence.append_child(x.build());
        Delivery {
            to: to.clone(),
            stanza: presence,
        }
    }

    /// Sends occupant `index`'s presence to everyone; the occupant's own copy also carries
    /// `self_statuses` (110 and friends) on top of `notice.statuses`.
    pub(super) fn broadcast_presence(
        &self,
        index: usize,
        self_statuses: &[Status],
        notice: &Notice,
        out: &mut Vec<Delivery>,
    ) {
        let subject = &self.occupants[index];
        for other in self.occupants.iter().filter(|o| o.real != subject.real) {
            out.push(self.presence_of(subject, &other.real, notice));
        }
        let mut own = notice.statuses.to_vec();
        own.extend_from_slice(self_statuses);
        own.sort_unstable();
        let own_notice = Notice {
            statuses: &own,
            ..*notice
        };
        out.push(self.presence_of(subject, &subject.real, &own_notice));
    }

    /// Removes occupant `index`, telling everyone (itself included) it is gone.
    pub(super) fn remove_occupant(
        &mut self,
        index: usize,
        notice: &Notice,
        out: &mut Vec<Delivery>,
    ) {
        {
            let leaving = &mut self.occupants[index];
            leaving.role = Role::None;
            stanza::set_attr(&mut leaving.presence, "type", "unavailable");
        }
        self.broadcast_presence(index, &[Status::SelfPresence], notice, out);
        self.occupants.remove(index);
    }

    /// A message from occupant `from` to the room (groupchat) or to one occupant (`to` has a
    /// nick), relayed under the sender's occupant JID.
    pub(super) fn relay_message(
        &mut self,
        from: &Jid,
        to: &Jid,
        mut stanza: Element,
        out: &mut Vec<Delivery>,
    ) {
        let Some(sender) = self.index_of_real(from) else {
            reply_error(&stanza, StanzaError::NotAcceptable, out);
            return;
        };
        let sender_jid = self.occupant_jid(&self.occupants[sender]);
        match (to.resource(), stanza.attr("type")) {
            (None, Some("groupchat")) => {
                let subject = stanza.get_child("subject", ns::CLIENT).map(Element::text);
                if let Some(subject) = subject {
                    if self.occupants[sender].role < Role::Moderator {
                        reply_error(&stanza, StanzaError::Forbidden, out);
                        return;
                    }
                    self.subject = subject;
                }
                stanza::set_attr(&mut stanza, "from", sender_jid);
                for occupant in &self.occupants {
                    let mut copy = stanza.clone();
                    stanza::set_attr(&mut copy, "to", occupant.real.to_string());
                    out.push(Delivery {
                        to: occupant.real.clone(),
                        stanza: copy,
                    });
                }
            }
            (Some(nick), kind) if kind != Some("groupchat") => {
                self.relay_to_occupant(sender_jid, nick.as_str(), stanza, out);
            }
            _ => reply_error(&stanza, StanzaError::BadRequest, out),
        }
    }

    /// An iq from `from` to the occupant `nick` (how the focus and the clients exchange
    /// Jingle), relayed under the sender's occupant JID.
    pub(super) fn iq_to_occupant(
        &self,
        from: &Jid,
        nick: &str,
        stanza: Element,
        out: &mut Vec<Delivery>,
    ) {
        let Some(sender) = self.occupant_by_real(from) else {
            reply_error(&stanza, StanzaError::NotAcceptable, out);
            return;
        };
        self.relay_to_occupant(self.occupant_jid(sender), nick, stanza, out);
    }

    fn relay_to_occupant(
        &self,
        sender_jid: String,
        nick: &str,
        mut stanza: Element,
        out: &mut Vec<Delivery>,
    ) {
        let Some(target) = self.occupants.iter().find(|o| o.nick == nick) else {
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
}

pub(super) fn status_element(status: Status) -> Element {
    Element::builder("status", ns::MUC_USER)
        .attr(n("code"), (status as u16).to_string())
        .build()
}
