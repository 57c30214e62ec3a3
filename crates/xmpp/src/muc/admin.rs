//! `muc#admin` (XEP-0045 §9, §8.2–8.5): affiliations by bare JID (what the focus grants the
//! first participant), roles by nick (kicks), and the lists a moderator may read.

use jid::{BareJid, Jid};
use minidom::Element;

use super::roles::{Affiliation, Role};
use super::room::{Notice, Room, Status};
use crate::component::Sender;
use crate::stanza::{self, Delivery, StanzaError, n, ns};

/// Who is asking, as far as this room is concerned.
struct Actor {
    affiliation: Affiliation,
    role: Role,
    nick: Option<String>,
}

impl Room {
    fn actor(&self, sender: Sender<'_>) -> Actor {
        let occupant = self.occupant_by_real(sender.jid);
        let nick = occupant.map(|o| o.nick.clone());
        if sender.is_internal() {
            return Actor {
                affiliation: Affiliation::Owner,
                role: Role::Moderator,
                nick,
            };
        }
        match occupant {
            Some(o) => Actor {
                affiliation: o.affiliation,
                role: o.role,
                nick,
            },
            None => Actor {
                affiliation: self.affiliation_of(sender.jid),
                role: Role::None,
                nick,
            },
        }
    }

    pub(super) fn admin_set(
        &mut self,
        sender: Sender<'_>,
        iq: &Element,
        out: &mut Vec<Delivery>,
    ) -> Result<(), StanzaError> {
        let actor = self.actor(sender);
        let query = stanza::payload(iq).ok_or(StanzaError::BadRequest)?;
        for item in query.children().filter(|c| c.is("item", ns::MUC_ADMIN)) {
            let reason = item.get_child("reason", ns::MUC_ADMIN).map(Element::text);
            let notice_actor = actor.nick.as_deref();
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
                if actor.affiliation < needed {
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
                if actor.role < Role::Moderator
                    || (target.affiliation >= Affiliation::Admin
                        && actor.affiliation <= target.affiliation
                        && role < Role::Moderator)
                {
                    return Err(StanzaError::NotAllowed);
                }
                if role == Role::None {
                    let notice = Notice {
                        statuses: &[Status::Kicked],
                        actor: notice_actor,
                        reason: reason.as_deref(),
                        destroy: None,
                    };
                    self.remove_occupant(index, &notice, out);
                } else {
                    self.occupants[index].role = role;
                    self.broadcast_presence(
                        index,
                        &[Status::SelfPresence],
                        &Notice::default(),
                        out,
                    );
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
                    statuses: &[Status::Banned],
                    actor,
                    reason,
                    destroy: None,
                };
                self.remove_occupant(index, &notice, out);
                continue;
            }
            occupant.role = occupant.role.after_affiliation_change(affiliation);
            self.broadcast_presence(index, &[Status::SelfPresence], &Notice::default(), out);
            index += 1;
        }
    }

    pub(super) fn admin_get(
        &self,
        sender: Sender<'_>,
        iq: &Element,
    ) -> Result<Element, StanzaError> {
        let actor = self.actor(sender);
        if actor.role < Role::Moderator && actor.affiliation < Affiliation::Admin {
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
}
