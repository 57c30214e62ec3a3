//! The RTP `<description>` (XEP-0167): payload types with their parameters and feedback
//! (XEP-0293), header extensions (XEP-0294), sources and groups (XEP-0339).

use convene_colibri::{
    GroupSemantics, HeaderExtension, MediaDescription, MediaKind, PayloadType, Source, SourceSet,
    SsrcGroup, VideoType,
};
use minidom::Element;

use super::{Description, OwnedSource, media_kind, media_name};
use crate::ns;
use crate::xml::{
    ElementExt, ParseError, optional, optional_parsed, push_bounded, required, required_parsed,
};

const MAX_PAYLOAD_TYPES: usize = 64;
const MAX_PARAMETERS: usize = 32;
const MAX_RTCP_FB: usize = 32;
const MAX_HEADER_EXTENSIONS: usize = 32;
/// Per description; the per-endpoint rule (20, as Jicofo) is applied by the validator, this
/// only bounds the work of parsing.
const MAX_SOURCES: usize = 64;
const MAX_GROUPS: usize = 64;
const MAX_GROUP_MEMBERS: usize = 8;

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

    pub(super) fn parse(el: &Element) -> Result<Self, ParseError> {
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

    pub(super) fn to_element(&self) -> Element {
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
