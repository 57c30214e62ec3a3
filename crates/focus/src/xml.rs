//! Small helpers over `minidom`: building elements with `&str` attribute names, and reading
//! attributes of untrusted elements with a typed error and a length limit.

use std::str::FromStr;

use minidom::rxml::{Namespace, NcName};
use minidom::{Element, IntoAttributeValue};

/// Longest attribute or text value accepted from a peer. The XMPP server bounds whole
/// stanzas; this bounds each value we keep (URLs, msids and fingerprints are far shorter).
pub const MAX_VALUE_LEN: usize = 1024;

/// Why an element from a peer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("<{element}> lacks the '{attribute}' attribute")]
    MissingAttribute {
        element: &'static str,
        attribute: &'static str,
    },
    #[error("<{element}> has an invalid '{attribute}' attribute")]
    InvalidAttribute {
        element: &'static str,
        attribute: &'static str,
    },
    #[error("<{element}> lacks its text")]
    MissingText { element: &'static str },
    #[error("a value in <{element}> is longer than {MAX_VALUE_LEN} bytes")]
    TooLong { element: &'static str },
    #[error("more than {limit} <{element}> elements")]
    TooMany { element: &'static str, limit: usize },
    #[error("unknown Jingle action '{0}'")]
    UnknownAction(String),
    #[error("<{element}> is missing")]
    MissingElement { element: &'static str },
    #[error("invalid JSON-encoded sources")]
    InvalidJsonSources,
}

/// Builder-style additions to [`Element`] so that wire code reads like the XML it makes.
pub trait ElementExt: Sized {
    /// Sets an attribute; `None` values are left out.
    fn with_attr(self, name: &'static str, value: impl IntoAttributeValue) -> Self;
    fn with_child(self, child: Element) -> Self;
    fn with_children(self, children: impl IntoIterator<Item = Element>) -> Self;
    fn with_text(self, text: impl Into<String>) -> Self;
}

impl ElementExt for Element {
    fn with_attr(mut self, name: &'static str, value: impl IntoAttributeValue) -> Self {
        let name = NcName::try_from(name).expect("attribute names are valid literals");
        self.set_attr(Namespace::NONE, name, value);
        self
    }

    fn with_child(mut self, child: Element) -> Self {
        self.append_child(child);
        self
    }

    fn with_children(mut self, children: impl IntoIterator<Item = Element>) -> Self {
        for child in children {
            self.append_child(child);
        }
        self
    }

    fn with_text(mut self, text: impl Into<String>) -> Self {
        self.append_text_node(text);
        self
    }
}

/// An optional attribute, bounded in length.
pub fn optional<'a>(
    el: &'a Element,
    element: &'static str,
    attribute: &'static str,
) -> Result<Option<&'a str>, ParseError> {
    match el.attr(attribute) {
        Some(value) if value.len() > MAX_VALUE_LEN => Err(ParseError::TooLong { element }),
        other => Ok(other),
    }
}

pub fn required<'a>(
    el: &'a Element,
    element: &'static str,
    attribute: &'static str,
) -> Result<&'a str, ParseError> {
    optional(el, element, attribute)?.ok_or(ParseError::MissingAttribute { element, attribute })
}

pub fn optional_parsed<T: FromStr>(
    el: &Element,
    element: &'static str,
    attribute: &'static str,
) -> Result<Option<T>, ParseError> {
    optional(el, element, attribute)?
        .map(|value| {
            value
                .trim()
                .parse()
                .map_err(|_| ParseError::InvalidAttribute { element, attribute })
        })
        .transpose()
}

pub fn required_parsed<T: FromStr>(
    el: &Element,
    element: &'static str,
    attribute: &'static str,
) -> Result<T, ParseError> {
    optional_parsed(el, element, attribute)?
        .ok_or(ParseError::MissingAttribute { element, attribute })
}

/// The element's text, trimmed and bounded.
pub fn text(el: &Element, element: &'static str) -> Result<String, ParseError> {
    let text = el.text();
    let text = text.trim();
    if text.len() > MAX_VALUE_LEN {
        return Err(ParseError::TooLong { element });
    }
    if text.is_empty() {
        return Err(ParseError::MissingText { element });
    }
    Ok(text.to_owned())
}

/// Pushes `item` unless `list` already holds `limit` items.
pub fn push_bounded<T>(
    list: &mut Vec<T>,
    item: T,
    element: &'static str,
    limit: usize,
) -> Result<(), ParseError> {
    if list.len() >= limit {
        return Err(ParseError::TooMany { element, limit });
    }
    list.push(item);
    Ok(())
}
