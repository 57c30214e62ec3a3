//! A Jitsi client's answer to the bridge's [`EndpointOffer`], shared by the core's tests,
//! the integration tests and the benchmark's load generator: a str0m `Rtc` in RTP mode set
//! up the way Jitsi Meet answers a Jingle `session-initiate`. It accepts the offer's Opus,
//! VP8, VP9 and AV1 (with RTX) and the header extensions it knows (the AV1 dependency
//! descriptor among them), is the controlled ICE agent and
//! the DTLS client (`setup:active`), and returns its own credentials, fingerprint and
//! candidate for `ConfigureEndpoint`.
//!
//! The client is built from the offer, not from [`crate::media::rtc_config`], so that it
//! does not share the bridge's own codec table and cannot hide a mistake in it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::error::IceError;
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, MediaKind as StrMediaKind, Mid, Pt};
use str0m::net::{Protocol, TcpType};
use str0m::rtp::Extension;
use str0m::{Candidate, IceCreds, Rtc, RtcError};

use crate::api::{
    DtlsSetup, EndpointOffer, Fingerprint, GroupSemantics, HeaderExtension, IceCandidate,
    MediaDescription, MediaKind, PayloadType, Source, SourceSet, SsrcGroup, TransportDescription,
    VideoType,
};

/// Why an offer cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("the offer has no {0:?} description")]
    NoMedia(MediaKind),
    #[error("the offer has no {0}")]
    NoCodec(&'static str),
    #[error("the offer uses header extension id {0} for two URIs")]
    ExtensionIdClash(u8),
    #[error("the offer has no DTLS fingerprint")]
    NoFingerprint,
    #[error("the offer's DTLS fingerprint: {0}")]
    BadFingerprint(String),
    #[error(transparent)]
    Ice(#[from] IceError),
    #[error(transparent)]
    Rtc(#[from] RtcError),
}

/// The header extensions a browser would accept, matched against the offer by URI.
fn known_extensions() -> [Extension; 9] {
    [
        crate::media::dependency_descriptor_extension(),
        Extension::AudioLevel,
        Extension::AbsoluteSendTime,
        Extension::TransportSequenceNumber,
        Extension::VideoOrientation,
        Extension::TransmissionTimeOffset,
        Extension::RtpMid,
        Extension::PlayoutDelay,
        Extension::AbsoluteCaptureTime,
    ]
}

/// The client's own mid for its streams of `kind` (RTP carries no mid: the bridge's own
/// mids need not match).
pub fn mid(kind: MediaKind) -> Mid {
    Mid::from(match kind {
        MediaKind::Audio => "0",
        MediaKind::Video => "1",
    })
}

/// A client set up from an offer, ready to declare its streams and run.
pub struct TestClient {
    pub rtc: Rtc,
    /// The client's half of the transport, for `ConfigureEndpoint`.
    pub transport: TransportDescription,
    /// What the client accepted of the offered media, for `ConfigureEndpoint`.
    pub media: Vec<MediaDescription>,
    /// The accepted Opus payload type.
    pub opus: Pt,
    /// The accepted VP8 payload type.
    pub vp8: Pt,
    /// The accepted VP9 and AV1 payload types, when offered.
    pub vp9: Option<Pt>,
    pub av1: Option<Pt>,
}

impl TestClient {
    /// Answers `offer` from the `local` candidate: a UDP host candidate, or an active TCP
    /// one (RFC 6544), paired with the offer's candidates it can reach.
    pub fn answer(
        offer: &EndpointOffer,
        local: Candidate,
        now: Instant,
    ) -> Result<Self, AnswerError> {
        let negotiated = negotiate(offer)?;
        let mut rtc = negotiated.build_rtc(now)?;
        let fingerprint = offer
            .transport
            .fingerprints
            .first()
            .ok_or(AnswerError::NoFingerprint)?;
        let mut api = rtc.direct_api();
        api.set_ice_lite(false);
        api.set_ice_controlling(false);
        api.set_remote_ice_credentials(IceCreds {
            ufrag: offer.transport.ufrag.clone(),
            pass: offer.transport.pwd.clone(),
        });
        api.set_remote_fingerprint(
            format!("{} {}", fingerprint.hash, fingerprint.value)
                .parse()
                .map_err(AnswerError::BadFingerprint)?,
        );
        api.start_dtls(true)?;
        api.enable_twcc_feedback();
        api.declare_media(mid(MediaKind::Audio), StrMediaKind::Audio);
        api.declare_media(mid(MediaKind::Video), StrMediaKind::Video);
        let credentials = api.local_ice_credentials();
        let own_fingerprint = api.local_dtls_fingerprint().to_string();
        let (hash, value) = own_fingerprint
            .split_once(' ')
            .ok_or_else(|| AnswerError::BadFingerprint(own_fingerprint.clone()))?;
        let transport = TransportDescription {
            ufrag: credentials.ufrag,
            pwd: credentials.pass,
            fingerprints: vec![Fingerprint {
                hash: hash.to_owned(),
                value: value.to_owned(),
                setup: DtlsSetup::Active,
            }],
            candidates: vec![announced(&local)],
        };
        rtc.add_local_candidate(local.clone());
        for candidate in &offer.transport.candidates {
            if let Some(remote) = reachable(candidate, &local)? {
                rtc.add_remote_candidate(remote);
            }
        }
        Ok(Self {
            rtc,
            transport,
            media: negotiated.media(),
            opus: negotiated.opus.id.into(),
            vp8: negotiated.video[0].1.id.into(),
            vp9: negotiated.pt_of(Codec::Vp9),
            av1: negotiated.pt_of(Codec::Av1),
        })
    }
}

/// The sources a sender announces, named as Jitsi Meet names them: its audio, if any, and
/// its camera's simulcast layers, lowest first, each a (video, RTX) SSRC pair.
pub fn sender_sources(endpoint: &str, audio: Option<u32>, layers: &[(u32, u32)]) -> SourceSet {
    let source = |ssrc, kind, suffix: &str| Source {
        ssrc,
        kind,
        name: Some(format!("{endpoint}-{suffix}")),
        msid: Some(format!("{endpoint}-stream {endpoint}-{suffix}")),
        video_type: (kind == MediaKind::Video).then_some(VideoType::Camera),
    };
    let mut sources: Vec<Source> = audio
        .map(|ssrc| source(ssrc, MediaKind::Audio, "a0"))
        .into_iter()
        .collect();
    sources.extend(
        layers
            .iter()
            .map(|l| l.0)
            .chain(layers.iter().map(|l| l.1))
            .map(|ssrc| source(ssrc, MediaKind::Video, "v0")),
    );
    let group = |semantics, ssrcs: Vec<u32>| SsrcGroup {
        semantics,
        kind: MediaKind::Video,
        ssrcs,
    };
    let mut groups = vec![group(
        GroupSemantics::Sim,
        layers.iter().map(|l| l.0).collect(),
    )];
    groups.extend(
        layers
            .iter()
            .map(|&(video, rtx)| group(GroupSemantics::Fid, vec![video, rtx])),
    );
    SourceSet { sources, groups }
}

/// The offered candidate as str0m's, if `local` can reach it: UDP from UDP, the bridge's
/// passive TCP from an active TCP candidate.
fn reachable(offered: &IceCandidate, local: &Candidate) -> Result<Option<Candidate>, IceError> {
    let addr = SocketAddr::new(offered.ip, offered.port);
    let protocol_matches = offered.protocol.eq_ignore_ascii_case(local.proto().into());
    Ok(match local.proto() {
        Protocol::Udp if protocol_matches => Some(Candidate::host(addr, "udp")?),
        Protocol::Tcp if protocol_matches && offered.tcptype.as_deref() == Some("passive") => Some(
            Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Passive)
                .build()?,
        ),
        _ => None,
    })
}

/// `local` as the answer announces it.
fn announced(local: &Candidate) -> IceCandidate {
    let tcptype = local.tcptype();
    IceCandidate {
        foundation: "1".into(),
        component: 1,
        protocol: local.proto().to_string(),
        priority: local.prio(),
        ip: local.addr().ip(),
        // An active TCP candidate only connects out: RFC 6544 gives it port 9.
        port: match tcptype {
            Some(TcpType::Active) => 9,
            _ => local.addr().port(),
        },
        typ: "host".into(),
        tcptype: tcptype.map(|t| t.to_string()),
        generation: 0,
    }
}

/// What the client accepted from the offer (its half of the Jingle `session-accept`).
struct Negotiated {
    opus: PayloadType,
    /// VP8 first, then VP9 and AV1 when offered, each with its RTX.
    video: Vec<(Codec, PayloadType, Option<PayloadType>)>,
    audio_extensions: Vec<HeaderExtension>,
    video_extensions: Vec<HeaderExtension>,
}

fn negotiate(offer: &EndpointOffer) -> Result<Negotiated, AnswerError> {
    let media = |kind| {
        offer
            .media
            .iter()
            .find(|m| m.kind == kind)
            .ok_or(AnswerError::NoMedia(kind))
    };
    let (audio, video) = (media(MediaKind::Audio)?, media(MediaKind::Video)?);
    let codec = |desc: &MediaDescription, name: &'static str| {
        desc.payload_types
            .iter()
            .find(|pt| pt.name.eq_ignore_ascii_case(name))
            .cloned()
            .ok_or(AnswerError::NoCodec(name))
    };
    let opus = codec(audio, "opus")?;
    let with_rtx = |kind: Codec, pt: PayloadType| {
        let apt = pt.id.to_string();
        let rtx = video
            .payload_types
            .iter()
            .find(|rtx| {
                rtx.name.eq_ignore_ascii_case("rtx")
                    && rtx.parameters.iter().any(|(k, v)| k == "apt" && *v == apt)
            })
            .cloned();
        (kind, pt, rtx)
    };
    let mut video_codecs = vec![with_rtx(Codec::Vp8, codec(video, "VP8")?)];
    for (kind, name) in [(Codec::Vp9, "VP9"), (Codec::Av1, "AV1")] {
        if let Ok(pt) = codec(video, name) {
            video_codecs.push(with_rtx(kind, pt));
        }
    }
    let supported = |desc: &MediaDescription| {
        desc.header_extensions
            .iter()
            .filter(|h| known_extensions().iter().any(|e| e.as_uri() == h.uri))
            .cloned()
            .collect::<Vec<_>>()
    };
    Ok(Negotiated {
        opus,
        video: video_codecs,
        audio_extensions: supported(audio),
        video_extensions: supported(video),
    })
}

impl Negotiated {
    fn pt_of(&self, kind: Codec) -> Option<Pt> {
        self.video
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map(|(_, pt, _)| pt.id.into())
    }

    fn media(&self) -> Vec<MediaDescription> {
        vec![
            MediaDescription {
                kind: MediaKind::Audio,
                payload_types: vec![self.opus.clone()],
                header_extensions: self.audio_extensions.clone(),
            },
            MediaDescription {
                kind: MediaKind::Video,
                payload_types: self
                    .video
                    .iter()
                    .flat_map(|(_, pt, rtx)| [Some(pt.clone()), rtx.clone()])
                    .flatten()
                    .collect(),
                header_extensions: self.video_extensions.clone(),
            },
        ]
    }

    fn build_rtc(&self, now: Instant) -> Result<Rtc, AnswerError> {
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .clear_extension_map();
        let mut ids = HashMap::new();
        for header in self.audio_extensions.iter().chain(&self.video_extensions) {
            if let Some(previous) = ids.insert(header.id, &header.uri)
                && previous != &header.uri
            {
                return Err(AnswerError::ExtensionIdClash(header.id));
            }
            // `negotiate` kept only known extensions.
            if let Some(extension) = known_extensions()
                .into_iter()
                .find(|e| e.as_uri() == header.uri)
            {
                config = config.set_extension(header.id, extension);
            }
        }
        config.codec_config().add_config(
            self.opus.id.into(),
            None,
            Codec::Opus,
            Frequency::FORTY_EIGHT_KHZ,
            Some(self.opus.channels.unwrap_or(2)),
            FormatParams::default(),
        );
        for (kind, pt, rtx) in &self.video {
            config.codec_config().add_config(
                pt.id.into(),
                rtx.as_ref().map(|rtx| rtx.id.into()),
                *kind,
                Frequency::NINETY_KHZ,
                None,
                FormatParams::default(),
            );
        }
        Ok(config.build(now))
    }
}
