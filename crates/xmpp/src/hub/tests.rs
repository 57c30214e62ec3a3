//! The hub on simulated time: real sessions fed by hand, no sockets, `now` advanced by
//! the test.

use std::net::Ipv4Addr;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::identity::IdentityKind;
use crate::muc::MucLimits;
use crate::router::Domains;
use crate::session::{Action, Session, SessionConfig};
use crate::xml::test_element as xml;

mod fairness;

const ROOM: &str = "room@conference.d.test";
const TIMEOUT: Duration = Duration::from_secs(60);

struct Client {
    conn: ConnId,
    session: Session,
}

/// A hub and everything it told, with the clock in the test's hands.
struct Harness {
    hub: Hub,
    now: Instant,
    told: Vec<(ConnId, ToSession)>,
}

impl Harness {
    /// A hub whose fan-out budgets never hold anything back (`fairness` tests them).
    fn new(max_unauthenticated_per_ip: usize) -> Self {
        let unlimited = crate::fanout::FanoutConfig {
            room_deliveries_per_second: 1e9,
            room_delivery_burst: 1e9,
            sender_broadcasts_per_second: 1e9,
            sender_broadcast_burst: 1e9,
            sender_queue: usize::MAX,
            room_joins_per_second: 1e9,
            room_join_burst: 1e9,
            join_queue: usize::MAX,
            address_joins_per_second: 1e9,
            address_join_burst: 1e9,
        };
        Self::with_budgets(max_unauthenticated_per_ip, unlimited)
    }

    fn with_budgets(
        max_unauthenticated_per_ip: usize,
        fanout: crate::fanout::FanoutConfig,
    ) -> Self {
        let router = crate::muc_router(
            &Domains::new("d.test"),
            MucLimits {
                max_occupants: 100,
                max_rooms_per_session: 10,
            },
            StdRng::seed_from_u64(7),
        );
        let config = HubConfig {
            max_unauthenticated_per_ip,
            resume_timeout: TIMEOUT,
            max_queued: 10,
            fanout,
            login: crate::Config::default().login_throttle(),
        };
        Self {
            hub: Hub::new(config, router),
            now: Instant::now(),
            told: Vec::new(),
        }
    }

    fn run(&mut self, input: Input) {
        self.hub.handle(self.now, input);
        self.collect();
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.hub.handle_timeout(self.now);
        self.collect();
    }

    fn collect(&mut self) {
        while let Some(output) = self.hub.poll_output() {
            if let Output::Session { conn, message } = output {
                self.told.push((conn, message));
            }
        }
    }

    /// What `conn` was told since last asked.
    fn take(&mut self, conn: ConnId) -> Vec<ToSession> {
        let (mine, rest) = std::mem::take(&mut self.told)
            .into_iter()
            .partition(|(c, _)| *c == conn);
        self.told = rest;
        mine.into_iter().map(|(_, m)| m).collect()
    }

    /// The stanzas `conn` was told, as text.
    fn stanzas(&mut self, conn: ConnId) -> Vec<String> {
        self.take(conn)
            .into_iter()
            .filter_map(|m| match m {
                ToSession::Stanza(s) => Some(String::from(&*s)),
                _ => None,
            })
            .collect()
    }

    fn open(&mut self, n: u64) -> Result<(), StreamError> {
        self.open_from(n, Ipv4Addr::new(192, 0, 2, 1).into())
    }

    fn open_from(&mut self, n: u64, peer: IpAddr) -> Result<(), StreamError> {
        let conn = ConnId(n);
        self.run(Input::Opened {
            conn,
            peer,
            transport: Transport::Tcp,
        });
        match self.take(conn).as_slice() {
            [ToSession::Admission(admission)] => *admission,
            other => panic!("{other:?}"),
        }
    }

    /// Connection `n`, logged in anonymously (not bound yet).
    fn authenticated(&mut self, n: u64) -> Client {
        self.open(n).unwrap();
        let config = SessionConfig {
            transport: Transport::Tcp,
            loopback: true,
            stanzas_per_second: 100.0,
            resume_timeout: TIMEOUT,
            ..crate::session::tests::config(100.0)
        };
        let domains = std::sync::Arc::new(Domains::new("d.test"));
        let mut client = Client {
            conn: ConnId(n),
            session: Session::new(config, domains, self.now, StdRng::seed_from_u64(n)),
        };
        let mut out = Vec::new();
        client.session.open(Some("d.test"), Some("1.0"), &mut out);
        self.send(
            &mut client,
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>",
        );
        client.session.open(Some("d.test"), Some("1.0"), &mut out);
        client
    }

    /// Connection `n`, bound as `resource` with resumable stream management, in the room.
    fn in_room(&mut self, n: u64, nick: &str) -> Client {
        let mut client = self.authenticated(n);
        self.send(
            &mut client,
            &format!("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{nick}</resource></bind></iq>"),
        );
        assert!(client.session.jid().is_some());
        self.send(&mut client, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
        self.send(&mut client, &format!("<presence to='{ROOM}/{nick}'/>"));
        client
    }

    /// Feeds `text` to the client's session and carries out its actions as `conn.rs` does;
    /// returns what the session sent.
    fn send(&mut self, client: &mut Client, text: &str) -> Vec<String> {
        let mut actions = Vec::new();
        client.session.element(xml(text), self.now, &mut actions);
        self.perform(client, actions)
    }

    fn perform(&mut self, client: &mut Client, actions: Vec<Action>) -> Vec<String> {
        let conn = client.conn;
        let mut sent = Vec::new();
        for action in actions {
            let mut more = Vec::new();
            match action {
                Action::Send(element) => sent.push(String::from(&element)),
                Action::Authenticated(login) => self.run(Input::Authenticated { conn, login }),
                Action::Bind(identity) => {
                    self.run(Input::Bind { conn, identity });
                    let Some(ToSession::BindResult(result)) = self.take(conn).pop() else {
                        panic!("no bind result");
                    };
                    client.session.bind_result(result, &mut more);
                }
                Action::SmEnabled(id) => self.run(Input::SmEnabled { conn, id }),
                Action::Route(stanza) => self.run(Input::Stanza { conn, stanza }),
                Action::Resume { previd, h } => {
                    self.run(Input::Resume { conn, previd });
                    match self.take(conn).pop() {
                        Some(ToSession::Resumed(resumption)) => {
                            client.session.resume(*resumption, h, &mut more)
                        }
                        Some(ToSession::ResumeFailed) => client.session.resume_failed(&mut more),
                        other => panic!("{other:?}"),
                    }
                }
                _ => {}
            }
            sent.extend(self.perform(client, more));
        }
        sent
    }

    /// The client's connection drops; its session goes to the hub for resumption.
    fn cut(&mut self, client: &mut Client, queued: Vec<&str>) -> String {
        let detached = client.session.detach().expect("resumable");
        let id = detached.id().to_owned();
        self.run(Input::Detached {
            conn: client.conn,
            detached,
            queued: queued.into_iter().map(xml).collect(),
            ending: Ending::default(),
        });
        id
    }

    fn groupchat(&mut self, client: &mut Client, body: &str) {
        self.send(
            client,
            &format!("<message to='{ROOM}' type='groupchat'><body>{body}</body></message>"),
        );
    }
}

fn left(stanzas: &[String], nick: &str) -> bool {
    stanzas
        .iter()
        .any(|s| s.contains(&format!("{ROOM}/{nick}")) && s.contains("unavailable"))
}

#[test]
fn a_parked_session_leaves_its_rooms_when_the_resumption_window_closes() {
    let mut t = Harness::new(10);
    let mut alice = t.in_room(1, "alice");
    let bob = t.in_room(2, "bob");
    t.told.clear();
    t.cut(&mut alice, vec![]);
    assert_eq!(t.hub.poll_timeout(), Some(t.now + TIMEOUT));
    t.advance(TIMEOUT - Duration::from_millis(1));
    assert!(
        !left(&t.stanzas(bob.conn), "alice"),
        "still present while resumable"
    );
    t.advance(Duration::from_millis(1));
    assert!(left(&t.stanzas(bob.conn), "alice"));
    assert_eq!(t.hub.room_count(), 1);
    assert!(
        t.hub
            .metrics_text()
            .contains("convene_xmpp_parked_sessions 0")
    );
}

#[test]
fn a_session_resumed_in_time_keeps_its_rooms_and_gets_what_was_queued_once() {
    let mut t = Harness::new(10);
    let mut alice = t.in_room(1, "alice");
    let mut bob = t.in_room(2, "bob");
    let id = t.cut(
        &mut alice,
        vec!["<message><body>in flight</body></message>"],
    );
    t.groupchat(&mut bob, "meanwhile");
    t.advance(TIMEOUT / 2);
    let mut again = t.authenticated(3);
    let sent = t.send(
        &mut again,
        &format!("<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>"),
    );
    assert!(sent[0].starts_with("<resumed"), "{sent:?}");
    for body in ["in flight", "meanwhile"] {
        assert_eq!(
            sent.iter().filter(|s| s.contains(body)).count(),
            1,
            "{sent:?}"
        );
    }
    t.advance(TIMEOUT);
    assert!(!left(&t.stanzas(bob.conn), "alice"));
    // Deliveries now go to the new connection.
    t.groupchat(&mut bob, "after");
    assert!(t.stanzas(again.conn).iter().any(|s| s.contains("after")));
    assert!(
        t.hub
            .metrics_text()
            .contains("convene_xmpp_resumed_total 1")
    );
}

#[test]
fn takeover_hands_the_old_connections_queue_to_the_new_one() {
    let mut t = Harness::new(10);
    let mut alice = t.in_room(1, "alice");
    let mut bob = t.in_room(2, "bob");
    let again = t.authenticated(3);
    t.groupchat(&mut bob, "before");
    // The old connection has not read "before" yet when the client resumes elsewhere.
    let old_queue = t.stanzas(alice.conn);
    let detached = alice.session.detach().expect("resumable");
    t.run(Input::Resume {
        conn: again.conn,
        previd: detached.id().to_owned(),
    });
    assert!(matches!(
        t.take(alice.conn).as_slice(),
        [ToSession::TakeOver]
    ));
    assert!(
        t.take(again.conn).is_empty(),
        "waits for the old connection"
    );
    // The old connection closes with <conflict/> and hands over what it had queued.
    let queued = old_queue.iter().map(|s| xml(s)).collect();
    t.run(Input::Detached {
        conn: alice.conn,
        detached,
        queued,
        ending: Ending {
            error: Some(StreamError::Conflict),
            rate_limited: false,
        },
    });
    match t.take(again.conn).as_slice() {
        [ToSession::Resumed(resumption)] => {
            let queued: Vec<String> = resumption.queued.iter().map(String::from).collect();
            assert_eq!(queued.iter().filter(|s| s.contains("before")).count(), 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(!left(&t.stanzas(bob.conn), "alice"));
    assert_eq!(
        t.hub.poll_timeout().map(|_| ()),
        Some(()),
        "only the stale takeover timer"
    );
    t.advance(Duration::from_secs(3));
    assert!(t.take(again.conn).is_empty(), "no late resume failure");
}

#[test]
fn a_takeover_the_old_connection_never_answers_fails_after_a_while() {
    let mut t = Harness::new(10);
    let mut alice = t.in_room(1, "alice");
    let again = t.authenticated(2);
    let id = alice.session.detach().expect("resumable").id().to_owned();
    t.run(Input::Resume {
        conn: again.conn,
        previd: id,
    });
    t.advance(TAKEOVER_WAIT - Duration::from_millis(1));
    assert!(t.take(again.conn).is_empty());
    t.advance(Duration::from_millis(1));
    assert!(matches!(
        t.take(again.conn).as_slice(),
        [ToSession::ResumeFailed]
    ));
}

#[test]
fn a_live_session_keeps_its_resource_and_a_detached_one_gives_way() {
    let mut t = Harness::new(10);
    let mut alice = t.in_room(1, "alice");
    let bob = t.in_room(2, "bob");
    let jid = alice.session.jid().cloned().unwrap();
    let newcomer = t.authenticated(3).conn;
    let bind = |t: &mut Harness| {
        t.run(Input::Bind {
            conn: newcomer,
            identity: Identity::bare(jid.clone(), IdentityKind::Guest),
        });
        match t.take(newcomer).as_slice() {
            [ToSession::BindResult(result)] => result.is_ok(),
            other => panic!("{other:?}"),
        }
    };
    assert!(!bind(&mut t), "a live session wins");
    t.cut(&mut alice, vec![]);
    t.told.clear();
    assert!(bind(&mut t), "a detached one gives way");
    // The detached session ended for good: its rooms saw it leave, no timer is left for it.
    assert!(left(&t.stanzas(bob.conn), "alice"));
    t.advance(TIMEOUT);
    assert!(
        t.hub
            .metrics_text()
            .contains("convene_xmpp_parked_sessions 0")
    );
}

#[test]
fn a_connection_whose_queue_overflows_is_ended() {
    let mut t = Harness::new(10);
    let mut alice = t.in_room(1, "alice");
    let bob = t.in_room(2, "bob");
    t.told.clear();
    t.run(Input::Overflowed { conn: alice.conn });
    assert!(matches!(
        t.take(alice.conn).as_slice(),
        [ToSession::End(StreamError::ResourceConstraint)]
    ));
    assert!(left(&t.stanzas(bob.conn), "alice"));
    // Its connection then reports a resumable session: there is nothing left to keep.
    t.cut(&mut alice, vec![]);
    assert!(t.hub.poll_timeout().is_none());
    assert_eq!(t.hub.connection_count(), 1);
}

#[test]
fn a_parked_session_that_gathers_too_much_is_ended() {
    let mut t = Harness::new(10);
    let mut alice = t.in_room(1, "alice");
    let mut bob = t.in_room(2, "bob");
    t.cut(&mut alice, vec![]);
    for i in 0..=10 {
        t.groupchat(&mut bob, &format!("m{i}"));
    }
    assert!(left(&t.stanzas(bob.conn), "alice"));
}

#[test]
fn unauthenticated_connections_per_address_are_limited() {
    let mut t = Harness::new(2);
    assert_eq!(t.open(1), Ok(()));
    assert_eq!(t.open(2), Ok(()));
    assert_eq!(t.open(3), Err(StreamError::PolicyViolation));
    t.run(Input::Closed {
        conn: ConnId(3),
        ending: Ending {
            error: Some(StreamError::PolicyViolation),
            rate_limited: false,
        },
    });
    // Once one has logged in, there is room for another.
    t.run(Input::Authenticated {
        conn: ConnId(1),
        login: Default::default(),
    });
    assert_eq!(t.open(4), Ok(()));
    let metrics = t.hub.metrics_text();
    assert!(metrics.contains("convene_xmpp_stream_errors_total{condition=\"policy-violation\"} 1"));
    assert!(metrics.contains("convene_xmpp_connections{transport=\"tcp\"} 3"));
}

#[test]
fn shutdown_ends_every_session_drops_the_parked_ones_and_refuses_newcomers() {
    let mut t = Harness::new(10);
    let mut alice = t.in_room(1, "alice");
    let bob = t.in_room(2, "bob");
    t.cut(&mut alice, vec![]);
    t.told.clear();
    t.run(Input::Shutdown);
    let told = t.take(bob.conn);
    assert!(matches!(
        told.last(),
        Some(ToSession::End(StreamError::SystemShutdown))
    ));
    assert!(
        t.hub
            .metrics_text()
            .contains("convene_xmpp_parked_sessions 0")
    );
    assert_eq!(t.open(3), Err(StreamError::SystemShutdown));
}

#[test]
fn every_metric_has_help_and_type() {
    let t = Harness::new(10);
    let text = t.hub.metrics_text();
    let mut documented = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            assert!(matches!(parts.next(), Some("gauge" | "counter")), "{line}");
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            documented.insert(name.to_owned());
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(documented.contains(name), "{line}");
            assert!(
                line.rsplit(' ').next().unwrap().parse::<u64>().is_ok(),
                "{line}"
            );
        }
    }
    for name in [
        "connections",
        "sessions",
        "parked_sessions",
        "rooms",
        "occupants",
        "stanzas_in_total",
        "stanzas_out_total",
        "stanza_errors_total",
        "stream_errors_total",
        "throttled_total",
        "resumed_total",
    ] {
        assert!(
            documented.contains(&format!("convene_xmpp_{name}")),
            "{name}"
        );
    }
}

#[test]
fn an_internal_entity_speaks_only_from_its_own_addresses() {
    let mut t = Harness::new(10);
    let bob = t.in_room(2, "bob");
    let bob_jid = bob.session.jid().cloned().unwrap();
    let focus = Jid::new("focus@auth.d.test/focus").unwrap();
    let link = LinkId(0);
    t.run(Input::AttachInternal {
        link,
        addresses: vec![focus.clone()],
    });
    t.told.clear();
    for from in [focus.to_string(), "mallory@auth.d.test/x".to_owned()] {
        let stanza = xml(&format!(
            "<message xmlns='jabber:client' from='{from}' to='{bob_jid}'><body>hi</body></message>"
        ));
        t.run(Input::FromInternal { link, stanza });
    }
    let received = t.stanzas(bob.conn);
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(received[0].contains(&focus.to_string()));
}
