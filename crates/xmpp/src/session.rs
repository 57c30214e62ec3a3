//! One client stream (RFC 6120) as a sans-IO state machine: stream negotiation, STARTTLS
//! offer, SASL, resource binding, stream management (XEP-0198) and the per-connection rate
//! limit. The transport shells (TCP, WebSocket) feed it parsed elements and `now`, and carry
//! out the [`Action`]s it returns.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use jid::Jid;
use minidom::Element;

use crate::identity::{Identity, IdentityKind};
use crate::router::{BindError, Domains};
use crate::sasl::{self, CredentialLookup, Exchange, Mechanism, Step};
use crate::stanza::{self, StanzaError, error_reply, iq_result_with, n, ns};

/// RFC 6120 §4.9.3 stream error conditions we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    BadFormat,
    Conflict,
    HostUnknown,
    InvalidNamespace,
    NotAuthorized,
    NotWellFormed,
    PolicyViolation,
    ResourceConstraint,
    SystemShutdown,
    UnsupportedStanzaType,
    UnsupportedVersion,
    ConnectionTimeout,
}

impl StreamError {
    pub fn condition(self) -> &'static str {
        match self {
            Self::BadFormat => "bad-format",
            Self::Conflict => "conflict",
            Self::HostUnknown => "host-unknown",
            Self::InvalidNamespace => "invalid-namespace",
            Self::NotAuthorized => "not-authorized",
            Self::NotWellFormed => "not-well-formed",
            Self::PolicyViolation => "policy-violation",
            Self::ResourceConstraint => "resource-constraint",
            Self::SystemShutdown => "system-shutdown",
            Self::UnsupportedStanzaType => "unsupported-stanza-type",
            Self::UnsupportedVersion => "unsupported-version",
            Self::ConnectionTimeout => "connection-timeout",
        }
    }

    /// The `<stream:error/>` element.
    pub fn element(self) -> Element {
        Element::builder("error", ns::STREAM)
            .prefix(Some("stream".into()), ns::STREAM)
            .expect("fresh prefix")
            .append(Element::bare(self.condition(), ns::STREAMS_ERROR))
            .build()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    WebSocket,
}

/// What the shell must do, in order.
#[derive(Debug)]
pub enum Action {
    /// Send the stream header (`<stream:stream>` or RFC 7395 `<open/>`).
    Header {
        id: String,
        from: String,
    },
    Send(Element),
    /// `<proceed/>` was sent: upgrade the socket to TLS and expect a new stream.
    StartTls,
    /// SASL succeeded: expect a new stream header (TCP needs a fresh parser).
    Restart,
    /// A resource was bound: the shell now delivers stanzas for this JID to the session.
    Bound(Jid),
    /// Route a stanza from the bound JID (its `from` is stamped by the router).
    Route(Element),
    /// Stream management was enabled with this resumption id.
    SmEnabled(String),
    /// The client asks to resume a detached session; answer with [`Session::resume`].
    Resume {
        previd: String,
        h: u32,
    },
    /// A SASL attempt failed (for throttling).
    AuthFailed {
        username: Option<String>,
    },
    /// Close the stream, after a stream error if given.
    Close(Option<StreamError>),
}

/// Per-connection settings and limits.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub transport: Transport,
    /// The peer's address is loopback: PLAIN is allowed without TLS.
    pub loopback: bool,
    /// A certificate is available for STARTTLS.
    pub tls_available: bool,
    pub stanzas_per_second: f64,
    pub stanza_burst: f64,
    pub max_unacked: usize,
    pub resume_timeout: Duration,
}

/// Token bucket for the stanza rate limit.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn take(&mut self, now: Instant, cost: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// Unacknowledged stanzas that make the server ask for an acknowledgement.
const ACK_EVERY: usize = 5;

/// XEP-0198 counters and the unacknowledged outbound queue.
#[derive(Debug)]
pub struct StreamManagement {
    pub id: String,
    /// Stanzas received from the client.
    inbound: u32,
    /// Stanzas sent to the client.
    outbound: u32,
    unacked: VecDeque<Element>,
    ack_requested: bool,
}

impl StreamManagement {
    fn acknowledge(&mut self, h: u32) {
        let first_unacked = self.outbound.wrapping_sub(self.unacked.len() as u32);
        let newly_acked = (h.wrapping_sub(first_unacked) as usize).min(self.unacked.len());
        self.unacked.drain(..newly_acked);
        self.ack_requested = false;
    }
}

/// A session whose connection dropped with stream management on, awaiting resumption.
#[derive(Debug)]
pub struct Detached {
    pub jid: Jid,
    username: Option<String>,
    sm: StreamManagement,
}

impl Detached {
    /// Whether `username` (`None`: anonymous) may take this session over. Anonymous
    /// sessions have no account to match: the unguessable resumption id is the proof.
    pub fn may_resume(&self, username: &Option<String>) -> bool {
        self.username.is_none() || &self.username == username
    }
}

enum Phase {
    /// Before SASL success.
    Negotiating,
    /// Authenticated as `node@domain`, before binding.
    Authenticated {
        username: Option<String>,
        node: String,
        domain: String,
    },
    Bound {
        username: Option<String>,
        jid: Jid,
    },
}

/// Environment the session consults synchronously: accounts and the router's bindings.
pub trait Env: CredentialLookup {
    fn bind(&mut self, jid: &Jid, identity: Identity) -> Result<(), BindError>;
}

pub struct Session {
    config: SessionConfig,
    domains: std::sync::Arc<Domains>,
    stream_id: String,
    host: Option<String>,
    tls_active: bool,
    phase: Phase,
    sasl: Option<Exchange>,
    sm: Option<StreamManagement>,
    bucket: TokenBucket,
}

impl Session {
    pub fn new(config: SessionConfig, domains: std::sync::Arc<Domains>, now: Instant) -> Self {
        let bucket = TokenBucket {
            rate: config.stanzas_per_second,
            burst: config.stanza_burst,
            tokens: config.stanza_burst,
            last: now,
        };
        Self {
            config,
            domains,
            stream_id: random_hex(8),
            host: None,
            tls_active: false,
            phase: Phase::Negotiating,
            sasl: None,
            sm: None,
            bucket,
        }
    }

    pub fn jid(&self) -> Option<&Jid> {
        match &self.phase {
            Phase::Bound { jid, .. } => Some(jid),
            _ => None,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        !matches!(self.phase, Phase::Negotiating)
    }

    pub fn tls_established(&mut self) {
        self.tls_active = true;
    }

    /// The stream header (TCP) or `<open/>` (WebSocket) arrived, with its `to` and `version`.
    pub fn open(&mut self, to: Option<&str>, version: Option<&str>, out: &mut Vec<Action>) {
        let host = to.unwrap_or(&self.domains.main).to_lowercase();
        out.push(Action::Header {
            id: self.stream_id.clone(),
            from: host.clone(),
        });
        if !self.domains.is_client_host(&host) {
            out.push(Action::Close(Some(StreamError::HostUnknown)));
            return;
        }
        if version != Some("1.0") {
            out.push(Action::Close(Some(StreamError::UnsupportedVersion)));
            return;
        }
        self.host = Some(host);
        out.push(Action::Send(self.features()));
    }

    fn features(&self) -> Element {
        let mut features = Element::builder("features", ns::STREAM)
            .prefix(Some("stream".into()), ns::STREAM)
            .expect("fresh prefix")
            .build();
        match &self.phase {
            Phase::Negotiating => {
                if self.config.transport == Transport::Tcp
                    && self.config.tls_available
                    && !self.tls_active
                {
                    features.append_child(Element::bare("starttls", ns::TLS));
                }
                let mut mechanisms = Element::bare("mechanisms", ns::SASL);
                for mechanism in self.offered_mechanisms() {
                    mechanisms.append_child(
                        Element::builder("mechanism", ns::SASL)
                            .append(mechanism)
                            .build(),
                    );
                }
                features.append_child(mechanisms);
            }
            Phase::Authenticated { .. } => {
                features.append_child(Element::bare("bind", ns::BIND));
                features.append_child(
                    Element::builder("session", ns::SESSION)
                        .append(Element::bare("optional", ns::SESSION))
                        .build(),
                );
                features.append_child(Element::bare("sm", ns::SM));
            }
            Phase::Bound { .. } => {}
        }
        features
    }

    fn offered_mechanisms(&self) -> Vec<&'static str> {
        let host = self.host.as_deref().unwrap_or_default();
        let mut offered = Vec::new();
        if host != self.domains.guest {
            offered.extend(["SCRAM-SHA-256", "SCRAM-SHA-1"]);
            if self.tls_active || self.config.loopback {
                offered.push("PLAIN");
            }
        }
        if host == self.domains.main || host == self.domains.guest {
            offered.push("ANONYMOUS");
        }
        offered
    }

    /// The peer closed its stream.
    pub fn close(&mut self, out: &mut Vec<Action>) {
        out.push(Action::Close(None));
    }

    /// One top-level element from the client.
    pub fn element(
        &mut self,
        element: Element,
        now: Instant,
        env: &mut dyn Env,
        out: &mut Vec<Action>,
    ) {
        if self.host.is_none() {
            out.push(Action::Close(Some(StreamError::NotAuthorized)));
            return;
        }
        // Acks answer our own requests, one per few stanzas delivered: in a busy room a
        // well-behaved client sends many, so they cost a tenth of a stanza.
        let cost = if element.ns() == ns::SM { 0.1 } else { 1.0 };
        if !self.bucket.take(now, cost) {
            out.push(Action::Close(Some(StreamError::PolicyViolation)));
            return;
        }
        match (element.ns().as_str(), element.name()) {
            (ns::TLS, "starttls") => self.starttls(out),
            (ns::SASL, "auth") => self.auth(&element, env, out),
            (ns::SASL, "response") => self.sasl_response(&element, out),
            (ns::SASL, "abort") => {
                self.sasl = None;
                out.push(Action::Send(sasl_failure(sasl::Failure::Aborted)));
            }
            (ns::SM, name) => self.stream_management(name, &element, out),
            (ns::CLIENT, "iq" | "message" | "presence") => self.stanza(element, env, out),
            _ => out.push(Action::Close(Some(StreamError::UnsupportedStanzaType))),
        }
    }

    fn starttls(&mut self, out: &mut Vec<Action>) {
        let allowed = self.config.transport == Transport::Tcp
            && self.config.tls_available
            && !self.tls_active
            && matches!(self.phase, Phase::Negotiating);
        if !allowed {
            out.push(Action::Close(Some(StreamError::PolicyViolation)));
            return;
        }
        out.push(Action::Send(Element::bare("proceed", ns::TLS)));
        out.push(Action::StartTls);
        self.host = None;
    }

    fn auth(&mut self, element: &Element, env: &mut dyn Env, out: &mut Vec<Action>) {
        if !matches!(self.phase, Phase::Negotiating) {
            out.push(Action::Close(Some(StreamError::PolicyViolation)));
            return;
        }
        let name = element.attr("mechanism").unwrap_or_default();
        let Some(mechanism) =
            Mechanism::parse(name).filter(|_| self.offered_mechanisms().contains(&name))
        else {
            let condition = if name == "PLAIN" {
                sasl::Failure::EncryptionRequired
            } else {
                sasl::Failure::InvalidMechanism
            };
            out.push(Action::Send(sasl_failure(condition)));
            return;
        };
        let Some(initial) = decode_sasl(&element.text()) else {
            out.push(Action::Send(sasl_failure(sasl::Failure::MalformedRequest)));
            return;
        };
        let (exchange, step) = Exchange::start(mechanism, &initial, env);
        self.sasl = Some(exchange);
        self.sasl_step(step, out);
    }

    fn sasl_response(&mut self, element: &Element, out: &mut Vec<Action>) {
        let (Some(exchange), Some(response)) = (self.sasl.as_mut(), decode_sasl(&element.text()))
        else {
            out.push(Action::Send(sasl_failure(sasl::Failure::MalformedRequest)));
            return;
        };
        let step = exchange.respond(&response);
        self.sasl_step(step, out);
    }

    fn sasl_step(&mut self, step: Step, out: &mut Vec<Action>) {
        match step {
            Step::Challenge(data) => {
                out.push(Action::Send(
                    Element::builder("challenge", ns::SASL)
                        .append(BASE64.encode(data))
                        .build(),
                ));
            }
            Step::Failure {
                condition,
                username,
            } => {
                self.sasl = None;
                out.push(Action::AuthFailed { username });
                out.push(Action::Send(sasl_failure(condition)));
            }
            Step::Success { username, data } => {
                self.sasl = None;
                let host = self.host.take().expect("streams are open before SASL");
                let node = username.clone().unwrap_or_else(anonymous_node);
                // Accounts live on the main domain, anonymous sessions on the host they chose.
                let domain = if username.is_some() && host != self.domains.auth {
                    self.domains.main.clone()
                } else {
                    host
                };
                let text = if data.is_empty() {
                    String::new()
                } else {
                    BASE64.encode(data)
                };
                out.push(Action::Send(
                    Element::builder("success", ns::SASL).append(text).build(),
                ));
                out.push(Action::Restart);
                self.phase = Phase::Authenticated {
                    username,
                    node,
                    domain,
                };
            }
        }
    }

    fn stream_management(&mut self, name: &str, element: &Element, out: &mut Vec<Action>) {
        match (name, &self.phase) {
            ("enable", Phase::Bound { .. }) if self.sm.is_none() => {
                let id = random_hex(16);
                self.sm = Some(StreamManagement {
                    id: id.clone(),
                    inbound: 0,
                    outbound: 0,
                    unacked: VecDeque::new(),
                    ack_requested: false,
                });
                let resume = element
                    .attr("resume")
                    .is_some_and(|v| v == "true" || v == "1");
                let mut enabled = Element::builder("enabled", ns::SM).attr(n("id"), id.as_str());
                if resume {
                    enabled = enabled
                        .attr(n("resume"), "true")
                        .attr(n("max"), self.config.resume_timeout.as_secs().to_string());
                    out.push(Action::SmEnabled(id));
                }
                out.push(Action::Send(enabled.build()));
            }
            ("resume", Phase::Authenticated { .. }) => {
                let previd = element.attr("previd").unwrap_or_default().to_owned();
                match element.attr("h").and_then(|h| h.parse().ok()) {
                    Some(h) => out.push(Action::Resume { previd, h }),
                    None => out.push(Action::Send(sm_failed("bad-request"))),
                }
            }
            ("r", _) if self.sm.is_some() => {
                let h = self.sm.as_ref().map_or(0, |sm| sm.inbound);
                out.push(Action::Send(
                    Element::builder("a", ns::SM)
                        .attr(n("h"), h.to_string())
                        .build(),
                ));
            }
            ("a", _) if self.sm.is_some() => {
                let sm = self.sm.as_mut().expect("checked");
                match element.attr("h").and_then(|h| h.parse().ok()) {
                    Some(h) => sm.acknowledge(h),
                    None => out.push(Action::Close(Some(StreamError::BadFormat))),
                }
            }
            _ => out.push(Action::Send(sm_failed("unexpected-request"))),
        }
    }

    fn stanza(&mut self, stanza: Element, env: &mut dyn Env, out: &mut Vec<Action>) {
        if let Some(sm) = self.sm.as_mut() {
            sm.inbound = sm.inbound.wrapping_add(1);
        }
        match &self.phase {
            Phase::Negotiating => out.push(Action::Close(Some(StreamError::NotAuthorized))),
            Phase::Authenticated { .. } => self.bind(stanza, env, out),
            Phase::Bound { .. } => {
                let payload_ns = stanza::payload(&stanza).map(Element::ns);
                let own = stanza.name() == "iq" && stanza.attr("to").is_none();
                match payload_ns.as_deref() {
                    Some(ns::SESSION) if own => self.deliver(iq_result_with(&stanza, None), out),
                    Some(ns::BIND) if own => {
                        self.reply_error(&stanza, StanzaError::NotAllowed, out)
                    }
                    // No contact lists are kept (metadata minimisation); clients that ask
                    // for theirs on login get an empty one rather than an error.
                    Some(ns::ROSTER) if own && stanza.attr("type") == Some("get") => {
                        let empty = Element::bare("query", ns::ROSTER);
                        self.deliver(iq_result_with(&stanza, Some(empty)), out)
                    }
                    _ => out.push(Action::Route(stanza)),
                }
            }
        }
    }

    fn bind(&mut self, stanza: Element, env: &mut dyn Env, out: &mut Vec<Action>) {
        let Phase::Authenticated {
            username,
            node,
            domain,
        } = &self.phase
        else {
            return;
        };
        let Some(bind) = stanza
            .get_child("bind", ns::BIND)
            .filter(|_| stanza.attr("type") == Some("set"))
        else {
            // Only session establishment is allowed before binding.
            if stanza.name() == "iq" && stanza.get_child("session", ns::SESSION).is_some() {
                out.push(Action::Send(iq_result_with(&stanza, None)));
            } else {
                self.reply_error(&stanza, StanzaError::NotAuthorized, out);
            }
            return;
        };
        let requested = bind
            .get_child("resource", ns::BIND)
            .map(Element::text)
            .filter(|r| !r.is_empty());
        let resource = requested.unwrap_or_else(|| random_hex(6));
        let Ok(jid) = Jid::new(&format!("{node}@{domain}/{resource}")) else {
            self.reply_error(&stanza, StanzaError::BadRequest, out);
            return;
        };
        let kind = if username.is_some() {
            IdentityKind::Account
        } else {
            IdentityKind::Guest
        };
        if env.bind(&jid, Identity::bare(jid.clone(), kind)).is_err() {
            self.reply_error(&stanza, StanzaError::Conflict, out);
            return;
        }
        let answer = Element::builder("bind", ns::BIND)
            .append(
                Element::builder("jid", ns::BIND)
                    .append(jid.to_string())
                    .build(),
            )
            .build();
        let mut reply = iq_result_with(&stanza, Some(answer));
        stanza::remove_attr(&mut reply, "from");
        out.push(Action::Send(reply));
        out.push(Action::Bound(jid.clone()));
        self.phase = Phase::Bound {
            username: username.clone(),
            jid,
        };
    }

    /// Answers go through [`Self::deliver`]: with stream management on, every stanza the
    /// client receives counts, whoever produced it.
    fn reply_error(&mut self, stanza: &Element, error: StanzaError, out: &mut Vec<Action>) {
        if let Some(reply) = error_reply(stanza, error) {
            self.deliver(reply, out);
        }
    }

    /// A stanza routed to this session: counted and queued for acknowledgement when stream
    /// management is on.
    pub fn deliver(&mut self, stanza: Element, out: &mut Vec<Action>) {
        if let Some(sm) = self.sm.as_mut() {
            sm.outbound = sm.outbound.wrapping_add(1);
            sm.unacked.push_back(stanza.clone());
            if sm.unacked.len() > self.config.max_unacked {
                out.push(Action::Close(Some(StreamError::ResourceConstraint)));
                return;
            }
        }
        out.push(Action::Send(stanza));
    }

    /// After a batch of deliveries: ask the client to acknowledge what it has.
    pub fn request_ack(&mut self, out: &mut Vec<Action>) {
        if let Some(sm) = self.sm.as_mut()
            && sm.unacked.len() >= ACK_EVERY
            && !sm.ack_requested
        {
            sm.ack_requested = true;
            out.push(Action::Send(Element::bare("r", ns::SM)));
        }
    }

    /// The connection dropped without a closing handshake: hand over the bound session and
    /// its stream management state for resumption (`None` if there is nothing to resume).
    pub fn detach(&mut self) -> Option<Detached> {
        let Phase::Bound { username, jid } = std::mem::replace(&mut self.phase, Phase::Negotiating)
        else {
            return None;
        };
        let sm = self.sm.take()?;
        Some(Detached { jid, username, sm })
    }

    pub fn username(&self) -> Option<&Option<String>> {
        match &self.phase {
            Phase::Authenticated { username, .. } | Phase::Bound { username, .. } => Some(username),
            Phase::Negotiating => None,
        }
    }

    /// Takes over `detached` after `<resume h/>`: resends what the client has not seen.
    pub fn resume(&mut self, mut detached: Detached, h: u32, out: &mut Vec<Action>) {
        detached.sm.acknowledge(h);
        let resumed = Element::builder("resumed", ns::SM)
            .attr(n("previd"), detached.sm.id.as_str())
            .attr(n("h"), detached.sm.inbound.to_string())
            .build();
        out.push(Action::Send(resumed));
        for stanza in &detached.sm.unacked {
            out.push(Action::Send(stanza.clone()));
        }
        out.push(Action::Bound(detached.jid.clone()));
        self.phase = Phase::Bound {
            username: detached.username,
            jid: detached.jid,
        };
        self.sm = Some(detached.sm);
        self.request_ack(out);
    }

    /// `<resume/>` named no session we could resume.
    pub fn resume_failed(&self, out: &mut Vec<Action>) {
        out.push(Action::Send(sm_failed("item-not-found")));
    }
}

fn sm_failed(condition: &str) -> Element {
    Element::builder("failed", ns::SM)
        .append(Element::bare(condition, ns::STANZAS))
        .build()
}

fn sasl_failure(condition: sasl::Failure) -> Element {
    Element::builder("failure", ns::SASL)
        .append(Element::bare(condition.condition(), ns::SASL))
        .build()
}

/// SASL payloads are base64; `=` stands for an empty initial response.
pub fn decode_sasl(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.is_empty() || text == "=" {
        return Some(Vec::new());
    }
    BASE64.decode(text).ok()
}

/// A UUID-shaped random node: the Jitsi clients take its first 8 hex digits as endpoint id.
fn anonymous_node() -> String {
    let hex = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

pub fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{ScramCredentials, ScramHash};
    use crate::xml::{Limits, parse_frame};

    struct NoAccounts;

    impl CredentialLookup for NoAccounts {
        fn credentials(&self, _: &str, _: ScramHash) -> Option<ScramCredentials> {
            None
        }
    }

    impl Env for NoAccounts {
        fn bind(&mut self, _: &Jid, _: Identity) -> Result<(), BindError> {
            Ok(())
        }
    }

    fn xml(text: &str) -> Element {
        parse_frame(
            text,
            Limits {
                max_stanza_bytes: 4096,
                max_depth: 8,
            },
        )
        .unwrap()
    }

    fn config(burst: f64) -> SessionConfig {
        SessionConfig {
            transport: Transport::WebSocket,
            loopback: false,
            tls_available: false,
            stanzas_per_second: 1.0,
            stanza_burst: burst,
            max_unacked: 100,
            resume_timeout: Duration::from_secs(60),
        }
    }

    fn sent(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(e) => Some(String::from(e)),
                _ => None,
            })
            .collect()
    }

    /// Opens, logs in anonymously, binds and enables resumable stream management.
    fn bound_session(now: Instant) -> (Session, Jid) {
        let mut session = Session::new(
            config(100.0),
            std::sync::Arc::new(Domains::new("d.test")),
            now,
        );
        let mut out = Vec::new();
        session.open(Some("d.test"), Some("1.0"), &mut out);
        assert!(
            sent(&out)[0].contains("ANONYMOUS") && !sent(&out)[0].contains("PLAIN"),
            "PLAIN needs TLS or loopback"
        );
        let mut env = NoAccounts;
        session.element(
            xml("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>"),
            now,
            &mut env,
            &mut out,
        );
        session.open(Some("d.test"), Some("1.0"), &mut out);
        session.element(
            xml("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"),
            now,
            &mut env,
            &mut out,
        );
        let jid = session.jid().cloned().expect("bound");
        assert!(
            jid.node()
                .unwrap()
                .as_str()
                .chars()
                .take(8)
                .all(|c| c.is_ascii_hexdigit())
        );
        out.clear();
        session.element(
            xml("<enable xmlns='urn:xmpp:sm:3' resume='true'/>"),
            now,
            &mut env,
            &mut out,
        );
        assert!(matches!(out[0], Action::SmEnabled(_)));
        (session, jid)
    }

    #[test]
    fn unacknowledged_stanzas_are_resent_once_on_resumption() {
        let now = Instant::now();
        let (mut session, jid) = bound_session(now);
        let mut out = Vec::new();
        for i in 1..=3 {
            session.deliver(
                xml(&format!("<message><body>m{i}</body></message>")),
                &mut out,
            );
        }

        session.element(
            xml("<a xmlns='urn:xmpp:sm:3' h='1'/>"),
            now,
            &mut NoAccounts,
            &mut out,
        );
        session.element(
            xml("<message to='x@d.test'><body>in</body></message>"),
            now,
            &mut NoAccounts,
            &mut out,
        );
        let detached = session.detach().expect("resumable");
        assert_eq!(detached.jid, jid);
        assert!(detached.may_resume(&None));

        let mut fresh = Session::new(
            config(100.0),
            std::sync::Arc::new(Domains::new("d.test")),
            now,
        );
        let mut out = Vec::new();
        fresh.resume(detached, 2, &mut out);
        let sent = sent(&out);
        assert!(
            sent[0].starts_with("<resumed") && sent[0].contains("h='1'"),
            "{}",
            sent[0]
        );
        let resent: Vec<&String> = sent.iter().filter(|s| s.contains("<body>")).collect();
        assert_eq!(resent.len(), 1);
        assert!(resent[0].contains("m3"));
        assert_eq!(fresh.jid(), Some(&jid));
    }

    #[test]
    fn answers_from_the_session_itself_count_for_stream_management() {
        let now = Instant::now();
        let (mut session, _) = bound_session(now);
        let mut out = Vec::new();
        let roster = "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>";
        session.element(xml(roster), now, &mut NoAccounts, &mut out);
        let detached = session.detach().unwrap();
        let mut fresh = Session::new(
            config(10.0),
            std::sync::Arc::new(Domains::new("d.test")),
            now,
        );
        let mut out = Vec::new();
        fresh.resume(detached, 0, &mut out);
        assert!(
            sent(&out)
                .iter()
                .any(|s| s.contains("jabber:iq:roster") && s.contains("r1"))
        );
    }

    #[test]
    fn ack_requests_are_batched() {
        let now = Instant::now();
        let (mut session, _) = bound_session(now);
        let requests = |out: &[Action]| sent(out).iter().filter(|s| s.starts_with("<r ")).count();
        let mut out = Vec::new();
        for _ in 0..ACK_EVERY - 1 {
            session.deliver(xml("<message><body>x</body></message>"), &mut out);
        }
        session.request_ack(&mut out);
        assert_eq!(requests(&out), 0);
        session.deliver(xml("<message><body>x</body></message>"), &mut out);
        session.request_ack(&mut out);
        session.request_ack(&mut out);
        assert_eq!(requests(&out), 1, "one outstanding request at a time");
        let h = ACK_EVERY.to_string();
        session.element(
            xml(&format!("<a xmlns='urn:xmpp:sm:3' h='{h}'/>")),
            now,
            &mut NoAccounts,
            &mut out,
        );
        for _ in 0..ACK_EVERY {
            session.deliver(xml("<message><body>x</body></message>"), &mut out);
        }
        session.request_ack(&mut out);
        assert_eq!(requests(&out), 2);
    }

    #[test]
    fn flood_beyond_the_burst_is_a_policy_violation() {
        let now = Instant::now();
        let mut session = Session::new(
            config(3.0),
            std::sync::Arc::new(Domains::new("d.test")),
            now,
        );
        let mut out = Vec::new();
        session.open(Some("d.test"), Some("1.0"), &mut out);
        for _ in 0..3 {
            session.element(
                xml("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
                now,
                &mut NoAccounts,
                &mut out,
            );
        }
        assert!(!out.iter().any(|a| matches!(a, Action::Close(_))));
        session.element(
            xml("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
            now,
            &mut NoAccounts,
            &mut out,
        );
        assert!(matches!(
            out.last(),
            Some(Action::Close(Some(StreamError::PolicyViolation)))
        ));
        // One token per second comes back.
        let mut out = Vec::new();
        session.element(
            xml("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
            now + Duration::from_secs(1),
            &mut NoAccounts,
            &mut out,
        );
        assert!(!out.iter().any(|a| matches!(a, Action::Close(_))));
    }

    #[test]
    fn unknown_host_and_early_stanzas_are_stream_errors() {
        let now = Instant::now();
        let domains = std::sync::Arc::new(Domains::new("d.test"));
        let mut out = Vec::new();
        Session::new(config(10.0), domains.clone(), now).open(
            Some("elsewhere"),
            Some("1.0"),
            &mut out,
        );
        assert!(matches!(
            out.last(),
            Some(Action::Close(Some(StreamError::HostUnknown)))
        ));
        let mut session = Session::new(config(10.0), domains, now);
        let mut out = Vec::new();
        session.open(Some("d.test"), Some("1.0"), &mut out);
        session.element(
            xml("<message to='a@d.test'/>"),
            now,
            &mut NoAccounts,
            &mut out,
        );
        assert!(matches!(
            out.last(),
            Some(Action::Close(Some(StreamError::NotAuthorized)))
        ));
    }
}
