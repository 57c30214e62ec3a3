//! The whole core on simulated time, against str0m clients exchanging datagrams in
//! memory: simulcast switching only on keyframes, PLI on switch, continuity, last-N.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt};
use rand::SeedableRng;
use rand::rngs::StdRng;
use str0m::media::{Pt, Rid};
use str0m::net::Protocol;
use str0m::rtp::{RtpWrite, Ssrc, Vp8Descriptor};
use str0m::{Candidate, Event, Input};

use super::{ChannelAuthError, Core, CoreOutput, EndpointKey, IngressLimits, Settings};
use crate::api::{
    BridgeEvent, BridgeRequest, BridgeResponse, ConferenceId, EndpointId, EndpointOffer,
    GroupSemantics, MediaKind, SourceSet, TransportDescription,
};
use crate::codec;
use crate::codec::vp8::tests::vp8_packet;
use crate::media::CodecKind;
use crate::metrics::DropReason;
use crate::testkit::client::{self as test_client, TestClient};
use crate::testkit::network::{Link, Peer as Client};

mod hostile;
mod svc;

const BRIDGE: &str = "10.0.0.1:10000";
const LAYERS: [(u32, u32, (u16, u16)); 3] = [
    (100, 101, (320, 180)),
    (200, 201, (640, 360)),
    (300, 301, (1280, 720)),
];

fn settings() -> Settings {
    Settings {
        local_addrs: vec![BRIDGE.parse().unwrap()],
        tcp_addrs: vec![],
        public_ips: vec![],
        colibri_ws_base: "ws://localhost".into(),
        server_id: "jvb1".into(),
        idle_timeout: Duration::from_secs(60),
        initial_bandwidth_bps: 10_000_000,
        max_datagram_bytes: 1500,
        ingress: IngressLimits::from(&crate::Config::default()),
    }
}

/// A core with a seeded generator: runs replay.
fn core(settings: Settings, now: Instant) -> Core {
    Core::new(settings, now, StdRng::seed_from_u64(9))
}

/// A client configured from the offer, as a browser would be from the Jingle offer.
fn client(offer: &EndpointOffer, addr: &str, now: Instant) -> (Client, TransportDescription) {
    let addr: SocketAddr = addr.parse().unwrap();
    let local = Candidate::host(addr, "udp").unwrap();
    let answer = TestClient::answer(offer, local, now).unwrap();
    (Client::new(answer.rtc, addr), answer.transport)
}

/// The sender "s" with the simulcast `LAYERS` and no audio.
fn simulcast_sources() -> SourceSet {
    let layers = LAYERS.map(|(video, rtx, _)| (video, rtx));
    test_client::sender_sources("s", None, &layers)
}

struct World {
    core: Core,
    clients: Vec<Client>,
    now: Instant,
    /// Bottlenecks on the way from the bridge to some clients.
    links: HashMap<SocketAddr, Link>,
}

impl World {
    fn new(core: Core, clients: Vec<Client>, now: Instant) -> Self {
        Self {
            core,
            clients,
            now,
            links: HashMap::new(),
        }
    }

    /// Advances 1 ms: timeouts, datagrams through the bottlenecks, then every datagram in
    /// flight elsewhere (zero latency).
    fn tick(&mut self) {
        self.now += Duration::from_millis(1);
        let now = self.now;
        self.core.handle_timeout(now);
        let mut to_core = Vec::new();
        for c in &mut self.clients {
            c.rtc.handle_input(Input::Timeout(now)).unwrap();
            to_core.append(&mut c.drain());
        }
        for link in self.links.values_mut() {
            while let Some(t) = link.arrived(now) {
                let c = self.clients.iter_mut().find(|c| c.addr == t.destination);
                if let Some(c) = c {
                    c.receive(now, &t);
                    to_core.append(&mut c.drain());
                }
            }
        }
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
                if let Some(link) = self.links.get_mut(&t.destination) {
                    link.send(now, t);
                    continue;
                }
                let Some(c) = self.clients.iter_mut().find(|c| c.addr == t.destination) else {
                    continue;
                };
                c.receive(now, &t);
                to_core.append(&mut c.drain());
            }
            if !moved && to_core.is_empty() {
                break;
            }
        }
    }
}

/// (layer marker, seq, picture id, keyframe) of the video packets a client received.
fn received_video(c: &mut Client) -> Vec<(u8, u64, u16, bool)> {
    c.events
        .drain(..)
        .filter_map(|e| match e {
            Event::RtpPacket(p) if *p.header.ssrc == LAYERS[0].0 => {
                let picture_id = Vp8Descriptor::parse(&p.payload).ok()?.picture_id()?;
                let keyframe = codec::starts_keyframe(CodecKind::Vp8, &p.payload);
                Some((*p.payload.last()?, *p.seq_no, picture_id, keyframe))
            }
            _ => None,
        })
        .collect()
}

/// The key of the endpoint the focus named `id`.
fn key_of(core: &Core, id: &str) -> EndpointKey {
    core.endpoints
        .iter()
        .find(|(_, e)| e.id.0 == id)
        .map(|(k, _)| *k)
        .unwrap()
}

/// Opens the bridge channel from the URL in the offer, as the WebSocket route does.
fn open_channel(core: &mut Core, offer: &EndpointOffer) -> EndpointKey {
    let (path, pwd) = offer.colibri_ws_url.split_once("?pwd=").unwrap();
    let mut parts = path.rsplit('/');
    let (endpoint, conference) = (parts.next().unwrap(), parts.next().unwrap());
    assert_eq!(
        core.channel_open(conference, endpoint, "wrong"),
        Err(ChannelAuthError::BadPassword)
    );
    core.channel_open(conference, endpoint, pwd).unwrap()
}

#[test]
fn bridge_channel_relays_and_limits_a_flooding_endpoint() {
    let t0 = Instant::now();
    let mut core = core(settings(), t0);
    let mut offers = Vec::new();
    for id in ["a", "b", "c"] {
        let allocate = BridgeRequest::AllocateEndpoint {
            conference: ConferenceId("room".into()),
            endpoint: EndpointId(id.into()),
        };
        let Ok(BridgeResponse::EndpointAllocated(offer)) = core.handle_request(t0, allocate) else {
            panic!("no offer")
        };
        offers.push(offer);
    }
    let keys: Vec<EndpointKey> = offers.iter().map(|o| open_channel(&mut core, o)).collect();
    let inbox = |core: &mut Core| {
        let mut got: HashMap<EndpointKey, Vec<serde_json::Value>> = HashMap::new();
        while let Some(out) = core.poll_output(t0) {
            if let CoreOutput::Channel { endpoint, text } = out {
                got.entry(endpoint)
                    .or_default()
                    .push(serde_json::from_str(&text).unwrap());
            }
        }
        got
    };
    let hello = inbox(&mut core);
    assert!(
        keys.iter()
            .all(|k| hello[k][0]["colibriClass"] == "ServerHello")
    );

    // Addressed to "c" only, with a forged "from".
    core.channel_message(
        t0,
        keys[0],
        r#"{"colibriClass":"EndpointMessage","from":"x","to":"c","msgPayload":{"n":1}}"#,
    );
    let got = inbox(&mut core);
    let relayed: Vec<_> = got
        .get(&keys[2])
        .into_iter()
        .flatten()
        .filter(|m| m["colibriClass"] == "EndpointMessage")
        .collect();
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0]["from"], "a");
    assert!(
        got.get(&keys[1])
            .is_none_or(|m| m.iter().all(|m| m["colibriClass"] != "EndpointMessage"))
    );

    // A flood: the burst gets through, the rest is dropped and counted; it refills.
    let broadcast = r#"{"colibriClass":"EndpointMessage","to":"","msgPayload":{}}"#;
    for _ in 0..200 {
        core.channel_message(t0, keys[0], broadcast);
    }
    let count =
        |got: &HashMap<EndpointKey, Vec<serde_json::Value>>| got.get(&keys[1]).map_or(0, Vec::len);
    assert_eq!(count(&inbox(&mut core)), 59);
    assert_eq!(core.counters().dropped(DropReason::ChannelFlood), 141);
    let later = t0 + Duration::from_secs(1);
    for _ in 0..50 {
        core.channel_message(later, keys[0], broadcast);
    }
    assert_eq!(count(&inbox(&mut core)), 20);

    // Every 5 s each channel learns its estimated downlink.
    core.handle_timeout(t0 + Duration::from_secs(6));
    let got = inbox(&mut core);
    for k in &keys {
        let stats = got[k]
            .iter()
            .find(|m| m["colibriClass"] == "ConnectionStats");
        assert_eq!(
            stats.unwrap()["estimatedDownlinkBandwidth"],
            10_000_000,
            "{got:?}"
        );
    }
}

#[test]
fn a_panic_inside_str0m_expires_that_endpoint_only() {
    let t0 = Instant::now();
    let mut core = core(settings(), t0);
    for id in ["a", "b"] {
        let allocate = BridgeRequest::AllocateEndpoint {
            conference: ConferenceId("room".into()),
            endpoint: EndpointId(id.into()),
        };
        core.handle_request(t0, allocate).unwrap();
    }
    let victim = key_of(&core, "a");
    let ep = core.endpoints.get_mut(&victim).unwrap();
    assert_eq!(
        ep.rtc.call(|_| -> () { panic!("simulated str0m bug") }),
        None
    );
    core.handle_timeout(t0);
    assert!(!core.endpoints.contains_key(&victim));
    assert_eq!(core.endpoints.len(), 1);
    let mut expired = Vec::new();
    while let Some(out) = core.poll_output(t0) {
        if let CoreOutput::Event(BridgeEvent::EndpointExpired { endpoint, .. }) = out {
            expired.push(endpoint.0);
        }
    }
    assert_eq!(expired, vec!["a".to_string()]);
    assert_eq!(core.counters().endpoints_expired, 1);
}

#[test]
fn offer_advertises_local_tcp_and_public_candidates() {
    let t0 = Instant::now();
    let settings = Settings {
        tcp_addrs: vec![BRIDGE.parse().unwrap()],
        public_ips: vec!["203.0.113.7".parse().unwrap()],
        ..settings()
    };
    let mut core = core(settings, t0);
    let allocate = BridgeRequest::AllocateEndpoint {
        conference: ConferenceId("room".into()),
        endpoint: EndpointId("e".into()),
    };
    let Ok(BridgeResponse::EndpointAllocated(offer)) = core.handle_request(t0, allocate) else {
        panic!("no offer")
    };
    let seen: Vec<(String, String, u16)> = offer
        .transport
        .candidates
        .iter()
        .map(|c| (c.protocol.clone(), c.ip.to_string(), c.port))
        .collect();
    let want = [
        ("udp", "10.0.0.1"),
        ("tcp", "10.0.0.1"),
        ("udp", "203.0.113.7"),
        ("tcp", "203.0.113.7"),
    ];
    let want: Vec<(String, String, u16)> = want
        .iter()
        .map(|(p, ip)| (p.to_string(), ip.to_string(), 10000))
        .collect();
    assert_eq!(seen, want);
    let prio: Vec<u32> = offer
        .transport
        .candidates
        .iter()
        .map(|c| c.priority)
        .collect();
    assert!(
        prio[0] > prio[2] && prio[2] > prio[1] && prio[1] > prio[3],
        "{prio:?}"
    );
}

/// The sender "s" (at 10.0.0.2) with the simulcast `LAYERS`, and receive-only endpoints
/// (`(id, address)`), connected to one core.
fn simulcast_world(receivers: &[(&str, &str)]) -> World {
    let streams = LAYERS.map(|(ssrc, rtx, _)| (ssrc, rtx));
    video_world(&streams, simulcast_sources(), receivers).0
}

/// The sender "s" (at 10.0.0.2) sending `streams` (SSRC, RTX; rids `l0`, `l1`, …) and
/// signalling `sources`, and receive-only endpoints (`(id, address)`) expecting the first
/// stream (the receiver view), connected to one core; also the sender's offer.
fn video_world(
    streams: &[(u32, u32)],
    sources: SourceSet,
    receivers: &[(&str, &str)],
) -> (World, EndpointOffer) {
    let t0 = Instant::now();
    let mut core = core(settings(), t0);
    let conference = ConferenceId("room".into());
    let mut offer = |id: &str| match core
        .handle_request(
            t0,
            BridgeRequest::AllocateEndpoint {
                conference: conference.clone(),
                endpoint: EndpointId(id.into()),
            },
        )
        .unwrap()
    {
        BridgeResponse::EndpointAllocated(o) => o,
        BridgeResponse::Done => panic!(),
    };
    let sender_offer = offer("s");
    let (mut sender, sender_transport) = client(&sender_offer, "10.0.0.2:5000", t0);
    for (i, (ssrc, rtx)) in streams.iter().enumerate() {
        let rid = Rid::from(format!("l{i}").as_str());
        sender.rtc.direct_api().declare_stream_tx(
            Ssrc::from(*ssrc),
            Some(Ssrc::from(*rtx)),
            test_client::mid(MediaKind::Video),
            Some(rid),
        );
    }
    let mut clients = vec![sender];
    let mut transports = vec![("s", sender_transport, sources)];
    for (id, addr) in receivers {
        let (mut receiver, transport) = client(&offer(id), addr, t0);
        receiver.rtc.direct_api().expect_stream_rx(
            Ssrc::from(streams[0].0),
            Some(Ssrc::from(streams[0].1)),
            test_client::mid(MediaKind::Video),
            None,
        );
        clients.push(receiver);
        transports.push((id, transport, SourceSet::default()));
    }
    for (id, transport, sources) in transports {
        let configure = BridgeRequest::ConfigureEndpoint {
            conference: conference.clone(),
            endpoint: EndpointId(id.into()),
            transport,
            media: vec![],
            sources,
        };
        core.handle_request(t0, configure).unwrap();
    }
    (World::new(core, clients, t0), sender_offer)
}

/// The sender's VP8 encoder: 30 fps on every layer, a keyframe at start and, like a real
/// encoder, a few frames after it is asked (PLI). Each frame of layer `l` is
/// `packets[l]` packets of `bytes[l]` bytes, the last byte of each being `l`.
struct Encoder {
    packets: [usize; 3],
    bytes: [usize; 3],
    picture_ids: [u16; 3],
    seqs: [u64; 3],
    /// Frames until the next keyframe, per layer (0: none pending).
    want_key: [u8; 3],
}

impl Encoder {
    fn new(packets: [usize; 3], bytes: [usize; 3]) -> Self {
        Self {
            packets,
            bytes,
            picture_ids: [1000, 5000, 20000],
            seqs: [10, 30_000, 50_000],
            want_key: [1; 3],
        }
    }

    fn frame(&mut self, world: &mut World) {
        let sender = &mut world.clients[0];
        for e in sender.events.drain(..) {
            if let Event::KeyframeRequest(r) = e {
                let layer = r
                    .rid
                    .map(|rid| rid.to_string()[1..].parse::<usize>().unwrap())
                    .unwrap();
                if self.want_key[layer] == 0 {
                    self.want_key[layer] = 4;
                }
            }
        }
        for (l, (ssrc, _, size)) in LAYERS.iter().enumerate() {
            let keyframe = self.want_key[l] == 1 || self.seqs[l] % 30_000 == 10;
            for i in 0..self.packets[l] {
                let mut payload = vp8_packet(keyframe && i == 0, self.picture_ids[l], 0, *size);
                payload.resize(self.bytes[l].max(payload.len() + 1) - 1, 0);
                payload.push(l as u8);
                let write = RtpWrite::new(
                    Pt::from(100),
                    self.seqs[l].into(),
                    self.picture_ids[l] as u32 * 3000,
                    world.now,
                    payload,
                )
                .marker(i + 1 == self.packets[l])
                .nackable(true);
                sender
                    .rtc
                    .direct_api()
                    .stream_tx(&Ssrc::from(*ssrc))
                    .unwrap()
                    .write_rtp(write);
                self.seqs[l] += 1;
            }
            self.want_key[l] = self.want_key[l].saturating_sub(1);
            self.picture_ids[l] = (self.picture_ids[l] + 1) % 0x8000;
        }
    }

    /// Runs `ms` of video; returns what receiver `r` (a client index) got.
    fn run(&mut self, world: &mut World, ms: u32, r: usize) -> Vec<(u8, u64, u16, bool)> {
        for i in 0..ms {
            if i % 33 == 0 {
                self.frame(world);
            }
            world.tick();
        }
        received_video(&mut world.clients[r])
    }
}

#[test]
fn simulcast_switches_on_keyframes_with_continuous_numbering() {
    let mut world = simulcast_world(&[("r", "10.0.0.3:5000")]);
    // One small packet per frame and layer.
    let mut encoder = Encoder::new([1; 3], [0; 3]);
    let mut run = |world: &mut World, ms: u32| encoder.run(world, ms, 1);
    let mut received = run(&mut world, 3000);
    assert!(received.len() > 50, "too little video: {}", received.len());
    // Unconstrained: the top layer, and nothing else once it started.
    let first_top = received
        .iter()
        .position(|r| r.0 == 2)
        .expect("top layer forwarded");
    assert!(received[first_top..].iter().all(|r| r.0 == 2));
    assert!(received[first_top].3, "started on a delta frame");

    // Constrain to 180p: the switch waits for a keyframe of layer 0 (asked by PLI).
    let key = key_of(&world.core, "r");
    let constraints =
        r#"{"colibriClass":"ReceiverVideoConstraints","defaultConstraints":{"maxHeight":180}}"#;
    world.core.channel_message(world.now, key, constraints);
    let before_switch = received.len();
    received.extend(run(&mut world, 2000));
    let switch = before_switch
        + received[before_switch..]
            .iter()
            .position(|r| r.0 == 0)
            .expect("switched to layer 0");
    assert!(
        received[switch..].iter().all(|r| r.0 == 0),
        "went back to another layer"
    );
    for pair in received[first_top..].windows(2) {
        assert_eq!(pair[1].1, pair[0].1 + 1, "sequence gap around {pair:?}");
        assert_eq!(
            pair[1].2,
            (pair[0].2 + 1) % 0x8000,
            "picture id gap around {pair:?}"
        );
    }
    assert!(world.core.counters().keyframe_requests >= 2);

    // last-N 0: video stops, ForwardedSources goes empty.
    world.core.channel_message(
        world.now,
        key,
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":0}"#,
    );
    for _ in 0..5 {
        world.tick();
    }
    received_video(&mut world.clients[1]);
    assert!(
        run(&mut world, 500).is_empty(),
        "video forwarded despite lastN 0"
    );
    assert_eq!(world.core.endpoints[&key].forwarded_sources, Some(vec![]));

    // Back to all, then the sender turns its camera off (videoType none) and on.
    world.core.channel_message(
        world.now,
        key,
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1}"#,
    );
    let sender_key = key_of(&world.core, "s");
    assert!(
        !run(&mut world, 500).is_empty(),
        "video back after lastN -1"
    );
    let video_type = |t: &str| {
        format!(
            r#"{{"colibriClass":"SourceVideoTypeMessage","sourceName":"s-v0","videoType":"{t}"}}"#
        )
    };
    world
        .core
        .channel_message(world.now, sender_key, &video_type("none"));
    run(&mut world, 5);
    assert!(run(&mut world, 300).is_empty(), "muted video forwarded");
    assert_eq!(world.core.endpoints[&key].forwarded_sources, Some(vec![]));
    world
        .core
        .channel_message(world.now, sender_key, &video_type("camera"));
    assert!(!run(&mut world, 500).is_empty(), "video back after unmute");
    assert_eq!(
        world.core.endpoints[&key].forwarded_sources,
        Some(vec!["s-v0".to_string()])
    );
}

#[test]
fn a_force_muted_source_is_not_forwarded_until_the_endpoint_is_unmuted() {
    let mut world = simulcast_world(&[("r", "10.0.0.3:5000")]);
    let mut encoder = Encoder::new([1; 3], [0; 3]);
    assert!(!encoder.run(&mut world, 1000, 1).is_empty(), "no video");
    let force_mute = |world: &mut World, kind, muted| {
        let request = BridgeRequest::ForceMute {
            conference: ConferenceId("room".into()),
            endpoint: EndpointId("s".into()),
            kind,
            muted,
        };
        world.core.handle_request(world.now, request).unwrap();
    };
    // Muting audio leaves the video alone.
    force_mute(&mut world, MediaKind::Audio, true);
    assert!(
        !encoder.run(&mut world, 300, 1).is_empty(),
        "audio mute stopped video"
    );
    force_mute(&mut world, MediaKind::Video, true);
    let dropped = world.core.counters().dropped(DropReason::ForceMuted);
    // The sender keeps sending (as a client that ignores the mute would): nothing arrives.
    assert!(
        encoder.run(&mut world, 1000, 1).is_empty(),
        "force-muted video forwarded"
    );
    assert!(world.core.counters().dropped(DropReason::ForceMuted) >= dropped + 3 * 25);
    force_mute(&mut world, MediaKind::Video, false);
    let back = encoder.run(&mut world, 1000, 1);
    assert!(
        back.len() > 10,
        "video not back after unmute: {}",
        back.len()
    );
    assert!(back[0].3, "resumed on a delta frame");
    let unknown = BridgeRequest::ForceMute {
        conference: ConferenceId("room".into()),
        endpoint: EndpointId("nobody".into()),
        kind: MediaKind::Video,
        muted: true,
    };
    assert!(world.core.handle_request(world.now, unknown).is_err());
}

#[test]
fn a_congested_receiver_is_estimated_down_to_a_lower_layer_and_others_keep_the_top() {
    // "slow" sits behind 1 Mb/s with 100 ms of queue; "fast" is unconstrained. The bridge
    // starts from a 10 Mb/s estimate for both, so it has to find out from the feedback.
    let mut world = simulcast_world(&[("fast", "10.0.0.3:5000"), ("slow", "10.0.0.4:5000")]);
    let slow_addr: SocketAddr = "10.0.0.4:5000".parse().unwrap();
    world.links.insert(
        slow_addr,
        Link::new(1_000_000, Duration::from_millis(100), world.now),
    );
    // About 150 kb/s, 500 kb/s and 1.5 Mb/s, as real layers.
    let mut encoder = Encoder::new([1, 2, 6], [625, 1040, 1040]);
    let (fast, slow) = (key_of(&world.core, "fast"), key_of(&world.core, "slow"));
    let state = |world: &World, k: EndpointKey| {
        let ep = &world.core.endpoints[&k];
        let layer = ep.out[&LAYERS[0].0].rewriter.layer();
        (ep.downlink.estimate_bps(), layer)
    };
    encoder.run(&mut world, 5000, 1);
    let (estimate, layer) = state(&world, slow);
    assert!(estimate < 1_500_000, "slow estimate {estimate} after 5 s");
    assert_ne!(layer, Some(2), "slow still on the top layer after 5 s");

    // The next 40 s, sampled every half second: the slow receiver gets what its link
    // carries, with rare, short attempts to go higher (backing off), the fast one the top.
    let (mut slow_top, mut slow_video, mut fast_top, mut slow_frames) = (0, 0, 0, 0);
    for _ in 0..80 {
        encoder.run(&mut world, 500, 1);
        slow_frames += received_video(&mut world.clients[2])
            .iter()
            .filter(|r| r.3 || r.0 < 2)
            .count();
        let (estimate, layer) = state(&world, slow);
        assert!(estimate < 2_500_000, "slow estimate {estimate}");
        slow_top += usize::from(layer == Some(2));
        slow_video += usize::from(layer.is_some());
        fast_top += usize::from(state(&world, fast).1 == Some(2));
    }
    assert!(
        slow_top <= 4,
        "slow on the top layer in {slow_top} of 80 samples"
    );
    assert_eq!(slow_video, 80, "slow lost its video");
    assert!(
        slow_frames > 1000,
        "slow received {slow_frames} lower-layer packets"
    );
    assert_eq!(fast_top, 80, "fast left the top layer");
    assert!(state(&world, fast).0 > 2_000_000);
}

#[test]
fn a_receiver_nacking_a_source_signalled_without_rtx_is_not_expired() {
    // The sender signals its layers without FID groups (no RTX SSRC to resend on); the
    // receiver behind a congested link loses packets and NACKs them.
    let mut sources = simulcast_sources();
    sources
        .groups
        .retain(|g| g.semantics != GroupSemantics::Fid);
    let rtx: Vec<u32> = LAYERS.iter().map(|l| l.1).collect();
    sources.sources.retain(|s| !rtx.contains(&s.ssrc));
    let streams = LAYERS.map(|(ssrc, rtx, _)| (ssrc, rtx));
    let (mut world, _) = video_world(&streams, sources, &[("r", "10.0.0.3:5000")]);
    world.links.insert(
        "10.0.0.3:5000".parse().unwrap(),
        Link::new(300_000, Duration::from_millis(20), world.now),
    );
    let mut encoder = Encoder::new([1, 2, 6], [625, 1040, 1040]);
    assert!(!encoder.run(&mut world, 3000, 1).is_empty(), "no video");
    assert_eq!(
        world.core.counters().endpoints_expired,
        0,
        "the receiver was expired"
    );
    assert!(
        world.core.counters().nacks_received > 0,
        "the receiver lost nothing"
    );
}

#[test]
fn forwarded_media_leaves_through_poll_output_without_a_timeout() {
    let mut world = simulcast_world(&[("r", "10.0.0.3:5000")]);
    let mut encoder = Encoder::new([1; 3], [0; 3]);
    assert!(
        !encoder.run(&mut world, 2000, 1).is_empty(),
        "not forwarding yet"
    );
    // One frame from the sender, fed to the core; no `handle_timeout` afterwards.
    encoder.frame(&mut world);
    world.now += Duration::from_millis(1);
    let now = world.now;
    let sender = &mut world.clients[0];
    sender.rtc.handle_input(Input::Timeout(now)).unwrap();
    let datagrams = sender.drain();
    assert!(!datagrams.is_empty());
    for (source, destination, data) in datagrams {
        world
            .core
            .handle_datagram(now, Protocol::Udp, source, destination, &data);
    }
    let receiver = world.clients[1].addr;
    let mut to_receiver = 0;
    while let Some(out) = world.core.poll_output(now) {
        if let CoreOutput::Transmit(t) = out
            && t.destination == receiver
        {
            to_receiver += 1;
        }
    }
    assert!(to_receiver > 0, "the frame waited for a timeout");
    assert!(world.core.unsent.is_empty());
}

#[test]
fn ids_and_secrets_come_from_the_given_generator() {
    let t0 = Instant::now();
    let offer = |seed: u64| {
        let mut core = Core::new(settings(), t0, StdRng::seed_from_u64(seed));
        let allocate = BridgeRequest::AllocateEndpoint {
            conference: ConferenceId("room".into()),
            endpoint: EndpointId("a".into()),
        };
        match core.handle_request(t0, allocate) {
            Ok(BridgeResponse::EndpointAllocated(offer)) => offer,
            other => panic!("{other:?}"),
        }
    };
    let (a, again, other) = (offer(1), offer(1), offer(2));
    let replayed = |o: &EndpointOffer| {
        (
            o.transport.ufrag.clone(),
            o.transport.pwd.clone(),
            o.colibri_ws_url.clone(),
            o.feedback_sources.clone(),
        )
    };
    assert_eq!(replayed(&a), replayed(&again));
    assert_ne!(a.transport.ufrag, other.transport.ufrag);
    assert_ne!(a.transport.pwd, other.transport.pwd);
    assert_ne!(a.colibri_ws_url, other.colibri_ws_url);
    assert_eq!((a.transport.ufrag.len(), a.transport.pwd.len()), (16, 22));
}
