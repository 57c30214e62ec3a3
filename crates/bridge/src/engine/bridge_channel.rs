//! The colibri-ws bridge channel as the core sees it: authentication, client messages,
//! broadcasts.

use std::time::Instant;

use subtle::ConstantTimeEq;
use tracing::debug;

use super::{ChannelAuthError, Core, CoreOutput, EndpointKey, previous_speaker_ids};
use crate::api::{ConferenceId, EndpointId};
use crate::channel::{self, ClientMessage};
use crate::metrics::DropReason;

impl Core {
    /// Authenticates a colibri-ws connection; the password is compared in constant time.
    pub fn channel_open(
        &mut self,
        conference_url_id: &str,
        endpoint: &str,
        pwd: &str,
    ) -> Result<EndpointKey, ChannelAuthError> {
        let conference = self
            .conference_by_url
            .get(conference_url_id)
            .ok_or(ChannelAuthError::Unknown)?
            .clone();
        let key = self
            .find(&conference, &EndpointId(endpoint.to_string()))
            .map_err(|_| ChannelAuthError::Unknown)?;
        let ep = self
            .endpoints
            .get_mut(&key)
            .ok_or(ChannelAuthError::Unknown)?;
        if !bool::from(ep.channel_pwd.as_bytes().ct_eq(pwd.as_bytes())) {
            return Err(ChannelAuthError::BadPassword);
        }
        ep.channel_open = true;
        ep.sent_sender_constraints.clear();
        let mut hello = vec![channel::server_hello()];
        if let Some(forwarded) = &ep.forwarded_sources {
            hello.push(channel::forwarded_sources(forwarded));
        }
        if let Some(conf) = self.conferences.get_mut(&conference) {
            conf.dirty = true;
            let previous = previous_speaker_ids(&conf.speakers, &self.endpoints);
            if let Some(d) = conf.speakers.dominant().and_then(|k| self.endpoints.get(k)) {
                hello.push(channel::dominant_speaker(&d.id.0, &previous));
            }
        }
        for text in hello {
            self.output.push_back(CoreOutput::Channel {
                endpoint: key,
                text,
            });
        }
        Ok(key)
    }

    pub fn channel_closed(&mut self, key: EndpointKey) {
        if let Some(ep) = self.endpoints.get_mut(&key) {
            ep.channel_open = false;
        }
    }

    pub fn channel_message(&mut self, now: Instant, key: EndpointKey, text: &str) {
        let _span = self.span_of(key).entered();
        let Some(ep) = self.endpoints.get_mut(&key) else {
            return;
        };
        ep.last_activity = now;
        if !ep.channel_budget.take(now, 1.0) {
            self.counters.drop(DropReason::ChannelFlood);
            return;
        }
        let message = match channel::parse(text) {
            Ok(m) => m,
            Err(e) => {
                debug!(endpoint = %ep.id.0, "bad bridge-channel message: {e}");
                return;
            }
        };
        let conference = ep.conference.clone();
        let from = ep.id.0.clone();
        match message {
            ClientMessage::ReceiverVideoConstraints(update) => {
                update.apply(&mut ep.constraints);
                self.mark_dirty(&conference);
            }
            ClientMessage::LastNChanged { last_n } => {
                ep.constraints.last_n = last_n;
                self.mark_dirty(&conference);
            }
            ClientMessage::EndpointMessage { to, message } => {
                let text = channel::relayed("EndpointMessage", &from, message);
                let to = (!to.is_empty()).then_some(to);
                self.broadcast(&conference, Some((key, to)), &text);
            }
            ClientMessage::EndpointStats { message } => {
                let text = channel::relayed("EndpointStats", &from, message);
                self.broadcast(&conference, Some((key, None)), &text);
            }
            ClientMessage::SourceVideoType {
                source_name,
                video_type,
            } => {
                for track in ep.tracks.iter_mut().filter(|t| t.name == source_name) {
                    track.muted = video_type == "none";
                }
                self.mark_dirty(&conference);
            }
            ClientMessage::Ignored(_) => {}
        }
        self.settle(now);
    }

    pub(super) fn mark_dirty(&mut self, conference: &ConferenceId) {
        if let Some(c) = self.conferences.get_mut(conference) {
            c.dirty = true;
        }
    }

    /// Sends `text` to the channels of a conference: everyone, or everyone but the sender
    /// (`Some((sender, None))`), or one endpoint by id (`Some((sender, Some(id)))`).
    pub(super) fn broadcast(
        &mut self,
        conference: &ConferenceId,
        from: Option<(EndpointKey, Option<String>)>,
        text: &str,
    ) {
        let Some(conf) = self.conferences.get(conference) else {
            return;
        };
        for &k in &conf.endpoints {
            let Some(ep) = self.endpoints.get(&k) else {
                continue;
            };
            let wanted = match &from {
                None => true,
                Some((sender, None)) => *sender != k,
                Some((sender, Some(to))) => *sender != k && ep.id.0 == *to,
            };
            if wanted && ep.channel_open {
                self.output.push_back(CoreOutput::Channel {
                    endpoint: k,
                    text: text.to_string(),
                });
            }
        }
    }
}
