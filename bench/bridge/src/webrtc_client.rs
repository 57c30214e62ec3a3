//! A simulated WebRTC endpoint: a str0m `Rtc` in RTP mode, set up from the bridge's
//! [`EndpointOffer`] the way a Jitsi client answers a Jingle `session-initiate` (full ICE
//! agent in the controlled role, DTLS client, SRTP), sending [`MediaSource`] packets and
//! recording what the bridge forwards to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use convene_bridge::api::{
    DtlsSetup, EndpointOffer, Fingerprint, GroupSemantics, HeaderExtension, IceCandidate,
    MediaDescription, MediaKind as ApiMediaKind, PayloadType, Source, SourceSet, SsrcGroup,
    TransportDescription, VideoType,
};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, MediaKind, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{Extension, ExtensionValues, RtpWrite, Ssrc};
use str0m::{Candidate, Event, IceCreds, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::sleep_until;

use crate::far_future;
use crate::recorder::Recorder;
use crate::source::MediaSource;
use crate::traffic::SenderSsrcs;

/// The header extensions a browser would accept, matched against the offer by URI.
fn known_extensions() -> [Extension; 8] {
    [
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

/// What this endpoint accepted from the offer (our half of the Jingle `session-accept`).
#[derive(Debug, Clone)]
struct Negotiated {
    opus: PayloadType,
    vp8: PayloadType,
    vp8_rtx: Option<PayloadType>,
    audio_extensions: Vec<HeaderExtension>,
    video_extensions: Vec<HeaderExtension>,
}

fn negotiate(offer: &EndpointOffer) -> Result<Negotiated> {
    let media = |kind| {
        offer
            .media
            .iter()
            .find(|m| m.kind == kind)
            .with_context(|| format!("offer has no {kind:?} description"))
    };
    let (audio, video) = (media(ApiMediaKind::Audio)?, media(ApiMediaKind::Video)?);
    let codec = |desc: &MediaDescription, name: &str| {
        desc.payload_types
            .iter()
            .find(|pt| pt.name.eq_ignore_ascii_case(name))
            .cloned()
            .with_context(|| format!("offer has no {name}"))
    };
    let opus = codec(audio, "opus")?;
    let vp8 = codec(video, "VP8")?;
    let apt = vp8.id.to_string();
    let vp8_rtx = video
        .payload_types
        .iter()
        .find(|pt| {
            pt.name.eq_ignore_ascii_case("rtx")
                && pt.parameters.iter().any(|(k, v)| k == "apt" && *v == apt)
        })
        .cloned();
    let supported = |desc: &MediaDescription| {
        desc.header_extensions
            .iter()
            .filter(|h| known_extensions().iter().any(|e| e.as_uri() == h.uri))
            .cloned()
            .collect::<Vec<_>>()
    };
    Ok(Negotiated {
        opus,
        vp8,
        vp8_rtx,
        audio_extensions: supported(audio),
        video_extensions: supported(video),
    })
}

impl Negotiated {
    fn media(&self) -> Vec<MediaDescription> {
        vec![
            MediaDescription {
                kind: ApiMediaKind::Audio,
                payload_types: vec![self.opus.clone()],
                header_extensions: self.audio_extensions.clone(),
            },
            MediaDescription {
                kind: ApiMediaKind::Video,
                payload_types: [Some(self.vp8.clone()), self.vp8_rtx.clone()]
                    .into_iter()
                    .flatten()
                    .collect(),
                header_extensions: self.video_extensions.clone(),
            },
        ]
    }

    fn build_rtc(&self, now: Instant) -> Result<Rtc> {
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .clear_extension_map();
        let mut ids = std::collections::HashMap::new();
        for header in self.audio_extensions.iter().chain(&self.video_extensions) {
            if let Some(previous) = ids.insert(header.id, &header.uri)
                && previous != &header.uri
            {
                bail!("extension id {} used for two URIs", header.id);
            }
            let extension = known_extensions()
                .into_iter()
                .find(|e| e.as_uri() == header.uri)
                .context("negotiated only known extensions")?;
            config = config.set_extension(header.id, extension);
        }
        config.codec_config().add_config(
            self.opus.id.into(),
            None,
            Codec::Opus,
            Frequency::FORTY_EIGHT_KHZ,
            Some(self.opus.channels.unwrap_or(2)),
            FormatParams::default(),
        );
        config.codec_config().add_config(
            self.vp8.id.into(),
            self.vp8_rtx.as_ref().map(|rtx| rtx.id.into()),
            Codec::Vp8,
            Frequency::NINETY_KHZ,
            None,
            FormatParams::default(),
        );
        Ok(config.build(now))
    }
}

/// The sources a sender announces: audio, three simulcast layers and their RTX partners.
pub fn sender_sources(endpoint: &str, ssrcs: SenderSsrcs) -> SourceSet {
    let source = |ssrc, kind, suffix: &str| Source {
        ssrc,
        kind,
        name: Some(format!("{endpoint}-{suffix}")),
        msid: Some(format!("{endpoint}-stream {endpoint}-{suffix}")),
        video_type: (kind == ApiMediaKind::Video).then_some(VideoType::Camera),
    };
    let mut sources = vec![source(ssrcs.audio, ApiMediaKind::Audio, "a0")];
    sources.extend(
        ssrcs
            .video
            .iter()
            .chain(&ssrcs.rtx)
            .map(|&ssrc| source(ssrc, ApiMediaKind::Video, "v0")),
    );
    let group = |semantics, ssrcs: Vec<u32>| SsrcGroup {
        semantics,
        kind: ApiMediaKind::Video,
        ssrcs,
    };
    let mut groups = vec![group(GroupSemantics::Sim, ssrcs.video.to_vec())];
    groups.extend(
        ssrcs
            .video
            .iter()
            .zip(&ssrcs.rtx)
            .map(|(&video, &rtx)| group(GroupSemantics::Fid, vec![video, rtx])),
    );
    SourceSet { sources, groups }
}

/// A fully set-up endpoint, ready to run; `transport` and `media` go into the
/// `ConfigureEndpoint` request.
pub struct WebrtcEndpoint {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    audio_pt: Pt,
    video_pt: Pt,
    source: Option<MediaSource>,
    /// Set once the first `Event::Connected` arrives; media starts then.
    sending_from: Option<Instant>,
    recorder: Recorder,
    connected: Arc<AtomicUsize>,
    pub transport: TransportDescription,
    pub media: Vec<MediaDescription>,
}

const AUDIO_MID: &str = "0";
const VIDEO_MID: &str = "1";

impl WebrtcEndpoint {
    /// `receives` are the sources the bridge will forward to this endpoint (the other
    /// senders' receiver views); `sends` is set for senders.
    pub fn new(
        offer: &EndpointOffer,
        socket: UdpSocket,
        sends: Option<SenderSsrcs>,
        receives: &[SourceSet],
        recorder: Recorder,
        connected: Arc<AtomicUsize>,
    ) -> Result<Self> {
        let now = Instant::now();
        let local = socket.local_addr()?;
        let negotiated = negotiate(offer)?;
        let mut rtc = negotiated.build_rtc(now)?;
        let local_candidate = Candidate::host(local, "udp")?;
        let fingerprint = offer
            .transport
            .fingerprints
            .first()
            .context("offer has no DTLS fingerprint")?;
        {
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
                    .map_err(|e| anyhow::anyhow!("offer fingerprint: {e}"))?,
            );
            api.start_dtls(true)?;
            api.enable_twcc_feedback();
            let (audio_mid, video_mid) = (Mid::from(AUDIO_MID), Mid::from(VIDEO_MID));
            api.declare_media(audio_mid, MediaKind::Audio);
            api.declare_media(video_mid, MediaKind::Video);
            if let Some(ssrcs) = sends {
                api.declare_stream_tx(ssrcs.audio.into(), None, audio_mid, None);
                for (layer, (video, rtx)) in ssrcs.video.iter().zip(ssrcs.rtx).enumerate() {
                    // A synthetic RID per layer keeps str0m's (mid, rid) lookups distinct.
                    let rid = Rid::from(layer.to_string().as_str());
                    api.declare_stream_tx((*video).into(), Some(rtx.into()), video_mid, Some(rid));
                }
            }
            for view in receives {
                for source in &view.sources {
                    let rtx_of = view.groups.iter().find(|g| {
                        g.semantics == GroupSemantics::Fid && g.ssrcs.first() == Some(&source.ssrc)
                    });
                    let is_rtx = view.groups.iter().any(|g| {
                        g.semantics == GroupSemantics::Fid && g.ssrcs.get(1) == Some(&source.ssrc)
                    });
                    if is_rtx {
                        continue;
                    }
                    let mid = match source.kind {
                        ApiMediaKind::Audio => audio_mid,
                        ApiMediaKind::Video => video_mid,
                    };
                    let rtx = rtx_of.and_then(|g| g.ssrcs.get(1)).map(|&s| Ssrc::from(s));
                    api.expect_stream_rx(source.ssrc.into(), rtx, mid, None);
                }
            }
        }
        rtc.add_local_candidate(local_candidate.clone());
        for candidate in &offer.transport.candidates {
            if candidate.protocol.eq_ignore_ascii_case("udp") {
                let addr = SocketAddr::new(candidate.ip, candidate.port);
                rtc.add_remote_candidate(Candidate::host(addr, "udp")?);
            }
        }
        let credentials = rtc.direct_api().local_ice_credentials();
        let own_fingerprint = rtc.direct_api().local_dtls_fingerprint().to_string();
        let (hash, value) = own_fingerprint
            .split_once(' ')
            .context("fingerprint format")?;
        let transport = TransportDescription {
            ufrag: credentials.ufrag,
            pwd: credentials.pass,
            fingerprints: vec![Fingerprint {
                hash: hash.to_owned(),
                value: value.to_owned(),
                setup: DtlsSetup::Active,
            }],
            candidates: vec![IceCandidate {
                foundation: "1".into(),
                component: 1,
                protocol: "udp".into(),
                priority: local_candidate.prio(),
                ip: local.ip(),
                port: local.port(),
                typ: "host".into(),
                tcptype: None,
                generation: 0,
            }],
        };
        Ok(Self {
            rtc,
            socket,
            local,
            audio_pt: negotiated.opus.id.into(),
            video_pt: negotiated.vp8.id.into(),
            source: sends.map(|ssrcs| MediaSource::new(ssrcs, now)),
            sending_from: None,
            recorder,
            connected,
            transport,
            media: negotiated.media(),
        })
    }

    /// Polls str0m until it only has a timeout left: sends its datagrams, handles its events.
    async fn drain(&mut self) -> Result<Instant> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(at) => return Ok(at),
                Output::Transmit(transmit) => {
                    // A full socket buffer loses the datagram, as on a real network.
                    let _ = self
                        .socket
                        .send_to(&transmit.contents, transmit.destination)
                        .await;
                }
                Output::Event(event) => self.handle_event(event),
            }
        }
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Connected if self.sending_from.is_none() => {
                let now = Instant::now();
                self.sending_from = Some(now);
                if let Some(source) = &mut self.source {
                    *source = MediaSource::new(source.ssrcs, now);
                }
                self.connected.fetch_add(1, Ordering::Relaxed);
            }
            Event::RtpPacket(packet) => {
                let len = packet.header.header_len + packet.payload.len();
                self.recorder.record(
                    *packet.header.ssrc,
                    *packet.seq_no,
                    len,
                    &packet.payload,
                    Instant::now(),
                );
            }
            Event::KeyframeRequest(_) => {
                if let Some(source) = &mut self.source {
                    source.request_keyframe();
                }
            }
            _ => {}
        }
    }

    async fn send_due_media(&mut self, now: Instant) -> Result<()> {
        let Some(source) = self.source.as_mut() else {
            return Ok(());
        };
        for packet in source.due_packets(now) {
            let (pt, ext_vals) = if packet.audio {
                let ext_vals = ExtensionValues {
                    audio_level: Some(-30),
                    voice_activity: Some(true),
                    ..Default::default()
                };
                (self.audio_pt, ext_vals)
            } else {
                (self.video_pt, ExtensionValues::default())
            };
            let write = RtpWrite::new(pt, packet.seq.into(), packet.timestamp, now, packet.payload)
                .marker(packet.marker)
                .nackable(!packet.audio)
                .ext_vals(ext_vals);
            let mut api = self.rtc.direct_api();
            let Some(stream) = api.stream_tx(&packet.ssrc.into()) else {
                bail!("stream {} not declared", packet.ssrc);
            };
            stream.write_rtp(write);
            self.drain().await?;
        }
        Ok(())
    }

    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<()> {
        let mut buf = vec![0u8; 2048];
        self.rtc.handle_input(Input::Timeout(Instant::now()))?;
        loop {
            let timeout = self.drain().await?;
            let next_send = match (&self.source, self.sending_from) {
                (Some(source), Some(_)) => source.next_at(),
                _ => far_future(),
            };
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    let (len, source) = received?;
                    let Ok(contents) = buf[..len].try_into() else {
                        continue;
                    };
                    let input = Input::Receive(Instant::now(), Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.local,
                        contents,
                    });
                    if let Err(e) = self.rtc.handle_input(input) {
                        tracing::debug!("endpoint {}: input rejected: {e}", self.local);
                    }
                }
                _ = sleep_until(timeout.min(next_send).into()) => {
                    let now = Instant::now();
                    if now >= next_send {
                        self.send_due_media(now).await?;
                    }
                    self.rtc.handle_input(Input::Timeout(now))?;
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }
}
