//! The focus ↔ bridge protocol (Colibri's role): plain, serializable messages and the
//! [`BridgeClient`] trait through which a focus reaches a bridge.
//!
//! Contract between the `focus` and `bridge` crates. Change it additively: both sides are
//! developed in parallel. Nothing here holds a handle or a lock, so every request and event
//! can cross a process boundary unchanged; this crate has no runtime dependency, so a client
//! may be in-process (the bridge's `BridgeHandle`) or, later, remote.

mod client;
mod messages;

pub use client::{BoxFuture, BridgeClient, BridgeId};
pub use messages::*;
