//! The MUC behind a real router, as the server wires it.

use minidom::Element;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{Muc, MucLimits};
use crate::identity::Identity;
use crate::router::test_support::*;
use crate::router::{Delivery, Router};
use crate::stanza::ns;

const ROOM: &str = "standup@conference.d.test";

/// A router with the MUC at `conference.d.test`: rooms of at most 3, 2 rooms a session.
fn router() -> Router {
    router_drawing_from(StdRng::seed_from_u64(7))
}

fn router_drawing_from(rng: StdRng) -> Router {
    let mut router = crate::router::test_support::router();
    let limits = MucLimits {
        max_occupants: 3,
        max_rooms_per_session: 2,
    };
    let domains = crate::router::Domains::new("d.test");
    router.add_component(
        "conference.d.test",
        Box::new(Muc::new(limits, rng, &domains)),
    );
    super::add_services(&mut router, &domains);
    router
}

fn item(presence: &Element) -> &Element {
    presence
        .get_child("x", ns::MUC_USER)
        .and_then(|x| x.get_child("item", ns::MUC_USER))
        .unwrap()
}

fn statuses(presence: &Element) -> Vec<String> {
    let x = presence.get_child("x", ns::MUC_USER).unwrap();
    x.children()
        .filter_map(|c| c.attr("code").map(str::to_owned))
        .collect()
}

/// The Jitsi conference set-up: focus creates the room, a guest joins, the focus
/// grants it ownership and exchanges Jingle-style IQs through occupant JIDs.
#[test]
fn focus_and_guest_conference_flow() {
    let mut router = router();
    router.bind(&jid(ALICE), guest_identity(ALICE)).unwrap();

    let out = send(
        &mut router,
        FOCUS,
        &format!(
            "<presence to='{ROOM}/focus'><x xmlns='{}'/></presence>",
            ns::MUC
        ),
    );
    let own = to(&out, FOCUS);
    assert_eq!(own.len(), 2, "self-presence and subject");
    assert_eq!(statuses(own[0]), ["100", "110", "201"]);
    assert_eq!(item(own[0]).attr("affiliation"), Some("owner"));
    assert_eq!(item(own[0]).attr("role"), Some("moderator"));

    let join = format!(
        "<presence to='{ROOM}/3f2a9c1e'><x xmlns='{}'><password/></x><stats-id>Kzx</stats-id>\
         <x xmlns='{}'><item affiliation='owner' role='moderator'/></x>\
         <SourceInfo>{{\"a\":1}}</SourceInfo></presence>",
        ns::MUC,
        ns::MUC_USER
    );
    let out = send(&mut router, ALICE, &join);
    let seen_by_alice = to(&out, ALICE);
    assert_eq!(
        seen_by_alice[0].attr("from"),
        Some(&*format!("{ROOM}/focus"))
    );
    assert_eq!(item(seen_by_alice[0]).attr("jid"), Some(FOCUS));
    assert_eq!(statuses(seen_by_alice[1]), ["100", "110"]);
    assert_eq!(
        item(seen_by_alice[1]).attr("role"),
        Some("participant"),
        "forged muc#user ignored"
    );
    let seen_by_focus = to(&out, FOCUS);
    assert_eq!(seen_by_focus.len(), 1);
    let presence = seen_by_focus[0];
    assert_eq!(item(presence).attr("jid"), Some(ALICE));
    assert_eq!(
        presence.get_child("stats-id", ns::CLIENT).unwrap().text(),
        "Kzx"
    );
    assert_eq!(
        presence.get_child("SourceInfo", ns::CLIENT).unwrap().text(),
        "{\"a\":1}"
    );
    assert!(presence.get_child("x", ns::MUC).is_none());
    assert_eq!(
        presence
            .children()
            .filter(|c| c.is("x", ns::MUC_USER))
            .count(),
        1
    );

    let grant = format!(
        "<iq type='set' id='g' to='{ROOM}'><query xmlns='{}'><item affiliation='owner' \
         jid='3f2a9c1e-0000-4000-8000-000000000000@guest.d.test'/></query></iq>",
        ns::MUC_ADMIN
    );
    let out = send(&mut router, FOCUS, &grant);
    assert!(
        to(&out, FOCUS)
            .iter()
            .any(|s| s.attr("type") == Some("result"))
    );
    let updated = to(&out, ALICE)[0];
    assert_eq!(item(updated).attr("affiliation"), Some("owner"));
    assert_eq!(item(updated).attr("role"), Some("moderator"));

    let offer = format!(
        "<iq type='set' id='j1' to='{ROOM}/3f2a9c1e'><jingle xmlns='urn:xmpp:jingle:1'/></iq>"
    );
    let out = send(&mut router, FOCUS, &offer);
    let delivered = to(&out, ALICE)[0];
    assert_eq!(delivered.attr("from"), Some(&*format!("{ROOM}/focus")));
    assert_eq!(delivered.attr("to"), Some(ALICE));
    let out = send(
        &mut router,
        ALICE,
        &format!("<iq type='result' id='j1' to='{ROOM}/focus'/>"),
    );
    let answer = to(&out, FOCUS)[0];
    assert_eq!(answer.attr("from"), Some(&*format!("{ROOM}/3f2a9c1e")));
    assert_eq!(answer.attr("id"), Some("j1"));

    // Stanzas to the focus component address reach the internal entity unchanged.
    let out = send(
        &mut router,
        ALICE,
        "<iq type='set' id='c' to='focus.d.test'><conference xmlns='http://jitsi.org/protocol/focus'/></iq>",
    );
    assert_eq!(out[0].to.as_str(), "focus.d.test");
    assert_eq!(out[0].stanza.attr("from"), Some(ALICE));
}

/// The focus and then Alice in `ROOM`.
fn room_with_focus_and_alice() -> Router {
    let mut router = router();
    router.bind(&jid(ALICE), guest_identity(ALICE)).unwrap();
    send(
        &mut router,
        FOCUS,
        &format!("<presence to='{ROOM}/focus'/>"),
    );
    send(
        &mut router,
        ALICE,
        &format!("<presence to='{ROOM}/alice'/>"),
    );
    router
}

#[test]
fn last_occupant_leaving_destroys_the_room() {
    let mut router = room_with_focus_and_alice();
    let out = send(
        &mut router,
        FOCUS,
        &format!("<presence type='unavailable' to='{ROOM}/focus'/>"),
    );
    let gone = to(&out, ALICE)[0];
    assert_eq!(gone.attr("type"), Some("unavailable"));
    assert_eq!(item(gone).attr("role"), Some("none"));
    assert_eq!(
        router.room_count(),
        1,
        "an internal entity leaving leaves others in place"
    );
    let mut out = Vec::new();
    router.unbind(&jid(ALICE), &mut out);
    assert_eq!(router.room_count(), 0);
}

#[test]
fn room_size_and_rooms_per_session_are_bounded() {
    let mut router = router();
    let guests: Vec<String> = (0..4).map(|i| format!("g{i}@guest.d.test/r")).collect();
    for guest in &guests {
        router.bind(&jid(guest), guest_identity(guest)).unwrap();
    }
    // The focus is not a client: it always gets in, and does not count (as Jitsi's
    // `muc_access_whitelist`).
    let out = send(
        &mut router,
        FOCUS,
        &format!("<presence to='{ROOM}/focus'/>"),
    );
    assert!(out.iter().all(|d| d.stanza.attr("type") != Some("error")));
    for guest in &guests[..3] {
        let out = send(
            &mut router,
            guest,
            &format!("<presence to='{ROOM}/{}'/>", &guest[..2]),
        );
        assert!(out.iter().all(|d| d.stanza.attr("type") != Some("error")));
    }
    let error_of = |out: &[Delivery]| error_condition(&out[0].stanza).unwrap();
    let out = send(
        &mut router,
        &guests[3],
        &format!("<presence to='{ROOM}/g3'/>"),
    );
    assert_eq!(error_of(&out), "service-unavailable", "room full");

    send(
        &mut router,
        &guests[3],
        "<presence to='a@conference.d.test/g3'/>",
    );
    send(
        &mut router,
        &guests[3],
        "<presence to='b@conference.d.test/g3'/>",
    );
    let out = send(
        &mut router,
        &guests[3],
        "<presence to='c@conference.d.test/g3'/>",
    );
    assert_eq!(error_of(&out), "policy-violation");
    assert_eq!(router.room_count(), 3, "the refused join created no room");
}

#[test]
fn owner_destroys_the_room() {
    let mut router = room_with_focus_and_alice();
    let destroy = format!(
        "<iq type='set' id='d' to='{ROOM}'><query xmlns='{}'><destroy/></query></iq>",
        ns::MUC_OWNER
    );
    let out = send(&mut router, ALICE, &destroy);
    assert_eq!(
        to(&out, ALICE).last().unwrap().attr("type"),
        Some("error"),
        "only owners destroy"
    );
    let out = send(&mut router, FOCUS, &destroy);
    let gone = to(&out, ALICE)[0];
    assert_eq!(gone.attr("type"), Some("unavailable"));
    assert!(
        gone.get_child("x", ns::MUC_USER)
            .unwrap()
            .has_child("destroy", ns::MUC_USER)
    );
    assert!(
        to(&out, FOCUS)
            .iter()
            .any(|s| s.attr("type") == Some("result"))
    );
    assert_eq!(router.room_count(), 0);
}

#[test]
fn join_errors_nick_conflict_and_password() {
    let mut router = router();
    let bob = "bob@d.test/x";
    for who in [ALICE, bob] {
        router.bind(&jid(who), guest_identity(who)).unwrap();
    }
    send(
        &mut router,
        ALICE,
        &format!("<presence to='{ROOM}/alice'/>"),
    );
    let out = send(&mut router, bob, &format!("<presence to='{ROOM}/alice'/>"));
    let error = to(&out, bob)[0];
    assert_eq!(error.attr("type"), Some("error"));
    assert!(
        error
            .get_child("error", ns::CLIENT)
            .unwrap()
            .has_child("conflict", ns::STANZAS)
    );

    let config = format!(
        "<iq type='set' id='c' to='{ROOM}'><query xmlns='{}'><x xmlns='{}' type='submit'>\
         <field var='muc#roomconfig_roomsecret'><value>pw</value></field></x></query></iq>",
        ns::MUC_OWNER,
        ns::DATA_FORMS
    );
    let out = send(&mut router, bob, &config);
    assert_eq!(
        to(&out, bob)[0].attr("type"),
        Some("error"),
        "only owners configure"
    );
    send(&mut router, ALICE, &config);
    let wrong = format!(
        "<presence to='{ROOM}/bob'><x xmlns='{}'><password>nope</password></x></presence>",
        ns::MUC
    );
    let out = send(&mut router, bob, &wrong);
    assert!(
        to(&out, bob)[0]
            .get_child("error", ns::CLIENT)
            .unwrap()
            .has_child("not-authorized", ns::STANZAS)
    );
    let right = wrong.replace("nope", "pw");
    let out = send(&mut router, bob, &right);
    // alice's presence, bob's own presence, then the subject.
    assert_eq!(statuses(to(&out, bob)[1]), ["100", "110"]);
}

/// An identity vouched for with user fields, as a token authenticator will yield.
fn signed_in(address: &str, moderator: bool) -> Identity {
    let mut identity = guest_identity(address);
    identity.user_id = Some("u42".to_owned());
    identity.display_name = Some("Alice".to_owned());
    identity.email = Some("a@example.com".to_owned());
    identity.avatar = Some("https://example.com/a.png".to_owned());
    identity.moderator = moderator;
    identity
}

/// The `<identity>` children of a presence, in any namespace.
fn identities(presence: &Element) -> Vec<&Element> {
    presence
        .children()
        .filter(|c| c.name() == "identity")
        .collect()
}

const BOB: &str = "bob@guest.d.test/b";

/// `ROOM` with only the focus in it; Alice bound with the identity `alice`, Bob as a guest.
fn room_with_focus_for_alice_and_bob(alice: Identity) -> Router {
    let mut router = router();
    router.bind(&jid(ALICE), alice).unwrap();
    router.bind(&jid(BOB), guest_identity(BOB)).unwrap();
    send(
        &mut router,
        FOCUS,
        &format!("<presence to='{ROOM}/focus'/>"),
    );
    router
}

#[test]
fn a_client_identity_is_replaced_by_the_servers() {
    let mut router = room_with_focus_for_alice_and_bob(signed_in(ALICE, false));
    let forged = "<identity><user><name>Mallory</name><id>admin</id></user></identity>\
                  <identity xmlns='urn:example:other'/><stats-id>S</stats-id>";

    // A guest's identity claims are dropped and nothing is put in their place.
    let out = send(
        &mut router,
        BOB,
        &format!("<presence to='{ROOM}/bob'>{forged}</presence>"),
    );
    let seen = to(&out, FOCUS)[0];
    assert!(identities(seen).is_empty(), "{}", String::from(seen));
    assert!(
        seen.has_child("stats-id", ns::CLIENT),
        "the rest is forwarded"
    );

    // A signed-in user's presence carries what the authenticator vouched for, on every
    // presence it sends: join, update and leave.
    for presence in [
        format!("<presence to='{ROOM}/alice'>{forged}</presence>"),
        format!("<presence to='{ROOM}/alice'>{forged}<status>x</status></presence>"),
        format!("<presence type='unavailable' to='{ROOM}/alice'>{forged}</presence>"),
    ] {
        let out = send(&mut router, ALICE, &presence);
        let seen = to(&out, BOB)[0];
        let found = identities(seen);
        assert_eq!(found.len(), 1, "{presence}");
        assert!(found[0].is("identity", ns::CLIENT));
        let user = found[0].get_child("user", ns::CLIENT).unwrap();
        let fields: Vec<(&str, String)> = user.children().map(|c| (c.name(), c.text())).collect();
        assert_eq!(
            fields,
            [
                ("id", "u42".to_owned()),
                ("name", "Alice".to_owned()),
                ("email", "a@example.com".to_owned()),
                ("avatar", "https://example.com/a.png".to_owned()),
            ]
        );
    }
}

#[test]
fn the_moderator_right_makes_an_owner_but_not_over_a_ban() {
    let mut router = room_with_focus_for_alice_and_bob(signed_in(ALICE, true));

    let out = send(&mut router, BOB, &format!("<presence to='{ROOM}/bob'/>"));
    assert_eq!(item(to(&out, BOB)[1]).attr("affiliation"), Some("none"));
    let out = send(
        &mut router,
        ALICE,
        &format!("<presence to='{ROOM}/alice'/>"),
    );
    let own = to(&out, ALICE)[2];
    assert_eq!(statuses(own), ["100", "110"]);
    assert_eq!(item(own).attr("affiliation"), Some("owner"));
    assert_eq!(item(own).attr("role"), Some("moderator"));
    let owners = format!(
        "<iq type='get' id='o' to='{ROOM}'><query xmlns='{}'><item affiliation='owner'/></query></iq>",
        ns::MUC_ADMIN
    );
    let out = send(&mut router, ALICE, &owners);
    let listed: Vec<&str> = to(&out, ALICE)[0]
        .get_child("query", ns::MUC_ADMIN)
        .unwrap()
        .children()
        .filter_map(|c| c.attr("jid"))
        .collect();
    assert!(
        listed.contains(&jid(ALICE).to_bare().as_str()),
        "kept as the room's owner"
    );

    let ban = format!(
        "<iq type='set' id='b' to='{ROOM}'><query xmlns='{}'><item affiliation='outcast' jid='{}'/></query></iq>",
        ns::MUC_ADMIN,
        jid(ALICE).to_bare()
    );
    send(&mut router, FOCUS, &ban);
    let out = send(
        &mut router,
        ALICE,
        &format!("<presence to='{ROOM}/alice'/>"),
    );
    assert_eq!(
        error_condition(to(&out, ALICE)[0]).as_deref(),
        Some("forbidden")
    );
}

/// The value of the room's disco#info form field `var`, asked by `who`.
fn roominfo(router: &mut Router, who: &str, var: &str) -> String {
    let info = format!(
        "<iq type='get' id='i' to='{ROOM}'><query xmlns='{}'/></iq>",
        ns::DISCO_INFO
    );
    let out = send(router, who, &info);
    let form = out[0]
        .stanza
        .get_child("query", ns::DISCO_INFO)
        .and_then(|q| q.get_child("x", ns::DATA_FORMS))
        .unwrap();
    let field = form
        .children()
        .find(|f| f.attr("var") == Some(var))
        .unwrap();
    field.get_child("value", ns::DATA_FORMS).unwrap().text()
}

#[test]
fn meeting_ids_come_from_the_rng_handed_in() {
    let meeting_id = |seed: u64| {
        let mut router = router_drawing_from(StdRng::seed_from_u64(seed));
        send(
            &mut router,
            FOCUS,
            &format!("<presence to='{ROOM}/focus'/>"),
        );
        roominfo(&mut router, FOCUS, "muc#roominfo_meetingId")
    };
    assert_eq!(meeting_id(1), meeting_id(1));
    assert_ne!(meeting_id(1), meeting_id(2));
    // A version 4 UUID, as Prosody's mod_muc_meeting_id draws them.
    let id = meeting_id(1);
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
    assert_eq!(&id[14..15], "4", "{id}");
    assert!("89ab".contains(&id[19..20]), "{id}");
}

/// The meeting timer (Jitsi's mod_conference_duration): the room's created timestamp is
/// the wall-clock time of the first participant's join beside the focus, in ms.
#[test]
fn the_created_timestamp_is_the_first_participants_join() {
    let mut router = router();
    router.bind(&jid(ALICE), guest_identity(ALICE)).unwrap();
    router.bind(&jid(BOB), guest_identity(BOB)).unwrap();
    let at = |ms: u64| std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    router.set_wall_clock(at(1_700_000_000_000));
    send(
        &mut router,
        FOCUS,
        &format!("<presence to='{ROOM}/focus'/>"),
    );
    let created = "muc#roominfo_created_timestamp";
    assert_eq!(roominfo(&mut router, FOCUS, created), "");
    router.set_wall_clock(at(1_700_000_004_321));
    send(
        &mut router,
        ALICE,
        &format!("<presence to='{ROOM}/alice'/>"),
    );
    router.set_wall_clock(at(1_700_000_009_000));
    send(&mut router, BOB, &format!("<presence to='{ROOM}/bob'/>"));
    assert_eq!(roominfo(&mut router, BOB, created), "1700000004321");
}

/// As `mod_token_verification`: a token user joins (or creates) only the rooms its token
/// opens, and the refusal is the one the Jitsi clients know.
#[test]
fn a_token_opens_only_its_rooms() {
    let mut router = router();
    let mut alice = signed_in(ALICE, false);
    alice.rooms = Some(crate::token::RoomGrant {
        room: Some("standup".into()),
        sub: Some("d.test".into()),
        regex: false,
    });
    router.bind(&jid(ALICE), alice).unwrap();
    let join = |room: &str| {
        format!(
            "<presence to='{room}/3f2a9c1e'><x xmlns='{}'/></presence>",
            ns::MUC
        )
    };
    let out = send(&mut router, ALICE, &join("other@conference.d.test"));
    let refusal = to(&out, ALICE)[0];
    assert_eq!(refusal.attr("type"), Some("error"));
    let error = refusal.get_child("error", ns::CLIENT).unwrap();
    assert_eq!(error.attr("type"), Some("cancel"));
    assert!(error.has_child("not-allowed", ns::STANZAS));
    assert!(error.has_child("room-mismatch", ns::JITMEET));
    assert_eq!(
        error.get_child("text", ns::STANZAS).unwrap().text(),
        "Room and token mismatched"
    );
    assert_eq!(router.room_count(), 0, "no room was created");
    let out = send(&mut router, ALICE, &join(ROOM));
    assert_eq!(statuses(to(&out, ALICE)[0]), ["100", "110", "201"]);
}
