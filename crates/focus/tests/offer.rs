//! What the focus offers: Jicofo's codecs and header extensions within what the real
//! bridge configures, each participant's video codecs ordered by the codec lists in presence.

mod common;

use common::*;
use convene_focus::Config;
use convene_focus::jingle::{Description, Jingle};

const DEPENDENCY_DESCRIPTOR: &str =
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";

fn description<'a>(jingle: &'a Jingle, media: &str) -> &'a Description {
    jingle
        .contents
        .iter()
        .find(|c| c.name == media)
        .and_then(|c| c.description.as_ref())
        .unwrap_or_else(|| panic!("no {media} description"))
}

fn payload_ids(jingle: &Jingle, media: &str) -> Vec<u8> {
    description(jingle, media)
        .payload_types
        .iter()
        .map(|pt| pt.id)
        .collect()
}

fn extensions(jingle: &Jingle, media: &str) -> Vec<(u8, String)> {
    description(jingle, media)
        .header_extensions
        .iter()
        .map(|e| (e.id, e.uri.clone()))
        .collect()
}

/// A harness whose bridge offers what `convene-bridge` really configures.
fn harness() -> Harness {
    let mut h = Harness::new(Config::default());
    h.bridge_media = Some(convene_bridge::media::offered_media());
    h.open_conference();
    h.take_stanzas();
    h
}

/// `nick` joins with `codecs` in its presence (none: no codec list) and is offered a session.
fn join_with(h: &mut Harness, nick: &str, codecs: Option<&str>) -> Jingle {
    let list = codecs
        .map(|c| format!("<jitsi_participant_codecList>{c}</jitsi_participant_codecList>"))
        .unwrap_or_default();
    h.send_xml(&format!(
        r#"<presence xmlns="jabber:client" from="{ROOM}/{nick}" to="{FOCUS_FULL}">
             <x xmlns="http://jabber.org/protocol/muc#user">
               <item affiliation="none" role="participant" jid="{nick}@example.com/web"/>
             </x>{list}</presence>"#
    ));
    h.run_bridge();
    let mut initiates = take_jingle(
        &mut h.stanzas,
        nick,
        convene_focus::jingle::Action::SessionInitiate,
    );
    assert_eq!(initiates.len(), 1, "one session-initiate for {nick}");
    initiates.remove(0)
}

#[test]
fn the_offer_is_jicofos_within_what_the_bridge_configures() {
    let mut h = harness();
    let offer = join_with(&mut h, "alice", None);
    // AV1, VP8, H.264, VP9, then their RTX payload types, as Jicofo lists them.
    assert_eq!(
        payload_ids(&offer, "video"),
        [41, 100, 107, 101, 42, 96, 99, 97]
    );
    assert_eq!(payload_ids(&offer, "audio"), [111]);
    let video = description(&offer, "video");
    for pt in video.payload_types.iter().filter(|pt| pt.name != "rtx") {
        let fb: Vec<_> = pt
            .rtcp_fb
            .iter()
            .map(|(t, s)| (t.as_str(), s.as_deref()))
            .collect();
        for wanted in [
            ("ccm", Some("fir")),
            ("nack", None),
            ("nack", Some("pli")),
            ("transport-cc", None),
        ] {
            assert!(fb.contains(&wanted), "{} lacks {wanted:?}: {fb:?}", pt.name);
        }
    }
    let uri = |s: &str| s.to_owned();
    assert_eq!(
        extensions(&offer, "audio"),
        [
            (1, uri("urn:ietf:params:rtp-hdrext:ssrc-audio-level")),
            (
                5,
                uri("http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01")
            ),
        ]
    );
    assert_eq!(
        extensions(&offer, "video"),
        [
            (11, uri(DEPENDENCY_DESCRIPTOR)),
            (
                3,
                uri("http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time")
            ),
            (
                5,
                uri("http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01")
            ),
        ]
    );
}

#[test]
fn codec_lists_in_presence_order_each_offer() {
    let mut h = harness();
    let video_order = |offer: &Jingle| -> Vec<String> {
        description(offer, "video")
            .payload_types
            .iter()
            .filter(|pt| pt.name != "rtx")
            .map(|pt| pt.name.clone())
            .collect()
    };
    // Alone: its own order.
    let alice = join_with(&mut h, "alice", Some("av1,vp9,vp8,h264"));
    assert_eq!(video_order(&alice), ["AV1", "VP9", "VP8", "H264"]);
    // Bob can only use VP8 (and says so): VP8 first, the rest offered after it.
    let bob = join_with(&mut h, "bob", Some("vp8"));
    assert_eq!(video_order(&bob), ["VP8", "AV1", "H264", "VP9"]);
    // Carol lists nothing: Jicofo's order, with what everyone lists (VP8) first.
    let carol = join_with(&mut h, "carol", None);
    assert_eq!(video_order(&carol), ["VP8", "AV1", "H264", "VP9"]);
    // Dave lists VP9 first, which Bob lacks: VP8 comes first.
    let dave = join_with(&mut h, "dave", Some("vp9,av1,vp8"));
    assert_eq!(video_order(&dave), ["VP8", "VP9", "AV1", "H264"]);
}
