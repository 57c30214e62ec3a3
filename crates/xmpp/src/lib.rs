//! The XMPP server (Prosody's role): client connections over TCP (STARTTLS) and WebSocket
//! (RFC 7395), SASL, resource binding, stream management, MUC, and an in-process link for
//! the focus.
//!
//! The protocol logic is sans-IO ([`xml`], [`session`], [`sasl`] behind the [`auth`] seam,
//! [`hub`], [`router`], [`muc`]): fed input, `now` and a seeded or OS-seeded `StdRng`,
//! polled for output. The shells own sockets, clock and channels: one task runs the hub
//! (`driver`), `tcp` and `ws` share one connection driver (`conn`), and the account
//! database lives on a thread of its own ([`accounts::AccountStore`]).

pub mod accounts;
pub mod auth;
pub mod component;
pub mod config;
mod conn;
mod driver;
pub mod fanout;
pub mod hub;
pub mod identity;
pub mod ldap;
pub mod muc;
pub mod router;
pub mod sasl;
pub mod session;
pub mod stanza;
mod tcp;
pub mod throttle;
pub mod tls;
pub mod token;
mod token_bucket;
mod ws;
pub mod xml;

pub use config::Config;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jid::Jid;
use minidom::Element;
use tokio::sync::{mpsc, oneshot, watch};

use crate::accounts::{AccountStore, Accounts};
use crate::driver::{Event, HubHandle};
use crate::hub::{ConnId, Hub, HubConfig};
use crate::router::{Domains, Router};

/// How long [`XmppServer::health`] waits for the hub to answer.
const HEALTH_WAIT: Duration = Duration::from_secs(1);
/// How long [`XmppServer::shutdown`] waits for the connections to close.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

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
    #[error(transparent)]
    Token(#[from] token::TokenConfigError),
    #[error(transparent)]
    Ldap(#[from] ldap::LdapConfigError),
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

struct Inner {
    config: Config,
    domains: Arc<Domains>,
    accounts: AccountStore,
    /// Verifies the tokens of anonymous logins on the main domain (`[auth.token]`).
    tokens: Option<Arc<token::TokenVerifier>>,
    /// Checks PLAIN passwords of users without a local account (`[auth.ldap]`).
    directory: Option<ldap::Directory>,
    tls: Arc<rustls::ServerConfig>,
    hub: HubHandle,
    c2s_addr: SocketAddr,
    next_conn: AtomicU64,
    /// Set once [`XmppServer::shutdown`] began: no new connections.
    shutting_down: watch::Sender<bool>,
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
        let tokens = if config.auth.token.enabled {
            Some(Arc::new(token::TokenVerifier::new(&config.auth.token)?))
        } else {
            None
        };
        let directory = if config.auth.ldap.enabled {
            Some(ldap::Directory::new(&config.auth.ldap)?)
        } else {
            None
        };
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
        let limits = muc::MucLimits {
            max_occupants: config.muc_max_occupants,
            max_rooms_per_session: config.muc_max_rooms_per_session,
        };
        let router = muc_router(&domains, limits, rand::SeedableRng::from_os_rng());
        let hub = Hub::new(
            HubConfig {
                max_unauthenticated_per_ip: config.max_unauthenticated_per_ip,
                resume_timeout: Duration::from_secs(config.resume_timeout_secs),
                max_queued: config.max_unacked.max(1),
                fanout: config.fanout(),
                login: config.login_throttle(),
            },
            router,
        );
        let server = Self {
            inner: Arc::new(Inner {
                config,
                domains,
                accounts: AccountStore::spawn(accounts)?,
                tokens,
                directory,
                tls,
                hub: driver::spawn(hub),
                c2s_addr,
                next_conn: AtomicU64::new(1),
                shutting_down: watch::Sender::new(false),
            }),
        };
        tracing::info!("XMPP c2s listening on port {}", c2s_addr.port());
        tokio::spawn(tcp::accept_loop(
            server.clone(),
            listener,
            server.inner.shutting_down.subscribe(),
        ));
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
        let (link, id) = oneshot::channel();
        self.inner.hub.send(Event::AttachInternal {
            addresses,
            sink,
            link,
        });
        let server = self.clone();
        tokio::spawn(async move {
            let Ok(link) = id.await else {
                return;
            };
            while let Some(stanza) = from_entity.recv().await {
                server
                    .inner
                    .hub
                    .send(Event::Hub(hub::Input::FromInternal { link, stanza }));
            }
        });
        InternalLink {
            to_server,
            from_server,
        }
    }

    /// The server's metrics in Prometheus text format (`convene_xmpp_*`); empty if the hub
    /// does not answer.
    pub async fn metrics_text(&self) -> String {
        let (answer, text) = oneshot::channel();
        self.inner.hub.send(Event::Metrics(answer));
        tokio::time::timeout(HEALTH_WAIT, text)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }

    /// `Ok` while the hub task runs and answers within a second.
    pub async fn health(&self) -> Result<(), Unhealthy> {
        let (answer, pong) = oneshot::channel();
        self.inner.hub.send(Event::Ping(answer));
        match tokio::time::timeout(HEALTH_WAIT, pong).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Unhealthy::HubNotAnswering),
        }
    }

    /// Stops accepting connections (new ones are refused), ends every session with
    /// `<system-shutdown/>` and a clean close, drops the parked ones, and returns once
    /// every connection is gone or after 5 s.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.send_replace(true);
        let (done, closed) = oneshot::channel();
        self.inner.hub.send(Event::Shutdown(done));
        if tokio::time::timeout(SHUTDOWN_WAIT, closed).await.is_err() {
            tracing::warn!("XMPP connections still open after {SHUTDOWN_WAIT:?}; leaving them");
        }
    }

    /// Number of MUC rooms that exist now (as of the hub's last wake).
    pub fn room_count(&self) -> usize {
        self.inner.hub.rooms.load(Ordering::Relaxed)
    }

    fn is_shutting_down(&self) -> bool {
        *self.inner.shutting_down.borrow()
    }

    /// A number for a new connection, for the hub and for following it in the logs.
    fn next_conn_id(&self) -> ConnId {
        ConnId(self.inner.next_conn.fetch_add(1, Ordering::Relaxed))
    }
}

/// The router with the MUC at `conference.<domain>`.
fn muc_router(domains: &Domains, limits: muc::MucLimits, rng: rand::rngs::StdRng) -> Router {
    let muc = muc::Muc::new(limits, rng, domains);
    let mut router = Router::new(domains.clone());
    router.add_component(domains.conference.clone(), Box::new(muc));
    muc::add_services(&mut router, domains);
    router
}
