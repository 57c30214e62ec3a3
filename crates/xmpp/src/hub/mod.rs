//! The hub: the one owner of the server's routing state, sans-IO.
//!
//! It holds the [`Router`], which connection each bound JID lives on, the parked
//! (detached, resumable) sessions with the stanzas queued for them, the resumable sessions
//! still attached to a connection (for takeover), the per-address count of connections that
//! have not authenticated, the login throttle, the rooms' fan-out budgets and every
//! deadline. Connections and internal
//! entities are named by ids, never by channels: the hub is fed [`Input`]s with `now`, and
//! polled for [`Output`]s ([`Hub::poll_output`]) and for its next deadline
//! ([`Hub::poll_timeout`], then [`Hub::handle_timeout`]). One task runs it (`crate::driver`).

mod fairness;
mod metrics;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use jid::{BareJid, Jid};
use minidom::Element;

pub use metrics::Ending;
use metrics::Metrics;

use crate::fanout::{Budgets, FanoutConfig};
use crate::identity::Identity;
use crate::router::{BindError, Delivery, Router};
use crate::session::{Detached, Login, Resumption, StreamError, Transport, may_resume};
use crate::throttle::{Throttle, ThrottleConfig};

/// How long a resuming connection waits for the connection still holding its session to
/// let go of it.
const TAKEOVER_WAIT: Duration = Duration::from_secs(2);

/// A client connection, numbered by its shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// An in-process entity's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkId(pub usize);

#[derive(Debug, Clone)]
pub struct HubConfig {
    pub max_unauthenticated_per_ip: usize,
    /// How long a detached session stays resumable (and present in its rooms).
    pub resume_timeout: Duration,
    /// Stanzas queued for a detached session before it is ended.
    pub max_queued: usize,
    /// The rooms' fan-out budgets.
    pub fanout: FanoutConfig,
    /// Backoff after failed logins.
    pub login: ThrottleConfig,
}

/// What happened, told to the hub.
#[derive(Debug)]
pub enum Input {
    /// A connection was accepted; answered with [`ToSession::Admission`].
    Opened {
        conn: ConnId,
        peer: IpAddr,
        transport: Transport,
    },
    /// A SASL step concerning `username` (if it names one) is about to be processed;
    /// answered with [`ToSession::LoginDelay`].
    LoginAttempt {
        conn: ConnId,
        username: Option<String>,
    },
    LoginFailed {
        conn: ConnId,
        username: Option<String>,
    },
    Authenticated {
        conn: ConnId,
        login: Login,
    },
    /// Answered with [`ToSession::BindResult`].
    Bind {
        conn: ConnId,
        identity: Identity,
    },
    /// The session enabled resumable stream management with resumption id `id`.
    SmEnabled {
        conn: ConnId,
        id: String,
    },
    /// Answered with [`ToSession::Resumed`] or [`ToSession::ResumeFailed`], at once or,
    /// after a takeover, once the older connection has let go.
    Resume {
        conn: ConnId,
        previd: String,
    },
    /// A stanza from the session bound on `conn`.
    Stanza {
        conn: ConnId,
        stanza: Element,
    },
    AttachInternal {
        link: LinkId,
        addresses: Vec<Jid>,
    },
    /// A stanza from an internal entity; its `from` must be one of the link's addresses.
    FromInternal {
        link: LinkId,
        stanza: Element,
    },
    /// The connection is gone, leaving a resumable session and the stanzas that were on
    /// their way to it.
    Detached {
        conn: ConnId,
        detached: Detached,
        queued: VecDeque<Element>,
        ending: Ending,
    },
    /// The connection is gone for good.
    Closed {
        conn: ConnId,
        ending: Ending,
    },
    /// The connection is closing: answered with [`ToSession::Flushed`] once everything
    /// routed to it before is queued ahead of the answer.
    Flush {
        conn: ConnId,
    },
    /// The connection's queue is full: it does not keep up with its stanzas.
    Overflowed {
        conn: ConnId,
    },
    /// End every session and refuse new connections.
    Shutdown,
}

/// What one connection is told.
#[derive(Debug)]
pub enum ToSession {
    /// `Err`: write the stream header, then this stream error.
    Admission(Result<(), StreamError>),
    LoginDelay(Duration),
    BindResult(Result<(), BindError>),
    Resumed(Box<Resumption>),
    ResumeFailed,
    /// Boxed: a queue slot is then 16 bytes where an `Element` is 120.
    Stanza(Box<Element>),
    /// A newer connection resumes this session: close with `<conflict/>` and hand the
    /// session back ([`Input::Detached`]).
    TakeOver,
    /// Close with this stream error; the session is over.
    End(StreamError),
    /// Everything routed to the connection before its [`Input::Flush`] came ahead of this.
    Flushed,
}

#[derive(Debug)]
pub enum Output {
    Session { conn: ConnId, message: ToSession },
    Internal { link: LinkId, stanza: Element },
}

/// Where the stanzas for one address go.
enum Sink {
    Session(ConnId),
    /// A detached session, by resumption id.
    Parked(String),
    Internal(LinkId),
}

struct Connection {
    peer: IpAddr,
    transport: Transport,
    /// Counted among its address's unauthenticated connections.
    unauthenticated: bool,
    login: Login,
    jid: Option<Jid>,
    /// Resumption id of its resumable session.
    resumable: Option<String>,
}

struct Parked {
    detached: Detached,
    queued: VecDeque<Element>,
    deadline: Instant,
}

/// A resume waiting for the connection that still holds the session.
struct PendingResume {
    conn: ConnId,
    deadline: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Parked(String),
    Resume(String),
    /// A room's budget lets held stanzas go.
    Room(BareJid),
}

pub struct Hub {
    config: HubConfig,
    router: Router,
    conns: HashMap<ConnId, Connection>,
    sinks: HashMap<Jid, Sink>,
    parked: HashMap<String, Parked>,
    /// Resumable sessions on a live connection, by resumption id.
    attached: HashMap<String, ConnId>,
    pending_resumes: HashMap<String, PendingResume>,
    unauthenticated: HashMap<IpAddr, usize>,
    throttle: Throttle<ConnId>,
    budgets: Budgets,
    /// Deadlines, earliest first; an entry whose state changed since is skipped.
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    /// The router's deliveries, reused between inputs.
    deliveries: Vec<Delivery>,
    outputs: VecDeque<Output>,
    metrics: Metrics,
    shutting_down: bool,
}

impl Hub {
    pub fn new(config: HubConfig, router: Router) -> Self {
        let (login, fanout) = (config.login, config.fanout);
        Self {
            config,
            router,
            conns: HashMap::new(),
            sinks: HashMap::new(),
            parked: HashMap::new(),
            attached: HashMap::new(),
            pending_resumes: HashMap::new(),
            unauthenticated: HashMap::new(),
            throttle: Throttle::new(login),
            budgets: Budgets::new(fanout),
            timers: BinaryHeap::new(),
            deliveries: Vec::new(),
            outputs: VecDeque::new(),
            metrics: Metrics::default(),
            shutting_down: false,
        }
    }

    /// The wall-clock time of what follows, for the components (see
    /// [`Router::set_wall_clock`]); `now` in [`Self::handle`] is monotonic.
    pub fn set_wall_clock(&mut self, now: SystemTime) {
        self.router.set_wall_clock(now);
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Opened {
                conn,
                peer,
                transport,
            } => self.opened(conn, peer, transport),
            Input::LoginAttempt { conn, username } => self.login_attempt(now, conn, username),
            Input::LoginFailed { conn, .. } => {
                self.throttle.failed(conn, now);
                self.admit_logins(now);
            }
            Input::Authenticated { conn, login } => {
                self.throttle.succeeded(conn);
                self.admit_logins(now);
                self.uncount(conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.login = login;
                }
            }
            Input::Bind { conn, identity } => {
                let jid = identity.jid.clone();
                let result = self.bind(identity);
                if result.is_ok() {
                    self.sinks.insert(jid.clone(), Sink::Session(conn));
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.jid = Some(jid);
                    }
                }
                self.tell(conn, ToSession::BindResult(result));
            }
            Input::SmEnabled { conn, id } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.resumable = Some(id.clone());
                    self.attached.insert(id, conn);
                }
            }
            Input::Resume { conn, previd } => self.resume(now, conn, previd),
            Input::Stanza { conn, stanza } => {
                self.metrics.stanzas_in += 1;
                if let Some(c) = self.conns.get(&conn)
                    && let Some(from) = c.jid.clone()
                {
                    let peer = c.peer;
                    self.route_client(now, from, peer, stanza);
                }
            }
            Input::AttachInternal { link, addresses } => {
                self.router.attach_internal(&addresses);
                for address in addresses {
                    self.sinks.insert(address, Sink::Internal(link));
                }
            }
            Input::FromInternal { link, stanza } => self.route_internal(link, stanza),
            Input::Detached {
                conn,
                detached,
                queued,
                ending,
            } => self.detached(now, conn, detached, queued, ending),
            Input::Closed { conn, ending } => {
                if let Some(c) = self.forget(now, conn, ending) {
                    self.release(conn, &c);
                    if let Some(jid) = c.jid {
                        self.end_session(&jid);
                    }
                }
            }
            Input::Flush { conn } => self.tell(conn, ToSession::Flushed),
            Input::Overflowed { conn } => {
                self.end_connection(conn, StreamError::ResourceConstraint)
            }
            Input::Shutdown => self.shutdown(),
        }
        self.flush();
    }

    /// Ends parked sessions whose resumption window closed and resumes that waited too long
    /// for a takeover.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek()
            && *at <= now
        {
            let Some(Reverse((_, timer))) = self.timers.pop() else {
                break;
            };
            match timer {
                Timer::Parked(id) => {
                    if self.parked.get(&id).is_some_and(|p| p.deadline <= now) {
                        tracing::debug!("resumption window of {id} expired");
                        self.end_parked(&id);
                    }
                }
                Timer::Resume(id) => {
                    if let Some(pending) = self.pending_resumes.remove(&id) {
                        if pending.deadline <= now {
                            self.tell(pending.conn, ToSession::ResumeFailed);
                        } else {
                            self.pending_resumes.insert(id, pending);
                        }
                    }
                }
                Timer::Room(room) => self.release_room(now, &room),
            }
        }
        if self.throttle.poll_timeout().is_some_and(|at| at <= now) {
            self.admit_logins(now);
        }
        self.flush();
    }

    /// The next deadline, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        timer.into_iter().chain(self.throttle.poll_timeout()).min()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Connections that have not closed yet.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    pub fn room_count(&self) -> usize {
        self.router.room_count()
    }

    /// The metrics in Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let mut by_transport = [0usize; 2];
        let mut sessions = 0;
        for c in self.conns.values() {
            by_transport[usize::from(c.transport == Transport::WebSocket)] += 1;
            sessions += usize::from(c.jid.is_some());
        }
        self.metrics.render(&metrics::Gauges {
            tcp_connections: by_transport[0],
            websocket_connections: by_transport[1],
            sessions,
            parked: self.parked.len(),
            rooms: self.router.room_count(),
            occupants: self.router.occupant_count(),
        })
    }

    fn opened(&mut self, conn: ConnId, peer: IpAddr, transport: Transport) {
        let count = self.unauthenticated.entry(peer).or_default();
        *count += 1;
        let admission = if self.shutting_down {
            Err(StreamError::SystemShutdown)
        } else if *count > self.config.max_unauthenticated_per_ip {
            tracing::debug!("too many unauthenticated connections from {peer}");
            self.metrics.connection_limited += 1;
            Err(StreamError::PolicyViolation)
        } else {
            Ok(())
        };
        self.conns.insert(
            conn,
            Connection {
                peer,
                transport,
                unauthenticated: true,
                login: Login::default(),
                jid: None,
                resumable: None,
            },
        );
        self.tell(conn, ToSession::Admission(admission));
    }

    fn uncount(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !std::mem::take(&mut c.unauthenticated) {
            return;
        }
        if let Some(count) = self.unauthenticated.get_mut(&c.peer) {
            *count -= 1;
            if *count == 0 {
                self.unauthenticated.remove(&c.peer);
            }
        }
    }

    /// Binds `identity.jid`. A detached session holding the resource (its client came back
    /// without resuming) gives way, as Prosody does with hibernating sessions; a live one
    /// wins.
    fn bind(&mut self, identity: Identity) -> Result<(), BindError> {
        let jid = identity.jid.clone();
        if self.router.bind(&jid, identity.clone()).is_ok() {
            return Ok(());
        }
        let Some(Sink::Parked(id)) = self.sinks.get(&jid) else {
            return Err(BindError::Conflict);
        };
        let id = id.clone();
        self.end_parked(&id);
        self.router.bind(&jid, identity)
    }

    fn resume(&mut self, now: Instant, conn: ConnId, previd: String) {
        let claimant = self
            .conns
            .get(&conn)
            .map(|c| c.login.clone())
            .unwrap_or_default();
        if let Some(parked) = self.parked.get(&previd)
            && parked.detached.may_resume(&claimant)
        {
            let parked = self.parked.remove(&previd).expect("just seen");
            self.resume_on(conn, parked.detached, parked.queued);
            return;
        }
        let holder = self.attached.get(&previd).copied();
        if let Some(holder) = holder
            && holder != conn
            && let Some(owner) = self.conns.get(&holder)
            && may_resume(&owner.login, &claimant)
        {
            // The client noticed the drop before we did: make the old connection let go.
            self.attached.remove(&previd);
            self.tell(holder, ToSession::TakeOver);
            let deadline = now + TAKEOVER_WAIT;
            self.timers
                .push(Reverse((deadline, Timer::Resume(previd.clone()))));
            self.pending_resumes
                .insert(previd, PendingResume { conn, deadline });
            return;
        }
        self.tell(conn, ToSession::ResumeFailed);
    }

    /// Hands a detached session to `conn`, which goes on with it.
    fn resume_on(&mut self, conn: ConnId, detached: Detached, queued: VecDeque<Element>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let id = detached.id().to_owned();
        self.sinks.insert(detached.jid.clone(), Sink::Session(conn));
        c.jid = Some(detached.jid.clone());
        c.resumable = Some(id.clone());
        self.attached.insert(id, conn);
        self.metrics.resumed += 1;
        self.tell(
            conn,
            ToSession::Resumed(Box::new(Resumption { detached, queued })),
        );
    }

    fn detached(
        &mut self,
        now: Instant,
        conn: ConnId,
        detached: Detached,
        queued: VecDeque<Element>,
        ending: Ending,
    ) {
        let Some(c) = self.forget(now, conn, ending) else {
            return;
        };
        self.release(conn, &c);
        // Ended by the hub meanwhile (evicted): nothing left to keep.
        let Some(jid) = c.jid else {
            return;
        };
        let id = detached.id().to_owned();
        if self.shutting_down || c.resumable.as_deref() != Some(id.as_str()) {
            self.end_session(&jid);
            return;
        }
        if let Some(pending) = self.pending_resumes.remove(&id)
            && self.conns.contains_key(&pending.conn)
        {
            self.resume_on(pending.conn, detached, queued);
            return;
        }
        tracing::debug!("{jid} detached, resumable");
        let deadline = now + self.config.resume_timeout;
        self.timers
            .push(Reverse((deadline, Timer::Parked(id.clone()))));
        self.sinks.insert(jid, Sink::Parked(id.clone()));
        let overflowing = queued.len() > self.config.max_queued;
        self.parked.insert(
            id.clone(),
            Parked {
                detached,
                queued,
                deadline,
            },
        );
        if overflowing {
            self.end_parked(&id);
        }
    }

    /// Removes a connection that has gone, counting how it ended.
    fn forget(&mut self, now: Instant, conn: ConnId, ending: Ending) -> Option<Connection> {
        self.uncount(conn);
        self.throttle.gone(conn);
        self.admit_logins(now);
        let c = self.conns.remove(&conn)?;
        self.metrics.ended(ending);
        Some(c)
    }

    /// Drops what a gone connection held besides its session: its resumption registration
    /// and any resume it was waiting for.
    fn release(&mut self, conn: ConnId, c: &Connection) {
        if let Some(id) = &c.resumable
            && self.attached.get(id) == Some(&conn)
        {
            self.attached.remove(id);
        }
        self.pending_resumes
            .retain(|_, pending| pending.conn != conn);
    }

    fn route_internal(&mut self, link: LinkId, stanza: Element) {
        let from = stanza.attr("from").and_then(|f| Jid::new(f).ok());
        match from {
            Some(from) if matches!(self.sinks.get(&from), Some(Sink::Internal(l)) if *l == link) => {
                self.metrics.stanzas_in += 1;
                self.router.route(&from, stanza, &mut self.deliveries);
            }
            _ => tracing::warn!("internal entity sent a stanza from an address it does not own"),
        }
    }

    /// Ends the session on `conn` for good (it leaves its rooms) and closes the connection
    /// with `error`. The connection stays known until it reports that it is gone.
    fn end_connection(&mut self, conn: ConnId, error: StreamError) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let jid = c.jid.take();
        if let Some(id) = c.resumable.take()
            && self.attached.get(&id) == Some(&conn)
        {
            self.attached.remove(&id);
        }
        if let Some(jid) = jid {
            tracing::debug!("ending the session of {jid}: {}", error.condition());
            self.end_session(&jid);
        }
        self.tell(conn, ToSession::End(error));
    }

    fn shutdown(&mut self) {
        self.shutting_down = true;
        let ids: Vec<String> = self.parked.keys().cloned().collect();
        for id in ids {
            self.end_parked(&id);
        }
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            self.tell(conn, ToSession::End(StreamError::SystemShutdown));
        }
    }

    fn end_parked(&mut self, id: &str) {
        if let Some(parked) = self.parked.remove(id) {
            self.end_session(&parked.detached.jid);
        }
    }

    /// A session is over: it leaves its rooms and stops receiving. Its leaving goes out
    /// now, before anything else takes its address or ends.
    fn end_session(&mut self, jid: &Jid) {
        self.sinks.remove(jid);
        self.budgets.forget(jid);
        self.router.unbind(jid, &mut self.deliveries);
        self.flush();
    }

    fn tell(&mut self, conn: ConnId, message: ToSession) {
        self.outputs.push_back(Output::Session { conn, message });
    }

    /// Turns the router's deliveries into outputs. A detached session that gathers more
    /// than it may keep is ended, which makes more deliveries (its leaving presence).
    fn flush(&mut self) {
        let mut overflowing = Vec::new();
        while !self.deliveries.is_empty() {
            let mut batch = std::mem::take(&mut self.deliveries);
            for Delivery { to, stanza } in batch.drain(..) {
                match self.sinks.get_mut(&to) {
                    Some(Sink::Session(conn)) => {
                        self.metrics.delivered(&stanza);
                        self.outputs.push_back(Output::Session {
                            conn: *conn,
                            message: ToSession::Stanza(Box::new(stanza)),
                        });
                    }
                    Some(Sink::Internal(link)) => {
                        self.metrics.delivered(&stanza);
                        self.outputs.push_back(Output::Internal {
                            link: *link,
                            stanza,
                        });
                    }
                    Some(Sink::Parked(id)) => {
                        let parked = self.parked.get_mut(id.as_str()).expect("parked sink");
                        parked.queued.push_back(stanza);
                        if parked.queued.len() > self.config.max_queued {
                            overflowing.push(id.clone());
                        }
                    }
                    None => tracing::trace!("dropping stanza for vanished {to}"),
                }
            }
            // Keep the allocation for the next input.
            if self.deliveries.is_empty() {
                self.deliveries = batch;
            }
            for id in overflowing.drain(..) {
                tracing::debug!("detached session {id} gathered too many stanzas");
                self.end_parked(&id);
            }
        }
    }
}
