//! Settings of this role. The binary fills them from its TOML file and flags; every field
//! has an embedded default so that `convene` runs with no configuration at all.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::auth::AuthConfig;
use crate::fanout::FanoutConfig;
use crate::session::TokenAuth;
use crate::throttle::ThrottleConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// TCP client-to-server listener (RFC 6120, STARTTLS).
    pub c2s_listen: SocketAddr,
    /// PEM certificate chain for STARTTLS; without it a self-signed one is generated once
    /// and kept in the data directory.
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key matching `tls_certificate`.
    pub tls_key: Option<PathBuf>,
    /// Largest stanza accepted, in bytes.
    pub max_stanza_bytes: usize,
    /// Deepest element nesting inside a stanza.
    pub max_depth: usize,
    /// Sustained stanzas per second per connection...
    pub stanzas_per_second: f64,
    /// ...and the burst allowed above it.
    pub stanza_burst: f64,
    /// Connections per IP address that have not authenticated yet, counted from the
    /// moment the socket is accepted (before any byte); one over it is closed at once.
    pub max_unauthenticated_per_ip: usize,
    /// Seconds a new connection may take to open its stream (the stream header, or the
    /// RFC 7395 `<open/>`), and again after STARTTLS; like Prosody's `c2s_timeout`.
    pub open_timeout_secs: u64,
    /// Seconds a connection may take to authenticate.
    pub auth_timeout_secs: u64,
    /// Seconds a dropped session with stream management stays resumable (and present).
    pub resume_timeout_secs: u64,
    /// Stanzas kept for a client that does not acknowledge them.
    pub max_unacked: usize,
    /// Seconds of silence from a bound client before the server probes it (WebSocket ping
    /// frame, or an XEP-0199 ping on TCP); after twice this the connection counts as dead
    /// (and its session is kept for resumption if stream management is on).
    pub keepalive_secs: u64,
    /// Occupants per MUC room (the focus not counted against it).
    pub muc_max_occupants: usize,
    /// MUC rooms one session may be in at once.
    pub muc_max_rooms_per_session: usize,

    // Fairness: fan-out budgets of the rooms, joins, login backoff (docs/xmpp.md).
    /// Deliveries per second one room may cost (a broadcast costs one per occupant)...
    pub muc_room_deliveries_per_second: f64,
    /// ...and the burst above it.
    pub muc_room_delivery_burst: f64,
    /// Broadcasts (group chat, presence updates) per second one user (bare JID, all its
    /// resources) sends into a room before waiting its turn...
    pub muc_sender_broadcasts_per_second: f64,
    /// ...and the burst above it.
    pub muc_sender_broadcast_burst: f64,
    /// Broadcasts one user may have waiting in a room; more are refused.
    pub muc_sender_queue: usize,
    /// Joins per second one room lets in; more wait...
    pub muc_room_joins_per_second: f64,
    /// ...above this burst.
    pub muc_room_join_burst: f64,
    /// Joins one room may have waiting; more are refused.
    pub muc_join_queue: usize,
    /// Joins per second from one address over all rooms; more are refused...
    pub muc_address_joins_per_second: f64,
    /// ...above this burst.
    pub muc_address_join_burst: f64,
    /// Milliseconds a login waits after a failure; each further failure doubles it...
    pub login_backoff_initial_ms: u64,
    /// ...up to this many seconds.
    pub login_backoff_max_secs: u64,
    /// SASL exchanges at once on one account from one address while neither failed.
    pub login_parallel_per_account: usize,
    /// How users sign in and who moderates: the binary's `[auth]` section, not a key of
    /// `[xmpp]`.
    #[serde(skip)]
    pub auth: AuthConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            c2s_listen: SocketAddr::from(([0, 0, 0, 0], 5222)),
            tls_certificate: None,
            tls_key: None,
            max_stanza_bytes: 64 * 1024,
            max_depth: 16,
            stanzas_per_second: 50.0,
            stanza_burst: 100.0,
            max_unauthenticated_per_ip: 20,
            open_timeout_secs: 10,
            auth_timeout_secs: 30,
            resume_timeout_secs: 60,
            max_unacked: 5000,
            keepalive_secs: 60,
            muc_max_occupants: 500,
            muc_max_rooms_per_session: 20,
            muc_room_deliveries_per_second: 20_000.0,
            muc_room_delivery_burst: 2_000.0,
            muc_sender_broadcasts_per_second: 5.0,
            muc_sender_broadcast_burst: 5.0,
            muc_sender_queue: 100,
            muc_room_joins_per_second: 10.0,
            muc_room_join_burst: 10.0,
            muc_join_queue: 200,
            muc_address_joins_per_second: 10.0,
            muc_address_join_burst: 100.0,
            login_backoff_initial_ms: 200,
            login_backoff_max_secs: 30,
            login_parallel_per_account: 4,
            auth: AuthConfig::default(),
        }
    }
}

impl Config {
    /// How anonymous logins on the main domain treat tokens.
    pub(crate) fn token_auth(&self) -> TokenAuth {
        match &self.auth.token {
            token if !token.enabled => TokenAuth::Off,
            token if token.allow_empty_token => TokenAuth::Optional,
            _ => TokenAuth::Required,
        }
    }

    pub(crate) fn fanout(&self) -> FanoutConfig {
        FanoutConfig {
            room_deliveries_per_second: self.muc_room_deliveries_per_second,
            room_delivery_burst: self.muc_room_delivery_burst,
            sender_broadcasts_per_second: self.muc_sender_broadcasts_per_second,
            sender_broadcast_burst: self.muc_sender_broadcast_burst,
            sender_queue: self.muc_sender_queue,
            room_joins_per_second: self.muc_room_joins_per_second,
            room_join_burst: self.muc_room_join_burst,
            join_queue: self.muc_join_queue,
            address_joins_per_second: self.muc_address_joins_per_second,
            address_join_burst: self.muc_address_join_burst,
        }
    }

    pub(crate) fn login_throttle(&self) -> ThrottleConfig {
        ThrottleConfig {
            initial_backoff: Duration::from_millis(self.login_backoff_initial_ms),
            max_backoff: Duration::from_secs(self.login_backoff_max_secs),
            parallel_per_account: self.login_parallel_per_account.max(1),
        }
    }
}
