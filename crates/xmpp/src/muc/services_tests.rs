//! The room-control services the MUC provides: announced in the domain's disco#info, acting
//! on the room of the sender's session, for moderators only; forged requests change nothing.

use minidom::Element;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{Muc, MucLimits, add_services};
use crate::identity::Identity;
use crate::router::test_support::*;
use crate::router::{Domains, Router};
use crate::stanza::ns;

const ROOM: &str = "standup@conference.d.test";
const BOB: &str = "bob@guest.d.test/b";
const CAROL: &str = "carol@guest.d.test/c";

/// A session opened for `room` (the `?room=` of its WebSocket URL).
fn session(address: &str, room: &str, moderator: bool) -> Identity {
    let mut identity = guest_identity(address);
    identity.web_room = Some(room.to_owned());
    identity.moderator = moderator;
    identity
}

/// `ROOM` with Alice (its creator: owner), Bob and Carol (an owner by her moderator right,
/// but her session was opened for another room).
fn room() -> Router {
    let mut router = router();
    let domains = Domains::new("d.test");
    let limits = MucLimits {
        max_occupants: 10,
        max_rooms_per_session: 2,
    };
    let muc = Muc::new(limits, StdRng::seed_from_u64(1), &domains);
    router.add_component("conference.d.test", Box::new(muc));
    add_services(&mut router, &domains);
    for (who, room, moderator) in [
        (ALICE, "standup", false),
        (BOB, "standup", false),
        (CAROL, "elsewhere", true),
    ] {
        router
            .bind(&jid(who), session(who, room, moderator))
            .unwrap();
        let nick = &who[..1];
        send(&mut router, who, &format!("<presence to='{ROOM}/{nick}'/>"));
    }
    router
}

const END: &str = "<message to='endconference.d.test'><end_conference/></message>";

#[test]
fn the_domain_announces_end_conference() {
    let mut router = room();
    let out = send(
        &mut router,
        BOB,
        "<iq type='get' id='d' to='d.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    let query = out[0].stanza.get_child("query", ns::DISCO_INFO).unwrap();
    let announced = query.children().any(|i| {
        i.attr("category") == Some("component")
            && i.attr("type") == Some("end_conference")
            && i.attr("name") == Some("endconference.d.test")
    });
    assert!(announced, "{query:?}");
}

#[test]
fn end_conference_is_for_a_moderator_of_the_sessions_room_only() {
    let mut router = room();
    // A participant, and a moderator whose session names another room: silently dropped.
    for forger in [BOB, CAROL] {
        assert!(send(&mut router, forger, END).is_empty(), "{forger}");
        assert_eq!(router.room_count(), 1);
    }
    // A session without a room gets nothing either.
    let dave = "dave@guest.d.test/d";
    router.bind(&jid(dave), guest_identity(dave)).unwrap();
    assert!(send(&mut router, dave, END).is_empty());

    let out = send(&mut router, ALICE, END);
    assert_eq!(router.room_count(), 0, "the room is gone");
    for who in [ALICE, BOB, CAROL] {
        let got = to(&out, who);
        let own = got
            .iter()
            .find(|p| p.attr("from") == Some(&format!("{ROOM}/{}", &who[..1])[..]))
            .unwrap();
        assert_eq!(own.attr("type"), Some("unavailable"));
        let reason = own
            .get_child("x", ns::MUC_USER)
            .and_then(|x| x.get_child("destroy", ns::MUC_USER))
            .and_then(|d| d.get_child("reason", ns::MUC_USER))
            .map(Element::text);
        assert_eq!(reason.as_deref(), Some("The meeting has been terminated"));
    }
}
