//! The authenticator seam: what an authentication mechanism may ask of the world outside
//! the session, and what a successful authentication yields.
//!
//! A mechanism (the SASL ones in [`crate::sasl`] today; Jitsi tokens, OIDC or LDAP later)
//! never reaches a store itself. It returns a [`Lookup`]; the session hands it to its shell
//! as [`crate::session::Action::Lookup`], the shell answers it wherever the data lives (the
//! account database on its own thread, a token verifier) and feeds the [`Answer`] back with
//! [`crate::session::Session::answer`]. Success yields an [`Identity`] that the session
//! binds with and that travels with its stanzas.

use jid::Jid;
use serde::Deserialize;

use crate::identity::{Identity, IdentityKind};
use crate::ldap::{DirectoryError, DirectoryUser, LdapConfig};
use crate::sasl::{ScramCredentials, ScramHash};
use crate::token::{BearerToken, Grant, Secret, TokenConfig, TokenError};

/// `[auth]`: how users sign in and who moderates.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub moderator: ModeratorPolicy,
    /// The main domain is for accounts (and token users) only: anonymous guests sign in
    /// at `guest.D`, and wait until a user of the main domain opened the conference.
    pub secure_domain: bool,
    pub token: TokenConfig,
    pub ldap: LdapConfig,
}

/// Who becomes moderator (`owner` of the room).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeratorPolicy {
    /// The first participant, and the next one when it leaves (Jicofo's auto-owner); the
    /// token's moderator claims are ignored.
    #[default]
    First,
    /// Every user who signed in (a token, an account or the directory); guests never.
    Authenticated,
    /// Token users whose token says so (`context.user.moderator`, `moderator`,
    /// `context.user.affiliation`), directory users in the moderator group, and accounts;
    /// nobody else, not even the first.
    Claim,
}

impl ModeratorPolicy {
    /// Whether a user who signed in as `kind` (with `claim` from a token) moderates.
    pub fn grants(self, kind: IdentityKind, claim: bool) -> bool {
        match (self, kind) {
            (Self::First, _) | (_, IdentityKind::Guest | IdentityKind::Internal) => false,
            (Self::Authenticated, _) | (Self::Claim, IdentityKind::Account) => true,
            (Self::Claim, IdentityKind::Token | IdentityKind::Directory) => claim,
        }
    }
}

/// A question a mechanism needs answered before it can go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The stored SCRAM credentials of account `username` for `hash`.
    ScramCredentials { username: String, hash: ScramHash },
    /// Verify a Jitsi token (the `token` of the WebSocket URL).
    Token(BearerToken),
    /// Check a PLAIN password against the directory (`[auth.ldap]`).
    Directory { username: String, password: Secret },
}

/// The answer to a [`Lookup`], of the matching variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `None`: no such account (the exchange goes on so as not to reveal it).
    ScramCredentials(Option<ScramCredentials>),
    /// What the token grants, or why it is refused.
    Token(Result<Grant, TokenError>),
    /// What the directory says of the user, or why the login fails.
    Directory(Result<DirectoryUser, DirectoryError>),
}

/// The identity a successful SASL exchange yields: a local account, or a guest when
/// `username` is `None`. `jid` is the bare address; binding adds the resource.
pub fn sasl_identity(jid: Jid, username: Option<&str>, policy: ModeratorPolicy) -> Identity {
    let kind = if username.is_some() {
        IdentityKind::Account
    } else {
        IdentityKind::Guest
    };
    let mut identity = Identity::bare(jid, kind);
    identity.moderator = policy.grants(kind, false);
    identity
}

/// The identity a directory login yields: the entry's name and email for presence, the
/// moderator group as the claim.
pub fn directory_identity(jid: Jid, user: DirectoryUser, policy: ModeratorPolicy) -> Identity {
    let mut identity = Identity::bare(jid, IdentityKind::Directory);
    identity.moderator = policy.grants(IdentityKind::Directory, user.moderator);
    identity.display_name = user.name;
    identity.email = user.email;
    identity
}

/// The identity a verified token yields, as Prosody's token modules fill the session:
/// `context.user` for presence, the features, the tenant, the rooms it opens.
pub fn token_identity(jid: Jid, grant: Grant, policy: ModeratorPolicy) -> Identity {
    let mut identity = Identity::bare(jid, IdentityKind::Token);
    identity.moderator = policy.grants(IdentityKind::Token, grant.moderator);
    identity.display_name = grant.user.name;
    identity.email = grant.user.email;
    identity.avatar = grant.user.avatar;
    identity.user_id = grant.user.id;
    identity.features = grant.features;
    identity.tenant = grant.tenant;
    identity.rooms = Some(grant.rooms);
    identity
}
