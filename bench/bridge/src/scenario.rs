//! One measured run: start a server process, connect N senders and M receivers to it, wait
//! until every receiver gets every stream, then measure a fixed window.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use convene_bridge::api::{BridgeRequest, BridgeResponse, ConferenceId, EndpointId, SourceSet};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::bind_udp;
use crate::control::{BridgeTuning, ServerKind, ServerProcess};
use crate::plain_client::PlainEndpoint;
use crate::procstat::{cpu_time, load_average, rss_bytes, udp_drops};
use crate::recorder::{Recorder, Window};
use crate::source::MediaSource;
use crate::traffic::{Media, SenderSsrcs, TOP_LAYER};
use crate::webrtc_client::{WebrtcEndpoint, sender_sources};

/// N senders and M receive-only endpoints in one conference. Senders also receive each
/// other, as in a real meeting, so each sender's media goes to `N - 1 + M` endpoints.
/// `NxM` sends VP8 simulcast, `NxMsvc` AV1 SVC on one SSRC ([`Media`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    pub senders: usize,
    pub receivers: usize,
    pub media: Media,
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (counts, media) = match s.strip_suffix("svc") {
            Some(counts) => (counts, Media::Av1Svc),
            None => (s, Media::Vp8Simulcast),
        };
        let (senders, receivers) = counts
            .split_once('x')
            .ok_or_else(|| format!("{s:?} is not SENDERSxRECEIVERS"))?;
        let parse = |n: &str| n.trim().parse::<usize>().map_err(|e| format!("{s:?}: {e}"));
        let scenario = Scenario {
            senders: parse(senders)?,
            receivers: parse(receivers)?,
            media,
        };
        if scenario.senders == 0 || scenario.endpoints() < 2 {
            return Err(format!("{s:?}: need a sender and someone to receive it"));
        }
        Ok(scenario)
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let suffix = match self.media {
            Media::Vp8Simulcast => "",
            Media::Av1Svc => "svc",
        };
        write!(f, "{}x{}{suffix}", self.senders, self.receivers)
    }
}

impl Scenario {
    pub fn endpoints(&self) -> usize {
        self.senders + self.receivers
    }

    /// Forwarded (sender, receiver) pairs.
    pub fn forwarded_pairs(&self) -> usize {
        self.senders * (self.endpoints() - 1)
    }

    fn is_sender(&self, endpoint: usize) -> bool {
        endpoint < self.senders
    }

    /// Streams (audio + one video layer per other sender) endpoint `index` should get.
    fn expected_streams(&self, endpoint: usize) -> usize {
        2 * (self.senders - usize::from(self.is_sender(endpoint)))
    }
}

/// How a scenario is run.
#[derive(Debug, Clone, Copy)]
pub struct RunSettings {
    pub tuning: BridgeTuning,
    /// Longest wait for every stream to reach every receiver.
    pub connect_timeout: Duration,
    /// Extra time after that, for congestion control and layer selection to settle.
    pub warmup: Duration,
    pub window: Duration,
}

/// Raw results of one scenario on one server.
#[derive(Debug)]
pub struct Measurement {
    pub kind: ServerKind,
    pub scenario: Scenario,
    pub wall: Duration,
    pub server_cpu: Duration,
    pub load_generator_cpu: Duration,
    /// Server RSS at the end of the window minus before any endpoint existed.
    pub rss_growth: u64,
    pub window: Window,
    /// Streams that reached their receivers before the window, of those expected.
    pub streams_ready: (usize, usize),
    /// Datagrams the kernel dropped in the window because a receive buffer was full: at
    /// the server's media socket, and at the load generator's sockets.
    pub server_socket_drops: u64,
    pub load_generator_socket_drops: u64,
    /// The machine's 1-minute load average at the end of the window (other processes
    /// compete for the same cores).
    pub load_average: f64,
}

fn local_socket(ports: &mut Vec<u16>) -> Result<UdpSocket> {
    let socket = bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    socket.set_nonblocking(true)?;
    ports.push(socket.local_addr()?.port());
    Ok(UdpSocket::from_std(socket)?)
}

fn endpoint_id(index: usize) -> EndpointId {
    EndpointId(format!("bench{index:04}"))
}

pub async fn run(
    exe: &Path,
    kind: ServerKind,
    scenario: Scenario,
    settings: RunSettings,
) -> Result<Measurement> {
    let mut server = ServerProcess::spawn(exe, kind, settings.tuning).await?;
    let pid = server.pid()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss_bytes(pid)?;
    let endpoints = scenario.endpoints();
    let ssrcs: Vec<Option<SenderSsrcs>> = (0..endpoints)
        .map(|i| scenario.is_sender(i).then(|| SenderSsrcs::for_endpoint(i)))
        .collect();
    let recorders: Vec<Recorder> = (0..endpoints).map(|_| Recorder::default()).collect();
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let connected = Arc::new(AtomicUsize::new(0));
    let server_port = server
        .media
        .context("server did not say where it listens")?
        .port();
    let mut client_ports = Vec::new();
    match kind {
        ServerKind::Bridge => {
            let conference = ConferenceId(format!("bench-{scenario}@conference.localhost"));
            let sources: Vec<SourceSet> = ssrcs
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.map_or_else(SourceSet::default, |s| {
                        sender_sources(&endpoint_id(i).0, s, scenario.media)
                    })
                })
                .collect();
            for index in 0..endpoints {
                let endpoint = endpoint_id(index);
                let offer = match server
                    .bridge(BridgeRequest::AllocateEndpoint {
                        conference: conference.clone(),
                        endpoint: endpoint.clone(),
                    })
                    .await?
                {
                    BridgeResponse::EndpointAllocated(offer) => offer,
                    other => bail!("AllocateEndpoint answered {other:?}"),
                };
                let receives: Vec<SourceSet> = (0..scenario.senders)
                    .filter(|&s| s != index)
                    .map(|s| sources[s].receiver_view())
                    .collect();
                let client = WebrtcEndpoint::new(
                    &offer,
                    local_socket(&mut client_ports)?,
                    ssrcs[index].map(|s| (s, scenario.media)),
                    &receives,
                    recorders[index].clone(),
                    connected.clone(),
                )?;
                server
                    .bridge(BridgeRequest::ConfigureEndpoint {
                        conference: conference.clone(),
                        endpoint,
                        transport: client.transport.clone(),
                        media: client.media.clone(),
                        sources: sources[index].clone(),
                    })
                    .await?;
                tasks.spawn(client.run(stopped.clone()));
            }
        }
        ServerKind::Relay => {
            let relay = server.media.context("relay did not say where it listens")?;
            let sockets = (0..endpoints)
                .map(|_| local_socket(&mut client_ports))
                .collect::<Result<Vec<_>>>()?;
            let addrs = sockets
                .iter()
                .map(|s| s.local_addr())
                .collect::<std::io::Result<Vec<_>>>()?;
            for (index, sender) in ssrcs.iter().enumerate() {
                let Some(sender) = sender else { continue };
                let others: Vec<SocketAddr> = addrs
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != index)
                    .map(|(_, a)| *a)
                    .collect();
                // What the bridge forwards to unconstrained receivers: audio and the top
                // layer (simulcast), or the one SSRC whole (SVC: the bridge drops the lower
                // spatial layer's delta frames, the relay cannot).
                server.forward(sender.audio, others.clone()).await?;
                let video = match scenario.media {
                    Media::Vp8Simulcast => sender.video[TOP_LAYER],
                    Media::Av1Svc => sender.video[0],
                };
                server.forward(video, others).await?;
            }
            let now = Instant::now();
            for (index, socket) in sockets.into_iter().enumerate() {
                let endpoint = PlainEndpoint {
                    socket,
                    relay,
                    source: ssrcs[index].map(|s| MediaSource::new(s, scenario.media, now)),
                    recorder: recorders[index].clone(),
                };
                connected.fetch_add(1, Ordering::Relaxed);
                tasks.spawn(endpoint.run(stopped.clone()));
            }
        }
    }

    let expected: usize = (0..endpoints).map(|i| scenario.expected_streams(i)).sum();
    let ready = |recorders: &[Recorder]| -> usize {
        recorders
            .iter()
            .enumerate()
            .map(|(i, r)| r.streams_seen().min(scenario.expected_streams(i)))
            .sum()
    };
    let waiting_since = Instant::now();
    while ready(&recorders) < expected && waiting_since.elapsed() < settings.connect_timeout {
        if let Some(ended) = tasks.try_join_next() {
            ended??;
            bail!("an endpoint stopped before the measurement");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let streams_ready = (ready(&recorders), expected);
    if streams_ready.0 < expected {
        tracing::warn!(
            "{kind:?} {scenario}: {} of {expected} streams arrived within {:?} ({} of {endpoints} endpoints connected)",
            streams_ready.0,
            settings.connect_timeout,
            connected.load(Ordering::Relaxed)
        );
    }
    tokio::time::sleep(settings.warmup).await;

    let own_pid = std::process::id();
    let (server_cpu_start, own_cpu_start) = (cpu_time(pid)?, cpu_time(own_pid)?);
    let drops =
        || -> Result<(u64, u64)> { Ok((udp_drops(&[server_port])?, udp_drops(&client_ports)?)) };
    let drops_start = drops()?;
    let started = Instant::now();
    recorders.iter().for_each(Recorder::start_window);
    tokio::time::sleep(settings.window).await;
    let mut window = Window::default();
    for recorder in &recorders {
        window.merge(recorder.take_window());
    }
    let wall = started.elapsed();
    let (server_cpu_end, own_cpu_end) = (cpu_time(pid)?, cpu_time(own_pid)?);
    let rss_after = rss_bytes(pid)?;
    let drops_end = drops()?;
    let load_average = load_average()?;

    stop.send(true)?;
    while let Some(ended) = tasks.join_next().await {
        ended??;
    }
    server.stop().await?;
    Ok(Measurement {
        kind,
        scenario,
        wall,
        server_cpu: server_cpu_end.saturating_sub(server_cpu_start),
        load_generator_cpu: own_cpu_end.saturating_sub(own_cpu_start),
        rss_growth: rss_after.saturating_sub(rss_before),
        window,
        streams_ready,
        server_socket_drops: drops_end.0 - drops_start.0,
        load_generator_socket_drops: drops_end.1 - drops_start.1,
        load_average,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scenarios() {
        let s: Scenario = "5x10".parse().unwrap();
        assert_eq!((s.senders, s.receivers), (5, 10));
        assert_eq!(s.forwarded_pairs(), 5 * 14);
        assert_eq!(s.expected_streams(0), 8);
        assert_eq!(s.expected_streams(5), 10);
        assert!("0x3".parse::<Scenario>().is_err());
        assert!("1x0".parse::<Scenario>().is_err());
        assert!("5by10".parse::<Scenario>().is_err());
        assert_eq!(s.media, Media::Vp8Simulcast);
        let svc: Scenario = "5x10svc".parse().unwrap();
        assert_eq!(
            (svc.senders, svc.receivers, svc.media),
            (5, 10, Media::Av1Svc)
        );
        assert_eq!(svc.to_string(), "5x10svc");
    }
}
