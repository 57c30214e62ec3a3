//! Test support shared by the core's tests, the integration tests (ICE-TCP) and the
//! bridge benchmark (feature `test-support`):
//!
//! - [`client`]: a str0m client answering the bridge's `EndpointOffer` as a Jitsi client
//!   would;
//! - [`network`]: in-memory peers and links (zero latency, or a bottleneck with a
//!   drop-tail queue) for running a core on simulated time;
//! - [`svc`]: synthetic single-SSRC SVC senders (AV1 `L2T3_KEY` with dependency
//!   descriptors, VP9 `L3T3_KEY`).

pub mod client;
pub mod network;
pub mod svc;
