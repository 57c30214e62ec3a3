//! An in-memory network for running the bridge core against str0m peers on simulated
//! time: a [`Peer`] takes datagrams and returns the ones it sends, a [`Link`] models a
//! bottleneck (rate and drop-tail queue) on the way to one peer.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Event, Input, Output, Rtc};

/// A datagram in flight: (source, destination, bytes).
pub type Datagram = (SocketAddr, SocketAddr, Vec<u8>);

/// A str0m `Rtc` at one address, collecting its events.
pub struct Peer {
    pub rtc: Rtc,
    pub addr: SocketAddr,
    pub events: Vec<Event>,
}

impl Peer {
    pub fn new(rtc: Rtc, addr: SocketAddr) -> Self {
        Self {
            rtc,
            addr,
            events: Vec::new(),
        }
    }

    /// Feeds one datagram the bridge sent.
    pub fn receive(&mut self, now: Instant, t: &Transmit) {
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: t.source,
                destination: t.destination,
                contents: t
                    .contents
                    .as_ref()
                    .try_into()
                    .expect("a datagram str0m sent"),
            },
        );
        self.rtc
            .handle_input(input)
            .expect("str0m takes the datagram");
    }

    /// Polls until timeout (str0m wants this after every input): keeps the events,
    /// returns the datagrams.
    pub fn drain(&mut self) -> Vec<Datagram> {
        let mut out = Vec::new();
        loop {
            match self.rtc.poll_output().expect("str0m output") {
                Output::Timeout(_) => return out,
                Output::Transmit(t) => out.push((t.source, t.destination, Vec::from(t.contents))),
                Output::Event(e) => self.events.push(e),
            }
        }
    }
}

/// A downlink of `rate_bps` with a drop-tail queue of `queue` of transmission time.
pub struct Link {
    rate_bps: u64,
    queue: Duration,
    free_at: Instant,
    in_flight: VecDeque<(Instant, Transmit)>,
}

impl Link {
    pub fn new(rate_bps: u64, queue: Duration, now: Instant) -> Self {
        Self {
            rate_bps,
            queue,
            free_at: now,
            in_flight: VecDeque::new(),
        }
    }

    /// Queues a datagram; false when the queue is full (it is lost).
    pub fn send(&mut self, now: Instant, t: Transmit) -> bool {
        let start = self.free_at.max(now);
        if start > now + self.queue {
            return false;
        }
        let bits = t.contents.len() as u64 * 8;
        self.free_at = start + Duration::from_micros(bits * 1_000_000 / self.rate_bps);
        self.in_flight.push_back((self.free_at, t));
        true
    }

    /// The next datagram that has crossed the link by `now`.
    pub fn arrived(&mut self, now: Instant) -> Option<Transmit> {
        if self.in_flight.front().is_some_and(|(at, _)| *at <= now) {
            self.in_flight.pop_front().map(|(_, t)| t)
        } else {
            None
        }
    }
}
