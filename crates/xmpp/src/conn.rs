//! The part of a client connection shared by the TCP and WebSocket shells: it drives a
//! [`Session`], talks to the router and parks or ends the session when the socket goes.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use jid::Jid;
use minidom::Element;
use tokio::sync::mpsc;

use crate::XmppServer;
use crate::identity::Identity;
use crate::router::BindError;
use crate::sasl::{CredentialLookup, Mechanism, ScramCredentials, ScramHash, claimed_username};
use crate::session::{Action, Env, Session, SessionConfig, StreamError, Transport, decode_sasl};
use crate::stanza::{n, ns};
use crate::xml::{Limits, XmlError};

/// Events for a connection that do not come from its socket.
enum Outside {
    Delivery(Element),
    TakenOver,
    /// The session was ended because it did not keep up with its stanzas.
    Evicted,
}

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
    server: XmppServer,
    session: Session,
    peer: IpAddr,
    receiver: Option<mpsc::Receiver<Box<Element>>>,
    /// Resumption id, when the client enabled stream management with resume.
    resumable: Option<String>,
    /// Fires when a newer connection resumes this session.
    taken_over: Option<tokio::sync::oneshot::Receiver<()>>,
    counted_unauthenticated: bool,
    /// A stream error decided before the stream opened (connection limit).
    rejected: Option<StreamError>,
    clean_close: bool,
}

impl Conn {
    pub fn new(server: XmppServer, transport: Transport, peer: IpAddr) -> Self {
        let config = &server.inner.config;
        let session_config = SessionConfig {
            transport,
            loopback: peer.is_loopback(),
            tls_available: true,
            stanzas_per_second: config.stanzas_per_second,
            stanza_burst: config.stanza_burst,
            max_unacked: config.max_unacked,
            resume_timeout: Duration::from_secs(config.resume_timeout_secs),
        };
        let session = Session::new(session_config, server.inner.domains.clone(), Instant::now());
        let limit = config.max_unauthenticated_per_ip;
        let rejected = {
            let mut shared = server.shared();
            let count = shared.unauthenticated.entry(peer).or_default();
            *count += 1;
            (*count > limit).then_some(StreamError::PolicyViolation)
        };
        if rejected.is_some() {
            tracing::info!("too many unauthenticated connections from {peer}");
        }
        Self {
            server,
            session,
            peer,
            receiver: None,
            resumable: None,
            taken_over: None,
            counted_unauthenticated: true,
            rejected,
            clean_close: false,
        }
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

    pub fn auth_deadline(&self) -> Duration {
        Duration::from_secs(self.server.inner.config.auth_timeout_secs)
    }

    pub fn is_authenticated(&self) -> bool {
        self.session.is_authenticated()
    }

    pub fn tls_established(&mut self) {
        self.session.tls_established();
    }

    pub fn open(&mut self, to: Option<&str>, version: Option<&str>) -> Vec<Write> {
        let mut actions = Vec::new();
        self.session.open(to, version, &mut actions);
        if let Some(error) = self.rejected {
            actions.retain(|a| matches!(a, Action::Header { .. }));
            actions.push(Action::Close(Some(error)));
        }
        self.perform(actions)
    }

    pub fn close(&mut self) -> Vec<Write> {
        self.clean_close = true;
        let mut actions = Vec::new();
        self.session.close(&mut actions);
        self.perform(actions)
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
            let claimed = element
                .attr("mechanism")
                .and_then(Mechanism::parse)
                .zip(decode_sasl(&element.text()))
                .and_then(|(mechanism, initial)| claimed_username(mechanism, &initial));
            let keys = self.throttle_keys(claimed.as_deref());
            let delay = match self.server.inner.throttle.lock() {
                Ok(throttle) => throttle.delay(&keys, Instant::now()),
                Err(_) => Duration::ZERO,
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
        if element.is("resume", ns::SM)
            && let Some(previd) = element.attr("previd")
        {
            self.take_over(previd).await;
        }
        let mut actions = Vec::new();
        let mut env = ServerEnv {
            server: &self.server,
        };
        self.session
            .element(element, Instant::now(), &mut env, &mut actions);
        self.perform(actions)
    }

    /// If the session `previd` is still attached to an older connection (the client noticed
    /// the drop before we did), makes that connection let go and waits until it has.
    async fn take_over(&mut self, previd: &str) {
        let parked = self.server.inner.parked_changed.notified();
        let signal = self.server.shared().attached.remove(previd);
        if let Some(signal) = signal
            && signal.send(()).is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(2), parked).await;
        }
    }

    /// Seconds of client silence before a probe.
    /// A fresh keepalive tracker for this connection's socket.
    pub fn keepalive(&self) -> Keepalive {
        Keepalive {
            interval: Duration::from_secs(self.server.inner.config.keepalive_secs.max(1)),
            last_heard: tokio::time::Instant::now(),
            probed: false,
        }
    }

    /// An XEP-0199 ping to a silent TCP client; its answer counts as a sign of life.
    pub fn probe(&mut self) -> Vec<Write> {
        let mut ping = Element::builder("iq", ns::CLIENT)
            .attr(n("type"), "get")
            .attr(n("id"), format!("probe-{}", crate::session::random_hex(4)))
            .attr(n("from"), self.server.inner.domains.main.as_str())
            .append(Element::bare("ping", ns::PING))
            .build();
        if let Some(jid) = self.session.jid() {
            ping.set_attr(rxml::Namespace::NONE, n("to"), jid.to_string());
        }
        // A stanza like any other: stream management counts it.
        self.deliver(ping)
    }

    pub fn is_bound(&self) -> bool {
        self.session.jid().is_some()
    }

    /// What the socket must carry next because of something outside it: stanzas routed to
    /// this session, or the stream error that ends it (taken over by a resuming connection,
    /// or evicted for not keeping up). Pending forever before binding.
    pub async fn next_outside_writes(&mut self) -> Vec<Write> {
        match self.next_outside().await {
            Outside::Delivery(stanza) => self.deliver(stanza),
            Outside::TakenOver => vec![Write::Close(Some(StreamError::Conflict))],
            Outside::Evicted => vec![Write::Close(Some(StreamError::ResourceConstraint))],
        }
    }

    /// The next thing that happens to this session from outside the socket: a stanza
    /// routed to it, or a newer connection resuming it.
    async fn next_outside(&mut self) -> Outside {
        loop {
            let receiver = self.receiver.as_mut();
            let taken_over = self.taken_over.as_mut();
            let delivery = async {
                match receiver {
                    Some(receiver) => receiver.recv().await,
                    None => std::future::pending::<Option<Box<Element>>>().await,
                }
            };
            let takeover = async {
                match taken_over {
                    Some(signal) => signal.await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                stanza = delivery => {
                    return match stanza {
                        Some(stanza) => Outside::Delivery(*stanza),
                        None => {
                            // Nothing to park: the router already ended the session.
                            if let Some(id) = self.resumable.take() {
                                self.server.shared().attached.remove(&id);
                            }
                            Outside::Evicted
                        }
                    };
                }
                taken = takeover => {
                    if taken {
                        return Outside::TakenOver;
                    }
                    // The registration went away without a takeover: stop listening.
                    self.taken_over = None;
                }
                else => std::future::pending::<()>().await,
            }
        }
    }

    /// Stanzas routed to this session: `first` and whatever else is already queued.
    pub fn deliver(&mut self, first: Element) -> Vec<Write> {
        let mut actions = Vec::new();
        self.session.deliver(first, &mut actions);
        while let Some(next) = self.receiver.as_mut().and_then(|r| r.try_recv().ok()) {
            self.session.deliver(*next, &mut actions);
            if actions.len() > 256 {
                break;
            }
        }
        self.session.request_ack(&mut actions);
        self.perform(actions)
    }

    fn throttle_keys(&self, username: Option<&str>) -> Vec<String> {
        let mut keys = vec![format!("ip:{}", self.peer)];
        keys.extend(username.map(|u| format!("user:{u}")));
        keys
    }

    fn perform(&mut self, actions: Vec<Action>) -> Vec<Write> {
        let mut writes = Vec::new();
        for action in actions {
            match action {
                Action::Header { id, from } => writes.push(Write::Header { id, from }),
                Action::Send(element) => writes.push(Write::Element(element)),
                Action::StartTls => writes.push(Write::StartTls),
                Action::Restart => writes.push(Write::Restart),
                Action::Close(error) => {
                    writes.push(Write::Close(error));
                    break;
                }
                Action::Bound(jid) => self.bound(jid),
                Action::Route(stanza) => {
                    if let Some(from) = self.session.jid().cloned() {
                        self.server.route(&from, stanza);
                    }
                }
                Action::SmEnabled(id) => self.attach(id),
                Action::Resume { previd, h } => {
                    let more = self.resume(previd, h);
                    writes.extend(self.perform(more));
                }
                Action::AuthFailed { username } => {
                    let keys = self.throttle_keys(username.as_deref());
                    if let Ok(mut throttle) = self.server.inner.throttle.lock() {
                        throttle.failed(&keys, Instant::now());
                    }
                }
            }
        }
        if self.counted_unauthenticated && self.session.is_authenticated() {
            self.uncount_unauthenticated();
            let username = self.session.username().cloned().flatten();
            let keys = self.throttle_keys(username.as_deref());
            if let Ok(mut throttle) = self.server.inner.throttle.lock() {
                throttle.succeeded(&keys);
            }
        }
        writes
    }

    fn bound(&mut self, jid: Jid) {
        if self.receiver.is_some() {
            return; // resumed: the parked sink and receiver carry on
        }
        let (sink, receiver) = mpsc::channel(self.server.inner.config.max_unacked.max(1));
        self.server
            .shared()
            .sinks
            .insert(jid, crate::Sink::Session(sink));
        self.receiver = Some(receiver);
    }

    fn resume(&mut self, previd: String, h: u32) -> Vec<Action> {
        let mut actions = Vec::new();
        let username = self.session.username().cloned().flatten();
        let parked = {
            let mut shared = self.server.shared();
            match shared.parked.get(&previd) {
                Some(p) if p.detached.may_resume(&username) => shared.parked.remove(&previd),
                _ => None,
            }
        };
        match parked {
            Some(parked) => {
                self.receiver = Some(parked.receiver);
                self.attach(previd);
                self.session.resume(parked.detached, h, &mut actions);
            }
            None => self.session.resume_failed(&mut actions),
        }
        actions
    }

    /// Registers this connection as the holder of resumable session `id`.
    fn attach(&mut self, id: String) {
        let (signal, taken_over) = tokio::sync::oneshot::channel();
        self.server.shared().attached.insert(id.clone(), signal);
        self.taken_over = Some(taken_over);
        self.resumable = Some(id);
    }

    fn uncount_unauthenticated(&mut self) {
        if !std::mem::take(&mut self.counted_unauthenticated) {
            return;
        }
        let mut shared = self.server.shared();
        if let Some(count) = shared.unauthenticated.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                shared.unauthenticated.remove(&self.peer);
            }
        }
    }
}

impl Drop for Conn {
    /// The socket is gone: park the session for resumption, or end it.
    fn drop(&mut self) {
        self.uncount_unauthenticated();
        let Some(jid) = self.session.jid().cloned() else {
            return;
        };
        let resumable = self.resumable.take();
        if let Some(id) = &resumable {
            self.server.shared().attached.remove(id);
        }
        let detached = self.session.detach();
        match (
            resumable.filter(|_| !self.clean_close),
            detached,
            self.receiver.take(),
        ) {
            (Some(id), Some(detached), Some(receiver)) => {
                tracing::debug!("{jid} detached, resumable");
                self.server.park(id, detached, receiver);
            }
            _ => self.server.end_session(&jid),
        }
    }
}

/// Accounts and bindings, as the session sees them.
struct ServerEnv<'a> {
    server: &'a XmppServer,
}

impl CredentialLookup for ServerEnv<'_> {
    fn credentials(&self, username: &str, hash: ScramHash) -> Option<ScramCredentials> {
        self.server.inner.accounts.credentials(username, hash)
    }
}

impl Env for ServerEnv<'_> {
    /// Binds `jid`. A detached session holding the resource (its client came back without
    /// resuming) gives way, as Prosody does with hibernating sessions; a live one wins.
    fn bind(&mut self, jid: &Jid, identity: Identity) -> Result<(), BindError> {
        let mut shared = self.server.shared();
        if shared.router.bind(jid, identity.clone()).is_ok() {
            return Ok(());
        }
        let detached = shared
            .parked
            .iter()
            .find(|(_, parked)| &parked.detached.jid == jid)
            .map(|(id, _)| id.clone());
        let Some(id) = detached else {
            return Err(BindError::Conflict);
        };
        shared.parked.remove(&id);
        shared.sinks.remove(jid);
        let mut out = Vec::new();
        shared.router.unbind(jid, &mut out);
        shared.deliver(out);
        shared.router.bind(jid, identity)
    }
}
