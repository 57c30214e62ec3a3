//! RFC 6120 §4.9 stream errors.

use minidom::Element;

use crate::stanza::ns;

/// RFC 6120 §4.9.3 stream error conditions we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamError {
    BadFormat,
    Conflict,
    HostUnknown,
    InvalidNamespace,
    NotAuthorized,
    NotWellFormed,
    PolicyViolation,
    ResourceConstraint,
    SystemShutdown,
    UnsupportedStanzaType,
    UnsupportedVersion,
    ConnectionTimeout,
}

impl StreamError {
    pub const ALL: [StreamError; 12] = [
        Self::BadFormat,
        Self::Conflict,
        Self::HostUnknown,
        Self::InvalidNamespace,
        Self::NotAuthorized,
        Self::NotWellFormed,
        Self::PolicyViolation,
        Self::ResourceConstraint,
        Self::SystemShutdown,
        Self::UnsupportedStanzaType,
        Self::UnsupportedVersion,
        Self::ConnectionTimeout,
    ];

    pub fn condition(self) -> &'static str {
        match self {
            Self::BadFormat => "bad-format",
            Self::Conflict => "conflict",
            Self::HostUnknown => "host-unknown",
            Self::InvalidNamespace => "invalid-namespace",
            Self::NotAuthorized => "not-authorized",
            Self::NotWellFormed => "not-well-formed",
            Self::PolicyViolation => "policy-violation",
            Self::ResourceConstraint => "resource-constraint",
            Self::SystemShutdown => "system-shutdown",
            Self::UnsupportedStanzaType => "unsupported-stanza-type",
            Self::UnsupportedVersion => "unsupported-version",
            Self::ConnectionTimeout => "connection-timeout",
        }
    }

    /// The `<stream:error/>` element.
    pub fn element(self) -> Element {
        Element::builder("error", ns::STREAM)
            .prefix(Some("stream".into()), ns::STREAM)
            .expect("fresh prefix")
            .append(Element::bare(self.condition(), ns::STREAMS_ERROR))
            .build()
    }
}
