//! The focus's requests: allocating, configuring and expiring endpoints and their sources.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt, HashSet};
use rand::Rng;
use str0m::net::TcpType;
use str0m::rtp::Ssrc;
use str0m::{Candidate, IceCreds};
use tracing::{Span, info};

use super::endpoint::{Endpoint, Track, channel_budget, declare_out, remove_out};
use super::ingress::IngressBudget;
use super::rtc::GuardedRtc;
use super::sources::{all_ssrcs, tracks_of};
use super::{Conference, Core, EndpointKey, mid_of, path_segment};
use crate::allocator::Constraints;
use crate::api::{
    BridgeError, BridgeRequest, BridgeResponse, ConferenceId, DtlsSetup, EndpointId, EndpointOffer,
    Fingerprint, IceCandidate, MediaKind, Source, SourceSet, TransportDescription,
};
use crate::bwe::DownlinkEstimator;
use crate::media;
use crate::metrics::Counters;
use crate::speaker::SpeakerDetector;
use crate::sync::SenderClock;

/// Lengths of the ICE credentials the bridge makes up (str0m's own: at least 24 bits of
/// randomness for the ufrag and 128 for the password, RFC 8445 §5.3).
const ICE_UFRAG_LEN: usize = 16;
const ICE_PWD_LEN: usize = 22;

impl Core {
    pub fn handle_request(
        &mut self,
        now: Instant,
        request: BridgeRequest,
    ) -> Result<BridgeResponse, BridgeError> {
        let span = self
            .conferences
            .get(request.conference())
            .map_or_else(Span::none, |c| c.span.clone());
        let _span = span.entered();
        let done = |()| BridgeResponse::Done;
        let result = match request {
            BridgeRequest::AllocateEndpoint {
                conference,
                endpoint,
            } => self
                .allocate(now, conference, endpoint)
                .map(BridgeResponse::EndpointAllocated),
            BridgeRequest::ConfigureEndpoint {
                conference,
                endpoint,
                transport,
                media: _,
                sources,
            } => {
                let key = self.find(&conference, &endpoint)?;
                self.configure(now, key, &transport)?;
                self.set_sources(now, key, sources).map(done)
            }
            BridgeRequest::AddRemoteCandidates {
                conference,
                endpoint,
                candidates,
            } => {
                let key = self.find(&conference, &endpoint)?;
                self.add_candidates(now, key, &candidates);
                Ok(BridgeResponse::Done)
            }
            BridgeRequest::AddSources {
                conference,
                endpoint,
                sources,
            } => {
                let key = self.find(&conference, &endpoint)?;
                let mut merged = self.endpoints[&key].sources.clone();
                merged.sources.extend(sources.sources);
                merged.groups.extend(sources.groups);
                self.set_sources(now, key, merged).map(done)
            }
            BridgeRequest::RemoveSources {
                conference,
                endpoint,
                sources,
            } => {
                let key = self.find(&conference, &endpoint)?;
                let gone: HashSet<u32> = all_ssrcs(&sources).collect();
                let mut kept = self.endpoints[&key].sources.clone();
                kept.sources.retain(|s| !gone.contains(&s.ssrc));
                kept.groups
                    .retain(|g| !g.ssrcs.iter().any(|s| gone.contains(s)));
                self.set_sources(now, key, kept).map(done)
            }
            BridgeRequest::ForceMute {
                conference,
                endpoint,
                kind,
                muted,
            } => {
                let key = self.find(&conference, &endpoint)?;
                let endpoint = self.endpoints.get_mut(&key).expect("found");
                endpoint.force_muted.retain(|k| *k != kind);
                if muted {
                    endpoint.force_muted.push(kind);
                }
                info!(endpoint = %endpoint.id.0, ?kind, muted, "force mute");
                // Receivers drop the muted video's layers now and, on unmute, select them
                // again from a keyframe.
                self.mark_dirty(&conference);
                Ok(BridgeResponse::Done)
            }
            BridgeRequest::ExpireEndpoint {
                conference,
                endpoint,
            } => {
                // Expiring what is already gone (the bridge may have expired it first,
                // or the conference went with its last endpoint) is not an error.
                if let Ok(key) = self.find(&conference, &endpoint) {
                    self.expire(now, key, false);
                }
                Ok(BridgeResponse::Done)
            }
            BridgeRequest::ExpireConference { conference } => {
                let keys = self
                    .conferences
                    .get(&conference)
                    .map(|c| c.endpoints.clone())
                    .unwrap_or_default();
                for key in keys {
                    self.expire(now, key, false);
                }
                if let Some(c) = self.conferences.remove(&conference) {
                    self.conference_by_url.remove(&c.url_id);
                }
                Ok(BridgeResponse::Done)
            }
        };
        self.settle(now);
        result
    }

    pub(super) fn find(
        &self,
        conference: &ConferenceId,
        endpoint: &EndpointId,
    ) -> Result<EndpointKey, BridgeError> {
        let conf = self
            .conferences
            .get(conference)
            .ok_or(BridgeError::UnknownConference)?;
        conf.endpoints
            .iter()
            .copied()
            .find(|k| self.endpoints.get(k).is_some_and(|e| e.id == *endpoint))
            .ok_or(BridgeError::UnknownEndpoint)
    }

    pub(super) fn allocate(
        &mut self,
        now: Instant,
        conference: ConferenceId,
        endpoint: EndpointId,
    ) -> Result<EndpointOffer, BridgeError> {
        if endpoint.0.is_empty() || endpoint.0.len() > 256 {
            return Err(BridgeError::Invalid("endpoint id length".into()));
        }
        if let Ok(old) = self.find(&conference, &endpoint) {
            self.expire(now, old, false);
        }
        if !self.conferences.contains_key(&conference) {
            let url_id = self.random_string(16);
            let span = tracing::info_span!("conference", id = %url_id);
            self.conference_by_url
                .insert(url_id.clone(), conference.clone());
            let conf = Conference {
                url_id,
                span,
                endpoints: Vec::new(),
                speakers: SpeakerDetector::default(),
                counters: Counters::default(),
                dirty: true,
            };
            self.conferences.insert(conference.clone(), conf);
        }
        let (url_id, span) = {
            let conf = &self.conferences[&conference];
            (conf.url_id.clone(), conf.span.clone())
        };
        let _span = span.entered();

        let local_creds = IceCreds {
            ufrag: self.random_string(ICE_UFRAG_LEN),
            pass: self.random_string(ICE_PWD_LEN),
        };
        let mut rtc = GuardedRtc::new(
            media::rtc_config()
                .set_stats_interval(Some(Duration::from_secs(1)))
                .set_local_ice_credentials(local_creds.clone())
                .build(now),
        );
        let mut candidates = Vec::new();
        for (i, addr) in self.settings.local_addrs.iter().enumerate() {
            let Ok(c) = Candidate::host(*addr, "udp") else {
                continue;
            };
            candidates.push(IceCandidate {
                foundation: (i + 1).to_string(),
                component: 1,
                protocol: "udp".into(),
                priority: c.prio(),
                ip: addr.ip(),
                port: addr.port(),
                typ: "host".into(),
                tcptype: None,
                generation: 0,
            });
            rtc.call(|rtc| {
                rtc.add_local_candidate(c);
            });
        }
        for addr in &self.settings.tcp_addrs {
            let Ok(c) = Candidate::builder()
                .tcp()
                .host(*addr)
                .tcptype(TcpType::Passive)
                .build()
            else {
                continue;
            };
            candidates.push(IceCandidate {
                foundation: (candidates.len() + 1).to_string(),
                component: 1,
                protocol: "tcp".into(),
                priority: c.prio(),
                ip: addr.ip(),
                port: addr.port(),
                typ: "host".into(),
                tcptype: Some("passive".into()),
                generation: 0,
            });
            rtc.call(|rtc| {
                rtc.add_local_candidate(c);
            });
        }
        let public: Vec<IceCandidate> = self
            .settings
            .public_ips
            .iter()
            .flat_map(|ip| {
                candidates.iter().map(move |c| IceCandidate {
                    ip: *ip,
                    // Just below the local candidate it stands for.
                    priority: c.priority.saturating_sub(1),
                    ..c.clone()
                })
            })
            .collect();
        for mut c in public {
            c.foundation = (candidates.len() + 1).to_string();
            candidates.push(c);
        }
        let audio_ssrc = self.unused_ssrc(&conference, &[]);
        let feedback_ssrcs = [audio_ssrc, self.unused_ssrc(&conference, &[audio_ssrc])];
        let fingerprint = rtc.call(|rtc| {
            let mut api = rtc.direct_api();
            api.set_ice_lite(false);
            api.set_ice_controlling(true);
            api.enable_twcc_feedback();
            api.declare_media(mid_of(MediaKind::Audio), str0m::media::MediaKind::Audio);
            api.declare_media(mid_of(MediaKind::Video), str0m::media::MediaKind::Video);
            for (kind, ssrc) in [MediaKind::Audio, MediaKind::Video]
                .into_iter()
                .zip(feedback_ssrcs)
            {
                api.declare_stream_tx(Ssrc::from(ssrc), None, mid_of(kind), None);
            }
            api.local_dtls_fingerprint().to_string()
        });
        let Some(fingerprint) = fingerprint else {
            return Err(BridgeError::Invalid("endpoint set-up failed".into()));
        };
        let (hash, value) = fingerprint
            .split_once(' ')
            .unwrap_or(("sha-256", &fingerprint));
        let mut feedback = SourceSet::default();
        for ((kind, label), ssrc) in [(MediaKind::Audio, "audio"), (MediaKind::Video, "video")]
            .into_iter()
            .zip(feedback_ssrcs)
        {
            feedback.sources.push(Source {
                ssrc,
                kind,
                name: None,
                msid: Some(format!("mixedmslabel mixedlabel{label}0")),
                video_type: None,
            });
        }

        let channel_pwd = self.random_string(24);
        let key = self.next_key;
        self.next_key += 1;
        let offer = EndpointOffer {
            transport: TransportDescription {
                ufrag: local_creds.ufrag.clone(),
                pwd: local_creds.pass.clone(),
                fingerprints: vec![Fingerprint {
                    hash: hash.to_string(),
                    value: value.to_string(),
                    setup: DtlsSetup::Actpass,
                }],
                candidates,
            },
            media: media::offered_media(),
            feedback_sources: feedback.clone(),
            colibri_ws_url: format!(
                "{}/colibri-ws/{}/{}/{}?pwd={}",
                self.settings.colibri_ws_base.trim_end_matches('/'),
                path_segment(&self.settings.server_id),
                url_id,
                path_segment(&endpoint.0),
                channel_pwd
            ),
        };
        self.by_ufrag.insert(local_creds.ufrag.clone(), key);
        let mut ep = Endpoint {
            id: endpoint,
            conference: conference.clone(),
            rtc,
            ufrag: local_creds.ufrag,
            channel_pwd,
            next_timeout: now,
            last_activity: now,
            dtls_started: false,
            feedback,
            sources: SourceSet::default(),
            tracks: Vec::new(),
            layer_of: HashMap::new(),
            ingress: IngressBudget::new(self.settings.ingress, now),
            next_rid: 0,
            out: HashMap::new(),
            out_by_rid: HashMap::new(),
            constraints: Constraints::default(),
            bandwidth_bps: self.settings.initial_bandwidth_bps,
            downlink: DownlinkEstimator::new(now, self.settings.initial_bandwidth_bps),
            channel_open: false,
            forwarded_sources: None,
            sent_sender_constraints: HashMap::new(),
            nacks_seen: HashMap::new(),
            channel_budget: channel_budget(now),
            capture_clock: SenderClock::default(),
            bwe_target: (0, 0),
            unsent: false,
            force_muted: Vec::new(),
        };
        let conf = self
            .conferences
            .get_mut(&conference)
            .expect("inserted above");
        for other in &conf.endpoints {
            for track in &self.endpoints[other].tracks {
                declare_out(&mut ep, *other, track);
            }
        }
        conf.endpoints.push(key);
        conf.dirty = true;
        info!(endpoint = %ep.id.0, "endpoint allocated");
        self.endpoints.insert(key, ep);
        self.drain(now, key);
        Ok(offer)
    }

    /// A random SSRC that no endpoint of the conference uses and that is not in `taken`.
    fn unused_ssrc(&mut self, conference: &ConferenceId, taken: &[u32]) -> u32 {
        loop {
            let ssrc: u32 = self.rng.random();
            if ssrc != 0 && !taken.contains(&ssrc) && !self.ssrc_in_use(conference, ssrc) {
                return ssrc;
            }
        }
    }

    pub(super) fn ssrc_in_use(&self, conference: &ConferenceId, ssrc: u32) -> bool {
        self.conferences.get(conference).is_some_and(|c| {
            c.endpoints
                .iter()
                .filter_map(|k| self.endpoints.get(k))
                .any(|e| {
                    all_ssrcs(&e.sources)
                        .chain(all_ssrcs(&e.feedback))
                        .any(|s| s == ssrc)
                })
        })
    }

    pub(super) fn configure(
        &mut self,
        now: Instant,
        key: EndpointKey,
        transport: &TransportDescription,
    ) -> Result<(), BridgeError> {
        let remote = transport
            .fingerprints
            .iter()
            .find(|f| f.hash.eq_ignore_ascii_case("sha-256"))
            .or(transport.fingerprints.first())
            .ok_or_else(|| BridgeError::Invalid("no DTLS fingerprint".into()))?;
        let parsed: str0m::config::Fingerprint = format!("{} {}", remote.hash, remote.value)
            .parse()
            .map_err(|_| BridgeError::Invalid("bad DTLS fingerprint".into()))?;
        if transport.ufrag.is_empty()
            || transport.pwd.is_empty()
            || transport.ufrag.len() > 256
            || transport.pwd.len() > 256
        {
            return Err(BridgeError::Invalid("bad ICE credentials".into()));
        }
        // The remote answers `active` normally, making us the DTLS server.
        let we_are_client = remote.setup == DtlsSetup::Passive;
        let ep = self
            .endpoints
            .get_mut(&key)
            .ok_or(BridgeError::UnknownEndpoint)?;
        ep.last_activity = now;
        let creds = IceCreds {
            ufrag: transport.ufrag.clone(),
            pass: transport.pwd.clone(),
        };
        let start = !ep.dtls_started;
        let result = ep.rtc.call(|rtc| {
            let mut api = rtc.direct_api();
            api.set_remote_ice_credentials(creds);
            if start {
                api.set_remote_fingerprint(parsed);
                api.start_dtls(we_are_client)
            } else {
                Ok(())
            }
        });
        match result {
            Some(Ok(())) => ep.dtls_started = true,
            Some(Err(e)) => return Err(BridgeError::Invalid(format!("DTLS: {e}"))),
            None => return Err(BridgeError::Invalid("transport rejected".into())),
        }
        self.add_candidates(now, key, &transport.candidates);
        Ok(())
    }

    pub(super) fn add_candidates(
        &mut self,
        now: Instant,
        key: EndpointKey,
        candidates: &[IceCandidate],
    ) {
        let Some(ep) = self.endpoints.get_mut(&key) else {
            return;
        };
        for c in candidates.iter().take(32) {
            if let Some(candidate) = remote_candidate(c) {
                ep.rtc.call(|rtc| rtc.add_remote_candidate(candidate));
            }
        }
        self.drain(now, key);
    }

    /// Replaces the endpoint's sources, updating its receive streams and every other
    /// endpoint's send streams.
    pub(super) fn set_sources(
        &mut self,
        now: Instant,
        key: EndpointKey,
        sources: SourceSet,
    ) -> Result<(), BridgeError> {
        let tracks = tracks_of(&sources).map_err(BridgeError::Invalid)?;
        let conference = self.endpoints[&key].conference.clone();
        let taken: HashSet<u32> = self.conferences[&conference]
            .endpoints
            .iter()
            .filter(|k| **k != key)
            .filter_map(|k| self.endpoints.get(k))
            .flat_map(|e| {
                all_ssrcs(&e.sources)
                    .chain(all_ssrcs(&e.feedback))
                    .collect::<Vec<_>>()
            })
            .chain(all_ssrcs(&self.endpoints[&key].feedback))
            .collect();
        if all_ssrcs(&sources).any(|s| taken.contains(&s)) {
            return Err(BridgeError::Invalid(
                "SSRC already used in the conference".into(),
            ));
        }

        let ep = self.endpoints.get_mut(&key).expect("found above");
        let old = std::mem::take(&mut ep.tracks);
        let (kept, removed): (Vec<Track>, Vec<Track>) = old.into_iter().partition(|t| {
            tracks
                .iter()
                .any(|n| n.primary == t.primary && n.same_layout(t))
        });
        let added: Vec<Track> = tracks
            .into_iter()
            .filter(|n| !kept.iter().any(|k| k.primary == n.primary))
            .collect();
        for track in &removed {
            for layer in &track.layers {
                ep.rtc
                    .call(|rtc| rtc.direct_api().remove_stream_rx(Ssrc::from(layer.ssrc)));
            }
        }
        for track in &added {
            for layer in &track.layers {
                let rid = ep.next_rid('r');
                let (ssrc, rtx) = (Ssrc::from(layer.ssrc), layer.rtx.map(Ssrc::from));
                let mid = mid_of(track.kind);
                ep.rtc.call(|rtc| {
                    rtc.direct_api().expect_stream_rx(ssrc, rtx, mid, Some(rid));
                });
            }
        }
        ep.tracks = kept;
        ep.tracks.extend(added);
        ep.layer_of = ep
            .tracks
            .iter()
            .enumerate()
            .flat_map(|(t, track)| {
                track
                    .layers
                    .iter()
                    .enumerate()
                    .map(move |(l, layer)| (layer.ssrc, (t, l)))
            })
            .collect();
        ep.ingress.set_ssrcs(all_ssrcs(&sources), now);
        ep.sources = sources;
        ep.last_activity = now;

        let others: Vec<EndpointKey> = self.conferences[&conference]
            .endpoints
            .iter()
            .copied()
            .filter(|k| *k != key)
            .collect();
        let removed_primaries: Vec<u32> = removed.iter().map(|t| t.primary).collect();
        let sender_tracks: Vec<usize> = (0..self.endpoints[&key].tracks.len()).collect();
        for other in others {
            let [Some(sender), Some(receiver)] = self.endpoints.get_disjoint_mut([&key, &other])
            else {
                continue;
            };
            for primary in &removed_primaries {
                remove_out(receiver, *primary);
            }
            for &t in &sender_tracks {
                if !receiver.out.contains_key(&sender.tracks[t].primary) {
                    declare_out(receiver, key, &sender.tracks[t]);
                }
            }
            self.drain(now, other);
        }
        self.drain(now, key);
        if let Some(c) = self.conferences.get_mut(&conference) {
            c.dirty = true;
        }
        Ok(())
    }
}

/// Remote candidate from Jingle; mDNS names cannot reach us here (IpAddr only), and
/// peer-reflexive candidates learnt from checks cover them.
fn remote_candidate(c: &IceCandidate) -> Option<Candidate> {
    let protocol = c.protocol.to_ascii_lowercase();
    if c.component != 1 || !matches!(protocol.as_str(), "udp" | "tcp") {
        return None;
    }
    let mut sdp = format!(
        "candidate:{} 1 {protocol} {} {} {} typ {}",
        c.foundation, c.priority, c.ip, c.port, c.typ
    );
    if c.typ != "host" {
        let unspecified = match c.ip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        sdp.push_str(&format!(" raddr {unspecified} rport 9"));
    }
    if protocol == "tcp" {
        sdp.push_str(&format!(
            " tcptype {}",
            c.tcptype.as_deref().unwrap_or("active")
        ));
    }
    Candidate::from_sdp_string(&sdp).ok()
}
