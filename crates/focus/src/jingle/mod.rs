//! Jingle as the Jitsi clients speak it (XEP-0166/0167/0176/0320/0339 plus Jitsi's
//! `ssrc-info`, `web-socket` and `bridge-session`).
//!
//! Hand-written on `minidom` rather than taken from `xmpp-parsers`: its Jingle types reject
//! `SIM` groups, keep ICE credentials private and drop the Jitsi extensions (see
//! `shared/design/dependencies.md` §3.2). Parsing is strict about what we use (typed errors,
//! bounded counts and lengths) and lenient where the Jitsi stack is sloppy: `<parameter>`
//! and `<rtcp-fb>` are accepted in any namespace, unknown children are ignored, and
//! candidates whose address is not an IP (mDNS `.local` names) are skipped.

mod description;
mod transport;

use std::fmt;
use std::str::FromStr;

use convene_colibri::{
    Fingerprint, HeaderExtension, IceCandidate, MediaDescription, MediaKind, PayloadType, Source,
    SourceSet, SsrcGroup,
};
use minidom::Element;

use crate::json_sources;
use crate::ns;
use crate::xml::{ElementExt, ParseError, optional, push_bounded, required, text};

const MAX_CONTENTS: usize = 8;

/// The owner the bridge's own (RTCP feedback) sources carry.
pub const BRIDGE_OWNER: &str = "jvb";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    SessionInitiate,
    SessionAccept,
    SessionTerminate,
    SessionInfo,
    TransportInfo,
    SourceAdd,
    SourceRemove,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::SessionInitiate => "session-initiate",
            Action::SessionAccept => "session-accept",
            Action::SessionTerminate => "session-terminate",
            Action::SessionInfo => "session-info",
            Action::TransportInfo => "transport-info",
            Action::SourceAdd => "source-add",
            Action::SourceRemove => "source-remove",
        }
    }
}

impl FromStr for Action {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        [
            Action::SessionInitiate,
            Action::SessionAccept,
            Action::SessionTerminate,
            Action::SessionInfo,
            Action::TransportInfo,
            Action::SourceAdd,
            Action::SourceRemove,
        ]
        .into_iter()
        .find(|action| action.as_str() == s)
        .ok_or_else(|| ParseError::UnknownAction(s.chars().take(64).collect()))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `<jingle>` element.
#[derive(Debug, Clone, PartialEq)]
pub struct Jingle {
    pub action: Action,
    pub sid: String,
    pub initiator: Option<String>,
    pub responder: Option<String>,
    pub contents: Vec<Content>,
    /// Content names of the `BUNDLE` group, if any.
    pub bundle: Option<Vec<String>>,
    pub bridge_session: Option<BridgeSession>,
    pub reason: Option<Reason>,
    /// Sources per owner from a Jitsi `json-message` (the JSON form of the same elements).
    pub json_sources: Vec<(String, SourceSet)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub name: String,
    pub creator: Option<String>,
    pub senders: Option<String>,
    pub description: Option<Description>,
    pub transport: Option<Transport>,
}

/// An RTP `<description>` (XEP-0167) with its sources (XEP-0339).
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// `audio`, `video` or `application`.
    pub media: String,
    pub payload_types: Vec<PayloadType>,
    pub header_extensions: Vec<HeaderExtension>,
    pub extmap_allow_mixed: bool,
    pub rtcp_mux: bool,
    pub sources: Vec<OwnedSource>,
    pub groups: Vec<SsrcGroup>,
}

/// A `<source>` with the Jitsi `ssrc-info` owner (an endpoint id, `jvb`, or an occupant JID).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedSource {
    pub owner: Option<String>,
    pub source: Source,
}

/// An ICE-UDP `<transport>` (XEP-0176) with DTLS fingerprints (XEP-0320) and the Jitsi
/// bridge-channel `web-socket`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transport {
    pub ufrag: Option<String>,
    pub pwd: Option<String>,
    pub fingerprints: Vec<Fingerprint>,
    pub candidates: Vec<IceCandidate>,
    pub web_socket: Option<String>,
    pub rtcp_mux: bool,
}

/// Jitsi's `<bridge-session xmlns="http://jitsi.org/protocol/focus">`.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeSession {
    pub id: Option<String>,
    pub restart: bool,
    pub ice_restart: bool,
}

/// A Jingle `<reason>`: the condition element's name and the optional text.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub condition: String,
    pub text: Option<String>,
}

fn media_kind(media: &str) -> Option<MediaKind> {
    match media {
        "audio" => Some(MediaKind::Audio),
        "video" => Some(MediaKind::Video),
        _ => None,
    }
}

fn media_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

fn bool_attr(el: &Element, name: &str) -> bool {
    matches!(el.attr(name), Some("true" | "1"))
}

impl Jingle {
    /// A request with nothing but its action and session id, to fill in.
    pub fn new(action: Action, sid: &str) -> Self {
        Jingle {
            action,
            sid: sid.to_owned(),
            initiator: None,
            responder: None,
            contents: Vec::new(),
            bundle: None,
            bridge_session: None,
            reason: None,
            json_sources: Vec::new(),
        }
    }

    /// Reads a `<jingle>` element received from a peer.
    pub fn parse(el: &Element) -> Result<Self, ParseError> {
        if !el.is("jingle", ns::JINGLE) {
            return Err(ParseError::MissingElement { element: "jingle" });
        }
        let mut jingle = Jingle {
            action: required(el, "jingle", "action")?.parse()?,
            sid: required(el, "jingle", "sid")?.to_owned(),
            initiator: optional(el, "jingle", "initiator")?.map(str::to_owned),
            responder: optional(el, "jingle", "responder")?.map(str::to_owned),
            contents: Vec::new(),
            bundle: None,
            bridge_session: None,
            reason: None,
            json_sources: Vec::new(),
        };
        for child in el.children() {
            if child.is("content", ns::JINGLE) {
                push_bounded(
                    &mut jingle.contents,
                    Content::parse(child)?,
                    "content",
                    MAX_CONTENTS,
                )?;
            } else if child.is("group", ns::GROUPING) && child.attr("semantics") == Some("BUNDLE") {
                let mut names = Vec::new();
                for member in child.children().filter(|c| c.name() == "content") {
                    let name = required(member, "content", "name")?.to_owned();
                    push_bounded(&mut names, name, "content", MAX_CONTENTS)?;
                }
                jingle.bundle = Some(names);
            } else if child.is("bridge-session", ns::FOCUS) {
                jingle.bridge_session = Some(BridgeSession {
                    id: optional(child, "bridge-session", "id")?.map(str::to_owned),
                    restart: bool_attr(child, "restart"),
                    ice_restart: bool_attr(child, "ice-restart"),
                });
            } else if child.is("reason", ns::JINGLE) {
                jingle.reason = Some(Reason::parse(child)?);
            } else if child.is("json-message", ns::JITMEET) {
                // Not `text()` with its short limit: a JSON source map is legitimately long.
                jingle
                    .json_sources
                    .extend(json_sources::parse(&child.text())?);
            }
        }
        Ok(jingle)
    }

    pub fn to_element(&self) -> Element {
        let mut el = Element::bare("jingle", ns::JINGLE)
            .with_attr("action", self.action.as_str())
            .with_attr("sid", self.sid.as_str())
            .with_attr("initiator", self.initiator.as_deref())
            .with_attr("responder", self.responder.as_deref())
            .with_children(self.contents.iter().map(Content::to_element));
        if let Some(names) = &self.bundle {
            el = el.with_child(
                Element::bare("group", ns::GROUPING)
                    .with_attr("semantics", "BUNDLE")
                    .with_children(names.iter().map(|name| {
                        Element::bare("content", ns::GROUPING).with_attr("name", name.as_str())
                    })),
            );
        }
        if let Some(session) = &self.bridge_session {
            el = el.with_child(session.to_element());
        }
        if let Some(reason) = &self.reason {
            el = el.with_child(reason.to_element());
        }
        if !self.json_sources.is_empty() {
            el = el.with_child(
                Element::bare("json-message", ns::JITMEET)
                    .with_text(json_sources::to_json(&self.json_sources)),
            );
        }
        el
    }

    /// The first transport that carries ICE credentials (with BUNDLE, all contents share it).
    pub fn transport(&self) -> Option<&Transport> {
        self.contents
            .iter()
            .filter_map(|c| c.transport.as_ref())
            .find(|t| t.ufrag.is_some() && t.pwd.is_some())
    }

    /// Every candidate of every content: with BUNDLE they all belong to the one transport.
    pub fn candidates(&self) -> Vec<IceCandidate> {
        self.contents
            .iter()
            .filter_map(|c| c.transport.as_ref())
            .flat_map(|t| t.candidates.iter().cloned())
            .collect()
    }

    /// The codecs and header extensions of the audio and video contents.
    pub fn media(&self) -> Vec<MediaDescription> {
        self.contents
            .iter()
            .filter_map(|c| c.description.as_ref())
            .filter_map(|d| {
                Some(MediaDescription {
                    kind: media_kind(&d.media)?,
                    payload_types: d.payload_types.clone(),
                    header_extensions: d.header_extensions.clone(),
                })
            })
            .collect()
    }

    /// All sources and groups of all contents and of the JSON form, ignoring any owner:
    /// what a participant signals is always its own.
    pub fn sources(&self) -> SourceSet {
        let mut set = SourceSet::default();
        for description in self.contents.iter().filter_map(|c| c.description.as_ref()) {
            set.sources
                .extend(description.sources.iter().map(|s| s.source.clone()));
            set.groups.extend(description.groups.iter().cloned());
        }
        for (_, json) in &self.json_sources {
            set.sources.extend(json.sources.iter().cloned());
            set.groups.extend(json.groups.iter().cloned());
        }
        set
    }
}

impl Content {
    fn parse(el: &Element) -> Result<Self, ParseError> {
        let mut content = Content {
            name: required(el, "content", "name")?.to_owned(),
            creator: optional(el, "content", "creator")?.map(str::to_owned),
            senders: optional(el, "content", "senders")?.map(str::to_owned),
            description: None,
            transport: None,
        };
        for child in el.children() {
            if child.is("description", ns::RTP) {
                content.description = Some(Description::parse(child)?);
            } else if child.is("transport", ns::ICE_UDP) {
                content.transport = Some(Transport::parse(child)?);
            }
        }
        Ok(content)
    }

    fn to_element(&self) -> Element {
        let mut el = Element::bare("content", ns::JINGLE)
            .with_attr("creator", self.creator.as_deref())
            .with_attr("name", self.name.as_str())
            .with_attr("senders", self.senders.as_deref());
        if let Some(description) = &self.description {
            el = el.with_child(description.to_element());
        }
        if let Some(transport) = &self.transport {
            el = el.with_child(transport.to_element());
        }
        el
    }
}

impl BridgeSession {
    fn to_element(&self) -> Element {
        Element::bare("bridge-session", ns::FOCUS)
            .with_attr("id", self.id.as_deref())
            .with_attr("restart", self.restart.then_some("true"))
            .with_attr("ice-restart", self.ice_restart.then_some("true"))
    }
}

impl Reason {
    fn parse(el: &Element) -> Result<Self, ParseError> {
        let mut reason = Reason {
            condition: String::new(),
            text: None,
        };
        for child in el.children() {
            if child.name() == "text" {
                reason.text = Some(text(child, "text")?);
            } else if reason.condition.is_empty() {
                reason.condition = child.name().chars().take(64).collect();
            }
        }
        Ok(reason)
    }

    fn to_element(&self) -> Element {
        let mut el = Element::bare("reason", ns::JINGLE)
            .with_child(Element::bare(self.condition.as_str(), ns::JINGLE));
        if let Some(text) = &self.text {
            el = el.with_child(Element::bare("text", ns::JINGLE).with_text(text.as_str()));
        }
        el
    }
}
