//! The conference focus: joins each room, offers every participant a Jingle session with the
//! bridge, and keeps everyone's sources in step.
//!
//! [`Focus`] is the sans-IO core; [`spawn`] runs it in a task between the XMPP server's
//! [`InternalLink`](convene_xmpp::InternalLink) and a bridge.

pub mod config;
pub use config::Config;

mod core;
pub mod jingle;
pub mod json_sources;
pub mod ns;
mod shell;
pub mod sources;
mod stanza;
mod xml;

pub use core::{FOCUS_NICK, Focus, Output, RequestId, addresses};
pub use shell::{FocusHandle, Unhealthy, spawn};
pub use xml::ParseError;
