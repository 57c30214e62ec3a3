//! Remote mute through the focus: who may mute whom, what the muted participant is told,
//! and what the bridge is asked to stop forwarding; forged requests change nothing.

mod common;

use common::*;
use convene_colibri::{BridgeRequest, ConferenceId, EndpointId, MediaKind};
use convene_focus::Config;
use minidom::Element;

const AUDIO: &str = "http://jitsi.org/jitmeet/audio";
const VIDEO: &str = "http://jitsi.org/jitmeet/video";
const DESKTOP: &str = "http://jitsi.org/jitmeet/desktop";

/// A conference with alice (moderator), bob and carol, each with a session on the bridge.
fn three() -> Harness {
    let mut h = Harness::new(Config::default());
    h.open_conference();
    for nick in ["alice", "bob", "carol"] {
        h.join(nick);
    }
    h.presence("alice", "owner", "moderator");
    h.take_stanzas();
    h.take_bridge_log();
    h
}

/// `from` asks the focus to set `target`'s media (`namespace`) muted (`value`).
fn mute(h: &mut Harness, from: &str, target: &str, namespace: &str, value: &str) -> Element {
    h.request_xml(&format!(
        r#"<iq xmlns="jabber:client" type="set" id="m-{from}-{target}-{value}" from="{ROOM}/{from}" to="{FOCUS_FULL}">
             <mute xmlns="{namespace}" jid="{ROOM}/{target}">{value}</mute></iq>"#
    ))
}

fn force_mute(nick: &str, kind: MediaKind, muted: bool) -> BridgeRequest {
    BridgeRequest::ForceMute {
        conference: ConferenceId(ROOM.into()),
        endpoint: EndpointId(nick.into()),
        kind,
        muted,
    }
}

/// The error condition of `reply`, and that nothing else happened.
fn refused(h: &mut Harness, reply: &Element) -> String {
    assert!(
        h.stanzas.is_empty(),
        "a refused request reached someone: {:?}",
        h.stanzas
    );
    assert_eq!(
        h.take_bridge_log(),
        [],
        "a refused request reached the bridge"
    );
    error_of(reply).0
}

#[test]
fn a_moderator_mutes_audio_and_video_and_the_bridge_stops_forwarding() {
    let mut h = three();
    assert_result(&mute(&mut h, "alice", "bob", AUDIO, "true"));
    let told = h.take_stanzas();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].attr("to"), Some(&format!("{ROOM}/bob")[..]));
    let payload = told[0].get_child("mute", AUDIO).unwrap();
    assert_eq!(payload.attr("actor"), Some(&format!("{ROOM}/alice")[..]));
    assert_eq!(payload.text(), "true");
    assert_eq!(
        h.take_bridge_log(),
        [force_mute("bob", MediaKind::Audio, true)]
    );

    assert_result(&mute(&mut h, "alice", "bob", VIDEO, "true"));
    assert!(h.take_stanzas()[0].get_child("mute", VIDEO).is_some());
    assert_eq!(
        h.take_bridge_log(),
        [force_mute("bob", MediaKind::Video, true)]
    );
    // The screen share is video too: already stopped on the bridge.
    assert_result(&mute(&mut h, "alice", "bob", DESKTOP, "true"));
    assert!(h.take_stanzas()[0].get_child("mute", DESKTOP).is_some());
    assert_eq!(h.take_bridge_log(), []);

    // Bob unmutes his camera: video stays stopped while his screen share is muted.
    assert_result(&mute(&mut h, "bob", "bob", VIDEO, "false"));
    assert_eq!(h.take_bridge_log(), []);
    assert_result(&mute(&mut h, "bob", "bob", DESKTOP, "false"));
    assert_eq!(
        h.take_bridge_log(),
        [force_mute("bob", MediaKind::Video, false)]
    );
    assert_result(&mute(&mut h, "bob", "bob", AUDIO, "false"));
    assert_eq!(
        h.take_bridge_log(),
        [force_mute("bob", MediaKind::Audio, false)]
    );
    assert!(h.stanzas.is_empty(), "unmuting oneself tells nobody");
}

#[test]
fn mute_everyone_is_one_request_per_participant() {
    let mut h = three();
    for nick in ["bob", "carol"] {
        assert_result(&mute(&mut h, "alice", nick, AUDIO, "true"));
    }
    assert_eq!(h.take_stanzas().len(), 2);
    assert_eq!(
        h.take_bridge_log(),
        [
            force_mute("bob", MediaKind::Audio, true),
            force_mute("carol", MediaKind::Audio, true)
        ]
    );
}

#[test]
fn forged_mute_requests_are_refused_and_change_nothing() {
    let mut h = three();
    // A participant mutes someone else.
    let reply = mute(&mut h, "bob", "alice", AUDIO, "true");
    assert_eq!(refused(&mut h, &reply), "not-allowed");
    // Nobody unmutes someone else, not even a moderator.
    assert_result(&mute(&mut h, "alice", "carol", VIDEO, "true"));
    h.take_stanzas();
    h.take_bridge_log();
    for from in ["alice", "bob"] {
        let reply = mute(&mut h, from, "carol", VIDEO, "false");
        assert_eq!(
            refused(&mut h, &reply),
            "not-allowed",
            "{from} unmuting carol"
        );
    }
    // Someone not in the room, a target elsewhere or absent, a value that is no boolean.
    let reply = mute(&mut h, "mallory", "bob", AUDIO, "true");
    assert_eq!(refused(&mut h, &reply), "not-allowed");
    let reply = h.request_xml(&format!(
        r#"<iq xmlns="jabber:client" type="set" id="x1" from="{ROOM}/alice" to="{FOCUS_FULL}">
             <mute xmlns="{AUDIO}" jid="other@conference.example.com/bob">true</mute></iq>"#
    ));
    assert_eq!(refused(&mut h, &reply), "bad-request");
    let reply = mute(&mut h, "alice", "nobody", AUDIO, "true");
    assert_eq!(refused(&mut h, &reply), "item-not-found");
    let reply = mute(&mut h, "alice", "bob", AUDIO, "maybe");
    assert_eq!(refused(&mut h, &reply), "bad-request");
    // Carol's video is still stopped: she alone may restart it.
    assert_result(&mute(&mut h, "carol", "carol", VIDEO, "false"));
    assert_eq!(
        h.take_bridge_log(),
        [force_mute("carol", MediaKind::Video, false)]
    );
}

#[test]
fn a_restarted_session_stays_muted_on_the_bridge_and_a_new_visit_starts_unmuted() {
    let (mut h, _, offer_b) = two_active();
    h.presence("alice", "owner", "moderator");
    assert_result(&mute(&mut h, "alice", "bob", AUDIO, "true"));
    h.take_stanzas();
    h.take_bridge_log();
    let restart = stanza("session-terminate-restart", "bob", &offer_b.sid, 2).replace(
        "{BRIDGE_SESSION}",
        &offer_b.bridge_session.unwrap().id.unwrap(),
    );
    assert_result(&h.request_xml(&restart));
    let log = h.take_bridge_log();
    assert!(
        matches!(
            &log[..],
            [
                BridgeRequest::ExpireEndpoint { .. },
                BridgeRequest::AllocateEndpoint { .. },
                forced,
            ] if *forced == force_mute("bob", MediaKind::Audio, true)
        ),
        "{log:?}"
    );
    // Leaving and coming back is a new participant, unmuted, as in Jicofo.
    h.leave("bob");
    h.take_stanzas();
    h.take_bridge_log();
    h.join("bob");
    let log = h.take_bridge_log();
    assert!(
        !log.iter()
            .any(|r| matches!(r, BridgeRequest::ForceMute { .. })),
        "{log:?}"
    );
}
