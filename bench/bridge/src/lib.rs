//! Benchmark of Convene's bridge (SFU) against a bare UDP relay.
//!
//! The driver (`bench-bridge run`) starts the server under test as a child process
//! (`bench-bridge server bridge|relay`), so that `/proc/<pid>` reports the server's own CPU
//! time and memory, and drives it through a line-delimited JSON control channel. Simulated
//! endpoints live in the driver's process: str0m `Rtc` clients for the bridge, plain UDP
//! sockets for the relay, both sending the same packets (see [`traffic`]).

pub mod control;
pub mod plain_client;
pub mod procstat;
pub mod recorder;
pub mod relay;
pub mod report;
pub mod scenario;
pub mod server;
pub mod source;
pub mod traffic;
pub mod webrtc_client;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A deadline for `select!` branches that have nothing scheduled.
pub(crate) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// Socket buffers for the load generator's sockets: large enough that a frame burst from
/// every sender never overflows them (the kernel caps this at rmem_max), so that losses
/// are the server's.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// A UDP socket bound to `addr` with [`SOCKET_BUFFER_BYTES`] of buffer each way.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES)?;
    socket.set_send_buffer_size(SOCKET_BUFFER_BYTES)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}
