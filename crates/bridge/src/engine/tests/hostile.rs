//! Issue 15, media: three innocent participants exchange audio and VP8 simulcast through
//! the core, each behind a 12 Mb/s downlink, while a fourth floods at ten times its layer
//! bitrates or sends garbage on its established 5-tuple. The innocents' media, measured
//! end to end (loss of audio, latency of every packet), must stay as it was without the
//! attacker.

use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use str0m::Event;
use str0m::media::{KeyframeRequestKind, Pt, Rid};
use str0m::net::Protocol;
use str0m::rtp::{RtpWrite, Ssrc};

use super::{BRIDGE, World, client, core, key_of, settings};
use crate::api::{
    BridgeRequest, BridgeResponse, ConferenceId, EndpointId, EndpointOffer, MediaKind,
};
use crate::codec::vp8::tests::vp8_packet;
use crate::metrics::DropReason;
use crate::testkit::client::{self as test_client};
use crate::testkit::network::Link;

const IDS: [&str; 4] = ["a", "b", "c", "x"];
/// The attacker's index in `IDS` and the world's clients.
const ATTACKER: usize = 3;
/// Per layer, lowest first: packets per frame and bytes per packet at 30 fps, about
/// 150 kb/s, 500 kb/s and 1.5 Mb/s as real layers.
const PACKETS: [usize; 3] = [1, 2, 6];
const BYTES: [usize; 3] = [625, 1040, 1040];
const SIZES: [(u16, u16); 3] = [(320, 180), (640, 360), (1280, 720)];
const DOWNLINK_BPS: u64 = 12_000_000;

fn audio_ssrc(sender: usize) -> u32 {
    1000 * (sender as u32 + 1) + 1
}

/// (video, RTX) of each layer.
fn layers(sender: usize) -> [(u32, u32); 3] {
    let base = 1000 * (sender as u32 + 1);
    [
        (base + 10, base + 11),
        (base + 20, base + 21),
        (base + 30, base + 31),
    ]
}

/// The sender index and whether it is audio, of a receiver-view SSRC.
fn sender_of(ssrc: u32) -> (usize, bool) {
    ((ssrc / 1000 - 1) as usize, ssrc % 1000 == 1)
}

/// What the innocents measured of each other's media in one phase.
#[derive(Debug, Default)]
struct Measured {
    audio_sent: u64,
    audio_received: u64,
    /// Send-to-receive times, in ms, of every packet.
    latencies: Vec<u64>,
}

impl Measured {
    fn audio_lost(&self) -> u64 {
        self.audio_sent.saturating_sub(self.audio_received)
    }

    fn p99(&mut self) -> u64 {
        self.latencies.sort_unstable();
        self.latencies
            .get(self.latencies.len() * 99 / 100)
            .copied()
            .unwrap_or(u64::MAX)
    }
}

/// Four endpoints in one room, all sending and receiving, the innocents behind their
/// downlinks; `multiplier` scales what each sends per frame.
struct Room {
    world: World,
    multiplier: [usize; 4],
    seqs: [[u64; 4]; 4],
    picture_ids: [u16; 4],
    /// Layers asked for a keyframe (by a PLI), per sender.
    want_key: [[bool; 3]; 4],
    /// Keyframe requests the innocent senders received.
    keyframe_requests: u64,
    start: std::time::Instant,
}

impl Room {
    fn new() -> Self {
        let t0 = std::time::Instant::now();
        let mut core = core(settings(), t0);
        let conference = ConferenceId("room".into());
        let offers: Vec<EndpointOffer> = IDS
            .iter()
            .map(|id| {
                let allocate = BridgeRequest::AllocateEndpoint {
                    conference: conference.clone(),
                    endpoint: EndpointId((*id).into()),
                };
                match core.handle_request(t0, allocate) {
                    Ok(BridgeResponse::EndpointAllocated(o)) => o,
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        let mut clients = Vec::new();
        let mut links = Vec::new();
        for (i, offer) in offers.iter().enumerate() {
            let addr = format!("10.0.0.{}:5000", i + 2);
            let (mut c, transport) = client(offer, &addr, t0);
            let mut api = c.rtc.direct_api();
            let audio_mid = test_client::mid(MediaKind::Audio);
            let video_mid = test_client::mid(MediaKind::Video);
            api.declare_stream_tx(Ssrc::from(audio_ssrc(i)), None, audio_mid, None);
            for (l, (video, rtx)) in layers(i).iter().enumerate() {
                let rid = Rid::from(format!("l{l}").as_str());
                api.declare_stream_tx(
                    Ssrc::from(*video),
                    Some(Ssrc::from(*rtx)),
                    video_mid,
                    Some(rid),
                );
            }
            for other in (0..IDS.len()).filter(|o| *o != i) {
                api.expect_stream_rx(Ssrc::from(audio_ssrc(other)), None, audio_mid, None);
                let (video, rtx) = layers(other)[0];
                api.expect_stream_rx(Ssrc::from(video), Some(Ssrc::from(rtx)), video_mid, None);
            }
            let sources = test_client::sender_sources(IDS[i], Some(audio_ssrc(i)), &layers(i));
            let configure = BridgeRequest::ConfigureEndpoint {
                conference: conference.clone(),
                endpoint: EndpointId(IDS[i].into()),
                transport,
                media: vec![],
                sources,
            };
            core.handle_request(t0, configure).unwrap();
            if i != ATTACKER {
                let link = Link::new(DOWNLINK_BPS, Duration::from_millis(200), t0);
                links.push((c.addr, link));
            }
            clients.push(c);
        }
        let mut world = World::new(core, clients, t0);
        world.links.extend(links);
        Self {
            world,
            multiplier: [1; 4],
            seqs: [[1; 4]; 4],
            picture_ids: [100; 4],
            want_key: [[true; 3]; 4],
            keyframe_requests: 0,
            start: t0,
        }
    }

    fn elapsed_ms(&self) -> u32 {
        self.world.now.duration_since(self.start).as_millis() as u32
    }

    /// Sender `s`'s media due this millisecond.
    fn send(&mut self, s: usize, measured: &mut Measured) {
        let ms = self.elapsed_ms();
        let now = self.world.now;
        let stamp = ms.to_be_bytes();
        let mut writes = Vec::new();
        if ms.is_multiple_of(20) {
            let mut payload = stamp.to_vec();
            payload.resize(60, 0);
            let seq = &mut self.seqs[s][0];
            writes.push((audio_ssrc(s), 111, *seq, ms * 48, payload, false));
            *seq += 1;
            if s != ATTACKER {
                // Each of the two other innocents should receive it.
                measured.audio_sent += 2;
            }
        }
        if ms.is_multiple_of(33) {
            let picture_id = self.picture_ids[s];
            for l in 0..3 {
                let keyframe = std::mem::take(&mut self.want_key[s][l]);
                let count = PACKETS[l] * self.multiplier[s];
                for i in 0..count {
                    let mut payload = vp8_packet(keyframe && i == 0, picture_id, 0, SIZES[l]);
                    payload.resize(BYTES[l] - 5, 0);
                    payload.extend_from_slice(&stamp);
                    payload.push(l as u8);
                    let seq = &mut self.seqs[s][l + 1];
                    let marker = i + 1 == count;
                    writes.push((layers(s)[l].0, 100, *seq, ms * 90, payload, marker));
                    *seq += 1;
                }
            }
            self.picture_ids[s] = (picture_id + 1) % 0x8000;
        }
        let mut api = self.world.clients[s].rtc.direct_api();
        for (ssrc, pt, seq, timestamp, payload, marker) in writes {
            let write = RtpWrite::new(Pt::from(pt), seq.into(), timestamp, now, payload)
                .marker(marker)
                .nackable(pt == 100);
            if let Some(tx) = api.stream_tx(&Ssrc::from(ssrc)) {
                tx.write_rtp(write);
            }
        }
    }

    /// Runs `ms` milliseconds; what the innocents received of each other is added to
    /// `measured`. `attack` runs every millisecond before the tick.
    fn run(&mut self, ms: u32, measured: &mut Measured, mut attack: impl FnMut(&mut Room)) {
        for _ in 0..ms {
            for s in 0..IDS.len() {
                self.send(s, measured);
            }
            attack(self);
            self.world.tick();
            let now_ms = u64::from(self.elapsed_ms());
            for r in 0..IDS.len() {
                for e in std::mem::take(&mut self.world.clients[r].events) {
                    match e {
                        Event::RtpPacket(p) if r != ATTACKER => {
                            let (s, audio) = sender_of(*p.header.ssrc);
                            if s == ATTACKER {
                                continue;
                            }
                            let stamp = if audio {
                                measured.audio_received += 1;
                                &p.payload[..4]
                            } else {
                                &p.payload[p.payload.len() - 5..p.payload.len() - 1]
                            };
                            let sent = u32::from_be_bytes(stamp.try_into().unwrap());
                            measured.latencies.push(now_ms - u64::from(sent));
                        }
                        Event::KeyframeRequest(k) => {
                            if r != ATTACKER {
                                self.keyframe_requests += 1;
                            }
                            let rid = k.rid.unwrap().to_string();
                            self.want_key[r][rid[1..].parse::<usize>().unwrap()] = true;
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    fn attacker_addr(&self) -> SocketAddr {
        self.world.clients[ATTACKER].addr
    }

    /// Settles the room (ICE, DTLS, estimates, allocation), then measures the baseline.
    fn baseline(&mut self) -> Measured {
        self.run(3000, &mut Measured::default(), |_| {});
        let mut baseline = Measured::default();
        self.run(3000, &mut baseline, |_| {});
        assert!(baseline.audio_sent > 0);
        assert_eq!(
            baseline.audio_received, baseline.audio_sent,
            "lost or doubled"
        );
        baseline
    }

    fn assert_innocents_unharmed(&self, baseline: &mut Measured, attacked: &mut Measured) {
        let (base_p99, p99) = (baseline.p99(), attacked.p99());
        eprintln!(
            "innocents: baseline p99 {base_p99} ms, {} audio lost; under attack p99 {p99} ms, \
             {} of {} audio lost",
            baseline.audio_lost(),
            attacked.audio_lost(),
            attacked.audio_sent
        );
        assert_eq!(
            attacked.audio_received, attacked.audio_sent,
            "innocents lost (or got doubled) audio"
        );
        assert!(
            p99 <= 5 * base_p99 + 50,
            "p99 {p99} ms, baseline {base_p99} ms"
        );
        let core = &self.world.core;
        assert_eq!(core.endpoints.len(), IDS.len(), "an endpoint went");
        // Video from each innocent to each other throughout.
        assert!(
            attacked.latencies.len() as u64 > 3 * attacked.audio_received,
            "innocents' video stalled: {} packets",
            attacked.latencies.len()
        );
    }
}

#[test]
fn a_participant_sending_ten_times_its_layer_bitrates_does_not_harm_the_others() {
    let mut room = Room::new();
    let mut baseline = room.baseline();
    room.multiplier[ATTACKER] = 10;
    let mut attacked = Measured::default();
    room.run(4000, &mut attacked, |_| {});
    room.assert_innocents_unharmed(&mut baseline, &mut attacked);
    let counters = room.world.core.counters();
    let over =
        counters.dropped(DropReason::SsrcBudget) + counters.dropped(DropReason::EndpointBudget);
    // About 21 Mb/s sent against 10 Mb/s admitted for 4 s: several thousand packets.
    assert!(over > 3000, "the excess was not dropped: {over}");
    let x = key_of(&room.world.core, IDS[ATTACKER]);
    assert!(room.world.core.endpoints.contains_key(&x));
}

#[test]
fn garbage_and_feedback_storms_on_an_established_session_do_not_harm_the_others() {
    let mut room = Room::new();
    let mut baseline = room.baseline();
    let mut rng = StdRng::seed_from_u64(15);
    let (from, to): (SocketAddr, SocketAddr) = (room.attacker_addr(), BRIDGE.parse().unwrap());
    let victim_ssrcs: Vec<u32> = (0..ATTACKER).map(|s| layers(s)[0].0).collect();
    room.keyframe_requests = 0;
    let mut attacked = Measured::default();
    room.run(3000, &mut attacked, |room| {
        let now = room.world.now;
        let mut random = vec![0u8; rng.random_range(1..1400)];
        rng.fill(&mut random[..]);
        let mut unknown_ssrc = vec![0x80, 100, 0, 1, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
        unknown_ssrc.extend_from_slice(&random[..random.len().min(200)]);
        let mut bad_srtcp = vec![0x81, 201, 0, 7, 0, 0, 0x10, 0x01];
        bad_srtcp.extend_from_slice(&[0; 40]);
        let datagrams: [&[u8]; 5] = [
            &random,
            &[0x80, 100, 0, 1, 0],                // truncated RTP
            &unknown_ssrc,                        // RTP on an SSRC never signalled
            &[0x80, 201, 0xff, 0xff, 0, 0, 0, 1], // SRTCP longer than its datagram
            &bad_srtcp,                           // SRTCP that does not authenticate
        ];
        for data in datagrams {
            room.world
                .core
                .handle_datagram(now, Protocol::Udp, from, to, data);
        }
        // PLI storm on every video stream it receives (str0m sends each as SRTCP).
        let mut api = room.world.clients[ATTACKER].rtc.direct_api();
        for ssrc in &victim_ssrcs {
            if let Some(rx) = api.stream_rx(&Ssrc::from(*ssrc)) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
            }
        }
    });
    room.assert_innocents_unharmed(&mut baseline, &mut attacked);
    let counters = room.world.core.counters();
    for reason in [
        DropReason::Garbage,
        DropReason::UnknownSsrc,
        DropReason::MalformedRtcp,
    ] {
        assert!(counters.dropped(reason) >= 2900, "{reason:?}: {counters:?}");
    }
    // The SRTCP flood and the PLI storm beyond the attacker's RTCP budget, unparsed.
    assert!(
        counters.dropped(DropReason::RtcpBudget) > 3000,
        "{counters:?}"
    );
    // At most one keyframe request per sender layer per 300 ms reaches the innocents.
    let bound = 3 * 3 * 3000 / 300 + 9;
    assert!(
        room.keyframe_requests <= bound,
        "{} keyframe requests reached the innocents",
        room.keyframe_requests
    );
}
