//! The focus's parsers: Jingle and Jitsi's JSON sources.

use convene_focus::jingle::Jingle;
use convene_focus::{json_sources, ns};
use convene_xmpp::xml;

/// A Jingle IQ (or a bare `<jingle/>`) as the XMPP server's XML guard builds it for the
/// focus, then everything the focus reads from it.
pub(crate) fn jingle(data: &[u8]) {
    let Some(frame) = crate::text(data) else {
        return;
    };
    let Ok(element) = xml::parse_frame(frame, crate::xmpp::server_limits()) else {
        return;
    };
    let jingle = match element.get_child("jingle", ns::JINGLE) {
        Some(child) => child,
        None => &element,
    };
    let Ok(jingle) = Jingle::parse(jingle) else {
        return;
    };
    if let Some(transport) = jingle.transport() {
        let _ = transport.description();
    }
    jingle.candidates();
    jingle.media();
    jingle.sources();
    jingle.to_element();
}

/// The text of a `<json-message/>`, parsed and written back.
pub(crate) fn json_sources(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    if let Ok(sources) = json_sources::parse(text) {
        json_sources::to_json(&sources);
    }
}
