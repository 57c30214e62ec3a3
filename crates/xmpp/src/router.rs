//! Stanza routing between client sessions, internal entities, the server itself and the
//! MUC service. Sans-IO: callers pass in stanzas whose `from` they have authenticated and
//! receive the deliveries to make.

use std::collections::{HashMap, HashSet};

use jid::{BareJid, Jid};
use minidom::Element;

use crate::identity::Identity;
use crate::muc::{Muc, MucLimits};
use crate::stanza::{self, StanzaError, error_reply, iq_result, iq_result_with, ns};

/// One stanza to hand to the session or internal entity at `to`.
#[derive(Debug)]
pub struct Delivery {
    pub to: Jid,
    pub stanza: Element,
}

/// The domains derived from the one configured domain (Jitsi's layout).
#[derive(Debug, Clone)]
pub struct Domains {
    /// Accounts, and anonymous logins from the default web client.
    pub main: String,
    /// Anonymous guests.
    pub guest: String,
    /// Internal entities (the focus's account).
    pub auth: String,
    /// The MUC service.
    pub conference: String,
    /// The focus component.
    pub focus: String,
}

impl Domains {
    pub fn new(domain: &str) -> Self {
        Self {
            main: domain.to_owned(),
            guest: format!("guest.{domain}"),
            auth: format!("auth.{domain}"),
            conference: format!("conference.{domain}"),
            focus: format!("focus.{domain}"),
        }
    }

    /// Domains a client may connect to (the stream's `to`).
    pub fn is_client_host(&self, host: &str) -> bool {
        host == self.main || host == self.guest || host == self.auth
    }

    fn is_server_host(&self, host: &str) -> bool {
        self.is_client_host(host) || host == self.focus
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BindError {
    #[error("resource already bound")]
    Conflict,
}

pub struct Router {
    domains: Domains,
    /// Bound client resources per account.
    sessions: HashMap<BareJid, HashSet<String>>,
    /// The identity each bound session signed in with.
    identities: HashMap<Jid, Identity>,
    /// Addresses of in-process entities (the focus).
    internal: HashSet<Jid>,
    muc: Muc,
}

impl Router {
    pub fn new(domains: Domains, limits: MucLimits) -> Self {
        Self {
            domains,
            sessions: HashMap::new(),
            identities: HashMap::new(),
            internal: HashSet::new(),
            muc: Muc::new(limits),
        }
    }

    pub fn room_count(&self) -> usize {
        self.muc.room_count()
    }

    pub fn occupant_count(&self) -> usize {
        self.muc.occupant_count()
    }

    pub fn attach_internal(&mut self, addresses: &[Jid]) {
        self.internal.extend(addresses.iter().cloned());
    }

    fn session_exists(&self, jid: &Jid) -> bool {
        jid.resource().is_some_and(|r| {
            self.sessions
                .get(&jid.to_bare())
                .is_some_and(|set| set.contains(r.as_str()))
        })
    }

    /// Registers a client resource with the identity it signed in with; fails if it is
    /// already bound.
    pub fn bind(&mut self, jid: &Jid, identity: Identity) -> Result<(), BindError> {
        let resource = jid
            .resource()
            .ok_or(BindError::Conflict)?
            .as_str()
            .to_owned();
        if !self
            .sessions
            .entry(jid.to_bare())
            .or_default()
            .insert(resource)
        {
            return Err(BindError::Conflict);
        }
        self.identities.insert(jid.clone(), identity);
        Ok(())
    }

    /// The identity of a bound session.
    pub fn identity(&self, jid: &Jid) -> Option<&Identity> {
        self.identities.get(jid)
    }

    /// A session ended: it leaves its rooms.
    pub fn unbind(&mut self, jid: &Jid, out: &mut Vec<Delivery>) {
        let bare = jid.to_bare();
        self.identities.remove(jid);
        if let (Some(set), Some(resource)) = (self.sessions.get_mut(&bare), jid.resource()) {
            set.remove(resource.as_str());
            if set.is_empty() {
                self.sessions.remove(&bare);
            }
        }
        self.muc.disconnect(jid, out);
    }

    /// Routes a stanza sent by `from` (a bound session or an internal entity).
    pub fn route(&mut self, from: &Jid, mut stanza: Element, out: &mut Vec<Delivery>) {
        stanza::set_attr(&mut stanza, "from", from.to_string());
        let to = match stanza::jid_attr(&stanza, "to") {
            Ok(Some(to)) => to,
            Ok(None) => Jid::new(&self.domains.main).expect("configured domain is a valid JID"),
            Err(_) => {
                reply(error_reply(&stanza, StanzaError::BadRequest), out);
                return;
            }
        };
        if self.internal.contains(&to) {
            out.push(Delivery { to, stanza });
            return;
        }
        let trusted = self.internal.contains(from);
        if to.domain().as_str() == self.domains.conference {
            self.muc.handle(from, &to, trusted, stanza, out);
            return;
        }
        if to.node().is_none() && self.domains.is_server_host(to.domain().as_str()) {
            self.to_server(stanza, out);
            return;
        }
        self.to_client(&to, stanza, out);
    }

    fn to_client(&self, to: &Jid, stanza: Element, out: &mut Vec<Delivery>) {
        let resources = self.sessions.get(&to.to_bare());
        if self.session_exists(to) {
            out.push(Delivery {
                to: to.clone(),
                stanza,
            });
            return;
        }
        match (stanza.name(), to.resource(), resources) {
            // A message to an account (or to one of its resources that is gone) and presence
            // to an account go to all of its resources (RFC 6121 §8.5.2, §8.5.3).
            ("message", _, Some(resources)) | ("presence", None, Some(resources))
                if !resources.is_empty() =>
            {
                for resource in resources {
                    if let Ok(full) = to.to_bare().with_resource_str(resource) {
                        out.push(Delivery {
                            to: full.into(),
                            stanza: stanza.clone(),
                        });
                    }
                }
            }
            // Presence to someone absent is dropped silently (RFC 6121 §8.5.2.2).
            ("presence", _, _) => {}
            // The server answers iq on behalf of an account's bare JID (RFC 6120 §10.5.3).
            ("iq", None, Some(_)) => self.to_server(stanza, out),
            _ => reply(error_reply(&stanza, StanzaError::ServiceUnavailable), out),
        }
    }

    /// Stanzas for the server itself: disco#info, ping, and errors for the rest.
    fn to_server(&self, stanza: Element, out: &mut Vec<Delivery>) {
        if stanza.name() != "iq" || !matches!(stanza.attr("type"), Some("get") | Some("set")) {
            if stanza.name() != "presence" && stanza.name() != "iq" {
                reply(error_reply(&stanza, StanzaError::ServiceUnavailable), out);
            }
            return;
        }
        let namespace = stanza::payload(&stanza)
            .map(Element::ns)
            .unwrap_or_default();
        let getting = stanza.attr("type") == Some("get");
        let answer = match namespace.as_str() {
            ns::PING if getting => iq_result(&stanza),
            // STUN/TURN discovery (XEP-0215): this server knows of none; an empty list
            // spares the Jitsi clients an error.
            ns::EXTDISCO_2 | ns::EXTDISCO_1 if getting => {
                iq_result_with(&stanza, Some(Element::bare("services", namespace.as_str())))
            }
            ns::DISCO_INFO if getting => {
                let is_host = stanza
                    .attr("to")
                    .is_none_or(|to| Jid::new(to).is_ok_and(|to| to.node().is_none()));
                let info = if is_host {
                    stanza::disco_info(
                        &[
                            ("server", "im", "Convene"),
                            ("conference", "text", &self.domains.conference),
                        ],
                        &[ns::DISCO_INFO, ns::DISCO_ITEMS, ns::PING, ns::SM, ns::MUC],
                    )
                } else {
                    stanza::disco_info(
                        &[("account", "registered", "")],
                        &[ns::DISCO_INFO, ns::PING],
                    )
                };
                iq_result_with(&stanza, Some(info))
            }
            ns::DISCO_ITEMS if getting => {
                let mut items = Element::bare("query", ns::DISCO_ITEMS);
                items.append_child(
                    Element::builder("item", ns::DISCO_ITEMS)
                        .attr(stanza::n("jid"), self.domains.conference.as_str())
                        .build(),
                );
                iq_result_with(&stanza, Some(items))
            }
            _ => {
                reply(error_reply(&stanza, StanzaError::ServiceUnavailable), out);
                return;
            }
        };
        reply(Some(answer), out);
    }
}

fn reply(answer: Option<Element>, out: &mut Vec<Delivery>) {
    if let Some(answer) = answer
        && let Some(to) = answer.attr("to").and_then(|t| Jid::new(t).ok())
    {
        out.push(Delivery { to, stanza: answer });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKind;
    use crate::xml::{Limits, parse_frame};

    const LIMITS: Limits = Limits {
        max_stanza_bytes: 65536,
        max_depth: 16,
    };
    const ROOM: &str = "standup@conference.d.test";

    fn xml(text: &str) -> Element {
        parse_frame(text, LIMITS).unwrap()
    }

    fn guest_identity(address: &str) -> Identity {
        Identity::bare(jid(address), IdentityKind::Guest)
    }

    fn jid(text: &str) -> Jid {
        Jid::new(text).unwrap()
    }

    fn router() -> Router {
        let limits = MucLimits {
            max_occupants: 3,
            max_rooms_per_session: 2,
        };
        let mut router = Router::new(Domains::new("d.test"), limits);
        router.attach_internal(&[jid("focus.d.test"), jid("focus@auth.d.test/focus")]);
        router
    }

    fn send(router: &mut Router, from: &str, text: &str) -> Vec<Delivery> {
        let mut out = Vec::new();
        router.route(&jid(from), xml(text), &mut out);
        out
    }

    fn to<'a>(out: &'a [Delivery], who: &str) -> Vec<&'a Element> {
        out.iter()
            .filter(|d| d.to.as_str() == who)
            .map(|d| &d.stanza)
            .collect()
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

    const FOCUS: &str = "focus@auth.d.test/focus";
    const ALICE: &str = "3f2a9c1e-0000-4000-8000-000000000000@guest.d.test/web";

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
        for guest in &guests[..3] {
            send(
                &mut router,
                guest,
                &format!("<presence to='{ROOM}/{}'/>", &guest[..2]),
            );
        }
        let error_of = |out: &[Delivery]| {
            let error = out[0].stanza.get_child("error", ns::CLIENT).unwrap();
            error.children().next().unwrap().name().to_owned()
        };
        let out = send(
            &mut router,
            &guests[3],
            &format!("<presence to='{ROOM}/g3'/>"),
        );
        assert_eq!(error_of(&out), "service-unavailable", "room full");
        // The focus is not a client: it always gets in.
        let out = send(
            &mut router,
            FOCUS,
            &format!("<presence to='{ROOM}/focus'/>"),
        );
        assert!(out.iter().all(|d| d.stanza.attr("type") != Some("error")));

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

    #[test]
    fn routing_between_accounts_and_errors() {
        let mut router = router();
        for who in ["a@d.test/1", "a@d.test/2", "b@d.test/1"] {
            router.bind(&jid(who), guest_identity(who)).unwrap();
        }
        assert_eq!(
            router.bind(&jid("a@d.test/1"), guest_identity("a@d.test/1")),
            Err(BindError::Conflict)
        );
        let out = send(
            &mut router,
            "b@d.test/1",
            "<message to='a@d.test' type='chat'><body>hi</body></message>",
        );
        let mut targets: Vec<&str> = out.iter().map(|d| d.to.as_str()).collect();
        targets.sort_unstable();
        assert_eq!(targets, ["a@d.test/1", "a@d.test/2"]);
        let out = send(&mut router, "b@d.test/1", "<presence to='a@d.test'/>");
        assert_eq!(out.len(), 2, "directed presence reaches every resource");
        assert!(send(&mut router, "b@d.test/1", "<presence to='a@d.test/gone'/>").is_empty());
        assert!(send(&mut router, "b@d.test/1", "<presence to='nobody@d.test'/>").is_empty());
        let out = send(
            &mut router,
            "b@d.test/1",
            "<iq type='get' id='p' to='a@d.test/gone'><ping xmlns='urn:xmpp:ping'/></iq>",
        );
        assert_eq!(out[0].to.as_str(), "b@d.test/1");
        assert!(
            out[0]
                .stanza
                .get_child("error", ns::CLIENT)
                .unwrap()
                .has_child("service-unavailable", ns::STANZAS)
        );
        let out = send(
            &mut router,
            "b@d.test/1",
            "<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>",
        );
        assert_eq!(out[0].stanza.attr("type"), Some("result"));
        let out = send(
            &mut router,
            "b@d.test/1",
            "<iq type='result' id='x' to='a@d.test/gone'/>",
        );
        assert!(out.is_empty(), "results are never answered with errors");
    }
}
