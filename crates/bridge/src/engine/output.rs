//! str0m's output: draining each `Rtc` after it was fed, its events, and sending the
//! forwarded media the receivers were handed.

use std::time::Instant;

use foldhash::HashMap;
use str0m::rtp::RawPacket;
use str0m::rtp::rtcp::Rtcp;
use str0m::{Event, Input, Output};
use tracing::{info, warn};

use super::endpoint::Endpoint;
use super::{Conference, Core, CoreOutput, EndpointKey, count, rtc};
use crate::api::ConferenceId;
use crate::metrics::{Counters, DropReason};

/// Due str0m timeouts served per endpoint in one go, so that one endpoint with a long
/// queue cannot starve the others.
const MAX_TIMEOUTS_PER_TURN: usize = 64;

impl Core {
    /// Serves the endpoint's due str0m timeouts and drains its output.
    pub(super) fn serve_timeouts(&mut self, now: Instant, key: EndpointKey) {
        // str0m's pacer releases one packet per timeout and asks to be woken again at
        // once: serve those here rather than one loop turn of the shell each.
        for _ in 0..MAX_TIMEOUTS_PER_TURN {
            let Some(ep) = self.endpoints.get_mut(&key) else {
                break;
            };
            if ep.rtc.is_broken() || ep.next_timeout > now {
                break;
            }
            if let Some(Err(e)) = ep.rtc.call(|rtc| rtc.handle_input(Input::Timeout(now))) {
                warn!(endpoint = %ep.id.0, "str0m timeout failed: {e}");
                ep.rtc.set_broken();
            }
            // The timeout sends what forwarding queued: no second one for it this turn.
            ep.unsent = false;
            self.drain(now, key);
        }
    }

    /// Sends what forwarding handed to the receivers since the last call: each one's
    /// str0m timeout once (its packets are due now), then whatever that caused.
    pub(super) fn send_forwarded(&mut self, now: Instant) {
        let mut unsent = std::mem::take(&mut self.unsent);
        for key in unsent.drain(..) {
            let Some(ep) = self.endpoints.get_mut(&key) else {
                continue;
            };
            // Unless a due timeout of this receiver was served since (`handle_timeout`).
            if ep.unsent {
                ep.next_timeout = now;
                self.serve_timeouts(now, key);
            }
        }
        // The list keeps its allocation from one loop turn to the next.
        unsent.append(&mut self.unsent);
        self.unsent = unsent;
        self.settle(now);
    }

    /// Polls the endpoint's `Rtc` until it only has a timeout left.
    pub(super) fn drain(&mut self, now: Instant, key: EndpointKey) {
        let Some(ep) = self.endpoints.get_mut(&key) else {
            return;
        };
        loop {
            let polled = ep.rtc.call(|rtc| rtc.poll_output());
            match polled {
                Some(Ok(Output::Timeout(t))) => {
                    ep.next_timeout = t;
                    break;
                }
                Some(Ok(Output::Transmit(t))) => {
                    self.by_addr
                        .entry((t.proto, t.destination, t.source))
                        .or_insert(key);
                    let len = t.contents.len() as u64;
                    count(
                        &mut self.counters,
                        &mut self.conferences,
                        &ep.conference,
                        |c| {
                            c.packets_out += 1;
                            c.bytes_out += len;
                        },
                    );
                    self.output.push_back(CoreOutput::Transmit(t));
                }
                // One per sent packet: handled here rather than queued with the others.
                Some(Ok(Output::Event(Event::RawPacket(raw)))) => {
                    on_raw_packet(now, ep, &mut self.conferences, &mut self.counters, *raw);
                }
                Some(Ok(Output::Event(e))) => self.pending.push_back((key, e)),
                Some(Err(e)) => {
                    warn!(endpoint = %ep.id.0, "str0m failed: {e}");
                    ep.rtc.set_broken();
                    break;
                }
                None => break,
            }
        }
    }

    /// Handles queued str0m events, then drops endpoints whose `Rtc` failed.
    pub(super) fn settle(&mut self, now: Instant) {
        while let Some((key, event)) = self.pending.pop_front() {
            self.handle_event(now, key, event);
        }
        let broken: Vec<EndpointKey> = self
            .endpoints
            .iter()
            .filter(|(_, e)| e.rtc.is_broken())
            .map(|(k, _)| *k)
            .collect();
        for key in broken {
            self.expire(now, key, true);
        }
        let dirty: Vec<ConferenceId> = self
            .conferences
            .iter()
            .filter(|(_, c)| c.dirty)
            .map(|(id, _)| id.clone())
            .collect();
        for id in dirty {
            self.allocate_layers(now, &id);
        }
        while let Some((key, event)) = self.pending.pop_front() {
            self.handle_event(now, key, event);
        }
    }

    fn handle_event(&mut self, now: Instant, key: EndpointKey, event: Event) {
        match event {
            Event::Connected => {
                if let Some(ep) = self.endpoints.get(&key) {
                    info!(endpoint = %ep.id.0, "ICE and DTLS connected");
                }
            }
            Event::RtpPacket(packet) => self.forward(now, key, packet),
            Event::KeyframeRequest(request) => self.on_keyframe_request(now, key, request),
            Event::MediaEgressStats(stats) => {
                let Some(ep) = self.endpoints.get_mut(&key) else {
                    return;
                };
                let Some(rid) = stats.rid else { return };
                let seen = ep.nacks_seen.entry(rid).or_default();
                let new = stats.nacks.saturating_sub(*seen);
                *seen = stats.nacks;
                count(
                    &mut self.counters,
                    &mut self.conferences,
                    &ep.conference,
                    |c| {
                        c.nacks_received += new;
                    },
                );
            }
            Event::Closed => {
                if let Some(ep) = self.endpoints.get_mut(&key) {
                    ep.rtc.set_broken();
                }
            }
            _ => {}
        }
    }
}

/// Sent packets and the receiver's transport-wide feedback feed its downlink estimate; a
/// change of more than a tenth has its conference's layers re-allocated.
fn on_raw_packet(
    now: Instant,
    ep: &mut Endpoint,
    conferences: &mut HashMap<ConferenceId, Conference>,
    counters: &mut Counters,
    raw: RawPacket,
) {
    match raw {
        RawPacket::RtpTx(header, payload) => {
            if let Some(seq) = header.ext_vals.transport_cc {
                ep.downlink
                    .on_sent(now, seq, header.header_len + payload.len());
            }
        }
        RawPacket::RtcpRx(Rtcp::Twcc(twcc)) => {
            let (time_zero, extend_from) = (ep.downlink.time_zero(), ep.downlink.last_seq());
            // str0m's iterator panics on some malformed reports: the endpoint's input, so
            // counted rather than logged.
            let report = rtc::guard(|| {
                twcc.into_iter(time_zero, extend_from.into())
                    .map(|(seq, _, arrival)| (*seq, arrival))
                    .collect::<Vec<_>>()
            });
            let Some(report) = report else {
                counters.drop(DropReason::RtcError);
                return;
            };
            ep.downlink.on_feedback(now, report);
            let new = ep.downlink.estimate_bps();
            let old = ep.bandwidth_bps.max(1);
            if new.abs_diff(old) * 10 > old {
                ep.bandwidth_bps = new;
                if let Some(c) = conferences.get_mut(&ep.conference) {
                    c.dirty = true;
                }
            }
        }
        _ => {}
    }
}
