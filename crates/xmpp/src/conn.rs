//! The part of a client connection shared by the TCP and WebSocket shells: it drives a
//! [`Session`], carries its requests to the hub (and the account store) and their answers
//! back, and reports how the connection ended.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use minidom::Element;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::mpsc;

use crate::XmppServer;
use crate::auth::{Answer, Lookup};
use crate::driver::Event;
use crate::hub::{ConnId, Ending, Input, ToSession};
use crate::ldap::DirectoryError;
use crate::sasl::{Mechanism, claimed_username};
use crate::session::{Action, Session, SessionConfig, StreamError, Transport, decode_sasl};
use crate::stanza::ns;
use crate::token::{BearerToken, TokenError};
use crate::xml::{Limits, XmlError};

/// Stanzas written per wake before the socket gets its turn again.
const DELIVERY_BATCH: usize = 256;

/// How long a shell that closed a stream goes on reading (and discarding) what the peer
/// still sends. Unread input at close makes the kernel answer with a reset, which destroys
/// the replies and the stream error still on their way (nginx's `lingering_close`).
pub const LINGER: Duration = Duration::from_secs(2);

/// When a silent peer is probed and when it counts as dead, for both socket shells: after
/// one interval of silence it is probed, after a second one it is gone.
pub struct Keepalive {
    interval: Duration,
    last_heard: tokio::time::Instant,
    probed: bool,
}

impl Keepalive {
    /// Anything arrived from the peer: it is alive.
    pub fn heard(&mut self) {
        self.last_heard = tokio::time::Instant::now();
        self.probed = false;
    }

    /// When the current silence runs out.
    pub fn deadline(&self) -> tokio::time::Instant {
        self.last_heard + self.interval * if self.probed { 2 } else { 1 }
    }

    /// The deadline passed: `true` if the peer must now be probed, `false` if it was
    /// probed already and is dead.
    pub fn probe_due(&mut self) -> bool {
        !std::mem::replace(&mut self.probed, true)
    }
}

/// What the shell writes, framed its own way.
#[derive(Debug)]
pub enum Write {
    Header { id: String, from: String },
    Element(Element),
    StartTls,
    Restart,
    Close(Option<StreamError>),
}

pub struct Conn {
    id: ConnId,
    server: XmppServer,
    session: Session,
    peer: IpAddr,
    /// Everything the hub tells this connection, in order.
    receiver: mpsc::Receiver<ToSession>,
    /// A message read ahead while batching deliveries.
    read_ahead: Option<ToSession>,
    /// The session enabled resumable stream management (or resumed one).
    resumable: bool,
    /// A newer connection resumes this session: it goes to the hub, whatever the close.
    taken_over: bool,
    /// A stream error decided at accept (connection limit, shutdown): the shell closes
    /// with it at once.
    rejected: Option<StreamError>,
    clean_close: bool,
    /// The stream error the shell closed with.
    closed_with: Option<StreamError>,
}

impl Conn {
    /// Registers a new connection with the hub and waits for its admission.
    pub async fn connect(
        server: XmppServer,
        id: ConnId,
        transport: Transport,
        peer: IpAddr,
        token: Option<BearerToken>,
        web_room: Option<String>,
    ) -> Self {
        let config = &server.inner.config;
        let session_config = SessionConfig {
            transport,
            loopback: peer.is_loopback(),
            tls_available: true,
            stanzas_per_second: config.stanzas_per_second,
            stanza_burst: config.stanza_burst,
            max_unacked: config.max_unacked,
            resume_timeout: Duration::from_secs(config.resume_timeout_secs),
            token,
            token_auth: config.token_auth(),
            secure_domain: config.auth.secure_domain,
            moderator: config.auth.moderator,
            directory: server.inner.directory.is_some(),
            web_room,
        };
        // A CSPRNG per connection: stream ids, nonces and resumption ids must stay
        // unpredictable.
        let session = Session::new(
            session_config,
            server.inner.domains.clone(),
            Instant::now(),
            StdRng::from_os_rng(),
        );
        let (queue, receiver) = mpsc::channel(config.max_unacked.max(1));
        server.inner.hub.send(Event::Opened {
            conn: id,
            peer,
            transport,
            queue,
        });
        let mut conn = Self {
            id,
            server,
            session,
            peer,
            receiver,
            read_ahead: None,
            resumable: false,
            taken_over: false,
            rejected: None,
            clean_close: false,
            closed_with: None,
        };
        conn.rejected = match conn.reply().await {
            ToSession::Admission(admission) => admission.err(),
            other => Some(conn.interrupted(other)),
        };
        conn
    }

    pub fn limits(&self) -> Limits {
        let config = &self.server.inner.config;
        Limits {
            max_stanza_bytes: config.max_stanza_bytes,
            max_depth: config.max_depth,
        }
    }

    pub fn tls_config(&self) -> std::sync::Arc<rustls::ServerConfig> {
        self.server.inner.tls.clone()
    }

    /// The stream error to close with at once, if the hub refused this connection.
    pub fn rejected(&self) -> Option<StreamError> {
        self.rejected
    }

    /// When a connection accepted at `accepted` that has not authenticated is closed: it
    /// must open its stream (`opened`) first within the open timeout.
    pub fn setup_deadline(
        &self,
        accepted: tokio::time::Instant,
        opened: bool,
    ) -> tokio::time::Instant {
        let config = &self.server.inner.config;
        let authenticated_by = accepted + Duration::from_secs(config.auth_timeout_secs);
        let opened_by = accepted + Duration::from_secs(config.open_timeout_secs);
        if opened {
            authenticated_by
        } else {
            authenticated_by.min(opened_by)
        }
    }

    pub fn is_authenticated(&self) -> bool {
        self.session.is_authenticated()
    }

    pub fn is_bound(&self) -> bool {
        self.session.jid().is_some()
    }

    pub fn stream_id(&self) -> &str {
        self.session.stream_id()
    }

    pub fn tls_established(&mut self) {
        self.session.tls_established();
    }

    /// The shell closes the stream with `error`: kept for the hub's metrics.
    pub fn closing(&mut self, error: Option<StreamError>) {
        self.closed_with = self.closed_with.or(error);
    }

    pub async fn open(&mut self, to: Option<&str>, version: Option<&str>) -> Vec<Write> {
        let mut actions = Vec::new();
        self.session.open(to, version, &mut actions);
        self.perform(actions).await
    }

    pub async fn close(&mut self) -> Vec<Write> {
        self.clean_close = true;
        let mut actions = Vec::new();
        self.session.close(&mut actions);
        self.perform(actions).await
    }

    /// A parse failure: the matching stream error.
    pub fn xml_error(&self, error: &XmlError) -> StreamError {
        tracing::debug!("closing stream from {}: {error}", self.peer);
        match error {
            XmlError::Malformed(_) => StreamError::NotWellFormed,
            XmlError::TooLarge(_) | XmlError::TooDeep(_) => StreamError::PolicyViolation,
        }
    }

    pub async fn element(&mut self, element: Element) -> Vec<Write> {
        if element.ns() == ns::SASL && matches!(element.name(), "auth" | "response") {
            let username = element
                .attr("mechanism")
                .and_then(Mechanism::parse)
                .zip(decode_sasl(&element.text()))
                .and_then(|(mechanism, initial)| claimed_username(mechanism, &initial));
            self.tell_hub(Input::LoginAttempt {
                conn: self.id,
                username,
            });
            match self.reply().await {
                ToSession::LoginDelay(delay) if !delay.is_zero() => {
                    tokio::time::sleep(delay).await;
                }
                ToSession::LoginDelay(_) => {}
                other => return vec![Write::Close(Some(self.interrupted(other)))],
            }
        }
        let mut actions = Vec::new();
        self.session.element(element, Instant::now(), &mut actions);
        self.perform(actions).await
    }

    /// A fresh keepalive tracker for this connection's socket.
    pub fn keepalive(&self) -> Keepalive {
        Keepalive {
            interval: Duration::from_secs(self.server.inner.config.keepalive_secs.max(1)),
            last_heard: tokio::time::Instant::now(),
            probed: false,
        }
    }

    /// An XEP-0199 ping to a silent TCP client; its answer counts as a sign of life.
    pub async fn probe(&mut self) -> Vec<Write> {
        let mut actions = Vec::new();
        self.session.probe(&mut actions);
        self.perform(actions).await
    }

    /// What the socket must carry next because of something outside it: stanzas routed to
    /// this session, or the stream error that ends it (taken over by a resuming connection,
    /// evicted for not keeping up, server shutdown).
    pub async fn next_outside_writes(&mut self) -> Vec<Write> {
        let message = match self.read_ahead.take() {
            Some(message) => Some(message),
            None => self.receiver.recv().await,
        };
        match message {
            Some(ToSession::Stanza(stanza)) => self.deliver(*stanza).await,
            Some(ToSession::TakeOver) => {
                self.taken_over = true;
                vec![Write::Close(Some(StreamError::Conflict))]
            }
            Some(ToSession::End(error)) => vec![Write::Close(Some(error))],
            Some(other) => {
                tracing::debug!("unexpected message from the hub: {other:?}");
                Vec::new()
            }
            // The hub dropped the queue: a bound session did not keep up with its stanzas;
            // before binding, the server is going away.
            None if self.is_bound() => vec![Write::Close(Some(StreamError::ResourceConstraint))],
            None => vec![Write::Close(Some(StreamError::SystemShutdown))],
        }
    }

    /// Stanzas routed to this session: `first` and whatever else is already queued.
    async fn deliver(&mut self, first: Element) -> Vec<Write> {
        let mut actions = Vec::new();
        self.session.deliver(first, &mut actions);
        while actions.len() <= DELIVERY_BATCH {
            match self.receiver.try_recv() {
                Ok(ToSession::Stanza(next)) => self.session.deliver(*next, &mut actions),
                Ok(other) => {
                    self.read_ahead = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        self.session.request_ack(&mut actions);
        self.perform(actions).await
    }

    /// The session closes itself: what the hub routed to it until now (the answers to
    /// stanzas it sent before, among others) still goes out ahead of the stream error.
    /// Bounded by [`LINGER`], in case the hub is stopping.
    async fn due(&mut self) -> Vec<Write> {
        self.tell_hub(Input::Flush { conn: self.id });
        let mut actions = Vec::new();
        let _ = tokio::time::timeout(LINGER, async {
            loop {
                let message = match self.read_ahead.take() {
                    Some(message) => Some(message),
                    None => self.receiver.recv().await,
                };
                match message {
                    Some(ToSession::Stanza(stanza)) => self.session.deliver(*stanza, &mut actions),
                    // A resuming connection waits for this session all the same.
                    Some(ToSession::TakeOver) => self.taken_over = true,
                    _ => break, // `Flushed`, or the end of the session
                }
            }
        })
        .await;
        actions
            .into_iter()
            .filter_map(|action| match action {
                Action::Send(element) => Some(Write::Element(element)),
                _ => None,
            })
            .collect()
    }

    /// The hub's answer to a request. Before a session is bound nothing else is sent to it
    /// but an end.
    async fn reply(&mut self) -> ToSession {
        self.receiver
            .recv()
            .await
            .unwrap_or(ToSession::End(StreamError::SystemShutdown))
    }

    /// Something else came while an answer was awaited: the stream ends.
    fn interrupted(&self, message: ToSession) -> StreamError {
        match message {
            ToSession::End(error) => error,
            other => {
                tracing::debug!("unexpected message from the hub: {other:?}");
                StreamError::ResourceConstraint
            }
        }
    }

    fn tell_hub(&self, input: Input) {
        self.server.inner.hub.send(Event::Hub(input));
    }

    /// Carries out the session's actions; answers to its requests produce more, which come
    /// before the rest.
    async fn perform(&mut self, actions: Vec<Action>) -> Vec<Write> {
        let mut writes = Vec::new();
        let mut actions = VecDeque::from(actions);
        let mut more = Vec::new();
        while let Some(action) = actions.pop_front() {
            match action {
                Action::Header { id, from } => writes.push(Write::Header { id, from }),
                Action::Send(element) => writes.push(Write::Element(element)),
                Action::StartTls => writes.push(Write::StartTls),
                Action::Restart => writes.push(Write::Restart),
                Action::Close(error) => {
                    if self.is_bound() {
                        writes.extend(self.due().await);
                    }
                    writes.push(Write::Close(error));
                    break;
                }
                Action::Route(stanza) => self.tell_hub(Input::Stanza {
                    conn: self.id,
                    stanza,
                }),
                Action::Lookup(Lookup::Token(token)) => {
                    let verdict = match &self.server.inner.tokens {
                        Some(verifier) => verifier.verify(&token.0).await,
                        None => Err(TokenError::Required),
                    };
                    self.session.answer(Answer::Token(verdict), &mut more);
                }
                Action::Lookup(Lookup::Directory { username, password }) => {
                    let verdict = match &self.server.inner.directory {
                        Some(directory) => directory.check(&username, &password.0).await,
                        None => Err(DirectoryError::Refused("no directory")),
                    };
                    match &verdict {
                        Ok(user) => tracing::info!("LDAP login of {username:?} as {}", user.dn),
                        Err(error @ DirectoryError::Refused(_)) => {
                            tracing::info!("LDAP login of {username:?} {error}")
                        }
                        Err(error) => tracing::warn!("LDAP login of {username:?} failed: {error}"),
                    }
                    self.session.answer(Answer::Directory(verdict), &mut more);
                }
                Action::Lookup(lookup) => {
                    let answer = self.server.inner.accounts.answer(lookup).await;
                    self.session.answer(answer, &mut more);
                }
                Action::Authenticated(login) => self.tell_hub(Input::Authenticated {
                    conn: self.id,
                    login,
                }),
                Action::AuthFailed { username } => self.tell_hub(Input::LoginFailed {
                    conn: self.id,
                    username,
                }),
                Action::Bind(identity) => {
                    self.tell_hub(Input::Bind {
                        conn: self.id,
                        identity,
                    });
                    match self.reply().await {
                        ToSession::BindResult(result) => {
                            self.session.bind_result(result, &mut more)
                        }
                        other => more.push(Action::Close(Some(self.interrupted(other)))),
                    }
                }
                Action::SmEnabled(id) => {
                    self.resumable = true;
                    self.tell_hub(Input::SmEnabled { conn: self.id, id });
                }
                Action::Resume { previd, h } => {
                    self.tell_hub(Input::Resume {
                        conn: self.id,
                        previd,
                    });
                    match self.reply().await {
                        ToSession::Resumed(resumption) => {
                            self.resumable = true;
                            self.session.resume(*resumption, h, &mut more);
                        }
                        ToSession::ResumeFailed => self.session.resume_failed(&mut more),
                        other => more.push(Action::Close(Some(self.interrupted(other)))),
                    }
                }
            }
            for action in more.drain(..).rev() {
                actions.push_front(action);
            }
        }
        writes
    }
}

impl Drop for Conn {
    /// The socket is gone: hand a resumable session to the hub, or end it.
    fn drop(&mut self) {
        let ending = Ending {
            error: self.closed_with,
            rate_limited: self.session.rate_limited(),
        };
        let detached = (self.resumable && (self.taken_over || !self.clean_close))
            .then(|| self.session.detach())
            .flatten();
        let event = match detached {
            Some(detached) => Event::Detached {
                conn: self.id,
                detached,
                receiver: std::mem::replace(&mut self.receiver, mpsc::channel(1).1),
                ending,
            },
            None => Event::Hub(Input::Closed {
                conn: self.id,
                ending,
            }),
        };
        self.server.inner.hub.send(event);
    }
}
