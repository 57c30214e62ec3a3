//! MUC presence: the focus's own (join confirmed, refused, kicked), the occupants' (join,
//! role and affiliation changes, leave) and the owner grant that follows.

use std::time::Instant;

use jid::Jid;
use minidom::Element;
use tracing::{info, warn};

use super::conference::{Conference, Participant};
use super::outbox::Outbox;
use super::{FOCUS_NICK, Focus};
use crate::codecs;
use crate::muc::{Affiliation, Role};
use crate::ns;
use crate::xml::ElementExt;

impl Focus {
    pub(super) fn on_presence(&mut self, now: Instant, presence: Element) {
        let Some((room, nick)) = presence.attr("from").and_then(|from| self.occupant(from)) else {
            return;
        };
        let typ = presence.attr("type");
        let conference = self
            .conferences
            .get_mut(&room)
            .expect("occupant() checked the room exists");
        let _span = conference.span.clone().entered();
        if nick == FOCUS_NICK {
            match typ {
                Some("error") if !conference.joined => {
                    warn!("the MUC refused the focus's join");
                    let mut conference = self.conferences.remove(&room).expect("present");
                    conference.answer_waiting(&mut self.out, false);
                }
                // Before the join is confirmed, this is the echo of leaving the previous
                // conference in this room.
                Some("unavailable") if conference.joined => {
                    // Kicked, or the room was destroyed: the conference is over.
                    warn!("the focus was removed from the room");
                    self.end_conference(&room);
                }
                None if !conference.joined => {
                    info!("focus joined the room");
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
                    info!("last participant left; the conference ends");
                    self.end_conference(&room);
                }
            }
            _ => {}
        }
    }
}

impl Conference {
    fn on_occupant_presence(&mut self, out: &mut Outbox, nick: &str, presence: &Element) {
        let item = presence
            .get_child("x", ns::MUC_USER)
            .and_then(|x| x.get_child("item", ns::MUC_USER));
        let attr = |name: &'static str| item.and_then(|item| item.attr(name));
        let full_jid = attr("jid").and_then(|jid| Jid::new(jid).ok());
        if let Some(jid) = &full_jid {
            self.expected.retain(|(expected, _)| expected != jid);
        }
        let real_jid = full_jid.map(|jid| jid.to_bare());
        let role = Role::from_attr(attr("role"));
        let affiliation = Affiliation::from_attr(attr("affiliation"));
        let codecs = codecs::codec_list(presence);
        match self.participant_mut(nick) {
            Some(participant) => {
                participant.role = role;
                participant.affiliation = affiliation;
                if real_jid.is_some() {
                    participant.real_jid = real_jid;
                }
                participant.codecs = codecs;
            }
            None => {
                info!(%nick, ?codecs, "participant joined");
                let mut participant = Participant::new(nick, real_jid, role, affiliation);
                participant.codecs = codecs;
                self.participants.push(participant);
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
        info!(%nick, "participant left");
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
        let Some((next, jid)) = self
            .participants
            .iter()
            .find_map(|p| p.real_jid.as_ref().map(|jid| (p, jid.to_string())))
        else {
            return;
        };
        info!(nick = %next.nick, "granting owner");
        self.owner_granted = Some(next.nick.clone());
        let query = Element::bare("query", ns::MUC_ADMIN).with_child(
            Element::bare("item", ns::MUC_ADMIN)
                .with_attr("affiliation", Affiliation::Owner.as_str())
                .with_attr("jid", jid),
        );
        out.send_set(&self.room, query);
    }
}
