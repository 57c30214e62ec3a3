//! Driving the allocator: per receiver, which layer of every other endpoint's video it
//! gets (constraints, speaker order, estimated downlink), and what each sender should
//! send at most.

use std::time::Instant;

use super::{Core, CoreOutput, EndpointKey};
use crate::allocator;
use crate::api::{ConferenceId, MediaKind};
use crate::channel;

/// What an unconstrained receiver wants, for `SenderSourceConstraints`.
const UNCONSTRAINED_HEIGHT: i32 = 2160;

impl Core {
    pub(super) fn allocate_layers(&mut self, now: Instant, conference: &ConferenceId) {
        let Some(conf) = self.conferences.get_mut(conference) else {
            return;
        };
        conf.dirty = false;
        let members = conf.endpoints.clone();
        let mut rank: Vec<EndpointKey> = conf.speakers.recent().copied().collect();
        let silent: Vec<EndpointKey> = members
            .iter()
            .copied()
            .filter(|k| !rank.contains(k))
            .collect();
        rank.extend(silent);

        // Per video track of every sender: (sender, primary, name, rank, choices, what
        // each choice stands for: a simulcast layer or an SVC decode target, is SVC).
        let mut videos = Vec::new();
        for &k in &members {
            let Some(ep) = self.endpoints.get(&k) else {
                continue;
            };
            let speaker_rank = rank.iter().position(|r| *r == k).unwrap_or(usize::MAX);
            let force_muted = ep.force_muted.contains(&MediaKind::Video);
            for track in ep.tracks.iter().filter(|t| t.kind == MediaKind::Video) {
                let (layers, meaning) = track.choices(now, force_muted);
                let svc = track.svc(now).is_some();
                videos.push((
                    k,
                    track.primary,
                    track.name.clone(),
                    speaker_rank,
                    layers,
                    meaning,
                    svc,
                ));
            }
        }

        let mut keyframes = Vec::new();
        let mut messages = Vec::new();
        for &r in &members {
            let Some(receiver) = self.endpoints.get_mut(&r) else {
                continue;
            };
            let mine: Vec<_> = videos.iter().filter(|v| v.0 != r).collect();
            let candidates: Vec<allocator::Candidate> = mine
                .iter()
                .map(|v| allocator::Candidate {
                    name: &v.2,
                    speaker_rank: v.3,
                    layers: &v.4,
                })
                .collect();
            // A tenth of the estimate stays free for audio, RTCP and retransmissions.
            let budget = receiver.bandwidth_bps / 10 * 9;
            let chosen = allocator::allocate(&receiver.constraints, &candidates, budget);
            // What the receiver would get with unlimited bandwidth: the estimate may grow
            // until its budget share affords that (see `crate::bwe`).
            let cost = |choice: &[Option<usize>]| -> u64 {
                choice
                    .iter()
                    .zip(&candidates)
                    .filter_map(|(l, c)| Some(c.layers[(*l)?].bitrate_bps))
                    .sum()
            };
            let ideal = allocator::allocate(&receiver.constraints, &candidates, u64::MAX);
            let wanted = (cost(&chosen), cost(&ideal));
            let changed = |old: u64, new: u64| new.abs_diff(old) * 10 > old.max(1);
            if changed(receiver.bwe_target.0, wanted.0) || changed(receiver.bwe_target.1, wanted.1)
            {
                receiver.bwe_target = wanted;
                // A quarter above the ideal: 90 % of it still covers the ideal while
                // the layers' measured bitrates wobble.
                receiver
                    .downlink
                    .set_desired(wanted.1.max(wanted.0).saturating_mul(5) / 4);
            }
            let mut forwarded = Vec::new();
            for (v, choice) in mine.iter().zip(chosen) {
                let Some(out) = receiver.out.get_mut(&v.1) else {
                    continue;
                };
                let target = choice.map(|i| v.5[i]);
                if target.is_some() {
                    forwarded.push(v.2.clone());
                }
                if out.target != target {
                    out.target = target;
                    match target {
                        None => out.rewriter.pause(),
                        // An SVC stream's selector asks for keyframes when it needs them.
                        Some(_) if v.6 => {}
                        Some(l) if out.rewriter.layer() != Some(l) => keyframes.push((v.0, v.1, l)),
                        Some(_) => {}
                    }
                }
            }
            forwarded.sort();
            let Some(receiver) = self.endpoints.get_mut(&r) else {
                continue;
            };
            if receiver.forwarded_sources.as_ref() != Some(&forwarded) {
                if receiver.channel_open {
                    messages.push((r, channel::forwarded_sources(&forwarded)));
                }
                receiver.forwarded_sources = Some(forwarded);
            }
        }

        // What each sender should send at most: the highest any receiver accepts.
        for &s in &members {
            let Some(sender) = self.endpoints.get(&s) else {
                continue;
            };
            if !sender.channel_open || members.len() < 2 {
                continue;
            }
            let mut updates = Vec::new();
            for track in sender.tracks.iter().filter(|t| t.kind == MediaKind::Video) {
                let wanted = members
                    .iter()
                    .filter(|r| **r != s)
                    .filter_map(|r| self.endpoints.get(r))
                    .map(|r| match r.constraints.max_height_of(&track.name) {
                        h if h < 0 => UNCONSTRAINED_HEIGHT,
                        h => h,
                    })
                    .max()
                    .unwrap_or(UNCONSTRAINED_HEIGHT);
                if sender.sent_sender_constraints.get(&track.name) != Some(&wanted) {
                    updates.push((track.name.clone(), wanted));
                }
            }
            for (name, height) in updates {
                messages.push((s, channel::sender_source_constraints(&name, height)));
                if let Some(sender) = self.endpoints.get_mut(&s) {
                    sender.sent_sender_constraints.insert(name, height);
                }
            }
        }
        for (endpoint, text) in messages {
            self.output
                .push_back(CoreOutput::Channel { endpoint, text });
        }
        for (sender, primary, layer) in keyframes {
            self.request_keyframe(now, sender, primary, layer);
        }
    }
}
