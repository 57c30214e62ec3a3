//! The session on its own: what it sends and asks for, fed by hand.

use std::collections::VecDeque;

use rand::SeedableRng;

use super::*;
use crate::identity::IdentityKind;
use crate::xml::test_element as xml;

/// A WebSocket session's settings at 1 stanza/s with `burst`; other tests override fields.
pub(crate) fn config(burst: f64) -> SessionConfig {
    SessionConfig {
        transport: Transport::WebSocket,
        loopback: false,
        tls_available: false,
        stanzas_per_second: 1.0,
        stanza_burst: burst,
        max_unacked: 100,
        resume_timeout: Duration::from_secs(60),
        token: None,
        token_auth: TokenAuth::Off,
        secure_domain: false,
        moderator: crate::auth::ModeratorPolicy::First,
        directory: false,
        web_room: None,
    }
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(1)
}

fn resumption(detached: Detached) -> Resumption {
    Resumption {
        detached,
        queued: VecDeque::new(),
    }
}

/// The identity of the bind request the session just asked the hub for.
fn bind_request(actions: &[Action]) -> &Identity {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Bind(identity) => Some(identity),
            _ => None,
        })
        .expect("a bind request")
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

/// A session whose stream is open, with what it sent so far.
fn opened(now: Instant) -> (Session, Vec<Action>) {
    let mut session = Session::new(
        config(100.0),
        std::sync::Arc::new(Domains::new("d.test")),
        now,
        rng(),
    );
    let mut out = Vec::new();
    session.open(Some("d.test"), Some("1.0"), &mut out);
    (session, out)
}

/// Opens and logs in anonymously, up to the restarted stream.
fn anonymous(now: Instant) -> (Session, Vec<Action>) {
    let (mut session, mut out) = opened(now);
    assert!(
        sent(&out)[0].contains("ANONYMOUS") && !sent(&out)[0].contains("PLAIN"),
        "PLAIN needs TLS or loopback"
    );
    session.element(
        xml("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>"),
        now,
        &mut out,
    );
    session.open(Some("d.test"), Some("1.0"), &mut out);
    (session, out)
}

/// Opens, logs in anonymously, binds and enables resumable stream management.
fn bound_session(now: Instant) -> (Session, Jid) {
    let (mut session, mut out) = anonymous(now);
    session.element(
        xml("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"),
        now,
        &mut out,
    );
    assert!(session.jid().is_none(), "bound only once the hub agrees");
    assert_eq!(bind_request(&out).kind, IdentityKind::Guest);
    session.bind_result(Ok(()), &mut out);
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

    session.element(xml("<a xmlns='urn:xmpp:sm:3' h='1'/>"), now, &mut out);
    session.element(
        xml("<message to='x@d.test'><body>in</body></message>"),
        now,
        &mut out,
    );
    let detached = session.detach().expect("resumable");
    assert_eq!(detached.jid, jid);
    assert!(detached.may_resume(&Login::default()));

    let mut fresh = Session::new(
        config(100.0),
        std::sync::Arc::new(Domains::new("d.test")),
        now,
        rng(),
    );
    let mut out = Vec::new();
    fresh.resume(resumption(detached), 2, &mut out);
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
    session.element(xml(roster), now, &mut out);
    let detached = session.detach().unwrap();
    let mut fresh = Session::new(
        config(10.0),
        std::sync::Arc::new(Domains::new("d.test")),
        now,
        rng(),
    );
    let mut out = Vec::new();
    fresh.resume(resumption(detached), 0, &mut out);
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
        rng(),
    );
    let mut out = Vec::new();
    session.open(Some("d.test"), Some("1.0"), &mut out);
    for _ in 0..3 {
        session.element(
            xml("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
            now,
            &mut out,
        );
    }
    assert!(!out.iter().any(|a| matches!(a, Action::Close(_))));
    session.element(
        xml("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
        now,
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
        &mut out,
    );
    assert!(!out.iter().any(|a| matches!(a, Action::Close(_))));
}

#[test]
fn unknown_host_and_early_stanzas_are_stream_errors() {
    let now = Instant::now();
    let domains = std::sync::Arc::new(Domains::new("d.test"));
    let mut out = Vec::new();
    Session::new(config(10.0), domains.clone(), now, rng()).open(
        Some("elsewhere"),
        Some("1.0"),
        &mut out,
    );
    assert!(matches!(
        out.last(),
        Some(Action::Close(Some(StreamError::HostUnknown)))
    ));
    let mut session = Session::new(config(10.0), domains, now, rng());
    let mut out = Vec::new();
    session.open(Some("d.test"), Some("1.0"), &mut out);
    session.element(xml("<message to='a@d.test'/>"), now, &mut out);
    assert!(matches!(
        out.last(),
        Some(Action::Close(Some(StreamError::NotAuthorized)))
    ));
}

#[test]
fn a_refused_bind_is_a_conflict_and_another_resource_may_be_asked_for() {
    let now = Instant::now();
    let (mut session, mut out) = anonymous(now);
    let bind = |resource: &str| {
        xml(&format!(
            "<iq type='set' id='{resource}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"
        ))
    };
    out.clear();
    session.element(bind("taken"), now, &mut out);
    assert!(bind_request(&out).jid.to_string().ends_with("/taken"));
    out.clear();
    session.bind_result(Err(crate::router::BindError::Conflict), &mut out);
    assert!(sent(&out)[0].contains("<conflict"), "{:?}", sent(&out));
    assert!(session.jid().is_none());
    out.clear();
    session.element(bind("free"), now, &mut out);
    session.bind_result(Ok(()), &mut out);
    assert!(session.jid().unwrap().to_string().ends_with("/free"));
}

#[test]
fn scram_asks_its_shell_for_the_credentials() {
    let now = Instant::now();
    let (mut session, mut out) = opened(now);
    // base64 of "n,,n=alice,r=abc"
    let auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>biwsbj1hbGljZSxyPWFiYw==</auth>";
    out.clear();
    session.element(xml(auth), now, &mut out);
    assert!(matches!(
        &out[..],
        [Action::Lookup(Lookup::ScramCredentials { username, .. })] if username == "alice"
    ));
    out.clear();
    session.answer(crate::auth::Answer::ScramCredentials(None), &mut out);
    assert!(sent(&out)[0].starts_with("<challenge"), "{:?}", sent(&out));
}

#[test]
fn a_seeded_generator_replays_the_same_session() {
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let (session, jid) = bound_session(Instant::now());
            format!("{} {jid}", session.stream_id())
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn directory_users_log_in_with_plain_and_scram_is_not_offered() {
    use crate::auth::{Answer, ModeratorPolicy};
    use crate::ldap::{DirectoryError, DirectoryUser};
    let now = Instant::now();
    let user = DirectoryUser {
        dn: "uid=alice,dc=example".into(),
        name: Some("Alice".into()),
        email: None,
        moderator: true,
    };
    let verdicts = [
        (Ok(user), "<success"),
        (
            Err(DirectoryError::Unavailable("down".into())),
            "<temporary-auth-failure",
        ),
    ];
    for (verdict, answer) in verdicts {
        let config = SessionConfig {
            loopback: true,
            directory: true,
            moderator: ModeratorPolicy::Claim,
            ..config(100.0)
        };
        let domains = std::sync::Arc::new(Domains::new("d.test"));
        let mut session = Session::new(config, domains, now, rng());
        let mut out = Vec::new();
        session.open(Some("d.test"), Some("1.0"), &mut out);
        let features = &sent(&out)[0];
        assert!(
            features.contains("PLAIN") && !features.contains("SCRAM"),
            "{features}"
        );
        out.clear();
        // base64 of "\0alice\0pw"
        let auth =
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHB3</auth>";
        session.element(xml(auth), now, &mut out);
        out.clear();
        session.answer(Answer::ScramCredentials(None), &mut out);
        assert!(matches!(
            &out[..],
            [Action::Lookup(Lookup::Directory { username, .. })] if username == "alice"
        ));
        out.clear();
        session.answer(Answer::Directory(verdict), &mut out);
        assert!(sent(&out)[0].contains(answer), "{:?}", sent(&out));
        if answer == "<success" {
            session.open(Some("d.test"), Some("1.0"), &mut out);
            let bind =
                "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>";
            session.element(xml(bind), now, &mut out);
            let identity = bind_request(&out);
            assert_eq!(identity.kind, IdentityKind::Directory);
            assert!(identity.moderator, "in the moderator group, policy claim");
            assert_eq!(identity.display_name.as_deref(), Some("Alice"));
            assert_eq!(identity.jid.to_bare().to_string(), "alice@d.test");
        }
    }
}
