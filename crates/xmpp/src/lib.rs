//! The XMPP server (Prosody's role): client connections over TCP (STARTTLS) and WebSocket
//! (RFC 7395), SASL, resource binding, stream management, MUC, and an in-process link for
//! the focus.
//!
//! The protocol logic is sans-IO ([`xml`], [`session`], [`router`], [`muc`], [`sasl`]); the
//! tokio shells ([`tcp`], [`ws`]) own the sockets and share one [`conn::Conn`] driver.

pub mod accounts;
pub mod component;
pub mod config;
mod conn;
pub mod identity;
pub mod muc;
pub mod router;
pub mod sasl;
pub mod session;
pub mod stanza;
mod tcp;
mod throttle;
pub mod tls;
mod ws;
pub mod xml;

pub use config::Config;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jid::Jid;
use minidom::Element;
use tokio::sync::mpsc;

use crate::accounts::Accounts;
use crate::router::{Delivery, Domains, Router};
use crate::session::Detached;

/// Stanzas queued for an in-process entity before it is considered stuck.
const INTERNAL_QUEUE: usize = 65_536;

/// An in-process XMPP entity (the focus) attached to the server's router.
///
/// Stanzas addressed to any of the link's addresses arrive on `from_server`; stanzas sent on
/// `to_server` are routed as if a trusted local entity sent them (their `from` must be one of
/// the link's addresses). Contract between the `xmpp` and `focus` crates.
pub struct InternalLink {
    pub to_server: mpsc::Sender<minidom::Element>,
    pub from_server: mpsc::Receiver<minidom::Element>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Accounts(#[from] accounts::AccountError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid domain {0:?}")]
    Domain(String),
}

/// Why the XMPP server is not healthy.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    #[error("the XMPP hub does not answer")]
    HubNotAnswering,
}

/// The running server. Cheap to clone; all clones share the same state.
#[derive(Clone)]
pub struct XmppServer {
    inner: Arc<Inner>,
}

/// A session parked after its connection dropped, with the stanzas queued for it since.
struct Parked {
    detached: Detached,
    receiver: mpsc::Receiver<Box<Element>>,
}

/// Where the stanzas for one address go.
enum Sink {
    /// A client session's queue. Boxed: a channel reserves its first block of slots up
    /// front, and a boxed slot is 8 bytes where an `Element` is 120.
    Session(mpsc::Sender<Box<Element>>),
    /// An in-process entity's link.
    Internal(mpsc::Sender<Element>),
}

struct Shared {
    router: Router,
    /// Where stanzas for each bound JID or internal address go.
    sinks: HashMap<Jid, Sink>,
    parked: HashMap<String, Parked>,
    /// Live connections with resumable sessions: signalling one makes it let go of its
    /// session so that a newer connection can resume it.
    attached: HashMap<String, tokio::sync::oneshot::Sender<()>>,
    unauthenticated: HashMap<IpAddr, usize>,
}

struct Inner {
    config: Config,
    domains: Arc<Domains>,
    accounts: Accounts,
    tls: Arc<rustls::ServerConfig>,
    shared: Mutex<Shared>,
    throttle: Mutex<throttle::Throttle>,
    c2s_addr: SocketAddr,
    /// Woken when a session is parked (a resumption may be waiting for it).
    parked_changed: tokio::sync::Notify,
}

impl XmppServer {
    /// Opens the account database, loads or generates the certificate and starts the TCP
    /// listener (`config.c2s_listen`). WebSocket clients come through [`Self::router`].
    pub async fn start(domain: &str, data_dir: &Path, config: Config) -> Result<Self, StartError> {
        if jid::BareJid::new(domain).is_err() {
            return Err(StartError::Domain(domain.to_owned()));
        }
        std::fs::create_dir_all(data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let accounts = Accounts::open(data_dir)?;
        let tls = tls::server_config(
            domain,
            data_dir,
            config.tls_certificate.as_deref(),
            config.tls_key.as_deref(),
        )?;
        let listener = tokio::net::TcpListener::bind(config.c2s_listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.c2s_listen,
                source,
            })?;
        let c2s_addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.c2s_listen,
            source,
        })?;
        let domains = Arc::new(Domains::new(&domain.to_lowercase()));
        let shared = Shared {
            router: muc_router(&domains, &config),
            sinks: HashMap::new(),
            parked: HashMap::new(),
            attached: HashMap::new(),
            unauthenticated: HashMap::new(),
        };
        let server = Self {
            inner: Arc::new(Inner {
                config,
                domains,
                accounts,
                tls,
                shared: Mutex::new(shared),
                throttle: Mutex::new(throttle::Throttle::default()),
                c2s_addr,
                parked_changed: tokio::sync::Notify::new(),
            }),
        };
        tracing::info!("XMPP c2s listening on {c2s_addr}");
        tokio::spawn(tcp::accept_loop(server.clone(), listener));
        Ok(server)
    }

    /// The TCP c2s address actually bound (useful with port 0).
    pub fn c2s_addr(&self) -> SocketAddr {
        self.inner.c2s_addr
    }

    /// The HTTP routes of this role: XMPP over WebSocket at `/xmpp-websocket`.
    pub fn router(&self) -> axum::Router {
        ws::routes(self.clone())
    }

    /// Attaches an in-process entity answering at `addresses`.
    pub fn attach_internal(&self, addresses: Vec<Jid>) -> InternalLink {
        let (to_server, mut from_entity) = mpsc::channel::<Element>(1024);
        let (sink, from_server) = mpsc::channel::<Element>(INTERNAL_QUEUE);
        {
            let mut shared = self.shared();
            shared.router.attach_internal(&addresses);
            for address in &addresses {
                shared
                    .sinks
                    .insert(address.clone(), Sink::Internal(sink.clone()));
            }
        }
        let server = self.clone();
        tokio::spawn(async move {
            while let Some(stanza) = from_entity.recv().await {
                let from = stanza.attr("from").and_then(|f| Jid::new(f).ok());
                match from {
                    Some(from) if addresses.contains(&from) => server.route(&from, stanza),
                    _ => tracing::warn!(
                        "internal entity sent a stanza from an address it does not own"
                    ),
                }
            }
        });
        InternalLink {
            to_server,
            from_server,
        }
    }

    /// The server's metrics in Prometheus text format (first version: rooms and occupants).
    pub async fn metrics_text(&self) -> String {
        let shared = self.shared();
        format!(
            "# HELP convene_xmpp_rooms MUC rooms that exist now.\n\
             # TYPE convene_xmpp_rooms gauge\n\
             convene_xmpp_rooms {}\n\
             # HELP convene_xmpp_occupants MUC occupants over all rooms.\n\
             # TYPE convene_xmpp_occupants gauge\n\
             convene_xmpp_occupants {}\n",
            shared.router.room_count(),
            shared.router.occupant_count()
        )
    }

    /// `Ok` while the server can serve (first version: always).
    pub async fn health(&self) -> Result<(), Unhealthy> {
        Ok(())
    }

    /// Ends every session and stops accepting connections (first version: nothing yet).
    pub async fn shutdown(&self) {}

    /// Number of MUC rooms that exist now.
    pub fn room_count(&self) -> usize {
        self.shared().router.room_count()
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        self.inner
            .shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn route(&self, from: &Jid, stanza: Element) {
        let mut out = Vec::new();
        let mut shared = self.shared();
        shared.router.route(from, stanza, &mut out);
        shared.deliver(out);
    }

    /// Ends a session for good: it leaves its rooms and stops receiving.
    fn end_session(&self, jid: &Jid) {
        let mut out = Vec::new();
        let mut shared = self.shared();
        shared.sinks.remove(jid);
        shared.router.unbind(jid, &mut out);
        shared.deliver(out);
    }

    /// Keeps a dropped session resumable for the configured time, then ends it.
    fn park(&self, id: String, detached: Detached, receiver: mpsc::Receiver<Box<Element>>) {
        let jid = detached.jid.clone();
        self.shared()
            .parked
            .insert(id.clone(), Parked { detached, receiver });
        let server = self.clone();
        let timeout = Duration::from_secs(self.inner.config.resume_timeout_secs);
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let expired = server.shared().parked.remove(&id).is_some();
            if expired {
                tracing::debug!("resumption window of {jid} expired");
                server.end_session(&jid);
            }
        });
    }
}

/// The router with the MUC at `conference.<domain>`.
fn muc_router(domains: &Domains, config: &Config) -> Router {
    use rand::SeedableRng;
    let limits = muc::MucLimits {
        max_occupants: config.muc_max_occupants,
        max_rooms_per_session: config.muc_max_rooms_per_session,
    };
    let muc = muc::Muc::new(limits, rand::rngs::StdRng::from_os_rng());
    let mut router = Router::new(domains.clone());
    router.add_component(domains.conference.clone(), Box::new(muc));
    router
}

impl Shared {
    /// Hands stanzas to their sessions' queues without blocking. A session whose queue is
    /// full (a client that stopped reading, or a detached one that gathered too much) is
    /// ended: it leaves its rooms and its connection closes with `resource-constraint`.
    fn deliver(&mut self, deliveries: Vec<Delivery>) {
        let mut overflowing = Vec::new();
        for Delivery { to, stanza } in deliveries {
            let Some(sink) = self.sinks.get(&to) else {
                tracing::trace!("dropping stanza for vanished {to}");
                continue;
            };
            match sink {
                Sink::Session(queue) => {
                    if let Err(mpsc::error::TrySendError::Full(_)) =
                        queue.try_send(Box::new(stanza))
                        && !overflowing.contains(&to)
                    {
                        overflowing.push(to);
                    }
                }
                Sink::Internal(link) => {
                    if let Err(mpsc::error::TrySendError::Full(_)) = link.try_send(stanza) {
                        tracing::error!(
                            "internal entity {to} is not reading its stanzas; dropping one"
                        );
                    }
                }
            }
        }
        for jid in overflowing {
            tracing::warn!("{jid} does not keep up with its stanzas; ending its session");
            self.sinks.remove(&jid);
            self.parked.retain(|_, parked| parked.detached.jid != jid);
            let mut out = Vec::new();
            self.router.unbind(&jid, &mut out);
            self.deliver(out);
        }
    }
}
