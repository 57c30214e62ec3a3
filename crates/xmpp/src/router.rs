//! Stanza routing between client sessions, internal entities, the server itself and the
//! components (the MUC and the services beside it, each at its own host). Sans-IO: callers
//! pass in stanzas whose `from` they have authenticated and receive the deliveries to make.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;

use jid::{BareJid, Jid};
use minidom::Element;

use crate::component::{Component, DiscoIdentity, Fanout, Sender, Trust};
use crate::identity::Identity;
use crate::stanza::{self, StanzaError, iq_result, iq_result_with, ns, push_reply, reply_error};

pub use crate::stanza::Delivery;

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
    /// Jitsi's end-meeting-for-all service (`mod_end_conference`), served by the MUC.
    pub end_conference: String,
}

impl Domains {
    pub fn new(domain: &str) -> Self {
        Self {
            main: domain.to_owned(),
            guest: format!("guest.{domain}"),
            auth: format!("auth.{domain}"),
            conference: format!("conference.{domain}"),
            focus: format!("focus.{domain}"),
            end_conference: format!("endconference.{domain}"),
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
    /// The component answering at each host (ordered, so that disco answers are stable).
    components: BTreeMap<String, Box<dyn Component>>,
    /// Hosts of services a component provides beside its own (Jitsi's end-conference,
    /// A/V moderation...), each with its disco identity and the host of that component.
    services: BTreeMap<String, (DiscoIdentity, String)>,
    /// The wall-clock time components see, as last set by the caller.
    wall_clock: SystemTime,
}

impl Router {
    /// A router with no components; [`Self::add_component`] registers them.
    pub fn new(domains: Domains) -> Self {
        Self {
            domains,
            sessions: HashMap::new(),
            identities: HashMap::new(),
            internal: HashSet::new(),
            components: BTreeMap::new(),
            services: BTreeMap::new(),
            wall_clock: SystemTime::UNIX_EPOCH,
        }
    }

    /// The wall-clock time stanzas are routed at from now on (the shell reads the clock;
    /// components such as the MUC stamp rooms with it).
    pub fn set_wall_clock(&mut self, now: SystemTime) {
        self.wall_clock = now;
    }

    /// Hands every stanza addressed to `host`, or to a JID at it, to `component`.
    ///
    /// # Panics
    /// If `host` already has a component or is one of the server's own domains: the wiring
    /// at start-up is wrong.
    pub fn add_component(&mut self, host: impl Into<String>, component: Box<dyn Component>) {
        let host = host.into();
        assert!(
            !self.domains.is_server_host(&host),
            "{host} is served by the server itself"
        );
        let previous = self.components.insert(host, component);
        assert!(previous.is_none(), "two components at one host");
    }

    /// Hands every stanza addressed to `host` to the component at `served_by`, and lists
    /// `host` in the domain's disco#info as `identity` (Rule A of the Jitsi clients: a
    /// service is announced by an identity named by its address).
    ///
    /// # Panics
    /// If `host` is taken or `served_by` has no component: the wiring is wrong.
    pub fn add_service(
        &mut self,
        host: impl Into<String>,
        identity: DiscoIdentity,
        served_by: &str,
    ) {
        let host = host.into();
        assert!(
            !self.domains.is_server_host(&host) && !self.components.contains_key(&host),
            "{host} is taken"
        );
        assert!(
            self.components.contains_key(served_by),
            "no component at {served_by}"
        );
        let previous = self.services.insert(host, (identity, served_by.to_owned()));
        assert!(previous.is_none(), "two services at one host");
    }

    /// The host of the component that handles stanzas to `host`.
    fn component_host<'a>(&'a self, host: &'a str) -> &'a str {
        self.services
            .get(host)
            .map_or(host, |(_, served_by)| served_by.as_str())
    }

    /// Rooms over all components.
    pub fn room_count(&self) -> usize {
        self.components.values().map(|c| c.room_count()).sum()
    }

    /// Room occupants over all components (internal entities included).
    pub fn occupant_count(&self) -> usize {
        self.components.values().map(|c| c.occupant_count()).sum()
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
        for component in self.components.values_mut() {
            component.disconnect(jid, out);
        }
    }

    /// What `stanza` from `from` would fan out to in a component's room, if anything.
    pub fn fanout(&self, from: &Jid, stanza: &Element) -> Option<Fanout> {
        let to = stanza::jid_attr(stanza, "to").ok()??;
        let component = self
            .components
            .get(self.component_host(to.domain().as_str()))?;
        component.fanout(from, &to, stanza)
    }

    /// Who a broadcast to a component's `room` reaches now.
    pub fn audience(&self, room: &BareJid) -> usize {
        self.components
            .get(room.domain().as_str())
            .map_or(0, |component| component.audience(room))
    }

    /// Routes a stanza sent by `from` (a bound session or an internal entity).
    pub fn route(&mut self, from: &Jid, mut stanza: Element, out: &mut Vec<Delivery>) {
        stanza::set_attr(&mut stanza, "from", from.to_string());
        let to = match stanza::jid_attr(&stanza, "to") {
            Ok(Some(to)) => to,
            Ok(None) => Jid::new(&self.domains.main).expect("configured domain is a valid JID"),
            Err(_) => {
                reply_error(&stanza, StanzaError::BadRequest, out);
                return;
            }
        };
        if self.internal.contains(&to) {
            out.push(Delivery { to, stanza });
            return;
        }
        let host = self.component_host(to.domain().as_str()).to_owned();
        if let Some(component) = self.components.get_mut(&host) {
            let sender = Sender {
                jid: from,
                trust: if self.internal.contains(from) {
                    Trust::Internal
                } else {
                    Trust::Client
                },
                identity: self.identities.get(from),
            };
            component.handle(self.wall_clock, sender, &to, stanza, out);
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
            // Also what an unknown host gets: there is no server-to-server federation.
            _ => reply_error(&stanza, StanzaError::ServiceUnavailable, out),
        }
    }

    /// Stanzas for the server itself: disco#info, ping, and errors for the rest.
    fn to_server(&self, stanza: Element, out: &mut Vec<Delivery>) {
        if stanza.name() != "iq" || !matches!(stanza.attr("type"), Some("get") | Some("set")) {
            if stanza.name() != "presence" && stanza.name() != "iq" {
                reply_error(&stanza, StanzaError::ServiceUnavailable, out);
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
                    self.host_disco_info()
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
                for host in self.components.keys().chain(self.services.keys()) {
                    items.append_child(
                        Element::builder("item", ns::DISCO_ITEMS)
                            .attr(stanza::n("jid"), host.as_str())
                            .build(),
                    );
                }
                iq_result_with(&stanza, Some(items))
            }
            _ => {
                reply_error(&stanza, StanzaError::ServiceUnavailable, out);
                return;
            }
        };
        push_reply(answer, out);
    }

    /// The domain's disco#info: the server, and each component under its host's name.
    fn host_disco_info(&self) -> Element {
        let mut identities = vec![("server", "im", "Convene")];
        let mut features = vec![ns::DISCO_INFO, ns::DISCO_ITEMS, ns::PING, ns::SM];
        for (host, component) in &self.components {
            let identity = component.disco_identity();
            identities.push((identity.category, identity.kind, host.as_str()));
            for feature in component.server_features() {
                // Two components may need one feature; XEP-0030 lists each once.
                if !features.contains(feature) {
                    features.push(feature);
                }
            }
        }
        for (host, (identity, _)) in &self.services {
            identities.push((identity.category, identity.kind, host.as_str()));
        }
        stanza::disco_info(&identities, &features)
    }
}

/// What the router and component tests share: a router for `d.test` with the focus attached,
/// and a dummy component that reports each stanza it is handed.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::component::DiscoIdentity;
    use crate::identity::IdentityKind;
    use crate::xml::{Limits, parse_frame};

    pub(crate) const FOCUS: &str = "focus@auth.d.test/focus";
    pub(crate) const ALICE: &str = "3f2a9c1e-0000-4000-8000-000000000000@guest.d.test/web";

    pub(crate) fn xml(text: &str) -> Element {
        let limits = Limits {
            max_stanza_bytes: 65536,
            max_depth: 16,
        };
        parse_frame(text, limits).unwrap()
    }

    pub(crate) fn jid(text: &str) -> Jid {
        Jid::new(text).unwrap()
    }

    pub(crate) fn guest_identity(address: &str) -> Identity {
        Identity::bare(jid(address), IdentityKind::Guest)
    }

    /// A router for `d.test` with the focus attached and no components.
    pub(crate) fn router() -> Router {
        let mut router = Router::new(Domains::new("d.test"));
        router.attach_internal(&[jid("focus.d.test"), jid(FOCUS)]);
        router
    }

    pub(crate) fn send(router: &mut Router, from: &str, text: &str) -> Vec<Delivery> {
        let mut out = Vec::new();
        router.route(&jid(from), xml(text), &mut out);
        out
    }

    pub(crate) fn to<'a>(out: &'a [Delivery], who: &str) -> Vec<&'a Element> {
        out.iter()
            .filter(|d| d.to.as_str() == who)
            .map(|d| &d.stanza)
            .collect()
    }

    /// The defined condition of an error stanza.
    pub(crate) fn error_condition(stanza: &Element) -> Option<String> {
        let error = stanza.get_child("error", ns::CLIENT)?;
        error.children().next().map(|c| c.name().to_owned())
    }

    pub(crate) const ECHO_NS: &str = "urn:convene:test:echo";

    /// Answers every stanza it is handed with `<handled/>` to the sender, naming itself, the
    /// address, the sender's trust and display name; on a disconnect it tells the departed
    /// JID `<forgot/>`.
    pub(crate) struct Echo(pub(crate) &'static str);

    impl Component for Echo {
        fn handle(
            &mut self,
            _now: SystemTime,
            sender: Sender<'_>,
            to: &Jid,
            stanza: Element,
            out: &mut Vec<Delivery>,
        ) {
            let trust = match sender.trust {
                Trust::Internal => "internal",
                Trust::Client => "client",
            };
            let name = sender
                .identity
                .and_then(|identity| identity.display_name.as_deref())
                .unwrap_or_default();
            let report = Element::builder("handled", ECHO_NS)
                .attr(stanza::n("by"), self.0)
                .attr(stanza::n("to"), to.to_string())
                .attr(stanza::n("trust"), trust)
                .attr(stanza::n("name"), name)
                .append(stanza)
                .build();
            out.push(Delivery {
                to: sender.jid.clone(),
                stanza: report,
            });
        }

        fn disconnect(&mut self, jid: &Jid, out: &mut Vec<Delivery>) {
            let forgot = Element::builder("forgot", ECHO_NS)
                .attr(stanza::n("by"), self.0)
                .build();
            out.push(Delivery {
                to: jid.clone(),
                stanza: forgot,
            });
        }

        fn disco_identity(&self) -> DiscoIdentity {
            DiscoIdentity {
                category: "component",
                kind: self.0,
            }
        }

        fn server_features(&self) -> &'static [&'static str] {
            &["urn:convene:test:echo"]
        }

        fn room_count(&self) -> usize {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    const BOB: &str = "bob@d.test/x";

    fn router_with_lobby_and_polls() -> Router {
        let mut router = router();
        router.add_component("lobby.d.test", Box::new(Echo("lobby")));
        router.add_component("polls.d.test", Box::new(Echo("polls")));
        let mut bob = guest_identity(BOB);
        bob.display_name = Some("Bob".to_owned());
        router.bind(&jid(BOB), bob).unwrap();
        router
    }

    fn handled_by(delivery: &Delivery) -> Option<&str> {
        if delivery.stanza.is("handled", ECHO_NS) {
            delivery.stanza.attr("by")
        } else {
            None
        }
    }

    #[test]
    fn each_component_gets_exactly_the_stanzas_for_its_host() {
        let mut router = router_with_lobby_and_polls();
        let cases = [
            ("<iq type='get' id='1' to='lobby.d.test'/>", "lobby"),
            ("<presence to='room@lobby.d.test/bob'/>", "lobby"),
            (
                "<message to='room@polls.d.test' type='groupchat'/>",
                "polls",
            ),
            ("<iq type='set' id='2' to='a@polls.d.test/n'/>", "polls"),
        ];
        for (stanza, host) in cases {
            let out = send(&mut router, BOB, stanza);
            assert_eq!(out.len(), 1, "{stanza}");
            assert_eq!(handled_by(&out[0]), Some(host), "{stanza}");
            assert_eq!(out[0].to.as_str(), BOB);
            let report = &out[0].stanza;
            assert_eq!(report.attr("trust"), Some("client"));
            assert_eq!(
                report.attr("name"),
                Some("Bob"),
                "the bound identity travels"
            );
            let handed = report.children().next().unwrap();
            assert_eq!(handed.attr("from"), Some(BOB), "from is stamped first");
        }
        let out = send(
            &mut router,
            FOCUS,
            "<iq type='get' id='3' to='polls.d.test'/>",
        );
        assert_eq!(out[0].stanza.attr("trust"), Some("internal"));
        assert_eq!(
            out[0].stanza.attr("name"),
            Some(""),
            "internal entities bind no identity"
        );

        // Neither the server's own domains nor the sessions are handed to components.
        let out = send(
            &mut router,
            BOB,
            "<iq type='get' id='4'><ping xmlns='urn:xmpp:ping'/></iq>",
        );
        assert_eq!(out[0].stanza.attr("type"), Some("result"));
        let out = send(&mut router, FOCUS, &format!("<message to='{BOB}'/>"));
        assert_eq!(to(&out, BOB)[0].name(), "message");

        let mut out = Vec::new();
        router.unbind(&jid(BOB), &mut out);
        let mut forgot: Vec<&str> = out.iter().filter_map(|d| d.stanza.attr("by")).collect();
        forgot.sort_unstable();
        assert_eq!(
            forgot,
            ["lobby", "polls"],
            "every component learns of the departure"
        );
        assert_eq!(router.room_count(), 2, "room counts add up over components");
    }

    #[test]
    fn an_unknown_host_is_service_unavailable() {
        let mut router = router_with_lobby_and_polls();
        for stanza in [
            "<iq type='get' id='1' to='breakout.d.test'/>",
            "<message to='room@breakout.d.test'/>",
            "<iq type='get' id='2' to='someone@elsewhere.example/r'/>",
        ] {
            let out = send(&mut router, BOB, stanza);
            assert_eq!(out.len(), 1, "{stanza}");
            assert_eq!(out[0].to.as_str(), BOB);
            assert_eq!(
                error_condition(&out[0].stanza).as_deref(),
                Some("service-unavailable"),
                "{stanza}"
            );
        }
        assert!(
            send(
                &mut router,
                BOB,
                "<presence to='room@breakout.d.test/bob'/>"
            )
            .is_empty()
        );
    }

    #[test]
    fn the_domain_lists_its_components_in_disco() {
        let mut router = router_with_lobby_and_polls();
        let out = send(
            &mut router,
            BOB,
            &format!(
                "<iq type='get' id='i' to='d.test'><query xmlns='{}'/></iq>",
                ns::DISCO_INFO
            ),
        );
        let query = out[0].stanza.get_child("query", ns::DISCO_INFO).unwrap();
        let identities: Vec<_> = query
            .children()
            .filter(|c| c.name() == "identity")
            .map(|c| (c.attr("type").unwrap(), c.attr("name").unwrap()))
            .collect();
        assert_eq!(
            identities,
            [
                ("im", "Convene"),
                ("lobby", "lobby.d.test"),
                ("polls", "polls.d.test")
            ]
        );
        let features = query.children().filter(|c| c.attr("var") == Some(ECHO_NS));
        assert_eq!(
            features.count(),
            1,
            "a feature two components need is listed once"
        );

        let out = send(
            &mut router,
            BOB,
            &format!(
                "<iq type='get' id='t' to='d.test'><query xmlns='{}'/></iq>",
                ns::DISCO_ITEMS
            ),
        );
        let items: Vec<_> = out[0]
            .stanza
            .get_child("query", ns::DISCO_ITEMS)
            .unwrap()
            .children()
            .filter_map(|c| c.attr("jid"))
            .collect();
        assert_eq!(items, ["lobby.d.test", "polls.d.test"]);
    }

    #[test]
    #[should_panic(expected = "two components at one host")]
    fn one_component_per_host() {
        let mut router = router_with_lobby_and_polls();
        router.add_component("lobby.d.test", Box::new(Echo("again")));
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
