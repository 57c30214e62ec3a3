//! The async shell: one task that owns the [`Focus`] core, feeds it stanzas from the XMPP
//! server, bridge responses and events and the time, and carries out its outputs. Bridge
//! requests run as their own tasks, so a slow bridge never stalls signalling; the core
//! already orders the requests of each conference.

use std::time::Instant;

use convene_bridge::BridgeHandle;
use convene_bridge::api::BridgeEvent;
use convene_xmpp::InternalLink;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::info;

use crate::{Config, Focus, Output};

/// Starts the focus for `domain`. `link` must be attached to the XMPP server under
/// [`addresses`](crate::addresses) (`focus.D` and `focus@auth.D/focus`). The task ends when the XMPP
/// server drops the link.
pub fn spawn(
    domain: &str,
    config: Config,
    link: InternalLink,
    bridge: BridgeHandle,
    mut bridge_events: mpsc::Receiver<BridgeEvent>,
) -> FocusHandle {
    let mut focus = Focus::new(domain, config);
    let task = tokio::spawn(async move {
        let InternalLink {
            to_server,
            mut from_server,
        } = link;
        let (responses_tx, mut responses) = mpsc::unbounded_channel();
        let mut events_open = true;
        loop {
            while let Some(output) = focus.poll_output() {
                match output {
                    Output::Stanza(stanza) => {
                        if to_server.send(stanza).await.is_err() {
                            info!("the XMPP server is gone; the focus stops");
                            return;
                        }
                    }
                    Output::Bridge { id, request } => {
                        let bridge = bridge.clone();
                        let responses_tx = responses_tx.clone();
                        tokio::spawn(async move {
                            let result = bridge.request(request).await;
                            let _ = responses_tx.send((id, result));
                        });
                    }
                }
            }
            let deadline = focus.poll_timeout();
            let timeout = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                stanza = from_server.recv() => match stanza {
                    Some(stanza) => focus.handle_stanza(Instant::now(), stanza),
                    None => {
                        info!("the XMPP server closed the link; the focus stops");
                        return;
                    }
                },
                Some((id, result)) = responses.recv() => focus.handle_bridge_response(Instant::now(), id, result),
                event = bridge_events.recv(), if events_open => match event {
                    Some(event) => focus.handle_bridge_event(Instant::now(), event),
                    None => events_open = false,
                },
                () = timeout => focus.handle_timeout(Instant::now()),
            }
        }
    });
    FocusHandle { task }
}

/// The running focus, for the binary. Dropping it stops the focus.
pub struct FocusHandle {
    task: JoinHandle<()>,
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
}

impl FocusHandle {
    /// The focus's metrics in Prometheus text format (first version: none yet).
    pub async fn metrics_text(&self) -> String {
        String::new()
    }

    /// `Ok` while the focus task runs.
    pub async fn health(&self) -> Result<(), Unhealthy> {
        if self.task.is_finished() {
            Err(Unhealthy::Stopped)
        } else {
            Ok(())
        }
    }

    /// Stops taking new conferences (first version: nothing yet).
    pub async fn shutdown(&self) {}
}
