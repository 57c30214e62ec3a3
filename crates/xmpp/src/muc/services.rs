//! The Jitsi room-control services that a stock deployment runs as Prosody components
//! beside the MUC, here provided by the MUC itself at hosts of their own (so that they act
//! on its rooms without a second copy of them): end meeting for all (`mod_end_conference`).
//!
//! The clients find each service by its identity in the domain's disco#info (Rule A of
//! `meeting-features.md`), and a service acts on the room the sender's session was opened
//! for (`?room=`, Rule B), never on a room the stanza names. Like the Prosody modules, a
//! request that is not allowed is dropped without an answer (the clients expect none).

use jid::{BareJid, Jid};
use minidom::{Element, NSChoice};
use tracing::debug;

use super::Muc;
use super::roles::Role;
use crate::component::{DiscoIdentity, Sender};
use crate::router::{Domains, Router};
use crate::stanza::Delivery;

/// What every occupant of a room ended for all is told (`mod_end_conference`'s reason).
const TERMINATED: &str = "The meeting has been terminated";

/// Announces the services the MUC provides, at their hosts.
pub(crate) fn add_services(router: &mut Router, domains: &Domains) {
    router.add_service(
        domains.end_conference.clone(),
        DiscoIdentity {
            category: "component",
            kind: "end_conference",
        },
        &domains.conference,
    );
}

impl Muc {
    /// A stanza to one of the services' hosts.
    pub(super) fn service(
        &mut self,
        sender: Sender<'_>,
        to: &Jid,
        stanza: Element,
        out: &mut Vec<Delivery>,
    ) {
        if to.domain().as_str() == self.domains.end_conference
            && stanza.name() == "message"
            && stanza.get_child("end_conference", NSChoice::Any).is_some()
        {
            self.end_conference(sender, out);
        }
    }

    /// The room of the sender's session, if the sender moderates it (what the services ask
    /// of most requests).
    fn moderated_room(&self, sender: Sender<'_>) -> Option<BareJid> {
        let room = sender.identity.and_then(|i| i.web_room.as_deref())?;
        let room = BareJid::new(&format!("{room}@{}", self.domains.conference)).ok()?;
        let occupant = self.rooms.get(&room)?.occupant_by_real(sender.jid)?;
        (occupant.role == Role::Moderator).then_some(room)
    }

    /// A moderator ends the meeting for everyone: the room is destroyed.
    fn end_conference(&mut self, sender: Sender<'_>, out: &mut Vec<Delivery>) {
        let Some(room) = self.moderated_room(sender) else {
            debug!(from = %sender.jid, "end_conference refused: not a moderator of its session's room");
            return;
        };
        if let Some(mut state) = self.rooms.remove(&room) {
            state.destroy(TERMINATED, out);
        }
    }
}
