//! The baseline: a bare UDP relay that copies each packet to the receivers registered for
//! its SSRC, with no ICE, no DTLS, no SRTP and no RTCP. One thread and one socket, like the
//! bridge's single media port, so that its cost is the physical floor for forwarding.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::{Receiver, TryRecvError};

/// Largest datagram the relay accepts; bigger ones are truncated by the kernel and dropped.
const MAX_DATAGRAM: usize = 2048;
const RTP_HEADER_LEN: usize = 12;

/// A forwarding rule: packets of `ssrc` go to every address in `to`.
pub type Route = (u32, Vec<SocketAddr>);

/// Runs the relay until its socket fails; routes may be added while it runs.
pub fn run(socket: UdpSocket, routes: Receiver<Route>) -> std::io::Result<()> {
    let mut table: HashMap<u32, Vec<SocketAddr>> = HashMap::new();
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut routes_open = true;
    loop {
        let (len, _) = socket.recv_from(&mut buf)?;
        // New routes arrive between packets; checking costs one atomic load.
        while routes_open {
            match routes.try_recv() {
                Ok((ssrc, to)) => {
                    table.insert(ssrc, to);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => routes_open = false,
            }
        }
        if !(RTP_HEADER_LEN..MAX_DATAGRAM).contains(&len) {
            continue;
        }
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        if let Some(receivers) = table.get(&ssrc) {
            for receiver in receivers {
                // A full socket buffer drops the copy, as any UDP forwarder would.
                let _ = socket.send_to(&buf[..len], receiver);
            }
        }
    }
}
