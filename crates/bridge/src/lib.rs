//! The selective forwarding unit: receives each endpoint's media over WebRTC and forwards
//! to every other endpoint only what it needs.
//!
//! The focus drives the bridge only through the messages in [`api`], so that the bridge can
//! later run in another process without changing the focus.

pub mod config;
pub use config::Config;

pub mod api;

use tokio::sync::{mpsc, oneshot};

use api::{BridgeError, BridgeRequest, BridgeResponse};

type Pending = (
    BridgeRequest,
    oneshot::Sender<Result<BridgeResponse, BridgeError>>,
);

/// A cheap handle through which the focus sends [`BridgeRequest`]s to a running bridge.
#[derive(Clone, Debug)]
pub struct BridgeHandle {
    requests: mpsc::Sender<Pending>,
}

impl BridgeHandle {
    /// A handle and the receiving end the bridge's control loop reads from.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<Pending>) {
        let (requests, rx) = mpsc::channel(capacity);
        (Self { requests }, rx)
    }

    pub async fn request(&self, request: BridgeRequest) -> Result<BridgeResponse, BridgeError> {
        let (reply, response) = oneshot::channel();
        self.requests
            .send((request, reply))
            .await
            .map_err(|_| BridgeError::Unavailable)?;
        response.await.map_err(|_| BridgeError::Unavailable)?
    }
}
