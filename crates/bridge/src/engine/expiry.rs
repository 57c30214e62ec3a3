//! Time and the end of endpoints: str0m timeouts, housekeeping (speakers, allocation,
//! idle and disconnected endpoints), expiry and shutdown.

use std::time::Instant;

use tracing::info;

use super::endpoint::remove_out;
use super::{
    CONNECTION_STATS_INTERVAL, Core, CoreOutput, EndpointKey, HOUSEKEEPING_INTERVAL,
    previous_speaker_ids,
};
use crate::api::{BridgeEvent, ConferenceId};
use crate::channel;

impl Core {
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<EndpointKey> = self
            .endpoints
            .iter()
            .filter(|(_, e)| e.next_timeout <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.serve_timeouts(now, key);
        }
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + HOUSEKEEPING_INTERVAL;
            self.housekeeping(now);
        }
        self.settle(now);
    }

    fn housekeeping(&mut self, now: Instant) {
        let idle_timeout = self.settings.idle_timeout;
        let idle: Vec<EndpointKey> = self
            .endpoints
            .iter_mut()
            .filter_map(|(k, e)| {
                let idle = now.saturating_duration_since(e.last_activity) > idle_timeout;
                // A panic here leaves the endpoint broken: expired all the same.
                let dead = e.dtls_started && e.rtc.call(|rtc| rtc.is_alive()) != Some(true);
                (idle || dead).then_some(*k)
            })
            .collect();
        for key in idle {
            let _span = self.span_of(key).entered();
            info!(endpoint = %self.endpoints[&key].id.0, "endpoint idle or disconnected; expiring");
            self.expire(now, key, true);
        }
        if now >= self.next_connection_stats {
            self.next_connection_stats = now + CONNECTION_STATS_INTERVAL;
            for (key, ep) in self.endpoints.iter().filter(|(_, e)| e.channel_open) {
                let text = channel::connection_stats(ep.bandwidth_bps);
                self.output.push_back(CoreOutput::Channel {
                    endpoint: *key,
                    text,
                });
            }
        }
        let conferences: Vec<ConferenceId> = self.conferences.keys().cloned().collect();
        for id in conferences {
            let conf = self.conferences.get_mut(&id).expect("listed above");
            let _span = conf.span.clone().entered();
            if conf.speakers.evaluate(now) {
                let dominant = conf.speakers.dominant().copied();
                let previous = previous_speaker_ids(&conf.speakers, &self.endpoints);
                if let Some(name) = dominant
                    .and_then(|k| self.endpoints.get(&k))
                    .map(|e| e.id.0.clone())
                {
                    let text = channel::dominant_speaker(&name, &previous);
                    self.broadcast(&id, None, &text);
                }
            }
            self.allocate_layers(now, &id);
        }
    }

    /// Expires every endpoint (each one's `EndpointExpired` event and channel close come
    /// out of [`Core::poll_output`]): the bridge is shutting down.
    pub fn shutdown(&mut self, now: Instant) {
        let keys: Vec<EndpointKey> = self.endpoints.keys().copied().collect();
        for key in keys {
            self.expire(now, key, true);
        }
    }

    pub(super) fn expire(&mut self, now: Instant, key: EndpointKey, by_bridge: bool) {
        let Some(ep) = self.endpoints.remove(&key) else {
            return;
        };
        self.by_ufrag.remove(&ep.ufrag);
        self.by_addr.retain(|_, k| *k != key);
        self.output.push_back(CoreOutput::CloseChannel(key));
        if by_bridge {
            self.counters.endpoints_expired += 1;
            self.output
                .push_back(CoreOutput::Event(BridgeEvent::EndpointExpired {
                    conference: ep.conference.clone(),
                    endpoint: ep.id.clone(),
                }));
        }
        let Some(conf) = self.conferences.get_mut(&ep.conference) else {
            return;
        };
        conf.endpoints.retain(|k| *k != key);
        conf.speakers.remove(&key);
        conf.dirty = true;
        if by_bridge {
            conf.counters.endpoints_expired += 1;
        }
        let others = conf.endpoints.clone();
        if others.is_empty() {
            // Nobody left: the conference goes too (the focus may not say so itself).
            let url_id = conf.url_id.clone();
            self.conferences.remove(&ep.conference);
            self.conference_by_url.remove(&url_id);
        }
        for other in others {
            if let Some(receiver) = self.endpoints.get_mut(&other) {
                for track in &ep.tracks {
                    remove_out(receiver, track.primary);
                }
            }
            self.drain(now, other);
        }
        info!(endpoint = %ep.id.0, by_bridge, "endpoint expired");
    }
}
