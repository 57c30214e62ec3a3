//! The XMPP server: client connections over TCP and WebSocket, SASL, MUC.

pub mod config;
pub use config::Config;

use tokio::sync::mpsc;

/// An in-process XMPP entity (the focus) attached to the server's router.
///
/// Stanzas addressed to any of the link's addresses arrive on `from_server`; stanzas sent on
/// `to_server` are routed as if a trusted local entity sent them (their `from` must be one of
/// the link's addresses). Contract between the `xmpp` and `focus` crates.
pub struct InternalLink {
    pub to_server: mpsc::Sender<minidom::Element>,
    pub from_server: mpsc::Receiver<minidom::Element>,
}
