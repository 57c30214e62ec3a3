//! Token logins on their own: an anonymous login on the main domain asks the shell to
//! verify the connection's token, and binds with what the token grants.

use std::time::Instant;

use rand::SeedableRng;

use super::*;
use crate::auth::{Answer, ModeratorPolicy};
use crate::identity::IdentityKind;
use crate::token::{Grant, RoomGrant, TokenError, TokenUser};
use crate::xml::test_element as xml;

fn config(token: Option<&str>, token_auth: TokenAuth, moderator: ModeratorPolicy) -> SessionConfig {
    SessionConfig {
        stanzas_per_second: 10.0,
        token: token.map(|t| BearerToken(t.into())),
        token_auth,
        moderator,
        ..super::tests::config(100.0)
    }
}

fn grant(moderator: bool) -> Grant {
    Grant {
        rooms: RoomGrant {
            room: Some("standup".into()),
            sub: Some("d.test".into()),
            regex: false,
        },
        user: TokenUser {
            id: Some("u1".into()),
            name: Some("Alice".into()),
            email: Some("a@example.com".into()),
            avatar: None,
        },
        group: None,
        features: [("recording".to_owned(), true)].into(),
        moderator,
        tenant: None,
        expires: None,
    }
}

/// Opens a stream to `host` and sends `<auth mechanism='ANONYMOUS'/>`.
fn anonymous_auth(config: SessionConfig, host: &str) -> (Session, Vec<Action>) {
    let now = Instant::now();
    let mut session = Session::new(
        config,
        std::sync::Arc::new(Domains::new("d.test")),
        now,
        StdRng::seed_from_u64(3),
    );
    let mut out = Vec::new();
    session.open(Some(host), Some("1.0"), &mut out);
    out.clear();
    session.element(
        xml("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>"),
        now,
        &mut out,
    );
    (session, out)
}

fn sent(out: &[Action]) -> Vec<String> {
    out.iter()
        .filter_map(|a| match a {
            Action::Send(e) => Some(String::from(e)),
            _ => None,
        })
        .collect()
}

/// Binds and returns the identity the session asks the hub to bind with.
fn bind(session: &mut Session) -> Identity {
    let mut out = Vec::new();
    session.open(Some("d.test"), Some("1.0"), &mut out);
    session.element(
        xml("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"),
        Instant::now(),
        &mut out,
    );
    out.into_iter()
        .find_map(|a| match a {
            Action::Bind(identity) => Some(identity),
            _ => None,
        })
        .expect("a bind request")
}

#[test]
fn a_good_token_binds_its_user_its_rooms_and_per_policy_the_moderator_right() {
    for (policy, claim, moderator) in [
        (ModeratorPolicy::First, true, false),
        (ModeratorPolicy::Authenticated, false, true),
        (ModeratorPolicy::Claim, true, true),
        (ModeratorPolicy::Claim, false, false),
    ] {
        let (mut session, out) =
            anonymous_auth(config(Some("t.o.k"), TokenAuth::Required, policy), "d.test");
        assert!(sent(&out).is_empty(), "no answer before the verdict");
        assert!(matches!(
            out.as_slice(),
            [Action::Lookup(Lookup::Token(BearerToken(t)))] if t == "t.o.k"
        ));
        let mut out = Vec::new();
        session.answer(Answer::Token(Ok(grant(claim))), &mut out);
        assert!(sent(&out)[0].starts_with("<success"), "{:?}", sent(&out));
        // The hub learns that a token vouched for this login (for resumption).
        assert!(out.iter().any(|a| matches!(
            a,
            Action::Authenticated(Login {
                username: None,
                token: true
            })
        )));
        let identity = bind(&mut session);
        assert_eq!(identity.kind, IdentityKind::Token);
        assert_eq!(identity.moderator, moderator, "{policy:?} claim={claim}");
        assert_eq!(identity.display_name.as_deref(), Some("Alice"));
        assert_eq!(identity.user_id.as_deref(), Some("u1"));
        assert_eq!(identity.features.get("recording"), Some(&true));
        assert_eq!(identity.rooms, Some(grant(claim).rooms));
        assert_eq!(identity.jid.domain().as_str(), "d.test");
    }
}

#[test]
fn a_refused_token_is_a_not_allowed_failure_with_its_reason() {
    let (mut session, _) = anonymous_auth(
        config(Some("x"), TokenAuth::Required, ModeratorPolicy::First),
        "d.test",
    );
    let mut out = Vec::new();
    session.answer(Answer::Token(Err(TokenError::BadSignature)), &mut out);
    assert_eq!(
        sent(&out),
        [
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-allowed/><text>Invalid signature</text></failure>"
        ]
    );
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::AuthFailed { username: None }))
    );
    assert!(!session.is_authenticated());
    // A late second verdict changes nothing.
    let mut out = Vec::new();
    session.answer(Answer::Token(Ok(grant(true))), &mut out);
    assert!(out.is_empty() && !session.is_authenticated());
}

#[test]
fn without_a_token_required_refuses_optional_lets_a_guest_in() {
    let (session, out) = anonymous_auth(
        config(None, TokenAuth::Required, ModeratorPolicy::First),
        "d.test",
    );
    assert_eq!(
        sent(&out),
        [
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-allowed/><text>token required</text></failure>"
        ]
    );
    assert!(!session.is_authenticated());
    let (mut session, out) = anonymous_auth(
        config(None, TokenAuth::Optional, ModeratorPolicy::First),
        "d.test",
    );
    assert!(sent(&out)[0].starts_with("<success"));
    assert_eq!(bind(&mut session).kind, IdentityKind::Guest);
}

#[test]
fn the_guest_domain_and_token_free_servers_ignore_tokens() {
    for (host, token_auth) in [
        ("guest.d.test", TokenAuth::Required),
        ("d.test", TokenAuth::Off),
    ] {
        let (mut session, out) = anonymous_auth(
            config(Some("t"), token_auth, ModeratorPolicy::Authenticated),
            host,
        );
        assert!(sent(&out)[0].starts_with("<success"), "{host}");
        let identity = bind(&mut session);
        assert_eq!(identity.kind, IdentityKind::Guest);
        assert!(!identity.moderator, "guests never moderate by policy");
        assert_eq!(identity.rooms, None);
    }
}

#[test]
fn the_token_is_never_printed() {
    let config = config(
        Some("secret.token.value"),
        TokenAuth::Required,
        ModeratorPolicy::First,
    );
    assert!(!format!("{config:?}").contains("secret.token.value"));
}

#[test]
fn a_secure_domain_offers_anonymous_logins_only_to_guests_and_token_users() {
    for (host, token_auth, anonymous) in [
        ("d.test", TokenAuth::Off, false),
        ("guest.d.test", TokenAuth::Off, true),
        ("d.test", TokenAuth::Required, true),
    ] {
        let config = SessionConfig {
            secure_domain: true,
            ..config(None, token_auth, ModeratorPolicy::Authenticated)
        };
        let mut session = Session::new(
            config,
            std::sync::Arc::new(Domains::new("d.test")),
            Instant::now(),
            StdRng::seed_from_u64(3),
        );
        let mut out = Vec::new();
        session.open(Some(host), Some("1.0"), &mut out);
        assert_eq!(
            sent(&out)[0].contains("ANONYMOUS"),
            anonymous,
            "{host} {token_auth:?}"
        );
        out.clear();
        session.element(
            xml("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>"),
            Instant::now(),
            &mut out,
        );
        if !anonymous {
            assert!(
                sent(&out)[0].contains("<invalid-mechanism/>"),
                "{:?}",
                sent(&out)
            );
        }
    }
}

#[test]
fn a_token_session_resumes_only_on_a_login_with_a_token() {
    let token = Login {
        username: None,
        token: true,
    };
    let guest = Login::default();
    let alice = Login {
        username: Some("alice".into()),
        token: false,
    };
    // The new login's token was verified at that login: an expired one never gets here.
    assert!(may_resume(&token, &token));
    // A guest (allow_empty_token, or guest.D) that learnt the resumption id cannot carry a
    // token session on past its token.
    assert!(!may_resume(&token, &guest));
    assert!(!may_resume(&token, &alice));
    assert!(may_resume(&guest, &token) && may_resume(&guest, &guest));
    assert!(may_resume(&alice, &alice) && !may_resume(&alice, &guest));
}
