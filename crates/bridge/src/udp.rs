//! The shared media UDP socket, read and written in batches.
//!
//! A bridge's kernel work is one datagram per forwarded packet and receiver. `quinn-udp`
//! (made for QUIC servers with the same load) gives us `recvmmsg` with UDP GRO on receive and
//! UDP GSO on send: packets of a video frame going to the same receiver are usually of
//! equal size, so one `sendmsg` carries the run and the kernel walks its stack once.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use foldhash::{HashMap, HashMapExt};
use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// `recvmmsg` slots per call.
const RECV_SLOTS: usize = 16;
/// Room for one GRO-coalesced read (the kernel caps it at 64 KiB).
const RECV_SLOT_BYTES: usize = 65_536;
/// Largest GSO send; the kernel refuses more than 64 segments or 64 KiB.
const MAX_GSO_BYTES: usize = 60_000;

pub struct MediaSocket {
    pub local: SocketAddr,
    socket: UdpSocket,
    state: UdpSocketState,
    recv_buffers: Vec<Vec<u8>>,
    /// Datagrams waiting for [`MediaSocket::flush`], grouped by destination in arrival order
    /// (a fast seeded hash: looked up once per datagram sent).
    queued: HashMap<SocketAddr, Vec<Vec<u8>>>,
    /// Destinations in the order they were first queued, so the flush is deterministic.
    destinations: Vec<SocketAddr>,
    gso_buffer: Vec<u8>,
}

impl MediaSocket {
    pub fn new(local: SocketAddr, socket: UdpSocket) -> io::Result<Self> {
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        Ok(Self {
            local,
            socket,
            state,
            recv_buffers: vec![vec![0; RECV_SLOT_BYTES]; RECV_SLOTS],
            queued: HashMap::new(),
            destinations: Vec::new(),
            gso_buffer: Vec::with_capacity(MAX_GSO_BYTES),
        })
    }

    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Reads what is waiting, at most `max_calls` system calls, handing each datagram (GRO
    /// segments split again) to `each`. Returns false once the socket has nothing more.
    pub fn receive(&mut self, max_calls: usize, mut each: impl FnMut(SocketAddr, &[u8])) -> bool {
        let mut meta = [RecvMeta::default(); RECV_SLOTS];
        for _ in 0..max_calls {
            let mut slices: Vec<IoSliceMut> = self
                .recv_buffers
                .iter_mut()
                .map(|b| IoSliceMut::new(b))
                .collect();
            let result = self.socket.try_io(Interest::READABLE, || {
                self.state
                    .recv(UdpSockRef::from(&self.socket), &mut slices, &mut meta)
            });
            let count = match result {
                Ok(count) => count,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                // ICMP errors surface here on some systems; they concern one peer only.
                Err(e) => {
                    tracing::debug!(local = %self.local, "UDP receive error: {e}");
                    continue;
                }
            };
            for (m, buffer) in meta.iter().zip(&self.recv_buffers).take(count) {
                let stride = m.stride.max(1);
                for datagram in buffer[..m.len].chunks(stride) {
                    each(m.addr, datagram);
                }
            }
        }
        true
    }

    /// Queues a datagram; nothing is sent before [`MediaSocket::flush`].
    pub fn queue(&mut self, destination: SocketAddr, datagram: Vec<u8>) {
        let queue = self.queued.entry(destination).or_default();
        if queue.is_empty() {
            self.destinations.push(destination);
        }
        queue.push(datagram);
    }

    /// Sends everything queued: per destination, in order, runs of equal-sized datagrams
    /// (the last one may be shorter) as one GSO send each. A full socket buffer loses
    /// datagrams, as on any UDP path; waiting for room would stall every other endpoint.
    pub fn flush(&mut self) {
        let max_segments = self.state.max_gso_segments().max(1);
        for destination in std::mem::take(&mut self.destinations) {
            let Some(datagrams) = self.queued.get_mut(&destination) else {
                continue;
            };
            let mut rest = &datagrams[..];
            while !rest.is_empty() {
                let size = rest[0].len();
                let run = gso_run(rest.iter().map(Vec::len), max_segments);
                let (batch, tail) = rest.split_at(run);
                rest = tail;
                let contents: &[u8] = if batch.len() == 1 {
                    &batch[0]
                } else {
                    self.gso_buffer.clear();
                    for d in batch {
                        self.gso_buffer.extend_from_slice(d);
                    }
                    &self.gso_buffer
                };
                let transmit = Transmit {
                    destination,
                    ecn: None,
                    contents,
                    segment_size: (batch.len() > 1).then_some(size),
                    src_ip: None,
                };
                let sent = self.socket.try_io(Interest::WRITABLE, || {
                    self.state
                        .try_send(UdpSockRef::from(&self.socket), &transmit)
                });
                if let Err(e) = sent {
                    tracing::debug!(%destination, "UDP send failed: {e}");
                }
            }
            datagrams.clear();
        }
        // The emptied vectors are kept for the next turn, unless peers come and go a lot.
        if self.queued.len() > 4096 {
            self.queued.clear();
        }
    }
}

/// How many of the datagrams (given by their lengths) the first GSO send can carry: all of
/// the first one's size, and one shorter one to end the run, within the kernel's limits.
fn gso_run(mut lengths: impl Iterator<Item = usize>, max_segments: usize) -> usize {
    let Some(size) = lengths.next() else {
        return 0;
    };
    let limit = max_segments.min(MAX_GSO_BYTES / size.max(1)).max(1);
    let mut run = 1;
    for length in lengths {
        if run == limit || length > size {
            break;
        }
        run += 1;
        if length < size {
            break;
        }
    }
    run
}

#[cfg(test)]
mod tests {
    use super::gso_run;

    #[test]
    fn gso_runs_take_equal_sizes_and_one_shorter_datagram_in_order() {
        let run = |lengths: &[usize], max| gso_run(lengths.iter().copied(), max);
        assert_eq!(run(&[], 64), 0);
        assert_eq!(run(&[1000], 64), 1);
        assert_eq!(run(&[1000, 1000, 1000, 400, 1000], 64), 4);
        assert_eq!(run(&[1000, 1200, 1000], 64), 1, "a longer one ends the run");
        assert_eq!(run(&[1000; 10], 3), 3, "the kernel's segment limit");
        assert_eq!(run(&[1500; 100], 64), 40, "60 000 bytes at most");
    }
}
