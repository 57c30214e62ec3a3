//! Namespaces, the [`Delivery`] type and small builders shared by the stream, the router
//! and the components.

use jid::Jid;
use minidom::Element;

pub mod ns {
    pub const CLIENT: &str = "jabber:client";
    pub const STREAM: &str = "http://etherx.jabber.org/streams";
    pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
    pub const STREAMS_ERROR: &str = "urn:ietf:params:xml:ns:xmpp-streams";
    pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
    pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
    pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
    pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
    pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
    pub const SM: &str = "urn:xmpp:sm:3";
    pub const PING: &str = "urn:xmpp:ping";
    pub const ROSTER: &str = "jabber:iq:roster";
    pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
    pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
    pub const MUC: &str = "http://jabber.org/protocol/muc";
    pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
    pub const MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
    pub const MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
    pub const DATA_FORMS: &str = "jabber:x:data";
    pub const EXTDISCO_1: &str = "urn:xmpp:extdisco:1";
    pub const EXTDISCO_2: &str = "urn:xmpp:extdisco:2";
    /// Jitsi's own conditions and elements (`room-mismatch`, ...).
    pub const JITMEET: &str = "http://jitsi.org/jitmeet";
}

/// One stanza to hand to the session or internal entity at `to`.
#[derive(Debug)]
pub struct Delivery {
    pub to: Jid,
    pub stanza: Element,
}

/// RFC 6120 §8.3.3 stanza error conditions we produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StanzaError {
    BadRequest,
    Conflict,
    FeatureNotImplemented,
    Forbidden,
    ItemNotFound,
    NotAcceptable,
    NotAllowed,
    NotAuthorized,
    RegistrationRequired,
    ServiceUnavailable,
    PolicyViolation,
}

impl StanzaError {
    fn condition(self) -> (&'static str, &'static str) {
        match self {
            Self::BadRequest => ("bad-request", "modify"),
            Self::Conflict => ("conflict", "cancel"),
            Self::FeatureNotImplemented => ("feature-not-implemented", "cancel"),
            Self::Forbidden => ("forbidden", "auth"),
            Self::ItemNotFound => ("item-not-found", "cancel"),
            Self::NotAcceptable => ("not-acceptable", "modify"),
            Self::NotAllowed => ("not-allowed", "cancel"),
            Self::NotAuthorized => ("not-authorized", "auth"),
            Self::RegistrationRequired => ("registration-required", "auth"),
            Self::ServiceUnavailable => ("service-unavailable", "cancel"),
            Self::PolicyViolation => ("policy-violation", "modify"),
        }
    }
}

/// The error reply to `stanza` (same name and id, addresses swapped), or `None` when the
/// stanza is itself an error or a result, which must never be answered with an error.
pub fn error_reply(stanza: &Element, error: StanzaError) -> Option<Element> {
    if matches!(stanza.attr("type"), Some("error") | Some("result")) {
        return None;
    }
    let (condition, kind) = error.condition();
    let mut reply = Element::builder(stanza.name(), ns::CLIENT).attr(n("type"), "error");
    if let Some(id) = stanza.attr("id") {
        reply = reply.attr(n("id"), id);
    }
    if let Some(to) = stanza.attr("to") {
        reply = reply.attr(n("from"), to);
    }
    if let Some(from) = stanza.attr("from") {
        reply = reply.attr(n("to"), from);
    }
    let error = Element::builder("error", ns::CLIENT)
        .attr(n("type"), kind)
        .append(Element::bare(condition, ns::STANZAS))
        .build();
    Some(reply.append(error).build())
}

/// Queues the error reply to `stanza`, unless it is itself an error or a result.
pub fn reply_error(stanza: &Element, error: StanzaError, out: &mut Vec<Delivery>) {
    if let Some(reply) = error_reply(stanza, error) {
        push_reply(reply, out);
    }
}

/// Queues an answer built from a request (its `to` is the request's sender).
pub fn push_reply(reply: Element, out: &mut Vec<Delivery>) {
    if let Some(to) = reply.attr("to").and_then(|t| Jid::new(t).ok()) {
        out.push(Delivery { to, stanza: reply });
    }
}

/// An empty `result` answer to an iq, addresses swapped.
pub fn iq_result(iq: &Element) -> Element {
    iq_result_with(iq, None)
}

pub fn iq_result_with(iq: &Element, payload: Option<Element>) -> Element {
    let mut reply = Element::builder("iq", ns::CLIENT)
        .attr(n("type"), "result")
        .attr(n("id"), iq.attr("id").unwrap_or_default());
    if let Some(to) = iq.attr("to") {
        reply = reply.attr(n("from"), to);
    }
    if let Some(from) = iq.attr("from") {
        reply = reply.attr(n("to"), from);
    }
    if let Some(payload) = payload {
        reply = reply.append(payload);
    }
    reply.build()
}

/// The first child element of an iq (its payload).
pub fn payload(iq: &Element) -> Option<&Element> {
    iq.children().next()
}

/// Parses an optional address attribute; `Err` when present but invalid.
pub fn jid_attr(stanza: &Element, name: &str) -> Result<Option<Jid>, jid::Error> {
    stanza.attr(name).map(Jid::new).transpose()
}

/// Attribute names in builders; every name used here is a valid XML NCName.
pub fn n(name: &str) -> rxml::NcName {
    name.try_into().expect("static attribute names are valid")
}

pub fn set_attr(element: &mut Element, name: &str, value: impl Into<String>) {
    element.set_attr(rxml::Namespace::NONE, n(name), value.into());
}

pub fn remove_attr(element: &mut Element, name: &str) {
    element.attrs_mut().remove(rxml::Namespace::none(), name);
}

/// A disco#info `<query/>` from identities `(category, type, name)` and features.
pub fn disco_info(identities: &[(&str, &str, &str)], features: &[&str]) -> Element {
    let mut query = Element::builder("query", ns::DISCO_INFO);
    for (category, kind, name) in identities {
        let mut identity = Element::builder("identity", ns::DISCO_INFO)
            .attr(n("category"), *category)
            .attr(n("type"), *kind);
        if !name.is_empty() {
            identity = identity.attr(n("name"), *name);
        }
        query = query.append(identity.build());
    }
    for feature in features {
        query = query.append(
            Element::builder("feature", ns::DISCO_INFO)
                .attr(n("var"), *feature)
                .build(),
        );
    }
    query.build()
}
