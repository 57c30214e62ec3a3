//! Jingle as the Jitsi clients speak it (XEP-0166/0167/0176/0320/0339 plus Jitsi's
//! `ssrc-info`, `web-socket` and `bridge-session`).
//!
//! Hand-written on `minidom` rather than taken from `xmpp-parsers`: its Jingle types reject
//! `SIM` groups, keep ICE credentials private and drop the Jitsi extensions (see
//! `shared/design/dependencies.md` §3.2). Parsing is strict about what we use (typed errors,
//! bounded counts and lengths) and lenient where the Jitsi stack is sloppy: `<parameter>`
//! and `<rtcp-fb>` are accepted in any namespace, unknown children are ignored, and
//! candidates whose address is not an IP (mDNS `.local` names) are skipped.

use std::fmt;
use std::str::FromStr;

use convene_bridge::api::{
    DtlsSetup, Fingerprint, GroupSemantics, HeaderExtension, IceCandidate, MediaDescription,
    MediaKind, PayloadType, Source, SourceSet, SsrcGroup, TransportDescription, VideoType,
};
use minidom::{Element, NSChoice};

use crate::json_sources;
use crate::ns;
use crate::xml::{
    ElementExt, ParseError, optional, optional_parsed, push_bounded, required, required_parsed,
    text,
};

const MAX_CONTENTS: usize = 8;
const MAX_PAYLOAD_TYPES: usize = 64;
const MAX_PARAMETERS: usize = 32;
const MAX_RTCP_FB: usize = 32;
const MAX_HEADER_EXTENSIONS: usize = 32;
/// Per description; the per-endpoint rule (20, as Jicofo) is applied by the validator, this
/// only bounds the work of parsing.
const MAX_SOURCES: usize = 64;
const MAX_GROUPS: usize = 64;
const MAX_GROUP_MEMBERS: usize = 8;
const MAX_CANDIDATES: usize = 32;
const MAX_FINGERPRINTS: usize = 4;

/// The owner the bridge's own (RTCP feedback) sources carry.
pub const BRIDGE_OWNER: &str = "jvb";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

impl Description {
    /// An empty description of one media kind.
    pub fn new(kind: MediaKind) -> Self {
        Description {
            media: media_name(kind).to_owned(),
            payload_types: Vec::new(),
            header_extensions: Vec::new(),
            extmap_allow_mixed: false,
            rtcp_mux: false,
            sources: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// The bridge's offer for one media kind, as the Jitsi clients expect it: with
    /// `rtcp-mux` (mandatory for their max-bundle peer connection) and mixed extmaps.
    pub fn offer(media: &MediaDescription) -> Self {
        Description {
            payload_types: media.payload_types.clone(),
            header_extensions: media.header_extensions.clone(),
            extmap_allow_mixed: true,
            rtcp_mux: true,
            ..Description::new(media.kind)
        }
    }

    pub fn kind(&self) -> Option<MediaKind> {
        media_kind(&self.media)
    }

    /// Adds the sources and groups of `set` that have this description's kind.
    pub fn add_sources(&mut self, owner: &str, set: &SourceSet) {
        let kind = self.kind();
        self.sources.extend(
            set.sources
                .iter()
                .filter(|s| Some(s.kind) == kind)
                .map(|source| OwnedSource {
                    owner: Some(owner.to_owned()),
                    source: source.clone(),
                }),
        );
        self.groups
            .extend(set.groups.iter().filter(|g| Some(g.kind) == kind).cloned());
    }

    fn parse(el: &Element) -> Result<Self, ParseError> {
        let media = required(el, "description", "media")?.to_owned();
        let kind = media_kind(&media);
        let mut description = Description {
            media,
            ..Description::new(MediaKind::Audio)
        };
        for child in el.children() {
            match child.name() {
                "payload-type" => push_bounded(
                    &mut description.payload_types,
                    parse_payload_type(child)?,
                    "payload-type",
                    MAX_PAYLOAD_TYPES,
                )?,
                "rtp-hdrext" => push_bounded(
                    &mut description.header_extensions,
                    HeaderExtension {
                        id: required_parsed(child, "rtp-hdrext", "id")?,
                        uri: required(child, "rtp-hdrext", "uri")?.to_owned(),
                    },
                    "rtp-hdrext",
                    MAX_HEADER_EXTENSIONS,
                )?,
                "extmap-allow-mixed" => description.extmap_allow_mixed = true,
                "rtcp-mux" => description.rtcp_mux = true,
                "source" | "ssrc-group" => {
                    // Sources only make sense in RTP media of a known kind.
                    let kind = kind.ok_or(ParseError::InvalidAttribute {
                        element: "description",
                        attribute: "media",
                    })?;
                    if child.name() == "source" {
                        push_bounded(
                            &mut description.sources,
                            parse_source(child, kind)?,
                            "source",
                            MAX_SOURCES,
                        )?;
                    } else if let Some(group) = parse_group(child, kind)? {
                        push_bounded(&mut description.groups, group, "ssrc-group", MAX_GROUPS)?;
                    }
                }
                _ => {}
            }
        }
        Ok(description)
    }

    fn to_element(&self) -> Element {
        let mut el = Element::bare("description", ns::RTP)
            .with_attr("media", self.media.as_str())
            .with_children(self.payload_types.iter().map(payload_type_element))
            .with_children(self.header_extensions.iter().map(|ext| {
                Element::bare("rtp-hdrext", ns::HDREXT)
                    .with_attr("id", ext.id)
                    .with_attr("uri", ext.uri.as_str())
            }));
        if self.extmap_allow_mixed {
            el = el.with_child(Element::bare("extmap-allow-mixed", ns::HDREXT));
        }
        if self.rtcp_mux {
            el = el.with_child(Element::bare("rtcp-mux", ns::RTP));
        }
        el.with_children(self.sources.iter().map(source_element))
            .with_children(self.groups.iter().map(group_element))
    }
}

fn parse_payload_type(el: &Element) -> Result<PayloadType, ParseError> {
    const E: &str = "payload-type";
    let mut payload_type = PayloadType {
        id: required_parsed(el, E, "id")?,
        name: required(el, E, "name")?.to_owned(),
        clockrate: required_parsed(el, E, "clockrate")?,
        channels: optional_parsed(el, E, "channels")?,
        parameters: Vec::new(),
        rtcp_fb: Vec::new(),
    };
    for child in el.children() {
        match child.name() {
            "parameter" => {
                // RED's parameter has a value and no name (`111/111`).
                let name = optional(child, "parameter", "name")?.unwrap_or_default();
                let value = required(child, "parameter", "value")?;
                push_bounded(
                    &mut payload_type.parameters,
                    (name.to_owned(), value.to_owned()),
                    "parameter",
                    MAX_PARAMETERS,
                )?;
            }
            "rtcp-fb" => {
                let typ = required(child, "rtcp-fb", "type")?.to_owned();
                let subtype = optional(child, "rtcp-fb", "subtype")?.map(str::to_owned);
                push_bounded(
                    &mut payload_type.rtcp_fb,
                    (typ, subtype),
                    "rtcp-fb",
                    MAX_RTCP_FB,
                )?;
            }
            _ => {}
        }
    }
    Ok(payload_type)
}

fn payload_type_element(pt: &PayloadType) -> Element {
    Element::bare("payload-type", ns::RTP)
        .with_attr("id", pt.id)
        .with_attr("name", pt.name.as_str())
        .with_attr("clockrate", pt.clockrate)
        .with_attr("channels", pt.channels)
        .with_children(pt.parameters.iter().map(|(name, value)| {
            Element::bare("parameter", ns::RTP)
                .with_attr("name", (!name.is_empty()).then_some(name.as_str()))
                .with_attr("value", value.as_str())
        }))
        .with_children(pt.rtcp_fb.iter().map(|(typ, subtype)| {
            Element::bare("rtcp-fb", ns::RTCP_FB)
                .with_attr("type", typ.as_str())
                .with_attr("subtype", subtype.as_deref())
        }))
}

fn parse_source(el: &Element, kind: MediaKind) -> Result<OwnedSource, ParseError> {
    const E: &str = "source";
    let video_type = match optional(el, E, "videoType")? {
        Some("desktop") => Some(VideoType::Desktop),
        Some("camera") => Some(VideoType::Camera),
        Some(_) => {
            return Err(ParseError::InvalidAttribute {
                element: E,
                attribute: "videoType",
            });
        }
        None => None,
    };
    let mut source = Source {
        ssrc: required_parsed(el, E, "ssrc")?,
        kind,
        name: optional(el, E, "name")?.map(str::to_owned),
        msid: None,
        video_type,
    };
    let mut owner = None;
    let mut children = 0;
    for child in el.children() {
        children += 1;
        if children > MAX_PARAMETERS {
            return Err(ParseError::TooMany {
                element: "parameter",
                limit: MAX_PARAMETERS,
            });
        }
        if child.name() == "parameter" && child.attr("name") == Some("msid") {
            source.msid = Some(required(child, "parameter", "value")?.to_owned());
        } else if child.is("ssrc-info", ns::JITMEET) {
            owner = optional(child, "ssrc-info", "owner")?.map(str::to_owned);
        }
    }
    Ok(OwnedSource { owner, source })
}

fn source_element(owned: &OwnedSource) -> Element {
    let source = &owned.source;
    let video_type = source.video_type.map(|t| match t {
        VideoType::Camera => "camera",
        VideoType::Desktop => "desktop",
    });
    let mut el = Element::bare("source", ns::SSMA)
        .with_attr("ssrc", source.ssrc)
        .with_attr("name", source.name.as_deref())
        .with_attr("videoType", video_type);
    if let Some(msid) = &source.msid {
        el = el.with_child(
            Element::bare("parameter", ns::SSMA)
                .with_attr("name", "msid")
                .with_attr("value", msid.as_str()),
        );
    }
    if let Some(owner) = &owned.owner {
        el = el
            .with_child(Element::bare("ssrc-info", ns::JITMEET).with_attr("owner", owner.as_str()));
    }
    el
}

/// A `SIM` or `FID` group; other semantics are of no use to the bridge and are skipped.
fn parse_group(el: &Element, kind: MediaKind) -> Result<Option<SsrcGroup>, ParseError> {
    let semantics = match required(el, "ssrc-group", "semantics")? {
        "SIM" => GroupSemantics::Sim,
        "FID" => GroupSemantics::Fid,
        _ => return Ok(None),
    };
    let mut ssrcs = Vec::new();
    for member in el.children().filter(|c| c.name() == "source") {
        push_bounded(
            &mut ssrcs,
            required_parsed(member, "source", "ssrc")?,
            "source",
            MAX_GROUP_MEMBERS,
        )?;
    }
    Ok(Some(SsrcGroup {
        semantics,
        kind,
        ssrcs,
    }))
}

fn group_element(group: &SsrcGroup) -> Element {
    let semantics = match group.semantics {
        GroupSemantics::Sim => "SIM",
        GroupSemantics::Fid => "FID",
    };
    Element::bare("ssrc-group", ns::SSMA)
        .with_attr("semantics", semantics)
        .with_children(
            group
                .ssrcs
                .iter()
                .map(|ssrc| Element::bare("source", ns::SSMA).with_attr("ssrc", *ssrc)),
        )
}

impl Transport {
    /// The bridge's side of a session, with its bridge-channel URL.
    pub fn offer(description: &TransportDescription, web_socket: &str) -> Self {
        Transport {
            ufrag: Some(description.ufrag.clone()),
            pwd: Some(description.pwd.clone()),
            fingerprints: description.fingerprints.clone(),
            candidates: description.candidates.clone(),
            web_socket: Some(web_socket.to_owned()),
            rtcp_mux: true,
        }
    }

    /// What the bridge needs from a participant's answer: credentials and a fingerprint.
    pub fn description(&self) -> Result<TransportDescription, ParseError> {
        let missing = |attribute| ParseError::MissingAttribute {
            element: "transport",
            attribute,
        };
        if self.fingerprints.is_empty() {
            return Err(ParseError::MissingElement {
                element: "fingerprint",
            });
        }
        Ok(TransportDescription {
            ufrag: self.ufrag.clone().ok_or(missing("ufrag"))?,
            pwd: self.pwd.clone().ok_or(missing("pwd"))?,
            fingerprints: self.fingerprints.clone(),
            candidates: self.candidates.clone(),
        })
    }

    fn parse(el: &Element) -> Result<Self, ParseError> {
        let mut transport = Transport {
            ufrag: optional(el, "transport", "ufrag")?.map(str::to_owned),
            pwd: optional(el, "transport", "pwd")?.map(str::to_owned),
            ..Transport::default()
        };
        for child in el.children() {
            if child.is("fingerprint", ns::DTLS) {
                push_bounded(
                    &mut transport.fingerprints,
                    parse_fingerprint(child)?,
                    "fingerprint",
                    MAX_FINGERPRINTS,
                )?;
            } else if child.is("candidate", ns::ICE_UDP) {
                if transport.candidates.len() >= MAX_CANDIDATES {
                    return Err(ParseError::TooMany {
                        element: "candidate",
                        limit: MAX_CANDIDATES,
                    });
                }
                if let Some(candidate) = parse_candidate(child)? {
                    transport.candidates.push(candidate);
                }
            } else if child.is("web-socket", ns::COLIBRI) {
                transport.web_socket = Some(required(child, "web-socket", "url")?.to_owned());
            } else if child.is("rtcp-mux", NSChoice::Any) {
                transport.rtcp_mux = true;
            }
        }
        Ok(transport)
    }

    fn to_element(&self) -> Element {
        let mut el = Element::bare("transport", ns::ICE_UDP)
            .with_attr("ufrag", self.ufrag.as_deref())
            .with_attr("pwd", self.pwd.as_deref())
            .with_children(self.fingerprints.iter().map(fingerprint_element))
            .with_children(self.candidates.iter().enumerate().map(candidate_element));
        if self.rtcp_mux {
            el = el.with_child(Element::bare("rtcp-mux", ns::ICE_UDP));
        }
        if let Some(url) = &self.web_socket {
            el = el.with_child(
                Element::bare("web-socket", ns::COLIBRI).with_attr("url", url.as_str()),
            );
        }
        el
    }
}

fn parse_fingerprint(el: &Element) -> Result<Fingerprint, ParseError> {
    let setup = match optional(el, "fingerprint", "setup")? {
        Some("active") => DtlsSetup::Active,
        Some("passive") => DtlsSetup::Passive,
        Some("actpass") | None => DtlsSetup::Actpass,
        Some(_) => {
            return Err(ParseError::InvalidAttribute {
                element: "fingerprint",
                attribute: "setup",
            });
        }
    };
    Ok(Fingerprint {
        hash: required(el, "fingerprint", "hash")?.to_owned(),
        value: text(el, "fingerprint")?,
        setup,
    })
}

fn fingerprint_element(fingerprint: &Fingerprint) -> Element {
    let setup = match fingerprint.setup {
        DtlsSetup::Active => "active",
        DtlsSetup::Passive => "passive",
        DtlsSetup::Actpass => "actpass",
    };
    Element::bare("fingerprint", ns::DTLS)
        .with_attr("hash", fingerprint.hash.as_str())
        .with_attr("setup", setup)
        .with_text(fingerprint.value.as_str())
}

/// A candidate, or `None` when its address is a name (mDNS): the bridge cannot use those.
fn parse_candidate(el: &Element) -> Result<Option<IceCandidate>, ParseError> {
    const E: &str = "candidate";
    let Ok(ip) = required(el, E, "ip")?.parse() else {
        return Ok(None);
    };
    Ok(Some(IceCandidate {
        foundation: required(el, E, "foundation")?.to_owned(),
        component: required_parsed(el, E, "component")?,
        protocol: required(el, E, "protocol")?.to_ascii_lowercase(),
        priority: required_parsed(el, E, "priority")?,
        ip,
        port: required_parsed(el, E, "port")?,
        typ: required(el, E, "type")?.to_owned(),
        tcptype: optional(el, E, "tcptype")?.map(str::to_owned),
        generation: optional_parsed(el, E, "generation")?.unwrap_or(0),
    }))
}

fn candidate_element((index, candidate): (usize, &IceCandidate)) -> Element {
    let el = Element::bare("candidate", ns::ICE_UDP)
        .with_attr("component", candidate.component)
        .with_attr("foundation", candidate.foundation.as_str())
        .with_attr("generation", candidate.generation)
        .with_attr("id", format!("c{index}"))
        .with_attr("network", 0u32)
        .with_attr("priority", candidate.priority)
        .with_attr("protocol", candidate.protocol.as_str())
        .with_attr("type", candidate.typ.as_str())
        .with_attr("ip", candidate.ip)
        .with_attr("port", candidate.port)
        .with_attr("tcptype", candidate.tcptype.as_deref());
    // As the Jitsi bridge: a non-host candidate hides its base address.
    if candidate.typ == "host" {
        el
    } else {
        el.with_attr("rel-addr", "0.0.0.0")
            .with_attr("rel-port", 9u16)
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
