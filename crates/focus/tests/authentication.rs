//! The secure domain, as Jicofo's authentication does it: guests of another domain are
//! refused `not-authorized` until a user of the main domain opened the conference, then
//! join it; the answers tell the clients that authentication is on.

mod common;

use common::*;
use convene_focus::Config;
use minidom::Element;

fn secure(external_auth: bool) -> Config {
    Config {
        authentication: true,
        external_auth,
        ..Config::default()
    }
}

/// A conference request from `from` (a full JID) for the test room.
fn request_from(h: &mut Harness, id: &str, from: &str) -> Element {
    h.request_xml(&format!(
        r#"<iq xmlns="jabber:client" type="set" id="{id}" from="{from}" to="focus.example.com">
             <conference xmlns="http://jitsi.org/protocol/focus" room="{ROOM}" machine-uid="m1"/></iq>"#
    ))
}

fn property<'a>(answer: &'a Element, name: &str) -> Option<&'a str> {
    answer
        .get_child("conference", "http://jitsi.org/protocol/focus")?
        .children()
        .find(|p| p.attr("name") == Some(name))?
        .attr("value")
}

#[test]
fn a_guest_waits_until_a_host_opened_the_conference() {
    let mut h = Harness::new(secure(false));
    let refused = request_from(&mut h, "g1", "3f2a9c1e-0000@guest.example.com/web");
    let error = refused.get_child("error", "jabber:client").unwrap();
    assert_eq!(error.attr("type"), Some("auth"));
    assert!(error.has_child("not-authorized", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    assert_eq!(
        error
            .get_child("text", "urn:ietf:params:xml:ns:xmpp-stanzas")
            .unwrap()
            .text(),
        "not authorized user domain"
    );
    assert!(h.stanzas.is_empty(), "the focus joined nothing for a guest");

    // The host (an account of the main domain) opens it...
    let answer = h.open_conference();
    assert_result(&answer);
    assert_eq!(property(&answer, "authentication"), Some("true"));
    assert_eq!(property(&answer, "externalAuth"), Some("false"));
    // ...and the guest's next try (the clients ask again every 5 s) gets in.
    let admitted = request_from(&mut h, "g2", "3f2a9c1e-0000@guest.example.com/web");
    assert_result(&admitted);
    assert_eq!(property(&admitted, "authentication"), Some("true"));
}

#[test]
fn without_authentication_anyone_opens_and_tokens_say_external() {
    let mut h = Harness::new(Config::default());
    let answer = request_and_join(&mut h, "3f2a9c1e-0000@guest.example.com/web");
    assert_eq!(property(&answer, "authentication"), Some("false"));
    let mut h = Harness::new(secure(true));
    let answer = h.open_conference();
    assert_eq!(property(&answer, "externalAuth"), Some("true"));
}

/// A request from `from` that opens the room, with the MUC confirming the focus's join.
fn request_and_join(h: &mut Harness, from: &str) -> Element {
    h.send_xml(&format!(
        r#"<iq xmlns="jabber:client" type="set" id="o1" from="{from}" to="focus.example.com">
             <conference xmlns="http://jitsi.org/protocol/focus" room="{ROOM}"/></iq>"#
    ));
    assert_eq!(h.take_stanzas().len(), 1, "the focus joins the room");
    h.send_xml(&format!(
        r#"<presence xmlns="jabber:client" from="{ROOM}/focus" to="{FOCUS_FULL}">
             <x xmlns="http://jabber.org/protocol/muc#user">
               <item affiliation="owner" role="moderator" jid="{FOCUS_FULL}"/>
               <status code="110"/><status code="201"/></x></presence>"#
    ));
    let mut answer = h.take_stanzas();
    answer.remove(0)
}
