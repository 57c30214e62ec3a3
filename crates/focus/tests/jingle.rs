//! The Jingle types against recorded-shape stanzas, and hostile Jingle from a participant:
//! each is answered with the right error and never disturbs the other participants.

mod common;

use common::*;
use convene_colibri::{DtlsSetup, GroupSemantics, MediaKind, VideoType};
use convene_focus::Config;
use convene_focus::ParseError;
use convene_focus::jingle::{Action, Jingle};
use minidom::Element;

fn jingle_of(xml: &str) -> Result<Jingle, ParseError> {
    Jingle::parse(parse(xml).get_child("jingle", JINGLE).unwrap())
}

#[test]
fn a_lib_jitsi_meet_session_accept_yields_transport_media_and_sources() {
    let jingle = jingle_of(&stanza("session-accept", "3f2a9c1e", "sid1", 7)).unwrap();
    assert_eq!(jingle.action, Action::SessionAccept);
    assert_eq!(jingle.sid, "sid1");
    let transport = jingle.transport().unwrap().description().unwrap();
    assert_eq!(transport.ufrag, "gi+W");
    assert_eq!(transport.pwd, "NmFZb2xsZWdlc3R1ZmZwd2Q0");
    assert_eq!(transport.fingerprints[0].setup, DtlsSetup::Active);
    assert_eq!(transport.fingerprints[0].hash, "sha-256");
    assert!(transport.fingerprints[0].value.starts_with("41:1D:0A"));

    let media = jingle.media();
    assert_eq!(media.len(), 2);
    assert_eq!(media[0].kind, MediaKind::Audio);
    let opus = &media[0].payload_types[0];
    assert_eq!(
        (opus.id, opus.name.as_str(), opus.clockrate, opus.channels),
        (111, "opus", 48000, Some(2))
    );
    assert_eq!(opus.parameters[1], ("useinbandfec".into(), "1".into()));
    assert_eq!(opus.rtcp_fb, vec![("transport-cc".into(), None)]);
    assert_eq!(
        media[1].payload_types[0].rtcp_fb[0],
        ("ccm".into(), Some("fir".into()))
    );
    assert_eq!(media[1].header_extensions[0].id, 3);

    let sources = jingle.sources();
    assert_eq!(sources.sources.len(), 7);
    let camera = sources.sources.iter().find(|s| s.ssrc == 7011).unwrap();
    assert_eq!(camera.kind, MediaKind::Video);
    assert_eq!(camera.name.as_deref(), Some("3f2a9c1e-v0"));
    assert_eq!(camera.video_type, Some(VideoType::Camera));
    assert_eq!(camera.msid.as_deref(), Some("3f2a9c1e-video-0-1 9a4e-v0"));
    let sim = sources
        .groups
        .iter()
        .find(|g| g.semantics == GroupSemantics::Sim)
        .unwrap();
    assert_eq!(sim.ssrcs, vec![7011, 7021, 7031]);
    assert_eq!(sources.groups.len(), 4);
    assert!(convene_focus::sources::validate("3f2a9c1e", &sources, []).is_ok());
}

#[test]
fn recorded_stanzas_survive_a_round_trip() {
    for name in [
        "session-accept",
        "transport-info",
        "source-add-desktop",
        "source-remove-desktop",
        "session-terminate-restart",
    ] {
        let jingle = jingle_of(&stanza(name, "ab12cd34", "s1", 5)).unwrap();
        let again = Jingle::parse(&jingle.to_element()).unwrap();
        assert_eq!(again, jingle, "{name}");
    }
    let terminate = jingle_of(&stanza("session-terminate-restart", "a", "s1", 5)).unwrap();
    let reason = terminate.reason.unwrap();
    assert_eq!(reason.condition, "connectivity-error");
    assert_eq!(reason.text.as_deref(), Some("ICE FAILED"));
    assert!(terminate.bridge_session.unwrap().restart);
}

#[test]
fn jitsi_quirks_are_accepted() {
    // Jicofo puts source parameters in the RTP namespace; RED has a nameless parameter;
    // mDNS candidates are skipped; unknown extensions are ignored.
    let jingle = jingle_of(
        r#"<iq xmlns="jabber:client"><jingle xmlns="urn:xmpp:jingle:1" action="source-add" sid="s">
             <content name="audio"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio">
               <payload-type id="112" name="red" clockrate="48000" channels="2"><parameter value="111/111"/></payload-type>
               <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="42" name="x-a0">
                 <parameter xmlns="urn:xmpp:jingle:apps:rtp:1" name="msid" value="s t"/>
                 <ssrc-info xmlns="http://jitsi.org/jitmeet" owner="room@conference.example.com/x"/>
               </source>
               <ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="FEC-FR"><source ssrc="42"/></ssrc-group>
               <something-new xmlns="urn:example"/>
             </description>
             <transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="u" pwd="p">
               <candidate component="1" foundation="1" generation="0" priority="1" protocol="UDP" type="host" ip="abc.local" port="5"/>
             </transport></content>
             <json-message xmlns="http://jitsi.org/jitmeet">{}</json-message>
           </jingle></iq>"#,
    )
    .unwrap();
    let description = jingle.contents[0].description.as_ref().unwrap();
    assert_eq!(
        description.payload_types[0].parameters,
        vec![(String::new(), "111/111".into())]
    );
    assert_eq!(description.sources[0].source.msid.as_deref(), Some("s t"));
    assert_eq!(
        description.sources[0].owner.as_deref(),
        Some("room@conference.example.com/x")
    );
    assert!(description.groups.is_empty());
    assert!(jingle.candidates().is_empty());
}

#[test]
fn malformed_jingle_is_a_typed_error() {
    let wrap = |jingle: &str| format!(r#"<iq xmlns="jabber:client">{jingle}</iq>"#);
    let cases = [
        (
            r#"<jingle xmlns="urn:xmpp:jingle:1" action="source-add"/>"#,
            ParseError::MissingAttribute {
                element: "jingle",
                attribute: "sid",
            },
        ),
        (
            r#"<jingle xmlns="urn:xmpp:jingle:1" action="content-add" sid="s"/>"#,
            ParseError::UnknownAction("content-add".into()),
        ),
        (
            r#"<jingle xmlns="urn:xmpp:jingle:1" action="source-add" sid="s"><content name="v"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video"><source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="-5"/></description></content></jingle>"#,
            ParseError::InvalidAttribute {
                element: "source",
                attribute: "ssrc",
            },
        ),
        (
            r#"<jingle xmlns="urn:xmpp:jingle:1" action="source-add" sid="s"><content name="v"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video"><source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="99999999999"/></description></content></jingle>"#,
            ParseError::InvalidAttribute {
                element: "source",
                attribute: "ssrc",
            },
        ),
        (
            r#"<jingle xmlns="urn:xmpp:jingle:1" action="source-add" sid="s"><content name="d"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="application"><source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="5"/></description></content></jingle>"#,
            ParseError::InvalidAttribute {
                element: "description",
                attribute: "media",
            },
        ),
        (
            r#"<jingle xmlns="urn:xmpp:jingle:1" action="transport-info" sid="s"><content name="0"><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1"><candidate component="1" foundation="1" priority="1" protocol="udp" type="host" ip="127.0.0.1"/></transport></content></jingle>"#,
            ParseError::MissingAttribute {
                element: "candidate",
                attribute: "port",
            },
        ),
        (
            r#"<jingle xmlns="urn:xmpp:jingle:1" action="session-accept" sid="s"><content name="0"><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1"><fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="holdconn">AB</fingerprint></transport></content></jingle>"#,
            ParseError::InvalidAttribute {
                element: "fingerprint",
                attribute: "setup",
            },
        ),
    ];
    for (jingle, expected) in cases {
        assert_eq!(jingle_of(&wrap(jingle)), Err(expected), "{jingle}");
    }
    let long = "x".repeat(2000);
    let oversized = wrap(&format!(
        r#"<jingle xmlns="urn:xmpp:jingle:1" action="source-add" sid="{long}"/>"#
    ));
    assert_eq!(
        jingle_of(&oversized),
        Err(ParseError::TooLong { element: "jingle" })
    );
    let many: String = (1..=70)
        .map(|s| format!(r#"<source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="{s}"/>"#))
        .collect();
    let flood = wrap(&format!(
        r#"<jingle xmlns="urn:xmpp:jingle:1" action="source-add" sid="s"><content name="v"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video">{many}</description></content></jingle>"#
    ));
    assert!(matches!(
        jingle_of(&flood),
        Err(ParseError::TooMany {
            element: "source",
            ..
        })
    ));
}

/// A source-add from `nick` with the given sources and groups.
fn source_add(nick: &str, sid: &str, id: &str, body: &str) -> String {
    format!(
        r#"<iq xmlns="jabber:client" type="set" id="{id}" from="{ROOM}/{nick}" to="{FOCUS_FULL}">
             <jingle xmlns="urn:xmpp:jingle:1" action="source-add" sid="{sid}">
               <content name="video"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video">{body}</description></content>
             </jingle></iq>"#
    )
}

fn video_source(ssrc: u32, msid: &str) -> String {
    format!(
        r#"<source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="{ssrc}" name="bob-v1"><parameter name="msid" value="{msid}"/></source>"#
    )
}

#[test]
fn hostile_jingle_is_refused_without_disturbing_the_others() {
    let (mut h, alice, bob) = two_active();
    let (sid_a, sid_b) = (alice.sid, bob.sid);
    let refused: Vec<(String, &str, bool)> = vec![
        // An answer for a session bob does not own.
        (
            stanza("session-accept", "bob", &sid_a, 2),
            "item-not-found",
            true,
        ),
        // A session nobody has.
        (
            stanza("transport-info", "bob", "no-such-sid", 2),
            "item-not-found",
            true,
        ),
        // A second accept of an active session.
        (
            stanza("session-accept", "bob", &sid_b, 2),
            "unexpected-request",
            false,
        ),
        // Jingle from someone who is not an occupant of a conference.
        (
            stanza("source-add-desktop", "bob", &sid_b, 2).replace(
                &format!("from=\"{ROOM}/bob\""),
                "from=\"mallory@example.com/x\"",
            ),
            "item-not-found",
            true,
        ),
        // Malformed: no sid.
        (
            stanza("source-add-desktop", "bob", &sid_b, 2).replace(&format!("sid=\"{sid_b}\""), ""),
            "bad-request",
            false,
        ),
        // An SSRC of alice's.
        (
            source_add("bob", &sid_b, "x1", &video_source(1011, "evil 1")),
            "bad-request",
            false,
        ),
        // alice's msid.
        (
            source_add(
                "bob",
                &sid_b,
                "x2",
                &video_source(555, "alice-video-0-1 9a4e-v0"),
            ),
            "bad-request",
            false,
        ),
        // A source named as one of alice's.
        (
            source_add(
                "bob",
                &sid_b,
                "x5",
                r#"<source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="556" name="alice-v0"><parameter name="msid" value="q r"/></source>"#,
            ),
            "bad-request",
            false,
        ),
        // The bridge's own feedback SSRC (see `common::offer`).
        (
            source_add("bob", &sid_b, "x6", &video_source(2, "s t")),
            "bad-request",
            false,
        ),
        // An FID group of three.
        (
            source_add(
                "bob",
                &sid_b,
                "x3",
                &format!(
                    r#"{}{}{}<ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="FID"><source ssrc="501"/><source ssrc="502"/><source ssrc="503"/></ssrc-group>"#,
                    video_source(501, "m 1"),
                    video_source(502, "m 1"),
                    video_source(503, "m 1")
                ),
            ),
            "bad-request",
            false,
        ),
        // More sources than an endpoint may have.
        (
            source_add(
                "bob",
                &sid_b,
                "x4",
                &(600..625)
                    .map(|s| video_source(s, &format!("m {s}")))
                    .collect::<String>(),
            ),
            "bad-request",
            false,
        ),
        // A source bob never signalled.
        (
            stanza("source-remove-desktop", "bob", &sid_b, 2),
            "bad-request",
            false,
        ),
        // An action the focus does not take from clients.
        (
            stanza("source-add-desktop", "bob", &sid_b, 2)
                .replace("source-add", "session-initiate"),
            "bad-request",
            false,
        ),
    ];
    for (xml, condition, unknown_session) in refused {
        let reply = h.request_xml(&xml);
        assert_eq!(
            error_of(&reply),
            (condition.to_owned(), unknown_session),
            "{xml}"
        );
        assert!(
            h.stanzas.is_empty(),
            "nobody else hears of it: {:?}",
            h.stanzas
        );
        assert!(h.take_bridge_log().is_empty(), "the bridge is untouched");
    }

    // Both sessions still work: alice shares her screen and bob hears of it.
    assert_result(&h.request("source-add-desktop", "alice", &sid_a, 1));
    assert_eq!(
        take_jingle(&mut h.stanzas, "bob", Action::SourceAdd).len(),
        1
    );
    assert_result(&h.request("source-add-desktop", "bob", &sid_b, 2));
    assert_eq!(
        take_jingle(&mut h.stanzas, "alice", Action::SourceAdd).len(),
        1
    );
}

#[test]
fn the_in_place_ice_restart_is_declined_so_the_client_falls_back() {
    let (mut h, alice, _) = two_active();
    let sid_a = alice.sid;
    let reply = h.request_xml(&format!(
        r#"<iq xmlns="jabber:client" type="set" id="i1" from="{ROOM}/alice" to="{FOCUS_FULL}">
             <jingle xmlns="urn:xmpp:jingle:1" action="session-info" sid="{sid_a}">
               <bridge-session xmlns="http://jitsi.org/protocol/focus" id="x" ice-restart="true"/>
             </jingle></iq>"#
    ));
    assert_eq!(
        error_of(&reply),
        ("feature-not-implemented".to_owned(), false)
    );
}

#[test]
fn the_session_initiate_is_shaped_for_the_jitsi_client() {
    let mut h = Harness::new(Config::default());
    h.open_conference();
    h.presence("alice", "none", "participant");
    h.run_bridge();
    let stanza = h
        .stanzas
        .iter()
        .find(|s| s.has_child("jingle", JINGLE))
        .unwrap()
        .clone();
    let jingle: &Element = stanza.get_child("jingle", JINGLE).unwrap();
    assert_eq!(jingle.attr("action"), Some("session-initiate"));
    assert_eq!(jingle.attr("initiator"), Some(FOCUS_FULL));
    let video = jingle
        .children()
        .find(|c| c.name() == "content" && c.attr("name") == Some("video"))
        .unwrap();
    assert_eq!(video.attr("creator"), Some("initiator"));
    assert_eq!(video.attr("senders"), Some("both"));
    let description = video
        .get_child("description", "urn:xmpp:jingle:apps:rtp:1")
        .unwrap();
    assert!(description.has_child("rtcp-mux", "urn:xmpp:jingle:apps:rtp:1"));
    let feedback = description
        .get_child("source", "urn:xmpp:jingle:apps:rtp:ssma:0")
        .unwrap();
    let owner = feedback
        .get_child("ssrc-info", "http://jitsi.org/jitmeet")
        .unwrap();
    assert_eq!(owner.attr("owner"), Some("jvb"));
    let msid = feedback
        .get_child("parameter", "urn:xmpp:jingle:apps:rtp:ssma:0")
        .unwrap();
    assert_eq!(msid.attr("value"), Some("mixedmslabel mixedlabelvideo0"));
    let transport = video
        .get_child("transport", "urn:xmpp:jingle:transports:ice-udp:1")
        .unwrap();
    let ws = transport
        .get_child("web-socket", "http://jitsi.org/protocol/colibri")
        .unwrap();
    assert!(
        ws.attr("url")
            .unwrap()
            .starts_with("ws://127.0.0.1:8080/colibri-ws/")
    );
    let fingerprint = transport
        .get_child("fingerprint", "urn:xmpp:jingle:apps:dtls:0")
        .unwrap();
    assert_eq!(fingerprint.attr("setup"), Some("actpass"));
    let group = jingle
        .get_child("group", "urn:xmpp:jingle:apps:grouping:0")
        .unwrap();
    assert_eq!(group.attr("semantics"), Some("BUNDLE"));
    assert!(jingle.has_child("bridge-session", "http://jitsi.org/protocol/focus"));
}

#[test]
fn json_encoded_sources_are_read_and_validated_like_xml_ones() {
    let (mut h, _, bob) = two_active();
    let sid_b = bob.sid;
    let json_add = |id: &str, json: &str| {
        format!(
            r#"<iq xmlns="jabber:client" type="set" id="{id}" from="{ROOM}/bob" to="{FOCUS_FULL}">
                 <jingle xmlns="urn:xmpp:jingle:1" action="source-add" sid="{sid_b}">
                   <json-message xmlns="http://jitsi.org/jitmeet">{json}</json-message>
                 </jingle></iq>"#
        )
    };
    let stolen = json_add(
        "j1",
        r#"{"sources":{"bob":[[{"s":1011,"n":"bob-v1","m":"x y"}]]}}"#,
    );
    assert_eq!(error_of(&h.request_xml(&stolen)).0, "bad-request");
    let garbage = json_add("j2", r#"{"sources":{"bob":"nope"}}"#);
    assert_eq!(error_of(&h.request_xml(&garbage)).0, "bad-request");
    assert!(h.stanzas.is_empty());

    let desktop = json_add(
        "j3",
        r#"{"sources":{"bob":[[{"s":2077,"n":"bob-v1","m":"bob-video-1-1 d","v":"d"},{"s":2078,"n":"bob-v1","m":"bob-video-1-1 d","v":"d"}],[["f",2077,2078]]]}}"#,
    );
    assert_result(&h.request_xml(&desktop));
    let adds = take_jingle(&mut h.stanzas, "alice", Action::SourceAdd);
    assert_eq!(
        owned_ssrcs(&adds[0]),
        vec![("bob".to_owned(), 2077), ("bob".to_owned(), 2078)]
    );
    assert_eq!(fid_groups(&adds[0]), vec![vec![2077, 2078]]);
    let source = &adds[0].contents[0].description.as_ref().unwrap().sources[0].source;
    assert_eq!(source.video_type, Some(VideoType::Desktop));
}
