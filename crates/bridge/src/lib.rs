//! The selective forwarding unit: receives each endpoint's media over WebRTC and forwards
//! to every other endpoint only what it needs.
//!
//! The focus drives the bridge only through the messages in [`api`], so that the bridge can
//! later run in another process without changing the focus.
//!
//! Shape: a sans-IO [`engine::Core`] (conferences, endpoints, forwarding, one str0m `Rtc`
//! per endpoint) owned by one thread; this file is the shell around it: the shared UDP
//! sockets, ICE-TCP, the colibri-ws WebSockets, and the timer. The binary serves the
//! bridge's [`Bridge::metrics_text`] and [`Bridge::health`] on its own HTTP routes.

pub mod config;
pub use config::Config;

pub mod allocator;
pub use convene_colibri as api;
pub mod bwe;
pub mod channel;
pub mod codec;
pub mod engine;
pub mod media;
pub mod meter;
pub mod metrics;
pub mod rewrite;
pub mod speaker;
pub mod svc;
pub mod sync;
mod tcp;
#[cfg(any(test, feature = "test-support"))]
pub mod testkit;
mod udp;
mod ws;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use rand::SeedableRng;
use rand::rngs::StdRng;
use str0m::net::Protocol;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;
use tracing::{info, warn};

use api::{BridgeError, BridgeEvent, BridgeRequest, BridgeResponse};
use engine::{ChannelAuthError, Core, CoreOutput, EndpointKey, IngressLimits, Settings};
use udp::MediaSocket;

type Pending = (
    BridgeRequest,
    oneshot::Sender<Result<BridgeResponse, BridgeError>>,
);

/// A cheap handle through which the focus sends [`BridgeRequest`]s to a running bridge.
#[derive(Clone, Debug)]
pub struct BridgeHandle {
    requests: mpsc::Sender<Pending>,
}

impl BridgeHandle {
    /// A handle and the receiving end the bridge's control loop reads from.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<Pending>) {
        let (requests, rx) = mpsc::channel(capacity);
        (Self { requests }, rx)
    }

    pub async fn request(&self, request: BridgeRequest) -> Result<BridgeResponse, BridgeError> {
        let (reply, response) = oneshot::channel();
        self.requests
            .send((request, reply))
            .await
            .map_err(|_| BridgeError::Unavailable)?;
        response.await.map_err(|_| BridgeError::Unavailable)?
    }
}

/// The in-process bridge client.
impl api::BridgeClient for BridgeHandle {
    fn request(
        &self,
        request: BridgeRequest,
    ) -> api::BoxFuture<'static, Result<BridgeResponse, BridgeError>> {
        let handle = self.clone();
        Box::pin(async move { BridgeHandle::request(&handle, request).await })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the bridge thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Why the bridge is not healthy.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    #[error("the bridge core does not answer")]
    CoreNotAnswering,
}

/// How long [`Bridge::health`] waits for the core thread.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// How long [`Bridge::shutdown`] waits for the core thread to expire everything and stop.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages from the HTTP side (WebSockets, metrics) and the operator to the core task.
enum Control {
    ChannelOpen {
        conference: String,
        endpoint: String,
        pwd: String,
        sink: mpsc::Sender<String>,
        reply: oneshot::Sender<Result<(EndpointKey, u64), ChannelAuthError>>,
    },
    ChannelMessage {
        key: EndpointKey,
        text: String,
    },
    ChannelClosed {
        key: EndpointKey,
        sink_id: u64,
    },
    Metrics(oneshot::Sender<String>),
    /// Answered at once: the core thread is alive and not stuck.
    Ping(oneshot::Sender<()>),
    /// Expire every endpoint, send what that produces, stop; answered when stopped.
    Shutdown(oneshot::Sender<()>),
    /// An ICE-TCP connection: where the core's TCP transmits to `remote` go.
    TcpOpened {
        remote: SocketAddr,
        local: SocketAddr,
        sink: mpsc::Sender<Vec<u8>>,
    },
    TcpClosed {
        remote: SocketAddr,
        local: SocketAddr,
    },
}

struct Datagram {
    at: Instant,
    proto: Protocol,
    source: SocketAddr,
    local: SocketAddr,
    data: Vec<u8>,
}

#[derive(Clone)]
struct Shared {
    control: mpsc::Sender<Control>,
    server_id: String,
}

/// A running bridge.
pub struct Bridge {
    handle: BridgeHandle,
    events: Option<mpsc::Receiver<BridgeEvent>>,
    shared: Shared,
    udp_addrs: Vec<SocketAddr>,
    /// The ICE-TCP accept loops, stopped on shutdown.
    tcp_listeners: Vec<AbortHandle>,
}

impl Bridge {
    /// Binds the UDP port and starts the bridge task. `colibri_ws_base` (e.g.
    /// `ws://localhost:8080`) is used unless `config.colibri_ws_base` overrides it.
    pub async fn start(config: Config, colibri_ws_base: String) -> Result<Bridge, StartError> {
        let ips = if config.addresses.is_empty() {
            interface_addresses()
        } else {
            config.addresses.clone()
        };
        let mut sockets = Vec::new();
        let mut port = config.udp_port;
        for ip in ips {
            let addr = SocketAddr::new(ip, port);
            // A std socket: the core's own thread registers it with its own runtime.
            match std::net::UdpSocket::bind(addr).and_then(|s| s.set_nonblocking(true).map(|()| s))
            {
                Ok(socket) => {
                    let local = socket
                        .local_addr()
                        .map_err(|source| StartError::Bind { addr, source })?;
                    port = local.port();
                    sockets.push((local, socket));
                }
                Err(source) if sockets.is_empty() => return Err(StartError::Bind { addr, source }),
                Err(e) => warn!(%addr, "cannot bind, not advertising it: {e}"),
            }
        }
        let udp_addrs: Vec<SocketAddr> = sockets.iter().map(|(a, _)| *a).collect();
        let mut tcp_listeners = Vec::new();
        if config.ice_tcp {
            for addr in &udp_addrs {
                match TcpListener::bind(addr).await {
                    Ok(listener) => tcp_listeners.push((*addr, listener)),
                    Err(e) => warn!(%addr, "no ICE-TCP on this address: {e}"),
                }
            }
        }
        let tcp_addrs: Vec<SocketAddr> = tcp_listeners.iter().map(|(a, _)| *a).collect();
        info!(?udp_addrs, ?tcp_addrs, "bridge media sockets bound");
        let colibri_ws_base = if config.colibri_ws_base.is_empty() {
            colibri_ws_base
        } else {
            config.colibri_ws_base.clone()
        };
        let settings = Settings {
            local_addrs: udp_addrs.clone(),
            tcp_addrs,
            public_ips: config.public_addresses.clone(),
            colibri_ws_base,
            server_id: config.server_id.clone(),
            idle_timeout: Duration::from_secs(config.endpoint_idle_timeout_secs),
            initial_bandwidth_bps: config.initial_bandwidth_bps,
            max_datagram_bytes: config.max_datagram_bytes,
            ingress: IngressLimits::from(&config),
        };

        let (handle, requests) = BridgeHandle::channel(64);
        let (events_tx, events) = mpsc::channel(256);
        let (control, control_rx) = mpsc::channel(1024);
        let (tcp_frames_tx, tcp_frames) = mpsc::channel(8192);
        let connections = Arc::new(Semaphore::new(tcp::MAX_TCP_CONNECTIONS));
        let tcp_listeners = tcp_listeners
            .into_iter()
            .map(|(local, listener)| {
                tokio::spawn(tcp::accept_tcp(
                    local,
                    listener,
                    tcp_frames_tx.clone(),
                    control.clone(),
                    connections.clone(),
                ))
                .abort_handle()
            })
            .collect();
        // A CSPRNG: ICE and bridge-channel passwords come from it.
        let core = Core::new(settings, Instant::now(), StdRng::from_os_rng());
        // The core gets a thread and a single-threaded runtime of its own: on the shared
        // runtime every datagram and pacer timer woke it on whichever worker was free, and
        // those cross-thread wake-ups cost more than the forwarding.
        std::thread::Builder::new()
            .name("bridge-core".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => return tracing::error!("cannot start the bridge runtime: {e}"),
                };
                runtime.block_on(async move {
                    let sockets = sockets
                        .into_iter()
                        .filter_map(|(local, socket)| {
                            match UdpSocket::from_std(socket)
                                .and_then(|socket| MediaSocket::new(local, socket))
                            {
                                Ok(socket) => Some(socket),
                                Err(e) => {
                                    tracing::error!(%local, "cannot watch the UDP socket: {e}");
                                    None
                                }
                            }
                        })
                        .collect();
                    run_core(core, sockets, requests, tcp_frames, control_rx, events_tx).await
                });
            })
            .map_err(StartError::Thread)?;
        Ok(Bridge {
            handle,
            events: Some(events),
            shared: Shared {
                control,
                server_id: config.server_id,
            },
            udp_addrs,
            tcp_listeners,
        })
    }

    pub fn handle(&self) -> BridgeHandle {
        self.handle.clone()
    }

    /// The events for the focus; `None` after the first call.
    pub fn take_events(&mut self) -> Option<mpsc::Receiver<BridgeEvent>> {
        self.events.take()
    }

    /// The media addresses actually bound (the port is real even when configured as 0).
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// The bridge's metrics in the Prometheus text format (`convene_bridge_*`, each with
    /// `# HELP` and `# TYPE`); empty once the core is gone.
    pub async fn metrics_text(&self) -> String {
        let (reply, text) = oneshot::channel();
        if self
            .shared
            .control
            .send(Control::Metrics(reply))
            .await
            .is_err()
        {
            return String::new();
        }
        text.await.unwrap_or_default()
    }

    /// `Ok` when the core thread answers within a second.
    pub async fn health(&self) -> Result<(), Unhealthy> {
        let (reply, pong) = oneshot::channel();
        let answered = tokio::time::timeout(HEALTH_TIMEOUT, async {
            self.shared.control.send(Control::Ping(reply)).await.ok()?;
            pong.await.ok()
        })
        .await;
        match answered {
            Ok(Some(())) => Ok(()),
            _ => Err(Unhealthy::CoreNotAnswering),
        }
    }

    /// Stops the bridge: no more ICE-TCP connections, every endpoint expired (the focus
    /// gets `EndpointExpired`, bridge channels close with 1001), then the core thread
    /// ends and the media sockets close. Returns when done, after at most 5 s.
    pub async fn shutdown(&self) {
        for listener in &self.tcp_listeners {
            listener.abort();
        }
        let (reply, stopped) = oneshot::channel();
        let stop = async {
            if self
                .shared
                .control
                .send(Control::Shutdown(reply))
                .await
                .is_ok()
            {
                let _ = stopped.await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, stop).await.is_err() {
            warn!("the bridge core did not stop within {SHUTDOWN_TIMEOUT:?}");
        }
    }

    /// `/colibri-ws/{server_id}/{conference}/{endpoint}?pwd=...`.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/colibri-ws/{server_id}/{conference}/{endpoint}",
                get(ws::colibri_ws),
            )
            .with_state(self.shared.clone())
    }
}

/// Non-loopback interface addresses (no IPv6 link-local), else IPv4 loopback.
fn interface_addresses() -> Vec<IpAddr> {
    let found: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| !i.is_loopback() && !i.is_link_local())
        .map(|i| i.ip())
        .collect();
    if found.is_empty() {
        vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
    } else {
        found
    }
}

/// `recvmmsg` calls per socket per loop turn, so that timers, requests and the other
/// sockets get their turn under load.
const RECV_CALLS: usize = 4;

/// Resolves when any of the sockets may have datagrams to read.
async fn any_readable(sockets: &[MediaSocket]) {
    let readable = sockets.iter().map(|s| Box::pin(s.readable()));
    let _ = futures_util::future::select_all(readable).await;
}

/// The core's loop. UDP is read here, in the core's own task, rather than in a reader task
/// per socket: handing each datagram over a channel cost a copy and a task switch, about
/// as much as forwarding it. Each wake-up drains the sockets, then sends everything the
/// core produced (`poll_output` until `None`: that is also when forwarded media is
/// encrypted, once per receiver for the whole turn) in per-destination batches.
async fn run_core(
    mut core: Core,
    mut sockets: Vec<MediaSocket>,
    mut requests: mpsc::Receiver<Pending>,
    mut tcp_frames: mpsc::Receiver<Datagram>,
    mut control: mpsc::Receiver<Control>,
    events: mpsc::Sender<BridgeEvent>,
) {
    let mut sinks: HashMap<EndpointKey, (u64, mpsc::Sender<String>)> = HashMap::new();
    let mut next_sink_id = 0u64;
    let mut tcp_sinks: HashMap<(SocketAddr, SocketAddr), mpsc::Sender<Vec<u8>>> = HashMap::new();
    let (mut requests_closed, mut control_closed) = (false, false);
    let mut stopped: Option<oneshot::Sender<()>> = None;
    let mut deadline = core.poll_timeout();
    let timer = tokio::time::sleep_until(deadline.into());
    tokio::pin!(timer);
    loop {
        tokio::select! {
            () = any_readable(&sockets) => {
                for socket in &mut sockets {
                    let local = socket.local;
                    socket.receive(RECV_CALLS, |source, datagram| {
                        core.handle_datagram(Instant::now(), Protocol::Udp, source, local, datagram);
                    });
                }
            }
            request = requests.recv(), if !requests_closed => match request {
                Some((request, reply)) => {
                    let _ = reply.send(core.handle_request(Instant::now(), request));
                }
                None => requests_closed = true,
            },
            Some(d) = tcp_frames.recv() => core.handle_datagram(d.at, d.proto, d.source, d.local, &d.data),
            c = control.recv(), if !control_closed => match c {
                None => control_closed = true,
                Some(Control::ChannelOpen { conference, endpoint, pwd, sink, reply }) => {
                    let result = core.channel_open(&conference, &endpoint, &pwd).map(|key| {
                        next_sink_id += 1;
                        sinks.insert(key, (next_sink_id, sink));
                        (key, next_sink_id)
                    });
                    let _ = reply.send(result);
                }
                Some(Control::ChannelMessage { key, text }) => core.channel_message(Instant::now(), key, &text),
                Some(Control::ChannelClosed { key, sink_id }) => {
                    if sinks.get(&key).is_some_and(|(id, _)| *id == sink_id) {
                        sinks.remove(&key);
                        core.channel_closed(key);
                    }
                }
                Some(Control::Metrics(reply)) => {
                    let _ = reply.send(core.metrics_text());
                }
                Some(Control::Ping(reply)) => {
                    let _ = reply.send(());
                }
                Some(Control::Shutdown(reply)) => {
                    core.shutdown(Instant::now());
                    stopped = Some(reply);
                }
                Some(Control::TcpOpened { remote, local, sink }) => {
                    tcp_sinks.insert((remote, local), sink);
                }
                Some(Control::TcpClosed { remote, local }) => {
                    tcp_sinks.remove(&(remote, local));
                }
            },
            () = &mut timer => core.handle_timeout(Instant::now()),
        }
        // Nobody can reach the bridge any more: the focus and the HTTP side are gone.
        if requests_closed && control_closed {
            return;
        }
        // Timers that fell due while datagrams were handled run now, saving a wake-up.
        let now = Instant::now();
        if core.poll_timeout() <= now {
            core.handle_timeout(now);
        }
        while let Some(output) = core.poll_output(now) {
            match output {
                CoreOutput::Transmit(t) if t.proto == Protocol::Tcp => {
                    if let Some(sink) = tcp_sinks.get(&(t.destination, t.source)) {
                        // A connection that cannot keep up loses datagrams, as UDP would.
                        let _ = sink.try_send(t.contents.into());
                    }
                }
                CoreOutput::Transmit(t) => {
                    if let Some(socket) = sockets.iter_mut().find(|s| s.local == t.source) {
                        socket.queue(t.destination, t.contents.into());
                    }
                }
                CoreOutput::Channel { endpoint, text } => {
                    if let Some((_, sink)) = sinks.get(&endpoint) {
                        // A client that does not read its channel loses messages, not the bridge.
                        let _ = sink.try_send(text);
                    }
                }
                CoreOutput::CloseChannel(endpoint) => {
                    sinks.remove(&endpoint);
                }
                CoreOutput::Event(event) => {
                    let _ = events.try_send(event);
                }
            }
        }
        for socket in &mut sockets {
            socket.flush();
        }
        if let Some(reply) = stopped {
            // The media ports are free once `shutdown` returns.
            drop(sockets);
            info!("bridge stopped");
            let _ = reply.send(());
            return;
        }
        let next = core.poll_timeout();
        if next != deadline {
            deadline = next;
            timer.as_mut().reset(deadline.into());
        }
    }
}
