//! Remote mute (`LJM: ChatRoom.ts muteParticipant`, Jicofo's `MuteIqHandler`): a moderator
//! mutes someone's audio, camera or screen share, the focus tells that participant and the
//! bridge stops forwarding the media until the participant unmutes itself. Nobody unmutes
//! anybody else, not even a moderator.

use convene_colibri::{BridgeRequest, EndpointId, MediaKind};
use jid::Jid;
use minidom::Element;
use tracing::info;

use super::Focus;
use super::bridge_queue::Purpose;
use super::conference::Conference;
use super::outbox::Outbox;
use crate::ns;
use crate::stanza::{Condition, iq_error, iq_result};
use crate::xml::ElementExt;

/// What a mute IQ is about, by its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Media {
    Audio,
    Video,
    Desktop,
}

impl Media {
    pub(crate) const ALL: [Media; 3] = [Media::Audio, Media::Video, Media::Desktop];

    pub(crate) fn from_ns(namespace: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.ns() == namespace)
    }

    fn ns(self) -> &'static str {
        match self {
            Media::Audio => ns::MUTE_AUDIO,
            Media::Video => ns::MUTE_VIDEO,
            Media::Desktop => ns::MUTE_DESKTOP,
        }
    }

    /// The bridge mutes by kind: camera and screen share are both video.
    fn kind(self) -> MediaKind {
        match self {
            Media::Audio => MediaKind::Audio,
            Media::Video | Media::Desktop => MediaKind::Video,
        }
    }
}

impl Focus {
    /// A mute IQ from an occupant to `room/focus`; always answered.
    pub(super) fn on_mute(&mut self, request: &Element, payload: &Element, media: Media) {
        let reply = match request.attr("from").and_then(|from| self.occupant(from)) {
            None => Err(Condition::NotAllowed),
            Some((room, nick)) => {
                let conference = self
                    .conferences
                    .get_mut(&room)
                    .expect("occupant() found it");
                let _span = conference.span.clone().entered();
                conference.on_mute(&mut self.out, &nick, payload, media)
            }
        };
        let stanza = match reply {
            Ok(()) => iq_result(request, None),
            Err(condition) => iq_error(request, condition, None, None),
        };
        self.out.send(stanza);
    }
}

impl Conference {
    /// `actor` asks to set `media` of the occupant the payload names to muted or not.
    fn on_mute(
        &mut self,
        out: &mut Outbox,
        actor: &str,
        payload: &Element,
        media: Media,
    ) -> Result<(), Condition> {
        let moderator = self
            .participants
            .iter()
            .find(|p| p.nick == actor)
            .ok_or(Condition::NotAllowed)?
            .is_moderator();
        let target = payload
            .attr("jid")
            .and_then(|jid| Jid::new(jid).ok())
            .filter(|jid| jid.to_bare().as_str() == self.room)
            .and_then(|jid| jid.resource().map(|r| r.as_str().to_owned()))
            .ok_or(Condition::BadRequest)?;
        let mute = match payload.text().trim() {
            "true" => true,
            "false" => false,
            _ => return Err(Condition::BadRequest),
        };
        let itself = target == actor;
        if !itself && (!mute || !moderator) {
            // Muting someone else takes a moderator; unmuting someone else nobody may.
            return Err(Condition::NotAllowed);
        }
        if !self.participants.iter().any(|p| p.nick == target) {
            return Err(Condition::ItemNotFound);
        }
        info!(%actor, %target, ?media, mute, "mute request");
        if mute && !itself {
            let forwarded = Element::bare("mute", media.ns())
                .with_attr("jid", self.occupant_jid(&target))
                .with_attr("actor", self.occupant_jid(actor))
                .with_text("true");
            out.send_set(&self.occupant_jid(&target), forwarded);
        }
        self.set_force_muted(out, &target, media, mute);
        Ok(())
    }

    /// Records `nick`'s `media` as muted or not and tells the bridge when what it forwards
    /// of that kind changes.
    pub(super) fn set_force_muted(
        &mut self,
        out: &mut Outbox,
        nick: &str,
        media: Media,
        muted: bool,
    ) {
        let conference = self.conference_id();
        let bridge = self.bridge.clone();
        let Some(participant) = self.participant_mut(nick) else {
            return;
        };
        let was = participant.force_muted_kind(media.kind());
        participant.force_muted.retain(|m| *m != media);
        if muted {
            participant.force_muted.push(media);
        }
        let now = participant.force_muted_kind(media.kind());
        if was != now && participant.session.is_some() {
            out.bridge(
                &bridge,
                BridgeRequest::ForceMute {
                    conference,
                    endpoint: EndpointId(nick.to_owned()),
                    kind: media.kind(),
                    muted: now,
                },
                Purpose::Other,
            );
        }
    }

    /// The force mutes of `nick`'s new bridge endpoint, queued behind its allocation.
    pub(super) fn restore_force_mutes(&self, out: &mut Outbox, nick: &str) {
        let Some(participant) = self.participants.iter().find(|p| p.nick == nick) else {
            return;
        };
        for kind in [MediaKind::Audio, MediaKind::Video] {
            if participant.force_muted_kind(kind) {
                out.bridge(
                    &self.bridge,
                    BridgeRequest::ForceMute {
                        conference: self.conference_id(),
                        endpoint: EndpointId(nick.to_owned()),
                        kind,
                        muted: true,
                    },
                    Purpose::Other,
                );
            }
        }
    }
}

impl super::conference::Participant {
    /// Whether the bridge should drop this participant's media of `kind`.
    fn force_muted_kind(&self, kind: MediaKind) -> bool {
        self.force_muted.iter().any(|m| m.kind() == kind)
    }
}
