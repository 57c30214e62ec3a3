//! Scenario tests of the sans-IO focus with simulated time: participants join, accept,
//! share their screen and leave, and every other participant is kept in step.

mod common;

use std::time::Duration;

use common::*;
use convene_colibri::{
    BridgeError, BridgeEvent, BridgeRequest, ConferenceId, EndpointId, VideoType,
};
use convene_focus::Config;
use convene_focus::jingle::{Action, Jingle};

fn conference() -> ConferenceId {
    ConferenceId(ROOM.into())
}

fn endpoint(nick: &str) -> EndpointId {
    EndpointId(nick.into())
}

/// The receiver view of a participant that accepted with `session-accept.xml`: its audio
/// source, and the first simulcast layer of its camera with that layer's RTX.
fn receiver_view(nick: &str, base: u32) -> Vec<(String, u32)> {
    let ssrc = |suffix: &str| format!("{base}{suffix}").parse().unwrap();
    vec![
        (nick.to_owned(), ssrc("001")),
        (nick.to_owned(), ssrc("011")),
        (nick.to_owned(), ssrc("012")),
    ]
}

fn with_bridge(mut sources: Vec<(String, u32)>) -> Vec<(String, u32)> {
    sources.extend([("jvb".to_owned(), 1), ("jvb".to_owned(), 2)]);
    sources.sort();
    sources
}

/// Takes the one `action` each of `nicks` was sent, checking the sources it names.
fn take_one_each(
    h: &mut Harness,
    nicks: [&str; 2],
    action: Action,
    sources: &[(String, u32)],
) -> Vec<Jingle> {
    nicks
        .into_iter()
        .map(|nick| {
            let mut sent = take_jingle(&mut h.stanzas, nick, action);
            assert_eq!(sent.len(), 1, "{nick}");
            assert_eq!(owned_ssrcs(&sent[0]), sources, "{nick}");
            sent.remove(0)
        })
        .collect()
}

#[test]
fn the_conference_request_is_answered_once_the_focus_is_in_the_room() {
    let mut h = Harness::new(Config::default());
    let answer = h.open_conference();
    assert_result(&answer);
    assert_eq!(answer.attr("from"), Some("focus.example.com"));
    assert_eq!(answer.attr("to"), Some("alice@example.com/web"));
    let conference = answer
        .get_child("conference", "http://jitsi.org/protocol/focus")
        .unwrap();
    assert_eq!(conference.attr("ready"), Some("true"));
    assert_eq!(conference.attr("focusjid"), Some("focus@auth.example.com"));
    assert_eq!(conference.attr("room"), Some(ROOM));

    // A second request for the same room is answered at once.
    h.send_xml(&format!(
        r#"<iq xmlns="jabber:client" type="set" id="c2" from="anon2@example.com/r" to="focus.example.com">
             <conference xmlns="http://jitsi.org/protocol/focus" room="{ROOM}"/></iq>"#
    ));
    assert_result(&take_reply(&mut h.stanzas, "c2"));
    assert!(h.stanzas.is_empty(), "no second join: {:?}", h.stanzas);
}

#[test]
fn a_room_of_another_service_is_refused() {
    let mut h = Harness::new(Config::default());
    let reply = h.request_xml(
        r#"<iq xmlns="jabber:client" type="set" id="c1" from="anon1@example.com/r1" to="focus.example.com">
             <conference xmlns="http://jitsi.org/protocol/focus" room="room@elsewhere.org"/></iq>"#,
    );
    assert_eq!(error_of(&reply).0, "bad-request");
    assert!(h.stanzas.is_empty());
}

#[test]
fn a_join_the_muc_never_confirms_is_answered_not_ready() {
    let mut h = Harness::new(Config::default());
    h.conference_request("alice");
    h.take_stanzas();
    assert!(h.focus.poll_timeout().is_some());
    h.advance(Duration::from_secs(5));
    assert!(h.stanzas.is_empty(), "still waiting after 5 s");
    h.advance(Duration::from_secs(6));
    let answer = take_reply(&mut h.stanzas, "c-alice");
    let conference = answer
        .get_child("conference", "http://jitsi.org/protocol/focus")
        .unwrap();
    assert_eq!(conference.attr("ready"), Some("false"));
    assert_eq!(h.focus.poll_timeout(), None);
}

#[test]
fn three_participants_join_share_and_leave() {
    let mut h = Harness::new(Config::default());
    h.open_conference();

    // A joins alone: owner grant, an endpoint, and an offer with only the bridge's sources.
    let offer_a = h.join("alice");
    let grant = h
        .stanzas
        .iter()
        .find(|s| s.has_child("query", "http://jabber.org/protocol/muc#admin"))
        .expect("owner granted to the first participant");
    assert_eq!(grant.attr("to"), Some(ROOM));
    let item = grant.children().next().unwrap().children().next().unwrap();
    assert_eq!(item.attr("affiliation"), Some("owner"));
    assert_eq!(item.attr("jid"), Some("alice@example.com"));
    h.take_stanzas();
    assert_eq!(
        h.take_bridge_log(),
        vec![BridgeRequest::AllocateEndpoint {
            conference: conference(),
            endpoint: endpoint("alice")
        }]
    );
    assert_eq!(owned_ssrcs(&offer_a), with_bridge(vec![]));
    let names: Vec<&str> = offer_a.contents.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["audio", "video"]);
    assert_eq!(
        offer_a.bundle.as_deref(),
        Some(&["audio".to_owned(), "video".to_owned()][..])
    );
    let bridge_session = offer_a.bridge_session.as_ref().unwrap();
    assert!(bridge_session.id.is_some());
    for content in &offer_a.contents {
        let description = content.description.as_ref().unwrap();
        assert!(description.rtcp_mux, "rtcp-mux in every description");
        let transport = content.transport.as_ref().unwrap();
        assert_eq!(transport.ufrag.as_deref(), Some("bralice"));
        assert_eq!(
            transport.web_socket.as_deref(),
            Some("ws://127.0.0.1:8080/colibri-ws/default/standup/alice?pwd=x")
        );
        assert_eq!(transport.candidates.len(), 1);
        assert_eq!(
            transport.fingerprints[0].setup,
            convene_colibri::DtlsSetup::Actpass
        );
    }

    // A accepts: the bridge is configured with its transport and all its sources.
    assert_result(&h.request("session-accept", "alice", &offer_a.sid, 1));
    let log = h.take_bridge_log();
    let [
        BridgeRequest::ConfigureEndpoint {
            transport,
            media,
            sources,
            ..
        },
    ] = &log[..]
    else {
        panic!("expected ConfigureEndpoint, got {log:?}");
    };
    assert_eq!(transport.ufrag, "gi+W");
    assert_eq!(media.len(), 2);
    assert_eq!(sources.sources.len(), 7);
    assert_eq!(sources.groups.len(), 4);
    assert!(h.stanzas.is_empty(), "nobody else to tell: {:?}", h.stanzas);

    // Trickled candidates go to the bridge; the mDNS one is dropped.
    assert_result(&h.request("transport-info", "alice", &offer_a.sid, 1));
    let log = h.take_bridge_log();
    let [BridgeRequest::AddRemoteCandidates { candidates, .. }] = &log[..] else {
        panic!("expected AddRemoteCandidates, got {log:?}");
    };
    assert_eq!(candidates.len(), 2);
    assert_eq!(candidates[1].tcptype.as_deref(), Some("passive"));

    // B joins: its offer lists A's receiver view; after B accepts, A learns B's sources.
    let offer_b = h.join("bob");
    assert_eq!(
        owned_ssrcs(&offer_b),
        with_bridge(receiver_view("alice", 1))
    );
    assert_eq!(fid_groups(&offer_b), vec![vec![1011, 1012]]);
    assert_result(&h.request("session-accept", "bob", &offer_b.sid, 2));
    let adds = take_jingle(&mut h.stanzas, "alice", Action::SourceAdd);
    assert_eq!(adds.len(), 1);
    assert_eq!(adds[0].sid, offer_a.sid);
    assert_eq!(owned_ssrcs(&adds[0]), receiver_view("bob", 2));
    assert!(
        h.stanzas.is_empty(),
        "bob already knew alice: {:?}",
        h.stanzas
    );

    // C joins: offered A and B; after C accepts, A and B learn C's sources.
    let offer_c = h.join("carol");
    let mut expected = receiver_view("alice", 1);
    expected.extend(receiver_view("bob", 2));
    assert_eq!(owned_ssrcs(&offer_c), with_bridge(expected));
    let source = offer_c.contents[1]
        .description
        .as_ref()
        .unwrap()
        .sources
        .iter()
        .find(|s| s.source.ssrc == 2011)
        .unwrap();
    assert_eq!(source.source.name.as_deref(), Some("bob-v0"));
    assert_eq!(source.source.msid.as_deref(), Some("bob-video-0-1 9a4e-v0"));
    assert_result(&h.request("session-accept", "carol", &offer_c.sid, 3));
    let carol_view = receiver_view("carol", 3);
    take_one_each(&mut h, ["alice", "bob"], Action::SourceAdd, &carol_view);
    assert!(h.stanzas.is_empty(), "{:?}", h.stanzas);
    h.take_bridge_log();

    // A shares its screen: a new `-v1` desktop source reaches B and C.
    assert_result(&h.request("source-add-desktop", "alice", &offer_a.sid, 1));
    assert!(
        matches!(&h.take_bridge_log()[..], [BridgeRequest::AddSources { sources, .. }] if sources.sources.len() == 2)
    );
    let screen = [("alice".to_owned(), 1077), ("alice".to_owned(), 1078)];
    for add in take_one_each(&mut h, ["bob", "carol"], Action::SourceAdd, &screen) {
        let desktop = &add.contents[0].description.as_ref().unwrap().sources[0].source;
        assert_eq!(desktop.video_type, Some(VideoType::Desktop));
        assert_eq!(desktop.name.as_deref(), Some("alice-v1"));
        assert_eq!(fid_groups(&add), vec![vec![1077, 1078]]);
    }
    assert!(h.stanzas.is_empty(), "{:?}", h.stanzas);

    // ... and stops it.
    assert_result(&h.request("source-remove-desktop", "alice", &offer_a.sid, 1));
    assert!(matches!(
        &h.take_bridge_log()[..],
        [BridgeRequest::RemoveSources { .. }]
    ));
    take_one_each(&mut h, ["bob", "carol"], Action::SourceRemove, &screen);

    // C leaves: its endpoint expires and the others drop its sources.
    h.leave("carol");
    assert_eq!(
        h.take_bridge_log(),
        vec![BridgeRequest::ExpireEndpoint {
            conference: conference(),
            endpoint: endpoint("carol")
        }]
    );
    take_one_each(&mut h, ["alice", "bob"], Action::SourceRemove, &carol_view);
    assert!(h.stanzas.is_empty(), "{:?}", h.stanzas);
    h.run_bridge();

    // B, then A leave: the conference ends and the focus leaves the room.
    h.leave("bob");
    assert_eq!(
        take_jingle(&mut h.stanzas, "alice", Action::SourceRemove).len(),
        1
    );
    h.run_bridge();
    h.leave("alice");
    h.run_bridge();
    let log = h.take_bridge_log();
    assert_eq!(
        log[log.len() - 2..],
        [
            BridgeRequest::ExpireEndpoint {
                conference: conference(),
                endpoint: endpoint("alice")
            },
            BridgeRequest::ExpireConference {
                conference: conference()
            }
        ]
    );
    let leave = h.take_stanzas();
    assert!(
        leave.iter().any(|s| s.name() == "presence"
            && s.attr("type") == Some("unavailable")
            && s.attr("to") == Some(&format!("{ROOM}/focus"))),
        "{leave:?}"
    );
}

#[test]
fn sources_are_held_back_until_the_session_is_active() {
    let mut h = Harness::new(Config::default());
    h.open_conference();
    let offer_a = h.join("alice");
    h.take_stanzas();
    let offer_b = h.join("bob");
    // B has not accepted yet when A's sources appear: B gets nothing now...
    assert_result(&h.request("session-accept", "alice", &offer_a.sid, 1));
    assert!(take_jingle(&mut h.stanzas, "bob", Action::SourceAdd).is_empty());
    assert_eq!(owned_ssrcs(&offer_b), with_bridge(vec![]));
    // ... and everything at once when it accepts.
    assert_result(&h.request("session-accept", "bob", &offer_b.sid, 2));
    let adds = take_jingle(&mut h.stanzas, "bob", Action::SourceAdd);
    assert_eq!(adds.len(), 1);
    assert_eq!(owned_ssrcs(&adds[0]), receiver_view("alice", 1));
    let adds = take_jingle(&mut h.stanzas, "alice", Action::SourceAdd);
    assert_eq!(owned_ssrcs(&adds[0]), receiver_view("bob", 2));
}

#[test]
fn a_restart_request_gives_a_fresh_session_within_the_rate_limit() {
    let (mut h, offer_a, _) = two_active();

    // A wrong bridge-session id is refused and changes nothing.
    let wrong = stanza("session-terminate-restart", "alice", &offer_a.sid, 1)
        .replace("{BRIDGE_SESSION}", "nope");
    assert_eq!(error_of(&h.request_xml(&wrong)).0, "item-not-found");
    assert!(h.take_bridge_log().is_empty());

    let mut sid = offer_a.sid.clone();
    let mut bridge_session = offer_a.bridge_session.clone().unwrap().id.unwrap();
    for _ in 0..3 {
        let restart = stanza("session-terminate-restart", "alice", &sid, 1)
            .replace("{BRIDGE_SESSION}", &bridge_session);
        assert_result(&h.request_xml(&restart));
        let removes = take_jingle(&mut h.stanzas, "bob", Action::SourceRemove);
        assert_eq!(owned_ssrcs(&removes[0]), receiver_view("alice", 1));
        assert!(matches!(
            &h.take_bridge_log()[..],
            [
                BridgeRequest::ExpireEndpoint { .. },
                BridgeRequest::AllocateEndpoint { .. }
            ]
        ));
        let offers = take_jingle(&mut h.stanzas, "alice", Action::SessionInitiate);
        assert_eq!(
            owned_ssrcs(&offers[0]),
            with_bridge(receiver_view("bob", 2))
        );
        assert_ne!(offers[0].sid, sid);
        sid = offers[0].sid.clone();
        bridge_session = offers[0].bridge_session.clone().unwrap().id.unwrap();
        assert_result(&h.request("session-accept", "alice", &sid, 1));
        h.take_stanzas();
        h.take_bridge_log();
    }
    let restart = stanza("session-terminate-restart", "alice", &sid, 1)
        .replace("{BRIDGE_SESSION}", &bridge_session);
    assert_eq!(error_of(&h.request_xml(&restart)).0, "resource-constraint");
    // After the window, restarts are allowed again.
    h.advance(Duration::from_secs(61));
    assert_result(&h.request_xml(&restart));
}

#[test]
fn an_endpoint_the_bridge_expires_is_offered_a_new_session() {
    let (mut h, _, offer_b) = two_active();

    h.focus.handle_bridge_event(
        h.now,
        &bridge(),
        BridgeEvent::EndpointExpired {
            conference: conference(),
            endpoint: endpoint("bob"),
        },
    );
    while let Some(output) = h.focus.poll_output() {
        match output {
            convene_focus::Output::Stanza(s) => h.stanzas.push(s),
            convene_focus::Output::Bridge { request, .. } => {
                assert_eq!(
                    request,
                    BridgeRequest::AllocateEndpoint {
                        conference: conference(),
                        endpoint: endpoint("bob")
                    }
                );
            }
        }
    }
    let terminates = take_jingle(&mut h.stanzas, "bob", Action::SessionTerminate);
    assert_eq!(terminates.len(), 1);
    assert_eq!(terminates[0].sid, offer_b.sid);
    let removes = take_jingle(&mut h.stanzas, "alice", Action::SourceRemove);
    assert_eq!(owned_ssrcs(&removes[0]), receiver_view("bob", 2));
}

#[test]
fn owner_passes_to_the_next_participant() {
    let mut h = Harness::new(Config::default());
    h.open_conference();
    h.join("alice");
    h.join("bob");
    let grants = |stanzas: &[minidom::Element]| -> Vec<String> {
        stanzas
            .iter()
            .filter_map(|s| s.get_child("query", "http://jabber.org/protocol/muc#admin"))
            .map(|q| q.children().next().unwrap().attr("jid").unwrap().to_owned())
            .collect()
    };
    assert_eq!(grants(&h.take_stanzas()), ["alice@example.com"]);
    // The MUC applies the grant.
    h.presence("alice", "owner", "moderator");
    h.leave("alice");
    assert_eq!(grants(&h.take_stanzas()), ["bob@example.com"]);

    let mut h = Harness::new(Config {
        auto_owner: false,
        ..Config::default()
    });
    h.open_conference();
    h.join("alice");
    assert!(grants(&h.take_stanzas()).is_empty());
}

#[test]
fn every_iq_is_answered() {
    let mut h = Harness::new(Config::default());
    h.open_conference();
    let reply = h.request_xml(&format!(
        r#"<iq xmlns="jabber:client" type="get" id="p1" from="{ROOM}/x" to="{FOCUS_FULL}"><ping xmlns="urn:xmpp:ping"/></iq>"#
    ));
    assert_result(&reply);
    let reply = h.request_xml(
        r#"<iq xmlns="jabber:client" type="get" id="d1" from="a@example.com/r" to="focus.example.com"><query xmlns="http://jabber.org/protocol/disco#items"/></iq>"#,
    );
    assert_eq!(error_of(&reply).0, "service-unavailable");
    let reply = h.request_xml(
        r#"<iq xmlns="jabber:client" type="set" id="e1" from="a@example.com/r" to="focus.example.com"/>"#,
    );
    assert_eq!(error_of(&reply).0, "bad-request");
}

#[test]
fn a_conference_nobody_joins_ends_after_the_grace_period() {
    let mut h = Harness::new(Config::default());
    h.open_conference();
    h.advance(Duration::from_secs(19));
    assert!(h.stanzas.is_empty(), "still waiting for alice");
    h.advance(Duration::from_secs(2));
    let leave = h.take_stanzas();
    assert_eq!(leave.len(), 1);
    assert_eq!(leave[0].attr("type"), Some("unavailable"));
    assert!(
        h.take_bridge_log().is_empty(),
        "the bridge never heard of it"
    );
    assert_eq!(h.focus.poll_timeout(), None);
}

#[test]
fn the_focus_stays_for_a_client_on_its_way() {
    let mut h = Harness::new(Config::default());
    h.open_conference();
    h.join("alice");
    h.conference_request("bob");
    assert_result(&take_reply(&mut h.stanzas, "c-bob"));
    h.leave("alice");
    h.take_stanzas();
    assert!(
        !h.take_bridge_log()
            .contains(&BridgeRequest::ExpireConference {
                conference: conference()
            }),
        "bob is on his way"
    );
    let offer = h.join("bob");
    assert_eq!(owned_ssrcs(&offer), with_bridge(vec![]));
    h.take_stanzas();
    h.leave("bob");
    assert!(
        h.take_bridge_log()
            .contains(&BridgeRequest::ExpireConference {
                conference: conference()
            })
    );
    assert!(
        h.take_stanzas()
            .iter()
            .any(|s| s.attr("type") == Some("unavailable"))
    );
}

#[test]
fn a_failed_allocation_is_retried_a_few_times() {
    let mut h = Harness::new(Config::default());
    h.open_conference();
    h.presence("alice", "none", "participant");
    h.take_stanzas();
    for attempt in 0..3 {
        h.fail_bridge(BridgeError::Unavailable);
        assert!(h.stanzas.is_empty(), "attempt {attempt}: no offer");
        assert!(
            h.focus.poll_timeout().is_some(),
            "attempt {attempt}: a retry is planned"
        );
        h.advance(Duration::from_secs(2));
    }
    // The budget is spent: no more retries...
    h.fail_bridge(BridgeError::Unavailable);
    assert!(h.stanzas.is_empty());
    assert_eq!(h.focus.poll_timeout(), None);
}

#[test]
fn an_allocation_succeeds_on_retry() {
    let mut h = Harness::new(Config::default());
    h.open_conference();
    h.presence("alice", "none", "participant");
    h.take_stanzas();
    h.fail_bridge(BridgeError::Unavailable);
    h.advance(Duration::from_secs(2));
    h.run_bridge();
    assert_eq!(
        take_jingle(&mut h.stanzas, "alice", Action::SessionInitiate).len(),
        1
    );
}

#[test]
fn conferences_are_bounded() {
    let mut h = Harness::new(Config {
        max_conferences: 2,
        ..Config::default()
    });
    let request = |room: &str| {
        format!(
            r#"<iq xmlns="jabber:client" type="set" id="c-{room}" from="mallory@example.com/x" to="focus.example.com">
                 <conference xmlns="http://jitsi.org/protocol/focus" room="{room}@conference.example.com"/></iq>"#
        )
    };
    h.send_xml(&request("one"));
    h.send_xml(&request("two"));
    assert_eq!(h.take_stanzas().len(), 2, "two joins");
    let reply = h.request_xml(&request("three"));
    assert_eq!(error_of(&reply).0, "resource-constraint");
    assert!(h.stanzas.is_empty(), "no third join");
    // Rooms nobody joins end, which makes room again.
    h.advance(Duration::from_secs(11));
    h.take_stanzas();
    h.send_xml(&request("three"));
    assert_eq!(h.take_stanzas().len(), 1);
}

#[test]
fn a_room_reopened_at_once_survives_the_echo_of_leaving_it() {
    let mut h = Harness::new(Config::default());
    h.open_conference();
    h.join("alice");
    h.leave("alice");
    h.take_stanzas();
    // A new request before the MUC has processed the focus's leave...
    h.conference_request("bob");
    h.take_stanzas();
    // ... then the MUC's answer to the leave, then to the new join.
    h.send_xml(&format!(
        r#"<presence xmlns="jabber:client" type="unavailable" from="{ROOM}/focus" to="{FOCUS_FULL}">
             <x xmlns="http://jabber.org/protocol/muc#user"><item affiliation="owner" role="none"/><status code="110"/></x></presence>"#
    ));
    assert!(h.stanzas.is_empty(), "{:?}", h.stanzas);
    h.send_xml(&format!(
        r#"<presence xmlns="jabber:client" from="{ROOM}/focus" to="{FOCUS_FULL}">
             <x xmlns="http://jabber.org/protocol/muc#user"><item affiliation="owner" role="moderator"/><status code="110"/></x></presence>"#
    ));
    assert_result(&take_reply(&mut h.stanzas, "c-bob"));
    h.join("bob");
}

#[test]
fn bridge_requests_of_one_conference_run_one_at_a_time() {
    let mut h = Harness::new(Config::default());
    h.open_conference();
    h.presence("alice", "none", "participant");
    h.presence("bob", "none", "participant");
    h.leave("bob");
    assert_eq!(
        h.in_flight(),
        vec![BridgeRequest::AllocateEndpoint {
            conference: conference(),
            endpoint: endpoint("alice")
        }],
        "bob's allocation and expiry wait for alice's allocation"
    );
    // Another conference does not wait.
    h.send_xml(
        r#"<iq xmlns="jabber:client" type="set" id="o1" from="zoe@example.com/web" to="focus.example.com">
             <conference xmlns="http://jitsi.org/protocol/focus" room="other@conference.example.com"/></iq>"#,
    );
    h.send_xml(&format!(
        r#"<presence xmlns="jabber:client" from="other@conference.example.com/zoe" to="{FOCUS_FULL}">
             <x xmlns="http://jabber.org/protocol/muc#user"><item affiliation="none" role="participant" jid="zoe@example.com/web"/></x></presence>"#
    ));
    assert_eq!(h.in_flight().len(), 2);
    // Answered in order: allocate bob, then expire bob, never the other way round.
    let log = h.take_bridge_log();
    let standup: Vec<&BridgeRequest> = log
        .iter()
        .filter(|r| !matches!(r, BridgeRequest::AllocateEndpoint { endpoint, .. } if endpoint.0 == "zoe"))
        .collect();
    assert_eq!(
        standup,
        [
            &BridgeRequest::AllocateEndpoint {
                conference: conference(),
                endpoint: endpoint("alice")
            },
            &BridgeRequest::AllocateEndpoint {
                conference: conference(),
                endpoint: endpoint("bob")
            },
            &BridgeRequest::ExpireEndpoint {
                conference: conference(),
                endpoint: endpoint("bob")
            },
        ]
    );
    // Bob's stale allocation led to no offer.
    assert!(take_jingle(&mut h.stanzas, "bob", Action::SessionInitiate).is_empty());
    assert_eq!(
        take_jingle(&mut h.stanzas, "alice", Action::SessionInitiate).len(),
        1
    );
}
