//! Fairness on simulated time: the login throttle over parallel connections, the rooms'
//! fan-out budgets against flooders, and join storms.

use super::*;
use crate::fanout::FanoutConfig;

const BUDGETS: FanoutConfig = FanoutConfig {
    room_deliveries_per_second: 2000.0,
    room_delivery_burst: 2000.0,
    sender_broadcasts_per_second: 5.0,
    sender_broadcast_burst: 10.0,
    sender_queue: 50,
    room_joins_per_second: 5.0,
    room_join_burst: 10.0,
    join_queue: 20,
    address_joins_per_second: 100.0,
    address_join_burst: 1000.0,
};

fn login_attempt(t: &mut Harness, conn: ConnId) {
    t.run(Input::LoginAttempt {
        conn,
        username: Some("alice".into()),
    });
}

/// Whether `conn` was told to go on with its login.
fn admitted(t: &mut Harness, conn: ConnId) -> bool {
    let told = t.take(conn);
    assert!(told.len() <= 1, "{told:?}");
    matches!(told.as_slice(), [ToSession::LoginDelay(d)] if d.is_zero())
}

#[test]
fn parallel_guessers_get_a_handful_of_guesses_while_the_real_user_goes_on_at_once() {
    let mut t = Harness::new(100);
    let guesser: IpAddr = Ipv4Addr::new(192, 0, 2, 66).into();
    for n in 0..60 {
        t.open_from(n, guesser).unwrap();
        login_attempt(&mut t, ConnId(n));
    }
    // Each connection guesses again as soon as it may, for 10 s.
    let mut guesses = 0;
    for _ in 0..1000 {
        for n in 0..60 {
            let conn = ConnId(n);
            if admitted(&mut t, conn) {
                guesses += 1;
                t.run(Input::LoginFailed {
                    conn,
                    username: Some("alice".into()),
                });
                login_attempt(&mut t, conn);
            }
        }
        t.advance(Duration::from_millis(10));
    }
    assert!(guesses <= 8, "{guesses} guesses in 10 s");

    // The real user, from another address, is not held back by the account's failures.
    t.open_from(100, Ipv4Addr::new(198, 51, 100, 7).into())
        .unwrap();
    login_attempt(&mut t, ConnId(100));
    assert!(admitted(&mut t, ConnId(100)));
    t.run(Input::Authenticated {
        conn: ConnId(100),
        login: crate::session::Login {
            username: Some("alice".into()),
            token: false,
        },
    });
    // A guesser that goes away frees its turn for the next.
    for n in 0..60 {
        t.run(Input::Closed {
            conn: ConnId(n),
            ending: Ending::default(),
        });
    }
    assert_eq!(t.hub.throttle.waiting(), 0);
    assert!(
        !t.hub
            .metrics_text()
            .contains("convene_xmpp_throttled_total{reason=\"login\"} 0"),
        "held attempts are counted"
    );
}

/// The ids of the room messages among `stanzas`, in order.
fn bodies(stanzas: &[String]) -> Vec<String> {
    stanzas
        .iter()
        .filter(|s| s.contains("groupchat"))
        .filter_map(|s| {
            let start = s.find("<body>")? + 6;
            let end = s.find("</body>")?;
            Some(s[start..end].to_owned())
        })
        .collect()
}

#[test]
fn flooders_wait_their_turn_and_the_innocent_go_first_and_nothing_is_lost_or_doubled() {
    // Every occupant gets in at once here.
    let budgets = FanoutConfig {
        room_join_burst: 100.0,
        ..BUDGETS
    };
    let mut t = Harness::with_budgets(100, budgets);
    let mut innocent = t.in_room(1, "innocent");
    let reader = t.in_room(2, "reader");
    let mut flooders: Vec<Client> = (0..10)
        .map(|n| t.in_room(10 + n, &format!("flooder{n}")))
        .collect();
    t.take(reader.conn);
    // Each flooder sends 60 at once (its connection's burst would let it); then the
    // innocent speaks.
    for (n, flooder) in flooders.iter_mut().enumerate() {
        for i in 0..60 {
            t.groupchat(flooder, &format!("f{n}-{i}"));
        }
    }
    t.groupchat(&mut innocent, "innocent-0");
    let first = bodies(&t.stanzas(reader.conn));
    let position = first.iter().position(|b| b == "innocent-0").unwrap();
    // The room's burst (2000 deliveries of 12 occupants) went out; the rest waits.
    assert!(position <= 170, "behind {position} flood messages");
    assert!(first.len() < 200, "{} delivered at once", first.len());

    // Over the next eleven seconds the held ones are released fairly, each flooder's at its
    // sender rate (5/s: its 50 held take 10 s), the innocent keep going at once, and
    // everything arrives exactly once.
    let mut all = first;
    for second in 1..=11 {
        t.groupchat(&mut innocent, &format!("innocent-{second}"));
        let now = bodies(&t.stanzas(reader.conn));
        assert!(
            now.contains(&format!("innocent-{second}")),
            "the innocent's message goes out when sent"
        );
        all.extend(now);
        for _ in 0..10 {
            t.advance(Duration::from_millis(100));
            all.extend(bodies(&t.stanzas(reader.conn)));
        }
    }
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), all.len(), "nothing doubled");
    assert_eq!(all.len(), 600 + 12, "nothing lost");
    for n in 0..10 {
        let theirs: Vec<&String> = all
            .iter()
            .filter(|b| b.starts_with(&format!("f{n}-")))
            .collect();
        let expected: Vec<String> = (0..60).map(|i| format!("f{n}-{i}")).collect();
        assert_eq!(theirs, expected.iter().collect::<Vec<_>>(), "in order");
    }
    // Nobody was disconnected.
    for conn in [innocent.conn, reader.conn] {
        assert!(!t.take(conn).iter().any(|m| matches!(m, ToSession::End(_))));
    }
    assert!(
        t.hub
            .metrics_text()
            .contains("reason=\"room_broadcast_held\"} 500")
    );
}

#[test]
fn a_flooder_whose_queue_is_full_is_refused_and_what_it_held_goes_when_it_leaves() {
    let mut t = Harness::with_budgets(100, BUDGETS);
    let reader = t.in_room(1, "reader");
    let mut flooder = t.in_room(2, "flooder");
    t.take(flooder.conn);
    // The room's burst is ~1000 broadcasts of 2; the flooder's own 10, then 50 held.
    for i in 0..70 {
        t.groupchat(&mut flooder, &format!("m{i}"));
    }
    let refusals = t
        .stanzas(flooder.conn)
        .iter()
        .filter(|s| s.contains("policy-violation"))
        .count();
    assert_eq!(refusals, 10);
    t.take(reader.conn);
    // It goes away: what it still had held is not delivered.
    t.run(Input::Closed {
        conn: flooder.conn,
        ending: Ending::default(),
    });
    t.advance(Duration::from_secs(5));
    assert!(bodies(&t.stanzas(reader.conn)).is_empty());
    assert_eq!(t.hub.budgets.held(), 0);
}

#[test]
fn a_join_storm_waits_at_the_rooms_join_rate_and_presence_updates_coalesce() {
    let mut t = Harness::with_budgets(100, BUDGETS);
    let watcher = t.in_room(1, "watcher");
    t.take(watcher.conn);
    let mut joiners: Vec<Client> = (0..29)
        .map(|n| t.in_room(10 + n, &format!("j{n}")))
        .collect();
    let joined = |t: &mut Harness| {
        t.stanzas(watcher.conn)
            .iter()
            .filter(|s| s.contains("<presence") && !s.contains("unavailable"))
            .count()
    };
    // The room's join burst is 10 (the watcher took one); 20 wait, the join queue's size.
    assert_eq!(joined(&mut t), 9);
    // A waiting joiner that sends its presence again replaces its waiting join.
    t.send(
        &mut joiners[28],
        &format!("<presence to='{ROOM}/j28'><show>away</show></presence>"),
    );
    t.advance(Duration::from_secs(1));
    assert_eq!(joined(&mut t), 5, "five joins a second");
    // The rest over the next three seconds (and a little, for the timer's rounding).
    for _ in 0..32 {
        t.advance(Duration::from_millis(100));
    }
    assert_eq!(joined(&mut t), 15);
    let text = t.hub.metrics_text();
    assert!(text.contains("reason=\"room_join_held\"} 20"), "{text}");
    assert!(text.contains("reason=\"presence_coalesced\"} 1"), "{text}");
}
