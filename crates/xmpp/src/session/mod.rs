//! One client stream (RFC 6120) as a sans-IO state machine: stream negotiation, STARTTLS
//! offer, SASL (`login`), resource binding (`bind`), stream management (`sm`,
//! XEP-0198) and the per-connection rate limit (`rate`). The transport shells (TCP,
//! WebSocket) feed it parsed elements, `now` and the answers to what it asked for, and
//! carry out the [`Action`]s it returns. Its randomness (stream ids, SCRAM nonces,
//! anonymous nodes, resources, resumption ids) comes from the `StdRng` it is given.

mod bind;
mod login;
mod sm;
mod stream_error;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod token_tests;

use std::time::{Duration, Instant};

use jid::Jid;
use minidom::Element;
use rand::Rng;
use rand::rngs::StdRng;

pub use login::decode_sasl;
pub use sm::{ACK_EVERY, Detached, Login, Resumption, StreamManagement, may_resume};
pub use stream_error::StreamError;

use crate::auth::{Lookup, ModeratorPolicy};
use crate::identity::Identity;
use crate::router::Domains;
use crate::sasl::Exchange;
use crate::stanza::{self, StanzaError, error_reply, iq_result_with, n, ns};
use crate::token::BearerToken;
use crate::token_bucket::TokenBucket;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    WebSocket,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::WebSocket => "websocket",
        }
    }
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
    /// The SASL exchange needs to know something: answer with [`Session::answer`].
    Lookup(Lookup),
    /// SASL succeeded.
    Authenticated(Login),
    /// The client asks to bind `identity.jid`: answer with [`Session::bind_result`].
    Bind(Identity),
    /// Route a stanza from the bound JID (its `from` is stamped by the router).
    Route(Element),
    /// Stream management was enabled with this resumption id.
    SmEnabled(String),
    /// The client asks to resume a detached session: answer with [`Session::resume`] or
    /// [`Session::resume_failed`].
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
    /// The token the client presented with its connection (`?token=` on the WebSocket URL).
    pub token: Option<BearerToken>,
    /// Whether anonymous logins on the main domain are token logins.
    pub token_auth: TokenAuth,
    /// The main domain is for accounts only (`[auth] secure_domain`): ANONYMOUS is offered
    /// there only for token logins.
    pub secure_domain: bool,
    pub moderator: ModeratorPolicy,
    /// PLAIN logins without a local account are checked against the directory
    /// (`[auth.ldap]`); SCRAM is not offered then, as it cannot check a directory password.
    pub directory: bool,
    /// The `?room=` of the WebSocket URL (see [`Identity::web_room`]).
    pub web_room: Option<String>,
}

/// Token authentication of anonymous logins on the main domain (Prosody's `token`
/// authentication on that VirtualHost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAuth {
    /// No tokens: anonymous logins are guests.
    Off,
    /// A token, if given, must be good; without one the login is a guest
    /// (`allow_empty_token`).
    Optional,
    /// No login without a good token.
    Required,
}

enum Phase {
    /// Before SASL success.
    Negotiating,
    /// Authenticated (`identity.jid` is the bare JID), before binding.
    Authenticated {
        login: Login,
        identity: Identity,
    },
    /// A bind request is with the hub; `identity.jid` is the full JID asked for.
    Binding {
        login: Login,
        identity: Identity,
        request: Element,
    },
    Bound {
        login: Login,
        jid: Jid,
    },
}

pub struct Session {
    config: SessionConfig,
    domains: std::sync::Arc<Domains>,
    rng: StdRng,
    stream_id: String,
    host: Option<String>,
    tls_active: bool,
    phase: Phase,
    sasl: Option<Exchange>,
    /// A token login waits for the verifier: the SASL success data to send then.
    token_pending: Option<Vec<u8>>,
    sm: Option<StreamManagement>,
    bucket: TokenBucket,
    rate_limited: bool,
}

impl Session {
    pub fn new(
        config: SessionConfig,
        domains: std::sync::Arc<Domains>,
        now: Instant,
        mut rng: StdRng,
    ) -> Self {
        let bucket = TokenBucket::new(config.stanzas_per_second, config.stanza_burst, now);
        Self {
            config,
            domains,
            stream_id: random_hex(&mut rng, 8),
            rng,
            host: None,
            tls_active: false,
            phase: Phase::Negotiating,
            sasl: None,
            token_pending: None,
            sm: None,
            bucket,
            rate_limited: false,
        }
    }

    pub fn jid(&self) -> Option<&Jid> {
        match &self.phase {
            Phase::Bound { jid, .. } => Some(jid),
            _ => None,
        }
    }

    /// This stream's id (also for a stream header written only to carry an error).
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    pub fn is_authenticated(&self) -> bool {
        !matches!(self.phase, Phase::Negotiating)
    }

    /// The stream was closed for sending faster than the rate limit allows.
    pub fn rate_limited(&self) -> bool {
        self.rate_limited
    }

    pub fn login(&self) -> Option<&Login> {
        match &self.phase {
            Phase::Authenticated { login, .. }
            | Phase::Binding { login, .. }
            | Phase::Bound { login, .. } => Some(login),
            Phase::Negotiating => None,
        }
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
            Phase::Authenticated { .. } | Phase::Binding { .. } => {
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
            if !self.config.directory {
                offered.extend(["SCRAM-SHA-256", "SCRAM-SHA-1"]);
            }
            if self.tls_active || self.config.loopback {
                offered.push("PLAIN");
            }
        }
        let anonymous_main = !self.config.secure_domain || self.config.token_auth != TokenAuth::Off;
        if (host == self.domains.main && anonymous_main) || host == self.domains.guest {
            offered.push("ANONYMOUS");
        }
        offered
    }

    /// The peer closed its stream.
    pub fn close(&mut self, out: &mut Vec<Action>) {
        out.push(Action::Close(None));
    }

    /// One top-level element from the client.
    pub fn element(&mut self, element: Element, now: Instant, out: &mut Vec<Action>) {
        if self.host.is_none() {
            out.push(Action::Close(Some(StreamError::NotAuthorized)));
            return;
        }
        // Acks answer our own requests, one per few stanzas delivered: in a busy room a
        // well-behaved client sends many, so they cost a tenth of a stanza.
        let cost = if element.ns() == ns::SM { 0.1 } else { 1.0 };
        if !self.bucket.take(now, cost) {
            self.rate_limited = true;
            out.push(Action::Close(Some(StreamError::PolicyViolation)));
            return;
        }
        match (element.ns().as_str(), element.name()) {
            (ns::TLS, "starttls") => self.starttls(out),
            (ns::SASL, "auth") => self.auth(&element, out),
            (ns::SASL, "response") => self.sasl_response(&element, out),
            (ns::SASL, "abort") => self.sasl_abort(out),
            (ns::SM, name) => self.stream_management(name, &element, out),
            (ns::CLIENT, "iq" | "message" | "presence") => self.stanza(element, out),
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

    fn stanza(&mut self, stanza: Element, out: &mut Vec<Action>) {
        self.count_inbound();
        match &self.phase {
            Phase::Negotiating => out.push(Action::Close(Some(StreamError::NotAuthorized))),
            Phase::Authenticated { .. } | Phase::Binding { .. } => self.bind(stanza, out),
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

    /// Answers go through [`Self::deliver`]: with stream management on, every stanza the
    /// client receives counts, whoever produced it.
    fn reply_error(&mut self, stanza: &Element, error: StanzaError, out: &mut Vec<Action>) {
        if let Some(reply) = error_reply(stanza, error) {
            self.deliver(reply, out);
        }
    }

    /// An XEP-0199 ping to a silent client; its answer counts as a sign of life. A stanza
    /// like any other: stream management counts it.
    pub fn probe(&mut self, out: &mut Vec<Action>) {
        let mut ping = Element::builder("iq", ns::CLIENT)
            .attr(n("type"), "get")
            .attr(n("id"), format!("probe-{}", random_hex(&mut self.rng, 4)))
            .attr(n("from"), self.domains.main.as_str())
            .append(Element::bare("ping", ns::PING))
            .build();
        if let Some(jid) = self.jid() {
            ping.set_attr(rxml::Namespace::NONE, n("to"), jid.to_string());
        }
        self.deliver(ping, out);
        self.request_ack(out);
    }
}

/// A UUID-shaped random node: the Jitsi clients take its first 8 hex digits as endpoint id.
fn anonymous_node(rng: &mut StdRng) -> String {
    let hex = random_hex(rng, 16);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

pub fn random_hex(rng: &mut StdRng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}
