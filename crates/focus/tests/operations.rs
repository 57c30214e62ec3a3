//! The focus's operations: several bridges, metrics and shutdown, on the sans-IO core and on
//! the running task's handle.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use convene_colibri::{
    BoxFuture, BridgeClient, BridgeError, BridgeEvent, BridgeId, BridgeRequest, BridgeResponse,
    ConferenceId, EndpointId,
};
use convene_focus::jingle::Action;
use convene_focus::{BridgeConnection, Config, JingleErrorKind, Metrics, StanzaLink};
use minidom::Element;
use tokio::sync::mpsc;

const OTHER: &str = "other@conference.example.com";

fn expired(room: &str, nick: &str) -> BridgeEvent {
    BridgeEvent::EndpointExpired {
        conference: ConferenceId(room.into()),
        endpoint: EndpointId(nick.into()),
    }
}

#[test]
fn each_conference_stays_on_the_bridge_it_was_placed_on() {
    let (one, two) = (BridgeId("jvb1".into()), BridgeId("jvb2".into()));
    let mut h = Harness::with_bridges(Config::default(), &[one.clone(), two.clone()]);
    h.open_room(ROOM, "alice");
    h.open_room(OTHER, "zoe");
    h.join("alice");
    h.presence_in(OTHER, "zoe", "none", "participant");
    h.run_bridge();
    h.leave("alice");
    h.run_bridge();
    let placed: Vec<(&str, &BridgeId)> = h
        .bridge_log
        .iter()
        .map(|request| request.conference().0.as_str())
        .zip(&h.bridge_of)
        .collect();
    assert!(placed.iter().any(|(room, _)| *room == OTHER));
    for (room, bridge) in placed {
        let expected = if room == ROOM { &one } else { &two };
        assert_eq!(bridge, expected, "{room}");
    }
    // alice's conference ended with her; zoe's events come back from her bridge only.
    h.take_stanzas();
    h.focus
        .handle_bridge_event(h.now, &one, expired(OTHER, "zoe"));
    h.drain();
    assert!(
        h.stanzas.is_empty(),
        "an event from another bridge is ignored"
    );
    h.focus
        .handle_bridge_event(h.now, &two, expired(OTHER, "zoe"));
    h.drain();
    let terminate = h
        .stanzas
        .iter()
        .filter_map(|s| s.get_child("jingle", JINGLE))
        .any(|j| j.attr("action") == Some("session-terminate"));
    assert!(terminate, "zoe's session is restarted: {:?}", h.stanzas);
    assert_eq!(h.in_flight().len(), 1, "a new allocation for zoe");
    assert_eq!(h.bridge_of.last(), Some(&two));
}

#[test]
fn a_failing_bridge_is_counted_and_the_participant_retried() {
    let mut h = Harness::new(Config::default());
    h.open_conference();
    h.presence("alice", "none", "participant");
    h.fail_bridge(BridgeError::Unavailable);
    assert_eq!(
        h.focus.metrics().jingle_errors,
        vec![(JingleErrorKind::BridgeFailure, 1)]
    );
    h.advance(Duration::from_secs(3));
    assert_eq!(h.in_flight().len(), 1, "the allocation is retried");
}

#[test]
fn metrics_count_conferences_participants_requests_and_jingle_errors() {
    let (mut h, offer_a, _) = two_active();
    h.open_room(OTHER, "zoe");
    // A session-accept for a session that is already active, and one for no session at all.
    let reply = h.request("session-accept", "alice", &offer_a.sid, 1);
    assert_eq!(error_of(&reply).0, "unexpected-request");
    let reply = h.request("session-accept", "alice", "nosuchsid", 1);
    assert_eq!(error_of(&reply), ("item-not-found".into(), true));
    assert_eq!(
        h.focus.metrics(),
        Metrics {
            conferences: 2,
            participants: 2,
            conference_requests: 2,
            jingle_errors: vec![
                (JingleErrorKind::UnknownSession, 1),
                (JingleErrorKind::Refused(Action::SessionAccept), 1),
            ],
        }
    );
    h.leave("alice");
    h.leave("bob");
    let metrics = h.focus.metrics();
    assert_eq!((metrics.conferences, metrics.participants), (1, 0));
}

#[test]
fn after_shutdown_a_new_conference_is_refused_and_the_current_one_goes_on() {
    let (mut h, _, _) = two_active();
    h.focus.shutdown();
    h.room_request(OTHER, "zoe");
    let reply = take_reply(&mut h.stanzas, "c-zoe");
    assert_eq!(error_of(&reply).0, "service-unavailable");
    assert!(h.stanzas.is_empty(), "the focus does not join the new room");
    // A client re-asking for the running conference still gets it.
    h.conference_request("carol");
    let reply = take_reply(&mut h.stanzas, "c-carol");
    assert_result(&reply);
    assert_eq!(h.focus.conference_count(), 1);
    h.join("carol");
    for nick in ["alice", "bob", "carol"] {
        h.leave(nick);
    }
    assert_eq!(h.focus.conference_count(), 0);
}

#[test]
fn without_a_bridge_a_new_conference_is_refused() {
    let mut h = Harness::with_bridges(Config::default(), &[]);
    h.conference_request("alice");
    let reply = take_reply(&mut h.stanzas, "c-alice");
    assert_eq!(error_of(&reply).0, "service-unavailable");
}

/// A bridge that has gone away: every request fails as a dropped in-process bridge does.
struct GoneBridge;

impl BridgeClient for GoneBridge {
    fn request(
        &self,
        _request: BridgeRequest,
    ) -> BoxFuture<'static, Result<BridgeResponse, BridgeError>> {
        Box::pin(async { Err(BridgeError::Unavailable) })
    }
}

#[tokio::test]
async fn the_handle_reports_health_metrics_and_shuts_down_in_bounded_time() {
    let (to_server, mut from_focus) = mpsc::channel(16);
    let (to_focus, from_server) = mpsc::channel(16);
    let (_events_tx, events) = mpsc::channel(1);
    let focus = convene_focus::spawn(
        DOMAIN,
        Config::default(),
        StanzaLink {
            to_server,
            from_server,
        },
        vec![BridgeConnection {
            id: bridge(),
            client: Arc::new(GoneBridge),
            events,
        }],
    );
    focus.health().await.expect("a fresh focus is healthy");
    let text = focus.metrics_text().await;
    assert!(text.contains("# TYPE convene_focus_conferences gauge\nconvene_focus_conferences 0\n"));
    tokio::time::timeout(Duration::from_secs(2), focus.shutdown())
        .await
        .expect("with no conference, shutdown returns at once");
    let request: Element = parse(&format!(
        r#"<iq xmlns="jabber:client" type="set" id="c1" from="alice@example.com/web" to="focus.example.com">
             <conference xmlns="http://jitsi.org/protocol/focus" room="{ROOM}"/></iq>"#
    ));
    to_focus.send(request).await.unwrap();
    let reply = from_focus.recv().await.unwrap();
    assert_eq!(error_of(&reply).0, "service-unavailable");
    assert!(
        focus
            .metrics_text()
            .await
            .contains("convene_focus_conference_requests_total 1\n")
    );
    drop(to_focus);
    // The XMPP side closed: the task ends and the handle says so.
    tokio::time::timeout(Duration::from_secs(2), async {
        while focus.health().await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the focus stops with its XMPP link");
}
