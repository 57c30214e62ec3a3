//! Who a signed-in user is, as far as the rooms and the focus need to know.
//!
//! An authenticator (SASL ANONYMOUS, local SCRAM accounts, later Jitsi tokens, OIDC, LDAP)
//! yields an [`Identity`] when a session authenticates; the router keeps it with the bound
//! JID so that components (the MUC and the room-control components beside it) and, through
//! them, the focus learn it with every stanza that session sends.

use std::collections::BTreeMap;

use jid::Jid;

use crate::token::RoomGrant;

/// The identity of one bound session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The session's full JID.
    pub jid: Jid,
    /// How the authenticator vouches for this user.
    pub kind: IdentityKind,
    /// A display name vouched for by the authenticator (a token's `context.user.name`).
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// An avatar URL.
    pub avatar: Option<String>,
    /// The user's id at the issuer (a token's `context.user.id`).
    pub user_id: Option<String>,
    /// The authenticator grants the moderator right (a token's moderator claims).
    pub moderator: bool,
    /// Feature flags granted by the authenticator (a token's `context.features`).
    pub features: BTreeMap<String, bool>,
    /// The tenant the user signed in for (a token's `sub` when it names one).
    pub tenant: Option<String>,
    /// The rooms a token opens; `None`: no token, no restriction.
    pub rooms: Option<RoomGrant>,
    /// The room the session was opened for: the `?room=` of its WebSocket URL, lower case
    /// (Prosody's `jitsi_web_query_room`). The room-control services act on this room only
    /// (Rule B of `meeting-features.md`), whatever the stanza names.
    pub web_room: Option<String>,
}

/// How a session authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    /// SASL ANONYMOUS: a guest with a random node.
    Guest,
    /// A local account (SCRAM or PLAIN against the account database).
    Account,
    /// A verified Jitsi token (anonymous SASL with `?token=` on the WebSocket URL).
    Token,
    /// A directory user (PLAIN checked by an LDAP bind, `[auth.ldap]`).
    Directory,
    /// An in-process entity of the server itself (the focus).
    Internal,
}

impl Identity {
    /// An identity that carries nothing but its JID and how it signed in.
    pub fn bare(jid: Jid, kind: IdentityKind) -> Self {
        Self {
            jid,
            kind,
            display_name: None,
            email: None,
            avatar: None,
            user_id: None,
            moderator: false,
            features: BTreeMap::new(),
            tenant: None,
            rooms: None,
            web_room: None,
        }
    }
}
