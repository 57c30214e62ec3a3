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

use crate::identity::{Identity, IdentityKind};
use crate::sasl::{ScramCredentials, ScramHash};

/// A question a mechanism needs answered before it can go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The stored SCRAM credentials of account `username` for `hash`.
    ScramCredentials { username: String, hash: ScramHash },
}

/// The answer to a [`Lookup`], of the matching variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `None`: no such account (the exchange goes on so as not to reveal it).
    ScramCredentials(Option<ScramCredentials>),
}

/// The identity a successful SASL exchange yields: a local account, or a guest when
/// `username` is `None`. `jid` is the bare address; binding adds the resource.
pub fn sasl_identity(jid: Jid, username: Option<&str>) -> Identity {
    let kind = if username.is_some() {
        IdentityKind::Account
    } else {
        IdentityKind::Guest
    };
    Identity::bare(jid, kind)
}
