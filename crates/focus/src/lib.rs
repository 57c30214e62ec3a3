//! The conference focus: joins each room, offers every participant a Jingle session with a
//! bridge, and keeps everyone's sources in step.
//!
//! [`Focus`] is the sans-IO core; [`spawn`] runs it in a task between a [`StanzaLink`] to
//! the XMPP server and one or more bridges reached through
//! [`BridgeClient`](convene_colibri::BridgeClient). The focus knows neither the XMPP
//! server's nor the bridge's crate: only stanzas and the `convene-colibri` messages.

pub mod config;
pub use config::Config;

pub mod codecs;
mod core;
pub mod jingle;
pub mod json_sources;
mod metrics_text;
pub mod muc;
pub mod ns;
mod shell;
pub mod sources;
mod stanza;
mod xml;

pub use core::{FOCUS_NICK, Focus, JingleErrorKind, Metrics, Output, RequestId, addresses};
pub use shell::{BridgeConnection, FocusHandle, StanzaLink, Unhealthy, spawn};
pub use xml::ParseError;
