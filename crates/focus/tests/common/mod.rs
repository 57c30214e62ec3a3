//! A test harness around the sans-IO focus: feeds it stanzas built from recorded-shape
//! fixtures, plays the bridge's side of the request/response protocol, and collects what
//! the focus sends.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use convene_colibri::{
    BridgeError, BridgeId, BridgeRequest, BridgeResponse, DtlsSetup, EndpointOffer, Fingerprint,
    GroupSemantics, HeaderExtension, IceCandidate, MediaDescription, MediaKind, PayloadType,
    Source, SourceSet, TransportDescription,
};
use convene_focus::jingle::{Action, Jingle};
use convene_focus::{Config, Focus, Output, RequestId};
use minidom::Element;
use rand::SeedableRng;
use rand::rngs::StdRng;

pub const DOMAIN: &str = "example.com";
pub const ROOM: &str = "standup@conference.example.com";
pub const FOCUS_FULL: &str = "focus@auth.example.com/focus";
pub const JINGLE: &str = "urn:xmpp:jingle:1";

/// A recorded-shape stanza from `tests/stanzas`, filled in for one participant. `base` makes
/// the SSRCs of different participants distinct (`{S}011` → `base011`).
pub fn stanza(name: &str, nick: &str, sid: &str, base: u32) -> String {
    let path = format!("{}/tests/stanzas/{name}.xml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .replace("{ROOM}", ROOM)
        .replace("{NICK}", nick)
        .replace("{SID}", sid)
        .replace("{S}", &base.to_string())
}

pub fn parse(xml: &str) -> Element {
    xml.parse()
        .unwrap_or_else(|e| panic!("invalid test XML: {e}\n{xml}"))
}

pub fn offer(endpoint: &str) -> EndpointOffer {
    let feedback = |ssrc, kind, msid: &str| Source {
        ssrc,
        kind,
        name: None,
        msid: Some(msid.into()),
        video_type: None,
    };
    EndpointOffer {
        transport: TransportDescription {
            ufrag: format!("br{endpoint}"),
            pwd: "bridgepasswordbridgepassword".into(),
            fingerprints: vec![Fingerprint {
                hash: "sha-256".into(),
                value: "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89".into(),
                setup: DtlsSetup::Actpass,
            }],
            candidates: vec![IceCandidate {
                foundation: "1".into(),
                component: 1,
                protocol: "udp".into(),
                priority: 2130706431,
                ip: "127.0.0.1".parse().unwrap(),
                port: 10000,
                typ: "host".into(),
                tcptype: None,
                generation: 0,
            }],
        },
        media: vec![
            MediaDescription {
                kind: MediaKind::Audio,
                payload_types: vec![PayloadType {
                    id: 111,
                    name: "opus".into(),
                    clockrate: 48000,
                    channels: Some(2),
                    parameters: vec![("useinbandfec".into(), "1".into())],
                    rtcp_fb: vec![("transport-cc".into(), None)],
                }],
                header_extensions: vec![HeaderExtension {
                    id: 1,
                    uri: "urn:ietf:params:rtp-hdrext:ssrc-audio-level".into(),
                }],
            },
            MediaDescription {
                kind: MediaKind::Video,
                payload_types: vec![
                    PayloadType {
                        id: 100,
                        name: "VP8".into(),
                        clockrate: 90000,
                        channels: None,
                        parameters: vec![],
                        rtcp_fb: vec![("nack".into(), Some("pli".into()))],
                    },
                    PayloadType {
                        id: 96,
                        name: "rtx".into(),
                        clockrate: 90000,
                        channels: None,
                        parameters: vec![("apt".into(), "100".into())],
                        rtcp_fb: vec![],
                    },
                ],
                header_extensions: vec![],
            },
        ],
        feedback_sources: SourceSet {
            sources: vec![
                feedback(1, MediaKind::Audio, "mixedmslabel mixedlabelaudio0"),
                feedback(2, MediaKind::Video, "mixedmslabel mixedlabelvideo0"),
            ],
            groups: vec![],
        },
        colibri_ws_url: format!("ws://127.0.0.1:8080/colibri-ws/default/standup/{endpoint}?pwd=x"),
    }
}

/// The bridge a [`Harness::new`] focus has.
pub fn bridge() -> BridgeId {
    BridgeId("jvb1".into())
}

pub struct Harness {
    pub focus: Focus,
    pub now: Instant,
    /// Stanzas sent by the focus and not yet taken.
    pub stanzas: Vec<Element>,
    /// Every bridge request the focus made, in order.
    pub bridge_log: Vec<BridgeRequest>,
    /// The bridge each request of `bridge_log` went to, in the same order.
    pub bridge_of: Vec<BridgeId>,
    /// The codecs and header extensions the played bridge offers (else [`offer`]'s).
    pub bridge_media: Option<Vec<MediaDescription>>,
    pending: VecDeque<(BridgeId, RequestId, BridgeRequest)>,
}

impl Harness {
    /// A focus with one bridge, [`bridge`].
    pub fn new(config: Config) -> Self {
        Self::with_bridges(config, &[bridge()])
    }

    pub fn with_bridges(config: Config, bridges: &[BridgeId]) -> Self {
        let mut focus = Focus::new(DOMAIN, config, StdRng::seed_from_u64(7));
        for bridge in bridges {
            focus.add_bridge(bridge.clone());
        }
        Harness {
            focus,
            now: Instant::now(),
            stanzas: Vec::new(),
            bridge_log: Vec::new(),
            bridge_of: Vec::new(),
            bridge_media: None,
            pending: VecDeque::new(),
        }
    }

    pub fn drain(&mut self) {
        while let Some(output) = self.focus.poll_output() {
            match output {
                Output::Stanza(stanza) => self.stanzas.push(stanza),
                Output::Bridge {
                    bridge,
                    id,
                    request,
                } => {
                    self.bridge_log.push(request.clone());
                    self.bridge_of.push(bridge.clone());
                    self.pending.push_back((bridge, id, request));
                }
            }
        }
    }

    pub fn send(&mut self, stanza: Element) {
        self.focus.handle_stanza(self.now, stanza);
        self.drain();
    }

    pub fn send_xml(&mut self, xml: &str) {
        self.send(parse(xml));
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.focus.handle_timeout(self.now);
        self.drain();
    }

    /// The bridge requests issued and not answered yet.
    pub fn in_flight(&self) -> Vec<BridgeRequest> {
        self.pending
            .iter()
            .map(|(_, _, request)| request.clone())
            .collect()
    }

    /// Plays a healthy bridge: answers every request, including those the answers cause.
    pub fn run_bridge(&mut self) {
        while let Some((bridge, id, request)) = self.pending.pop_front() {
            let response = match &request {
                BridgeRequest::AllocateEndpoint { endpoint, .. } => {
                    let mut offer = offer(&endpoint.0);
                    if let Some(media) = &self.bridge_media {
                        offer.media = media.clone();
                    }
                    BridgeResponse::EndpointAllocated(offer)
                }
                _ => BridgeResponse::Done,
            };
            self.focus
                .handle_bridge_response(self.now, &bridge, id, Ok(response));
            self.drain();
        }
    }

    /// Plays a bridge that fails every pending request with `error`.
    pub fn fail_bridge(&mut self, error: BridgeError) {
        while let Some((bridge, id, _)) = self.pending.pop_front() {
            self.focus
                .handle_bridge_response(self.now, &bridge, id, Err(error.clone()));
            self.drain();
        }
    }

    pub fn take_stanzas(&mut self) -> Vec<Element> {
        std::mem::take(&mut self.stanzas)
    }

    /// Lets the bridge answer everything pending, then returns what it was asked.
    pub fn take_bridge_log(&mut self) -> Vec<BridgeRequest> {
        self.run_bridge();
        self.bridge_of.clear();
        std::mem::take(&mut self.bridge_log)
    }

    /// The conference request and the MUC's confirmation of the focus's join; returns the
    /// focus's answer.
    pub fn open_conference(&mut self) -> Element {
        self.open_room(ROOM, "alice")
    }

    /// `nick` asks for `room` and the MUC confirms the focus's join; returns the focus's
    /// answer.
    pub fn open_room(&mut self, room: &str, nick: &str) -> Element {
        self.room_request(room, nick);
        let join = self.take_stanzas();
        assert_eq!(
            join.len(),
            1,
            "only the join presence before the MUC confirms"
        );
        assert_eq!(join[0].name(), "presence");
        assert_eq!(join[0].attr("to"), Some(format!("{room}/focus").as_str()));
        self.send_xml(&format!(
            r#"<presence xmlns="jabber:client" from="{room}/focus" to="{FOCUS_FULL}">
                 <x xmlns="http://jabber.org/protocol/muc#user">
                   <item affiliation="owner" role="moderator" jid="{FOCUS_FULL}"/>
                   <status code="110"/><status code="201"/>
                 </x></presence>"#
        ));
        let mut answer = self.take_stanzas();
        assert_eq!(answer.len(), 1);
        answer.remove(0)
    }

    /// The conference request of `nick`'s client (real JID `nick@example.com/web`, as in
    /// [`Harness::presence`]).
    pub fn conference_request(&mut self, nick: &str) {
        self.room_request(ROOM, nick);
    }

    /// The conference request of `nick`'s client for `room`.
    pub fn room_request(&mut self, room: &str, nick: &str) {
        self.send_xml(&format!(
            r#"<iq xmlns="jabber:client" type="set" id="c-{nick}" from="{nick}@example.com/web" to="focus.example.com">
                 <conference xmlns="http://jitsi.org/protocol/focus" room="{room}" machine-uid="m1">
                   <property name="visitors-version" value="1"/>
                 </conference></iq>"#
        ));
    }

    /// An occupant presence as the MUC relays it to the focus.
    pub fn presence(&mut self, nick: &str, affiliation: &str, role: &str) {
        self.presence_in(ROOM, nick, affiliation, role);
    }

    /// [`Harness::presence`] in another room.
    pub fn presence_in(&mut self, room: &str, nick: &str, affiliation: &str, role: &str) {
        self.send_xml(&format!(
            r#"<presence xmlns="jabber:client" from="{room}/{nick}" to="{FOCUS_FULL}">
                 <x xmlns="http://jabber.org/protocol/muc#user">
                   <item affiliation="{affiliation}" role="{role}" jid="{nick}@example.com/web"/>
                 </x>
                 <nick xmlns="http://jabber.org/protocol/nick">{nick}</nick>
               </presence>"#
        ));
    }

    pub fn leave(&mut self, nick: &str) {
        self.send_xml(&format!(
            r#"<presence xmlns="jabber:client" type="unavailable" from="{ROOM}/{nick}" to="{FOCUS_FULL}">
                 <x xmlns="http://jabber.org/protocol/muc#user">
                   <item affiliation="none" role="none" jid="{nick}@example.com/web"/>
                 </x></presence>"#
        ));
    }

    /// A participant joins and the bridge allocates; returns the session-initiate it got.
    pub fn join(&mut self, nick: &str) -> Jingle {
        self.presence(nick, "none", "participant");
        self.run_bridge();
        let initiates = take_jingle(&mut self.stanzas, nick, Action::SessionInitiate);
        assert_eq!(initiates.len(), 1, "one session-initiate for {nick}");
        initiates.into_iter().next().unwrap()
    }

    /// Sends a recorded-shape Jingle request and returns the focus's reply to it.
    pub fn request(&mut self, name: &str, nick: &str, sid: &str, base: u32) -> Element {
        self.request_xml(&stanza(name, nick, sid, base))
    }

    pub fn request_xml(&mut self, xml: &str) -> Element {
        let request = parse(xml);
        let id = request.attr("id").unwrap().to_owned();
        self.send(request);
        take_reply(&mut self.stanzas, &id)
    }
}

/// Alice and Bob in a conference, both sessions accepted and the bridge caught up, nothing
/// left to read; returns the harness and the two offers.
pub fn two_active() -> (Harness, Jingle, Jingle) {
    let mut h = Harness::new(Config::default());
    h.open_conference();
    let offer_a = h.join("alice");
    let offer_b = h.join("bob");
    h.take_stanzas();
    assert_result(&h.request("session-accept", "alice", &offer_a.sid, 1));
    assert_result(&h.request("session-accept", "bob", &offer_b.sid, 2));
    h.take_stanzas();
    h.run_bridge();
    h.take_bridge_log();
    (h, offer_a, offer_b)
}

/// Removes and returns the reply with `id`.
pub fn take_reply(stanzas: &mut Vec<Element>, id: &str) -> Element {
    let index = stanzas
        .iter()
        .position(|s| {
            s.attr("id") == Some(id) && matches!(s.attr("type"), Some("result" | "error"))
        })
        .unwrap_or_else(|| panic!("no reply to {id} in {stanzas:?}"));
    stanzas.remove(index)
}

/// Removes and returns the Jingle requests with `action` sent to `nick`.
pub fn take_jingle(stanzas: &mut Vec<Element>, nick: &str, action: Action) -> Vec<Jingle> {
    let to = format!("{ROOM}/{nick}");
    let mut taken = Vec::new();
    stanzas.retain(|stanza| {
        let jingle = stanza
            .get_child("jingle", JINGLE)
            .map(|j| Jingle::parse(j).expect("the focus sends valid Jingle"));
        match jingle {
            Some(jingle) if stanza.attr("to") == Some(&to) && jingle.action == action => {
                assert_eq!(stanza.attr("from"), Some(FOCUS_FULL));
                assert_eq!(stanza.attr("type"), Some("set"));
                taken.push(jingle);
                false
            }
            _ => true,
        }
    });
    taken
}

/// `(owner, ssrc)` of every source in a Jingle message, sorted.
pub fn owned_ssrcs(jingle: &Jingle) -> Vec<(String, u32)> {
    let mut all: Vec<(String, u32)> = jingle
        .contents
        .iter()
        .filter_map(|c| c.description.as_ref())
        .flat_map(|d| d.sources.iter())
        .map(|s| (s.owner.clone().unwrap_or_default(), s.source.ssrc))
        .collect();
    all.sort();
    all
}

pub fn fid_groups(jingle: &Jingle) -> Vec<Vec<u32>> {
    jingle
        .contents
        .iter()
        .filter_map(|c| c.description.as_ref())
        .flat_map(|d| d.groups.iter())
        .filter(|g| g.semantics == GroupSemantics::Fid)
        .map(|g| g.ssrcs.clone())
        .collect()
}

/// The stanza error condition of an IQ error, and whether it carries Jingle's
/// `unknown-session`.
pub fn error_of(reply: &Element) -> (String, bool) {
    assert_eq!(
        reply.attr("type"),
        Some("error"),
        "expected an error: {reply:?}"
    );
    let error = reply.children().find(|c| c.name() == "error").unwrap();
    let condition = error
        .children()
        .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        .unwrap()
        .name()
        .to_owned();
    let unknown_session = error.has_child("unknown-session", "urn:xmpp:jingle:errors:1");
    (condition, unknown_session)
}

pub fn assert_result(reply: &Element) {
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "expected a result: {reply:?}"
    );
}
