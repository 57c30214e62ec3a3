//! The ICE-UDP `<transport>` (XEP-0176) with its DTLS fingerprints (XEP-0320) and Jitsi's
//! bridge-channel `web-socket`.

use convene_colibri::{DtlsSetup, Fingerprint, IceCandidate, TransportDescription};
use minidom::{Element, NSChoice};

use super::Transport;
use crate::ns;
use crate::xml::{
    ElementExt, ParseError, optional, optional_parsed, push_bounded, required, required_parsed,
    text,
};

const MAX_CANDIDATES: usize = 32;
const MAX_FINGERPRINTS: usize = 4;

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

    pub(super) fn parse(el: &Element) -> Result<Self, ParseError> {
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

    pub(super) fn to_element(&self) -> Element {
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
