//! The whole core on simulated time, against str0m clients exchanging datagrams in
//! memory: simulcast switching only on keyframes, PLI on switch, continuity, last-N.

use str0m::media::Pt;

use super::*;
use crate::codec::tests::vp8_packet;
use crate::test_client::{self, TestClient};

const BRIDGE: &str = "10.0.0.1:10000";
const LAYERS: [(u32, u32, (u16, u16)); 3] = [
    (100, 101, (320, 180)),
    (200, 201, (640, 360)),
    (300, 301, (1280, 720)),
];

struct Client {
    rtc: Rtc,
    addr: SocketAddr,
    events: Vec<Event>,
}

type Datagram = (SocketAddr, SocketAddr, Vec<u8>);

impl Client {
    /// Polls until timeout (str0m wants this after every input): keeps the events,
    /// returns the datagrams.
    fn drain(&mut self) -> Vec<Datagram> {
        let mut out = Vec::new();
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(_) => return out,
                Output::Transmit(t) => out.push((t.source, t.destination, Vec::from(t.contents))),
                Output::Event(e) => self.events.push(e),
            }
        }
    }
}

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
    }
}

/// A client configured from the offer, as a browser would be from the Jingle offer.
fn client(offer: &EndpointOffer, addr: &str, now: Instant) -> (Client, TransportDescription) {
    let addr: SocketAddr = addr.parse().unwrap();
    let local = Candidate::host(addr, "udp").unwrap();
    let answer = TestClient::answer(offer, local, now).unwrap();
    let client = Client {
        rtc: answer.rtc,
        addr,
        events: Vec::new(),
    };
    (client, answer.transport)
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
}

impl World {
    /// Advances 1 ms: timeouts, then every datagram in flight (zero latency).
    fn tick(&mut self) {
        self.now += Duration::from_millis(1);
        let now = self.now;
        self.core.handle_timeout(now);
        let mut to_core = Vec::new();
        for c in &mut self.clients {
            c.rtc.handle_input(Input::Timeout(now)).unwrap();
            to_core.append(&mut c.drain());
        }
        for _ in 0..50 {
            for (source, destination, data) in std::mem::take(&mut to_core) {
                self.core
                    .handle_datagram(now, Protocol::Udp, source, destination, &data);
            }
            let mut moved = false;
            while let Some(out) = self.core.poll_output() {
                let CoreOutput::Transmit(t) = out else {
                    continue;
                };
                moved = true;
                let Some(c) = self.clients.iter_mut().find(|c| c.addr == t.destination) else {
                    continue;
                };
                let input = Input::Receive(
                    now,
                    Receive {
                        proto: Protocol::Udp,
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.as_ref().try_into().unwrap(),
                    },
                );
                c.rtc.handle_input(input).unwrap();
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
    let mut core = Core::new(settings(), t0);
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
        while let Some(out) = core.poll_output() {
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
    let mut core = Core::new(settings(), t0);
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
        with_rtc(ep, |_| -> () { panic!("simulated str0m bug") }),
        None
    );
    core.handle_timeout(t0);
    assert!(!core.endpoints.contains_key(&victim));
    assert_eq!(core.endpoints.len(), 1);
    let mut expired = Vec::new();
    while let Some(out) = core.poll_output() {
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
    let mut core = Core::new(settings, t0);
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

#[test]
fn simulcast_switches_on_keyframes_with_continuous_numbering() {
    let t0 = Instant::now();
    let mut core = Core::new(settings(), t0);
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
    let (sender_offer, receiver_offer) = (offer("s"), offer("r"));
    let (mut sender, sender_transport) = client(&sender_offer, "10.0.0.2:5000", t0);
    let (mut receiver, receiver_transport) = client(&receiver_offer, "10.0.0.3:5000", t0);
    for (i, (ssrc, rtx, _)) in LAYERS.iter().enumerate() {
        let rid = Rid::from(format!("l{i}").as_str());
        sender.rtc.direct_api().declare_stream_tx(
            Ssrc::from(*ssrc),
            Some(Ssrc::from(*rtx)),
            test_client::mid(MediaKind::Video),
            Some(rid),
        );
    }
    receiver.rtc.direct_api().expect_stream_rx(
        Ssrc::from(LAYERS[0].0),
        Some(Ssrc::from(LAYERS[0].1)),
        test_client::mid(MediaKind::Video),
        None,
    );
    let configure = |id: &str, transport, sources| BridgeRequest::ConfigureEndpoint {
        conference: conference.clone(),
        endpoint: EndpointId(id.into()),
        transport,
        media: vec![],
        sources,
    };
    core.handle_request(t0, configure("s", sender_transport, simulcast_sources()))
        .unwrap();
    core.handle_request(t0, configure("r", receiver_transport, SourceSet::default()))
        .unwrap();
    let mut world = World {
        core,
        clients: vec![sender, receiver],
        now: t0,
    };

    // 30 fps on every layer; a layer sends a keyframe at start and, like a real encoder,
    // a few frames after it is asked (PLI): frames until the next keyframe per layer.
    let mut picture_ids = [1000u16, 5000, 20000];
    let mut seqs = [10u64, 30_000, 50_000];
    let mut want_key = [1u8; 3];
    let mut frame = |world: &mut World, want_key: &mut [u8; 3]| {
        let sender = &mut world.clients[0];
        for e in sender.events.drain(..) {
            if let Event::KeyframeRequest(r) = e {
                let layer = r
                    .rid
                    .map(|rid| rid.to_string()[1..].parse::<usize>().unwrap())
                    .unwrap();
                if want_key[layer] == 0 {
                    want_key[layer] = 4;
                }
            }
        }
        for (l, (ssrc, _, size)) in LAYERS.iter().enumerate() {
            let mut payload = vp8_packet(
                want_key[l] == 1 || seqs[l] % 30_000 == 10,
                picture_ids[l],
                0,
                *size,
            );
            payload.push(l as u8);
            let write = RtpWrite::new(
                Pt::from(100),
                seqs[l].into(),
                picture_ids[l] as u32 * 3000,
                world.now,
                payload,
            )
            .marker(true)
            .nackable(true);
            sender
                .rtc
                .direct_api()
                .stream_tx(&Ssrc::from(*ssrc))
                .unwrap()
                .write_rtp(write);
            want_key[l] = want_key[l].saturating_sub(1);
            picture_ids[l] = (picture_ids[l] + 1) % 0x8000;
            seqs[l] += 1;
        }
    };
    // Runs `ms` of 30 fps video; returns what the receiver got.
    let mut run = |world: &mut World, ms: u32| {
        for i in 0..ms {
            if i % 33 == 0 {
                frame(world, &mut want_key);
            }
            world.tick();
        }
        received_video(&mut world.clients[1])
    };
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
