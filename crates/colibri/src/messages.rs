//! The messages: requests from the focus, the bridge's responses and events, and the
//! Jingle-shaped data they carry.

use serde::{Deserialize, Serialize};

/// A conference on the bridge; the focus uses the MUC room's bare JID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConferenceId(pub String);

/// An endpoint (participant) inside a conference: the Jitsi endpoint id (MUC nickname).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EndpointId(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Video,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoType {
    Camera,
    Desktop,
}

/// One RTP stream (SSRC) as signalled in Jingle (XEP-0339 `<source>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub ssrc: u32,
    pub kind: MediaKind,
    /// Jitsi source name, `<endpoint>-a0`, `<endpoint>-v0`, ...; the same on RTX and
    /// simulcast SSRCs of one track.
    pub name: Option<String>,
    pub msid: Option<String>,
    pub video_type: Option<VideoType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GroupSemantics {
    /// Simulcast layers, lowest resolution first.
    Sim,
    /// Primary SSRC and its RTX SSRC (RFC 4588).
    Fid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsrcGroup {
    pub semantics: GroupSemantics,
    pub kind: MediaKind,
    pub ssrcs: Vec<u32>,
}

/// The sources of one endpoint (or a part of them, in add/remove operations).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSet {
    pub sources: Vec<Source>,
    pub groups: Vec<SsrcGroup>,
}

impl SourceSet {
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.groups.is_empty()
    }

    /// What receivers are told about these sources (Jicofo's "strip simulcast"): of each
    /// simulcast group only the first SSRC and its RTX partner. The bridge rewrites whichever
    /// layer it forwards onto that pair, so the focus and the bridge must agree on this rule.
    pub fn receiver_view(&self) -> SourceSet {
        let dropped: Vec<u32> = self
            .groups
            .iter()
            .filter(|g| g.semantics == GroupSemantics::Sim)
            .flat_map(|g| g.ssrcs.iter().skip(1).copied())
            .collect();
        let dropped_rtx: Vec<u32> = self
            .groups
            .iter()
            .filter(|g| g.semantics == GroupSemantics::Fid && dropped.contains(&g.ssrcs[0]))
            .filter_map(|g| g.ssrcs.get(1).copied())
            .collect();
        let kept = |ssrc: &u32| !dropped.contains(ssrc) && !dropped_rtx.contains(ssrc);
        SourceSet {
            sources: self
                .sources
                .iter()
                .filter(|s| kept(&s.ssrc))
                .cloned()
                .collect(),
            groups: self
                .groups
                .iter()
                .filter(|g| g.semantics == GroupSemantics::Fid && g.ssrcs.iter().all(kept))
                .cloned()
                .collect(),
        }
    }
}

/// A codec as in Jingle `<payload-type>` (XEP-0167), with its RTX payload type if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadType {
    pub id: u8,
    pub name: String,
    pub clockrate: u32,
    pub channels: Option<u8>,
    pub parameters: Vec<(String, String)>,
    /// `(type, subtype)` of each `<rtcp-fb>` (XEP-0293), e.g. `("nack", Some("pli"))`.
    pub rtcp_fb: Vec<(String, Option<String>)>,
}

/// An RTP header extension as in Jingle `<rtp-hdrext>` (XEP-0294).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderExtension {
    pub id: u8,
    pub uri: String,
}

/// Codecs and header extensions of one media kind (one Jingle `<description>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaDescription {
    pub kind: MediaKind,
    pub payload_types: Vec<PayloadType>,
    pub header_extensions: Vec<HeaderExtension>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtlsSetup {
    Active,
    Passive,
    Actpass,
}

/// A DTLS certificate fingerprint (XEP-0320).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Hash function name, e.g. `sha-256`.
    pub hash: String,
    /// Colon-separated upper-case hex.
    pub value: String,
    pub setup: DtlsSetup,
}

/// An ICE candidate (XEP-0176 `<candidate>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    pub foundation: String,
    pub component: u8,
    /// `udp` or `tcp`.
    pub protocol: String,
    pub priority: u32,
    pub ip: std::net::IpAddr,
    pub port: u16,
    /// `host`, `srflx`, `prflx` or `relay`.
    pub typ: String,
    /// RFC 6544 `active`, `passive` or `so`, for TCP candidates.
    pub tcptype: Option<String>,
    pub generation: u32,
}

/// One side's transport (XEP-0176 `<transport>` with XEP-0320 `<fingerprint>`); BUNDLE and
/// rtcp-mux are always on, so an endpoint has exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportDescription {
    pub ufrag: String,
    pub pwd: String,
    pub fingerprints: Vec<Fingerprint>,
    pub candidates: Vec<IceCandidate>,
}

/// What the bridge gives the focus for a new endpoint, to put in the `session-initiate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointOffer {
    /// The bridge's ICE credentials, candidates and DTLS fingerprint (setup `actpass`).
    pub transport: TransportDescription,
    /// The codecs and header extensions the bridge offers, audio first.
    pub media: Vec<MediaDescription>,
    /// The bridge's own sources (owner `jvb` in Jingle) used as RTCP sender SSRCs.
    pub feedback_sources: SourceSet,
    /// Absolute URL of this endpoint's bridge-channel WebSocket (colibri-ws), with `pwd`.
    pub colibri_ws_url: String,
}

/// Requests from the focus. Each gets exactly one [`BridgeResponse`] or [`BridgeError`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BridgeRequest {
    /// Creates the conference if needed and allocates an endpoint in it.
    AllocateEndpoint {
        conference: ConferenceId,
        endpoint: EndpointId,
    },
    /// The endpoint's answer (Jingle `session-accept`): its transport, the codecs it accepted
    /// and the sources it sends.
    ConfigureEndpoint {
        conference: ConferenceId,
        endpoint: EndpointId,
        transport: TransportDescription,
        media: Vec<MediaDescription>,
        sources: SourceSet,
    },
    /// Trickled candidates (Jingle `transport-info`).
    AddRemoteCandidates {
        conference: ConferenceId,
        endpoint: EndpointId,
        candidates: Vec<IceCandidate>,
    },
    /// Sources the endpoint starts sending (Jingle `source-add`).
    AddSources {
        conference: ConferenceId,
        endpoint: EndpointId,
        sources: SourceSet,
    },
    /// Sources the endpoint stops sending (Jingle `source-remove`).
    RemoveSources {
        conference: ConferenceId,
        endpoint: EndpointId,
        sources: SourceSet,
    },
    /// A moderator muted the endpoint's `kind` (`muted: true`), or the endpoint unmuted
    /// itself: while muted, the bridge forwards none of the endpoint's sources of that kind
    /// (Jitsi's colibri2 `force-mute`), whatever the client keeps sending.
    ForceMute {
        conference: ConferenceId,
        endpoint: EndpointId,
        kind: MediaKind,
        muted: bool,
    },
    ExpireEndpoint {
        conference: ConferenceId,
        endpoint: EndpointId,
    },
    ExpireConference {
        conference: ConferenceId,
    },
}

impl BridgeRequest {
    /// The conference the request is about.
    pub fn conference(&self) -> &ConferenceId {
        match self {
            BridgeRequest::AllocateEndpoint { conference, .. }
            | BridgeRequest::ConfigureEndpoint { conference, .. }
            | BridgeRequest::AddRemoteCandidates { conference, .. }
            | BridgeRequest::AddSources { conference, .. }
            | BridgeRequest::RemoveSources { conference, .. }
            | BridgeRequest::ForceMute { conference, .. }
            | BridgeRequest::ExpireEndpoint { conference, .. }
            | BridgeRequest::ExpireConference { conference } => conference,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BridgeResponse {
    EndpointAllocated(EndpointOffer),
    Done,
}

/// Unsolicited events from the bridge to the focus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BridgeEvent {
    /// The bridge expired the endpoint by itself (idle past the timeout, ICE failed).
    EndpointExpired {
        conference: ConferenceId,
        endpoint: EndpointId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum BridgeError {
    #[error("no such conference")]
    UnknownConference,
    #[error("no such endpoint")]
    UnknownEndpoint,
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("bridge is shutting down")]
    Unavailable,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(ssrc: u32) -> Source {
        Source {
            ssrc,
            kind: MediaKind::Video,
            name: Some("ab12cd34-v0".into()),
            msid: Some("m".into()),
            video_type: None,
        }
    }

    fn group(semantics: GroupSemantics, ssrcs: &[u32]) -> SsrcGroup {
        SsrcGroup {
            semantics,
            kind: MediaKind::Video,
            ssrcs: ssrcs.to_vec(),
        }
    }

    #[test]
    fn receiver_view_keeps_first_simulcast_layer_and_its_rtx() {
        let set = SourceSet {
            sources: [11, 12, 21, 22, 31, 32].map(video).to_vec(),
            groups: vec![
                group(GroupSemantics::Sim, &[11, 21, 31]),
                group(GroupSemantics::Fid, &[11, 12]),
                group(GroupSemantics::Fid, &[21, 22]),
                group(GroupSemantics::Fid, &[31, 32]),
            ],
        };
        let view = set.receiver_view();
        let ssrcs: Vec<u32> = view.sources.iter().map(|s| s.ssrc).collect();
        assert_eq!(ssrcs, vec![11, 12]);
        assert_eq!(view.groups, vec![group(GroupSemantics::Fid, &[11, 12])]);
    }
}
