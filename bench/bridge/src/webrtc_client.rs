//! A simulated WebRTC endpoint: the bridge's [`TestClient`], set up from the bridge's
//! [`EndpointOffer`] the way a Jitsi client answers a Jingle `session-initiate` (full ICE
//! agent in the controlled role, DTLS client, SRTP), sending [`MediaSource`] packets and
//! recording what the bridge forwards to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};
use convene_bridge::api::{
    EndpointOffer, GroupSemantics, MediaDescription, MediaKind, SourceSet, TransportDescription,
};
use convene_bridge::media::DependencyDescriptor;
use convene_bridge::testkit::client::{self as test_client, TestClient, mid};
use str0m::media::{Pt, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite, Ssrc};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::sleep_until;

use crate::far_future;
use crate::recorder::Recorder;
use crate::source::MediaSource;
use crate::traffic::{Media, SenderSsrcs};

/// The sources a sender announces: audio, and three simulcast layers or the one SVC
/// SSRC, with their RTX partners.
pub fn sender_sources(endpoint: &str, ssrcs: SenderSsrcs, media: Media) -> SourceSet {
    let layers: Vec<(u32, u32)> = ssrcs.video.into_iter().zip(ssrcs.rtx).collect();
    let layers = match media {
        Media::Vp8Simulcast => &layers[..],
        Media::Av1Svc => &layers[..1],
    };
    test_client::sender_sources(endpoint, Some(ssrcs.audio), layers)
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

impl WebrtcEndpoint {
    /// `receives` are the sources the bridge will forward to this endpoint (the other
    /// senders' receiver views); `sends` is set for senders.
    pub fn new(
        offer: &EndpointOffer,
        socket: UdpSocket,
        sends: Option<(SenderSsrcs, Media)>,
        receives: &[SourceSet],
        recorder: Recorder,
        connected: Arc<AtomicUsize>,
    ) -> Result<Self> {
        let now = Instant::now();
        let local = socket.local_addr()?;
        let TestClient {
            mut rtc,
            transport,
            media,
            opus,
            vp8,
            av1,
            ..
        } = TestClient::answer(offer, Candidate::host(local, "udp")?, now)?;
        let video_pt = match sends.map(|(_, media)| media) {
            Some(Media::Av1Svc) => av1.ok_or_else(|| anyhow::anyhow!("AV1 not offered"))?,
            _ => vp8,
        };
        let mut api = rtc.direct_api();
        let (audio_mid, video_mid) = (mid(MediaKind::Audio), mid(MediaKind::Video));
        if let Some((ssrcs, media)) = sends {
            api.declare_stream_tx(ssrcs.audio.into(), None, audio_mid, None);
            let layers = match media {
                Media::Vp8Simulcast => ssrcs.video.len(),
                Media::Av1Svc => 1,
            };
            for (layer, (video, rtx)) in ssrcs.video.iter().zip(ssrcs.rtx).enumerate().take(layers)
            {
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
                    MediaKind::Audio => audio_mid,
                    MediaKind::Video => video_mid,
                };
                let rtx = rtx_of.and_then(|g| g.ssrcs.get(1)).map(|&s| Ssrc::from(s));
                api.expect_stream_rx(source.ssrc.into(), rtx, mid, None);
            }
        }
        Ok(Self {
            rtc,
            socket,
            local,
            audio_pt: opus,
            video_pt,
            source: sends.map(|(ssrcs, media)| MediaSource::new(ssrcs, media, now)),
            sending_from: None,
            recorder,
            connected,
            transport,
            media,
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
                    *source = MediaSource::new(source.ssrcs, source.media, now);
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
                let mut ext_vals = ExtensionValues::default();
                if let Some(dd) = packet.dd {
                    ext_vals.user_values.set(DependencyDescriptor(dd));
                }
                (self.video_pt, ext_vals)
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
