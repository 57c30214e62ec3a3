//! Jitsi tokens (JWT), as Prosody's token authentication checks them: HS256/384/512 with
//! the app secret, RS256/384/512 and ES256/384 with public keys found by `kid` on a key
//! server (`<url>/<sha256hex(kid)>.pem`), in a folder (same file names) or in a JWKS.
//!
//! `claims` is the sans-IO core (header, signature, times, claims, the room check at MUC
//! join); `verifier` is the shell that finds the keys (HTTP with a timeout, files, a
//! bounded cache) and reads the clock.

pub mod claims;
mod verifier;

use std::path::PathBuf;

use serde::Deserialize;

pub use claims::{Grant, RoomGrant, Rules, TokenUser};
pub use verifier::TokenVerifier;

/// `[auth.token]`: whether and how tokens are accepted. Names follow Prosody's options
/// (`app_id`, `app_secret`, `asap_key_server`, `asap_accepted_issuers`, ...).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// Verify the token of every anonymous login on the main domain.
    pub enabled: bool,
    /// The application id: the accepted issuer unless `accepted_issuers` is set.
    pub app_id: String,
    /// The HS256/384/512 shared secret (empty: HS tokens are refused).
    pub app_secret: Secret,
    /// Accepted `iss` values; empty means `[app_id]`; `*` accepts any.
    pub accepted_issuers: Vec<String>,
    /// Accepted `aud` values; `*` accepts any.
    pub accepted_audiences: Vec<String>,
    /// Base URL of a key server: the key of `kid` is `<url>/<sha256hex(kid)>.pem`.
    pub key_server: String,
    /// A folder of PEM public keys named like the key server's.
    pub key_folder: Option<PathBuf>,
    /// A JWKS URL (`{"keys": [...]}`), keys found by `kid`.
    pub jwks_url: String,
    /// Tokens must have a `room` claim.
    pub require_room_claim: bool,
    /// Anonymous logins on the main domain without a token are let in (as guests).
    pub allow_empty_token: bool,
    /// Seconds of clock skew forgiven on `exp` and `nbf` (Prosody forgives none).
    pub leeway_secs: u64,
    /// Longest token read at all, in bytes.
    pub max_token_bytes: usize,
    /// How long fetching a public key may take, in milliseconds.
    pub key_fetch_timeout_ms: u64,
    /// Public keys kept in memory (Prosody's `jwt_pubkey_cache_size`).
    pub key_cache_size: usize,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            app_id: String::new(),
            app_secret: Secret::default(),
            accepted_issuers: Vec::new(),
            accepted_audiences: vec!["*".into()],
            key_server: String::new(),
            key_folder: None,
            jwks_url: String::new(),
            require_room_claim: true,
            allow_empty_token: false,
            leeway_secs: 0,
            max_token_bytes: 8192,
            key_fetch_timeout_ms: 3000,
            key_cache_size: 128,
        }
    }
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("enabled", &self.enabled)
            .field("app_id", &self.app_id)
            .field("app_secret", &self.app_secret)
            .field("key_server", &self.key_server)
            .field("key_folder", &self.key_folder)
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

impl TokenConfig {
    pub fn rules(&self) -> Rules {
        let issuers = if self.accepted_issuers.is_empty() {
            vec![self.app_id.clone()]
        } else {
            self.accepted_issuers.clone()
        };
        Rules {
            issuers,
            audiences: self.accepted_audiences.clone(),
            require_room: self.require_room_claim,
            leeway: self.leeway_secs,
            max_bytes: self.max_token_bytes,
        }
    }
}

/// A secret from the configuration: never printed.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<secret>"
        })
    }
}

/// A bearer token as a client presented it: a credential, so never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(pub String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BearerToken({} bytes)", self.0.len())
    }
}

/// Why a token is refused. The texts are Prosody's, which the Jitsi clients show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token required")]
    Required,
    #[error("token too large ({size} bytes, at most {max})")]
    TooLarge { size: usize, max: usize },
    #[error("{0}")]
    Malformed(&'static str),
    #[error("Invalid typ")]
    InvalidTyp,
    #[error("'alg' claim is missing")]
    AlgMissing,
    #[error("Invalid or incorrect alg")]
    InvalidAlg,
    #[error("'kid' claim is missing")]
    KidMissing,
    /// The key of the token's `kid` could not be had; the detail is for the log only.
    #[error("could not obtain public key")]
    KeyUnavailable { detail: String },
    #[error("Invalid signature")]
    BadSignature,
    #[error("exp must be number")]
    ExpNotNumber,
    #[error("nbf must be number")]
    NbfNotNumber,
    #[error("Not acceptable by exp ({since} sec since expired{})", valid_for.map(|v| format!(", valid for:{v} sec")).unwrap_or_default())]
    Expired { since: i64, valid_for: Option<i64> },
    #[error("Not acceptable by nbf")]
    NotYetValid,
    #[error("'iss' claim is missing")]
    IssMissing,
    #[error("invalid 'iss' claim")]
    IssInvalid,
    #[error("'aud' claim is missing")]
    AudMissing,
    #[error("invalid 'aud' claim")]
    AudInvalid,
    #[error("'room' claim is missing")]
    RoomMissing,
    /// `context.room.regex` with a `room` that is not a pattern, or too large a one.
    #[error("invalid room regex")]
    RoomRegex,
}

/// A token configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum TokenConfigError {
    #[error(
        "[auth.token] is enabled but has no key: set app_secret, key_server, key_folder or jwks_url"
    )]
    NoKey,
    #[error("[auth.token] {0} is not a URL with http:// or https://")]
    BadUrl(String),
    #[error("[auth.token] key_folder {0} is not a folder")]
    BadFolder(String),
    #[error("cannot build the key fetcher: {0}")]
    Client(String),
}
