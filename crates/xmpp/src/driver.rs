//! The one task that runs the [`Hub`]: it reads the shells' events, feeds the hub with
//! `now`, carries its outputs to the connections' bounded queues and the internal links,
//! and sleeps until the hub's next deadline.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use jid::Jid;
use minidom::Element;
use tokio::sync::{mpsc, oneshot};

use crate::hub::{ConnId, Ending, Hub, Input, LinkId, Output, ToSession};
use crate::session::{Detached, Transport};

/// Events handled per wake before the outputs are carried out.
const BATCH: usize = 64;

/// What the shells tell the hub task.
pub(crate) enum Event {
    /// A connection was accepted; `queue` carries everything the hub tells it.
    Opened {
        conn: ConnId,
        peer: IpAddr,
        transport: Transport,
        queue: mpsc::Sender<ToSession>,
    },
    AttachInternal {
        addresses: Vec<Jid>,
        sink: mpsc::Sender<Element>,
        link: oneshot::Sender<LinkId>,
    },
    /// The connection is gone with a resumable session; `receiver` still holds what was
    /// on its way to it.
    Detached {
        conn: ConnId,
        detached: Detached,
        receiver: mpsc::Receiver<ToSession>,
        ending: Ending,
    },
    Hub(Input),
    Ping(oneshot::Sender<()>),
    Metrics(oneshot::Sender<String>),
    /// Answered once every connection is gone.
    Shutdown(oneshot::Sender<()>),
}

/// The shells' side of the hub task.
pub(crate) struct HubHandle {
    pub events: mpsc::UnboundedSender<Event>,
    /// The hub's room count after its last wake (read without a round trip).
    pub rooms: Arc<AtomicUsize>,
}

impl HubHandle {
    pub fn send(&self, event: Event) {
        // Fails only once the hub task is gone, when nothing is routed any more anyway.
        let _ = self.events.send(event);
    }
}

pub(crate) fn spawn(hub: Hub) -> HubHandle {
    let (events, receiver) = mpsc::unbounded_channel();
    let rooms = Arc::new(AtomicUsize::new(0));
    tokio::spawn(
        Driver {
            hub,
            queues: HashMap::new(),
            links: Vec::new(),
            shutdown_waiters: Vec::new(),
            rooms: rooms.clone(),
        }
        .run(receiver),
    );
    HubHandle { events, rooms }
}

struct Driver {
    hub: Hub,
    queues: HashMap<ConnId, mpsc::Sender<ToSession>>,
    links: Vec<mpsc::Sender<Element>>,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
    rooms: Arc<AtomicUsize>,
}

impl Driver {
    async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let deadline = self.hub.poll_timeout();
            let sleep = tokio::time::sleep_until(
                deadline.map_or_else(far_future, tokio::time::Instant::from_std),
            );
            tokio::select! {
                received = events.recv_many(&mut batch, BATCH) => {
                    if received == 0 {
                        return;
                    }
                    let now = Instant::now();
                    self.hub.set_wall_clock(SystemTime::now());
                    for event in batch.drain(..) {
                        self.handle(now, event);
                    }
                }
                () = sleep, if deadline.is_some() => {
                    self.hub.set_wall_clock(SystemTime::now());
                    self.hub.handle_timeout(Instant::now());
                }
            }
            self.carry_out(Instant::now());
            self.rooms.store(self.hub.room_count(), Ordering::Relaxed);
            if self.hub.connection_count() == 0 {
                for waiter in self.shutdown_waiters.drain(..) {
                    let _ = waiter.send(());
                }
            }
        }
    }

    fn handle(&mut self, now: Instant, event: Event) {
        match event {
            Event::Opened {
                conn,
                peer,
                transport,
                queue,
            } => {
                self.queues.insert(conn, queue);
                self.hub.handle(
                    now,
                    Input::Opened {
                        conn,
                        peer,
                        transport,
                    },
                );
            }
            Event::AttachInternal {
                addresses,
                sink,
                link,
            } => {
                let id = LinkId(self.links.len());
                self.links.push(sink);
                let _ = link.send(id);
                self.hub.handle(
                    now,
                    Input::AttachInternal {
                        link: id,
                        addresses,
                    },
                );
            }
            Event::Detached {
                conn,
                detached,
                mut receiver,
                ending,
            } => {
                // This task is the queue's only sender: everything sent to it is there now.
                let mut queued = VecDeque::new();
                while let Ok(message) = receiver.try_recv() {
                    if let ToSession::Stanza(stanza) = message {
                        queued.push_back(*stanza);
                    }
                }
                self.queues.remove(&conn);
                self.hub.handle(
                    now,
                    Input::Detached {
                        conn,
                        detached,
                        queued,
                        ending,
                    },
                );
            }
            Event::Hub(input) => {
                if let Input::Closed { conn, .. } = &input {
                    self.queues.remove(conn);
                }
                self.hub.handle(now, input);
            }
            Event::Ping(answer) => {
                let _ = answer.send(());
            }
            Event::Metrics(answer) => {
                let _ = answer.send(self.hub.metrics_text());
            }
            Event::Shutdown(done) => {
                self.shutdown_waiters.push(done);
                self.hub.handle(now, Input::Shutdown);
            }
        }
    }

    /// Hands the hub's outputs to their queues without blocking. A connection whose queue
    /// is full (a client that stopped reading) is ended: its queue is dropped, so that the
    /// connection, after what is already in it, closes with `resource-constraint`.
    fn carry_out(&mut self, now: Instant) {
        while let Some(output) = self.hub.poll_output() {
            match output {
                Output::Session { conn, message } => {
                    let Some(queue) = self.queues.get(&conn) else {
                        continue;
                    };
                    let ending = matches!(message, ToSession::End(_));
                    match queue.try_send(message) {
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            tracing::warn!(
                                "connection {} does not keep up with its stanzas; ending it",
                                conn.0
                            );
                            self.queues.remove(&conn);
                            self.hub.handle(now, Input::Overflowed { conn });
                        }
                        // Closed: the connection is going; its own event follows.
                        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {
                            if ending {
                                self.queues.remove(&conn);
                            }
                        }
                    }
                }
                Output::Internal { link, stanza } => {
                    if let Some(sink) = self.links.get(link.0)
                        && let Err(mpsc::error::TrySendError::Full(_)) = sink.try_send(stanza)
                    {
                        tracing::error!(
                            "an internal entity is not reading its stanzas; dropping one"
                        );
                    }
                }
            }
        }
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(86_400)
}
