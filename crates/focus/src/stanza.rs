//! Building IQ replies and requests.

use minidom::Element;

use crate::ns;
use crate::xml::ElementExt;

/// An XMPP stanza error condition (RFC 6120 §8.3.3) with its error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    BadRequest,
    ItemNotFound,
    NotAllowed,
    NotAuthorized,
    FeatureNotImplemented,
    ServiceUnavailable,
    ResourceConstraint,
    UnexpectedRequest,
}

impl Condition {
    fn name(self) -> &'static str {
        match self {
            Condition::BadRequest => "bad-request",
            Condition::ItemNotFound => "item-not-found",
            Condition::NotAllowed => "not-allowed",
            Condition::NotAuthorized => "not-authorized",
            Condition::FeatureNotImplemented => "feature-not-implemented",
            Condition::ServiceUnavailable => "service-unavailable",
            Condition::ResourceConstraint => "resource-constraint",
            Condition::UnexpectedRequest => "unexpected-request",
        }
    }

    fn error_type(self) -> &'static str {
        match self {
            Condition::BadRequest | Condition::UnexpectedRequest => "modify",
            Condition::ResourceConstraint => "wait",
            Condition::NotAuthorized => "auth",
            Condition::NotAllowed
            | Condition::ItemNotFound
            | Condition::FeatureNotImplemented
            | Condition::ServiceUnavailable => "cancel",
        }
    }
}

/// An IQ reply skeleton: from the address the request was sent to, to its sender.
fn reply(request: &Element, typ: &'static str) -> Element {
    Element::bare("iq", ns::CLIENT)
        .with_attr("type", typ)
        .with_attr("id", request.attr("id"))
        .with_attr("from", request.attr("to"))
        .with_attr("to", request.attr("from"))
}

pub fn iq_result(request: &Element, payload: Option<Element>) -> Element {
    let mut iq = reply(request, "result");
    if let Some(payload) = payload {
        iq.append_child(payload);
    }
    iq
}

/// An error reply; `extra` is an application-specific condition (e.g. Jingle's
/// `unknown-session`) and `text` a human-readable explanation.
pub fn iq_error(
    request: &Element,
    condition: Condition,
    extra: Option<Element>,
    text: Option<&str>,
) -> Element {
    let mut error = Element::bare("error", ns::CLIENT)
        .with_attr("type", condition.error_type())
        .with_child(Element::bare(condition.name(), ns::STANZAS));
    if let Some(text) = text {
        error.append_child(Element::bare("text", ns::STANZAS).with_text(text));
    }
    if let Some(extra) = extra {
        error.append_child(extra);
    }
    reply(request, "error").with_child(error)
}

pub fn iq(typ: &'static str, id: &str, from: &str, to: &str, payload: Element) -> Element {
    Element::bare("iq", ns::CLIENT)
        .with_attr("type", typ)
        .with_attr("id", id)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_child(payload)
}

/// The error condition of an IQ error reply, for logs.
pub fn error_condition(iq: &Element) -> String {
    iq.children()
        .find(|c| c.name() == "error")
        .and_then(|error| error.children().find(|c| c.ns() == ns::STANZAS))
        .map_or_else(|| "unknown".to_owned(), |c| c.name().to_owned())
}
