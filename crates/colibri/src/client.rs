//! How a focus reaches a bridge: one trait, implemented in-process by the bridge's handle and
//! later by a client for a bridge on another machine.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::{BridgeError, BridgeRequest, BridgeResponse};

/// A future that can move between threads, as the runtimes' `spawn` needs.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which bridge: the focus names each bridge it is given, and tags every request, response
/// and event with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BridgeId(pub String);

impl fmt::Display for BridgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bridge as the focus sees it. Each request gets exactly one response or error; a bridge
/// that cannot be reached answers [`BridgeError::Unavailable`]. The returned future owns what
/// it needs (`'static`), so the caller can run it as its own task.
pub trait BridgeClient: Send + Sync {
    fn request(
        &self,
        request: BridgeRequest,
    ) -> BoxFuture<'static, Result<BridgeResponse, BridgeError>>;
}
