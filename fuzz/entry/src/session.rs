//! The `session` target: input on an established session. Two str0m clients (the
//! testkit's `TestClient`, answering the bridge's offers as a Jitsi client would) complete
//! ICE and DTLS with the core in memory; one sends, the other receives. Each input is a
//! list of records, each of which the sender's address delivers to the core:
//!
//! - raw bytes (str0m's DTLS, SRTP/SRTCP authentication and STUN on a validated 5-tuple),
//! - RTP that the sender's str0m protects with the session's SRTP keys: audio, or video
//!   whose VP8 payload is the fuzzer's (decryption, the codec reading, forwarding, the
//!   rewriting towards the receiver, the receiver's feedback),
//! - a pause (timers: allocation, estimates, keyframe requests, expiry).
//!
//! The core and both clients live on from one input to the next, as in the `datagram`
//! target: a handshake per input would cost a thousand times the parsing.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use convene_bridge::api::{BridgeRequest, ConferenceId, EndpointId, MediaKind};
use convene_bridge::engine::{Core, CoreOutput};
use convene_bridge::testkit::client::{self as test_client, TestClient};
use convene_bridge::testkit::network::Peer as Client;
use str0m::media::Pt;
use str0m::net::Protocol;
use str0m::rtp::{RtpWrite, Ssrc};
use str0m::{Candidate, Event, Input};

use crate::bridge::{BRIDGE, allocate, core};

/// The sender's and the receiver's addresses.
const CLIENTS: [&str; 2] = ["127.0.0.2:5000", "127.0.0.3:5000"];
const AUDIO: u32 = 1001;
const VIDEO: (u32, u32) = (1010, 1011);
/// Inputs one [`Session`] serves before a fresh one replaces it (see `bridge::World`).
const SESSION_INPUTS: u32 = 10_000;
/// Records one input is cut into at most.
const RECORDS: usize = 16;

struct Session {
    core: Core,
    clients: [Client; 2],
    now: Instant,
    /// Next sequence number and timestamp per stream: (audio, video).
    next: [(u64, u32); 2],
    inputs: u32,
}

impl Session {
    fn new() -> Self {
        let now = Instant::now();
        let mut core = core(now);
        let conference = ConferenceId("room".into());
        let clients = ["sender", "receiver"].map(|id| allocate(&mut core, now, id));
        let clients = [0, 1].map(|i| {
            let addr: SocketAddr = CLIENTS[i].parse().expect("address");
            let local = Candidate::host(addr, "udp").expect("candidate");
            let answer = TestClient::answer(&clients[i], local, now).expect("an answer");
            let mut client = Client::new(answer.rtc, addr);
            let mut api = client.rtc.direct_api();
            let (audio_mid, video_mid) = (
                test_client::mid(MediaKind::Audio),
                test_client::mid(MediaKind::Video),
            );
            let sources = if i == 0 {
                api.declare_stream_tx(AUDIO.into(), None, audio_mid, None);
                api.declare_stream_tx(VIDEO.0.into(), Some(VIDEO.1.into()), video_mid, None);
                test_client::sender_sources("sender", Some(AUDIO), &[VIDEO])
            } else {
                api.expect_stream_rx(AUDIO.into(), None, audio_mid, None);
                api.expect_stream_rx(VIDEO.0.into(), Some(VIDEO.1.into()), video_mid, None);
                Default::default()
            };
            let configure = BridgeRequest::ConfigureEndpoint {
                conference: conference.clone(),
                endpoint: EndpointId(["sender", "receiver"][i].into()),
                transport: answer.transport,
                media: vec![],
                sources,
            };
            core.handle_request(now, configure).expect("configured");
            client
        });
        let mut session = Session {
            core,
            clients,
            now,
            next: [(1, 0); 2],
            inputs: 0,
        };
        // ICE and DTLS, a millisecond at a time.
        let mut connected = [false; 2];
        for _ in 0..5_000 {
            session.advance(Duration::from_millis(1));
            for (client, done) in session.clients.iter_mut().zip(&mut connected) {
                *done |= client
                    .events
                    .drain(..)
                    .any(|e| matches!(e, Event::Connected));
            }
            if connected == [true; 2] {
                return session;
            }
        }
        panic!("the testkit clients did not connect to the core");
    }

    /// Moves the clock on and runs every timer, then delivers what is in flight.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.core.handle_timeout(self.now);
        let mut to_core = Vec::new();
        for client in &mut self.clients {
            client
                .rtc
                .handle_input(Input::Timeout(self.now))
                .expect("a timeout");
            to_core.append(&mut client.drain());
        }
        self.deliver(to_core);
    }

    /// Datagrams to the core, and whatever follows, until nothing moves (bounded).
    fn deliver(&mut self, mut to_core: Vec<(SocketAddr, SocketAddr, Vec<u8>)>) {
        let now = self.now;
        for _ in 0..50 {
            for (source, destination, data) in std::mem::take(&mut to_core) {
                self.core
                    .handle_datagram(now, Protocol::Udp, source, destination, &data);
            }
            let mut moved = false;
            while let Some(out) = self.core.poll_output(now) {
                let CoreOutput::Transmit(t) = out else {
                    continue;
                };
                moved = true;
                if let Some(client) = self.clients.iter_mut().find(|c| c.addr == t.destination) {
                    client.receive(now, &t);
                    to_core.append(&mut client.drain());
                }
            }
            if !moved && to_core.is_empty() {
                break;
            }
        }
    }

    /// The sender's str0m writes one RTP packet (it protects it with the session's keys).
    fn write_rtp(&mut self, video: bool, header: [u8; 2], payload: &[u8]) {
        let (ssrc, pt) = if video { (VIDEO.0, 100) } else { (AUDIO, 111) };
        let next = &mut self.next[usize::from(video)];
        // The first header byte moves the sequence number back or ahead (reordering,
        // duplicates, gaps); the second the timestamp, and its top bit is the marker.
        let step = i64::from(header[0] as i8);
        next.0 = next.0.saturating_add_signed(step).max(1);
        next.1 = next.1.wrapping_add(u32::from(header[1] & 0x7f) * 90);
        let write = RtpWrite::new(
            Pt::from(pt),
            next.0.into(),
            next.1,
            self.now,
            payload.to_vec(),
        )
        .marker(header[1] & 0x80 != 0)
        .nackable(video);
        if let Some(tx) = self.clients[0]
            .rtc
            .direct_api()
            .stream_tx(&Ssrc::from(ssrc))
        {
            tx.write_rtp(write);
        }
        let sent = self.clients[0].drain();
        self.deliver(sent);
    }

    /// One input: its records, then 10 ms of the clock.
    fn input(&mut self, data: &[u8]) {
        let mut rest = data;
        for _ in 0..RECORDS {
            let [op, len, tail @ ..] = rest else {
                break;
            };
            let (body, after) = tail.split_at(usize::from(*len).min(tail.len()));
            self.record(*op, body);
            rest = after;
        }
        self.advance(Duration::from_millis(10));
        // What the clients saw is not looked at: only a panic is a finding.
        for client in &mut self.clients {
            client.events.clear();
        }
    }

    fn record(&mut self, op: u8, body: &[u8]) {
        match op % 4 {
            0 => {
                let source = self.clients[0].addr;
                let destination = BRIDGE.parse().expect("address");
                self.deliver(vec![(source, destination, body.to_vec())]);
            }
            1 | 2 => {
                let (header, payload) = body.split_at(body.len().min(2));
                let header = [header.first(), header.get(1)].map(|b| b.copied().unwrap_or(0));
                self.write_rtp(op % 4 == 2, header, payload);
            }
            _ => {
                let ms = body.first().copied().unwrap_or(0);
                self.advance(Duration::from_millis(u64::from(ms)));
            }
        }
    }
}

thread_local! {
    static SESSION: RefCell<Option<Session>> = const { RefCell::new(None) };
}

/// Records: an op byte, a length byte, then that many bytes (fewer at the end).
pub(crate) fn session(data: &[u8]) {
    SESSION.with_borrow_mut(|slot| {
        let session = match slot {
            Some(session) if session.inputs < SESSION_INPUTS => session,
            _ => slot.insert(Session::new()),
        };
        session.inputs += 1;
        session.input(data);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The target is worth its name only if its inputs reach the established session:
    /// a seed's video is decrypted, forwarded and reaches the receiver.
    #[test]
    fn seeded_video_is_forwarded_on_the_established_session() {
        let seed = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../corpus/session/vp8-keyframe-then-deltas"
        ))
        .expect("the seed");
        let mut session = Session::new();
        let before = session.core.counters().rtp_forwarded;
        for _ in 0..20 {
            session.input(&seed);
        }
        assert!(session.core.counters().rtp_forwarded > before);
    }
}
