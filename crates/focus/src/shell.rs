//! The async shell: one task that owns the [`Focus`] core, feeds it stanzas from the XMPP
//! server, bridge responses and events and the time, and carries out its outputs. Bridge
//! requests run as their own tasks, so a slow bridge never stalls signalling; the core
//! already orders the requests of each conference.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use convene_colibri::{BridgeClient, BridgeError, BridgeEvent, BridgeId, BridgeResponse};
use minidom::Element;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::metrics_text::{self, BridgeLatency};
use crate::{Config, Focus, Output, RequestId};

/// How long [`FocusHandle::health`] waits for the task to answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// How long [`FocusHandle::shutdown`] waits for the conferences to end.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(5);

/// The focus's connection to the XMPP server: stanzas both ways, as an internal entity
/// (the binary adapts the server's own link type to it).
pub struct StanzaLink {
    pub to_server: mpsc::Sender<Element>,
    pub from_server: mpsc::Receiver<Element>,
}

/// A bridge the focus may place conferences on.
pub struct BridgeConnection {
    /// The name the focus gives this bridge in its state and logs.
    pub id: BridgeId,
    pub client: Arc<dyn BridgeClient>,
    pub events: mpsc::Receiver<BridgeEvent>,
}

/// A finished bridge request, back from its task.
struct Response {
    bridge: BridgeId,
    id: RequestId,
    kind: &'static str,
    elapsed: Duration,
    result: Result<BridgeResponse, BridgeError>,
}

/// Requests from the [`FocusHandle`] to the task.
enum Control {
    Metrics(oneshot::Sender<String>),
    Ping(oneshot::Sender<()>),
    /// Take no new conferences; answer once none is left.
    Shutdown(oneshot::Sender<()>),
}

/// Starts the focus for `domain`. `link` must be attached to the XMPP server under
/// [`addresses`](crate::addresses) (`focus.D` and `focus@auth.D/focus`). New conferences go
/// to one of `bridges`. The task ends when the XMPP server drops the link.
pub fn spawn(
    domain: &str,
    config: Config,
    link: StanzaLink,
    bridges: Vec<BridgeConnection>,
) -> FocusHandle {
    let mut focus = Focus::new(domain, config, StdRng::from_os_rng());
    let mut clients = HashMap::new();
    let mut events = Vec::new();
    for bridge in bridges {
        focus.add_bridge(bridge.id.clone());
        clients.insert(bridge.id.clone(), bridge.client);
        events.push((bridge.id, Some(bridge.events)));
    }
    let (control_tx, control) = mpsc::channel(16);
    let shell = Shell {
        focus,
        clients,
        events,
        latency: BridgeLatency::default(),
        drained: Vec::new(),
    };
    let task = tokio::spawn(shell.run(link, control));
    FocusHandle {
        task,
        control: control_tx,
    }
}

struct Shell {
    focus: Focus,
    clients: HashMap<BridgeId, Arc<dyn BridgeClient>>,
    /// Each bridge's events; `None` once that bridge stopped sending them.
    events: Vec<(BridgeId, Option<mpsc::Receiver<BridgeEvent>>)>,
    latency: BridgeLatency,
    /// Waiting for the last conference to end, after a shutdown.
    drained: Vec<oneshot::Sender<()>>,
}

impl Shell {
    async fn run(mut self, link: StanzaLink, mut control: mpsc::Receiver<Control>) {
        let StanzaLink {
            to_server,
            mut from_server,
        } = link;
        let (responses_tx, mut responses) = mpsc::unbounded_channel();
        let mut control_open = true;
        loop {
            while let Some(output) = self.focus.poll_output() {
                match output {
                    Output::Stanza(stanza) => {
                        if to_server.send(stanza).await.is_err() {
                            info!("the XMPP server is gone; the focus stops");
                            return;
                        }
                    }
                    Output::Bridge {
                        bridge,
                        id,
                        request,
                    } => {
                        let kind = metrics_text::request_kind(&request);
                        let client = self.clients.get(&bridge).cloned();
                        let responses_tx = responses_tx.clone();
                        tokio::spawn(async move {
                            let started = Instant::now();
                            let result = match client {
                                Some(client) => client.request(request).await,
                                None => Err(BridgeError::Unavailable),
                            };
                            let elapsed = started.elapsed();
                            let _ = responses_tx.send(Response {
                                bridge,
                                id,
                                kind,
                                elapsed,
                                result,
                            });
                        });
                    }
                }
            }
            if !self.drained.is_empty() && self.focus.conference_count() == 0 {
                for waiter in self.drained.drain(..) {
                    let _ = waiter.send(());
                }
            }
            let deadline = self.focus.poll_timeout();
            let timeout = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                stanza = from_server.recv() => match stanza {
                    Some(stanza) => self.focus.handle_stanza(Instant::now(), stanza),
                    None => {
                        info!("the XMPP server closed the link; the focus stops");
                        return;
                    }
                },
                Some(response) = responses.recv() => {
                    self.latency.observe(response.kind, response.elapsed);
                    self.focus.handle_bridge_response(Instant::now(), &response.bridge, response.id, response.result);
                }
                (bridge, event) = next_event(&mut self.events) => match event {
                    Some(event) => self.focus.handle_bridge_event(Instant::now(), &bridge, event),
                    None => warn!(%bridge, "the bridge stopped sending events"),
                },
                message = control.recv(), if control_open => match message {
                    Some(message) => self.on_control(message),
                    None => control_open = false,
                },
                () = timeout => self.focus.handle_timeout(Instant::now()),
            }
        }
    }

    fn on_control(&mut self, message: Control) {
        match message {
            Control::Metrics(reply) => {
                let _ = reply.send(metrics_text::render(&self.focus.metrics(), &self.latency));
            }
            Control::Ping(reply) => {
                let _ = reply.send(());
            }
            Control::Shutdown(reply) => {
                self.focus.shutdown();
                self.drained.push(reply);
            }
        }
    }
}

/// The next event of any bridge that still sends them; `None` (once per bridge) when one
/// stops. Pending forever when none does.
async fn next_event(
    bridges: &mut [(BridgeId, Option<mpsc::Receiver<BridgeEvent>>)],
) -> (BridgeId, Option<BridgeEvent>) {
    poll_fn(|cx| {
        for (bridge, events) in bridges.iter_mut() {
            let Some(receiver) = events else { continue };
            if let Poll::Ready(event) = receiver.poll_recv(cx) {
                if event.is_none() {
                    *events = None;
                }
                return Poll::Ready((bridge.clone(), event));
            }
        }
        Poll::Pending
    })
    .await
}

/// The running focus, for the binary. Dropping it stops the focus.
pub struct FocusHandle {
    task: JoinHandle<()>,
    control: mpsc::Sender<Control>,
}

impl Drop for FocusHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why the focus is not healthy.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    #[error("the focus task has stopped")]
    Stopped,
    #[error("the focus task does not answer")]
    NotAnswering,
}

impl FocusHandle {
    /// Asks the task, which answers between two pieces of work; `None` if it has stopped.
    async fn ask<T>(
        &self,
        message: impl FnOnce(oneshot::Sender<T>) -> Control,
    ) -> Option<oneshot::Receiver<T>> {
        let (reply, answer) = oneshot::channel();
        self.control.send(message(reply)).await.ok()?;
        Some(answer)
    }

    /// The focus's metrics in Prometheus text format (`convene_focus_*`); empty if the
    /// focus has stopped.
    pub async fn metrics_text(&self) -> String {
        match self.ask(Control::Metrics).await {
            Some(answer) => answer.await.unwrap_or_default(),
            None => String::new(),
        }
    }

    /// `Ok` while the focus task runs and answers within a second.
    pub async fn health(&self) -> Result<(), Unhealthy> {
        if self.task.is_finished() {
            return Err(Unhealthy::Stopped);
        }
        let answered = tokio::time::timeout(HEALTH_TIMEOUT, async {
            self.ask(Control::Ping).await?.await.ok()
        })
        .await;
        match answered {
            Ok(Some(())) => Ok(()),
            Ok(None) => Err(Unhealthy::Stopped),
            Err(_) => Err(Unhealthy::NotAnswering),
        }
    }

    /// Takes no new conferences (their requests are answered `service-unavailable`) and
    /// returns once the current ones have ended as their participants left, or after five
    /// seconds at most.
    pub async fn shutdown(&self) {
        let drained = tokio::time::timeout(SHUTDOWN_BOUND, async {
            if let Some(answer) = self.ask(Control::Shutdown).await {
                let _ = answer.await;
            }
        })
        .await;
        if drained.is_err() {
            warn!("conferences still running at the end of the shutdown grace period");
        }
    }
}
