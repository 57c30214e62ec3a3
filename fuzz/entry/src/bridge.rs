//! The bridge's parsers: bridge-channel (colibri-ws) messages, datagram demultiplexing and
//! the VP8/VP9 payload descriptors, the AV1 dependency descriptor and SVC layer selection.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use convene_bridge::api::{BridgeRequest, BridgeResponse, ConferenceId, EndpointId, EndpointOffer};
use convene_bridge::channel;
use convene_bridge::codec::{self, av1_dd, vp8};
use convene_bridge::engine::{self, Core, EndpointKey, Settings};
use convene_bridge::media::CodecKind;
use convene_bridge::svc::{SvcSelector, SvcStream};
use hmac::{Hmac, Mac};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sha1::Sha1;
use str0m::net::Protocol;

pub(crate) const BRIDGE: &str = "127.0.0.1:10000";
/// Where datagrams come from: the first has sent a STUN request with an endpoint's
/// username, so the core knows it; the others are strangers.
const PEERS: [&str; 3] = ["127.0.0.2:5000", "127.0.0.3:5000", "[::1]:5000"];

/// Inputs one [`World`] serves before a fresh one replaces it: long enough that building
/// it (a DTLS certificate per endpoint) costs little, short enough that the endpoints never
/// expire and what the inputs leave behind stays small.
const WORLD_INPUTS: u32 = 10_000;

/// A core with two endpoints in one conference and their bridge channels open, kept from
/// one input to the next (building one per input would cost more than the parsing).
struct World {
    core: Core,
    channels: Vec<EndpointKey>,
    now: Instant,
    inputs: u32,
}

impl World {
    fn new() -> Self {
        let now = Instant::now();
        let mut core = core(now);
        let mut channels = Vec::new();
        let mut credentials = (String::new(), String::new());
        for id in ["a", "b"] {
            let offer = allocate(&mut core, now, id);
            let (path, pwd) = offer.colibri_ws_url.split_once("?pwd=").expect("pwd");
            let mut parts = path.rsplit('/');
            let (endpoint, conference) = (parts.next().expect("id"), parts.next().expect("id"));
            channels.push(
                core.channel_open(conference, endpoint, pwd)
                    .expect("channel"),
            );
            credentials = (offer.transport.ufrag, offer.transport.pwd);
        }
        let mut world = World {
            core,
            channels,
            now,
            inputs: 0,
        };
        let (ufrag, pwd) = credentials;
        world.receive(0, &stun_binding_request(&format!("{ufrag}:fuzz"), &pwd));
        world
    }

    fn receive(&mut self, peer: usize, datagram: &[u8]) {
        let source: SocketAddr = PEERS[peer % PEERS.len()].parse().expect("address");
        let destination = BRIDGE.parse().expect("address");
        self.core
            .handle_datagram(self.now, Protocol::Udp, source, destination, datagram);
        self.drain();
    }

    /// Advances the clock a little per input, so rate limits refill as they would, and
    /// drops whatever the core wants to send.
    fn drain(&mut self) {
        self.now += Duration::from_millis(10);
        self.core.handle_timeout(self.now);
        while self.core.poll_output(self.now).is_some() {}
    }
}

/// A core on [`BRIDGE`] with the default limits, seeded (runs replay), its endpoints
/// never idle out.
pub(crate) fn core(now: Instant) -> Core {
    let settings = Settings {
        local_addrs: vec![BRIDGE.parse().expect("address")],
        tcp_addrs: vec![],
        public_ips: vec![],
        colibri_ws_base: "ws://localhost".into(),
        server_id: "jvb1".into(),
        idle_timeout: Duration::from_secs(3600),
        initial_bandwidth_bps: 10_000_000,
        max_datagram_bytes: 1500,
        ingress: engine::IngressLimits::from(&convene_bridge::Config::default()),
    };
    Core::new(settings, now, StdRng::seed_from_u64(15))
}

/// Endpoint `id` allocated in the conference "room": the bridge's offer.
pub(crate) fn allocate(core: &mut Core, now: Instant, id: &str) -> EndpointOffer {
    let allocate = BridgeRequest::AllocateEndpoint {
        conference: ConferenceId("room".into()),
        endpoint: EndpointId(id.into()),
    };
    match core.handle_request(now, allocate) {
        Ok(BridgeResponse::EndpointAllocated(offer)) => offer,
        _ => panic!("the core allocates no endpoint"),
    }
}

thread_local! {
    static WORLD: RefCell<World> = RefCell::new(World::new());
}

/// Runs `input` in the current world, renewed every [`WORLD_INPUTS`] inputs.
fn in_world(input: impl FnOnce(&mut World)) {
    WORLD.with_borrow_mut(|world| {
        world.inputs += 1;
        if world.inputs > WORLD_INPUTS {
            *world = World::new();
        }
        input(world);
    });
}

/// A STUN Binding request (RFC 8489, RFC 8445) that the endpoint with these credentials
/// accepts: the core then knows the peer's address. (Without ICE completed, str0m still
/// accepts only STUN from it: see docs/fuzzing.md.)
fn stun_binding_request(username: &str, password: &str) -> Vec<u8> {
    const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    const USERNAME: u16 = 0x0006;
    const MESSAGE_INTEGRITY: u16 = 0x0008;
    const PRIORITY: u16 = 0x0024;
    const INTEGRITY_LEN: usize = 4 + 20;
    let attribute = |message: &mut Vec<u8>, kind: u16, value: &[u8]| {
        message.extend_from_slice(&kind.to_be_bytes());
        let len = u16::try_from(value.len()).expect("short attribute");
        message.extend_from_slice(&len.to_be_bytes());
        message.extend_from_slice(value);
        message.resize(message.len().next_multiple_of(4), 0);
    };
    let mut message = vec![0x00, 0x01, 0, 0];
    message.extend_from_slice(&MAGIC_COOKIE);
    message.extend_from_slice(b"fuzz-txid-12");
    attribute(&mut message, USERNAME, username.as_bytes());
    attribute(&mut message, PRIORITY, &[0x6e, 0x00, 0x1e, 0xff]);
    // The integrity covers the header with a length that already counts itself.
    let len = u16::try_from(message.len() - 20 + INTEGRITY_LEN).expect("short message");
    message[2..4].copy_from_slice(&len.to_be_bytes());
    let mut mac = Hmac::<Sha1>::new_from_slice(password.as_bytes()).expect("any key length");
    mac.update(&message);
    let integrity = mac.finalize().into_bytes();
    attribute(&mut message, MESSAGE_INTEGRITY, &integrity);
    message
}

/// One colibri-ws text message from endpoint "a", parsed alone and then handled by the
/// core (relayed to "b", applied as constraints...).
pub(crate) fn bridge_channel(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let _ = channel::parse(text);
    in_world(|world| {
        let from = world.channels[0];
        let now = world.now;
        world.core.channel_message(now, from, text);
        world.drain();
    });
}

/// One datagram: the first byte picks the peer it comes from, the rest goes through the
/// core's demultiplexing, and through the RTP/RTCP header checks alone.
pub(crate) fn datagram(data: &[u8]) {
    let Some((&peer, datagram)) = data.split_first() else {
        return;
    };
    let _ = engine::classify_rtp_or_rtcp(datagram);
    in_world(|world| world.receive(usize::from(peer), datagram));
}

/// One RTP payload: the first byte picks the codec, the rest is read as forwarding reads
/// it, then rewritten as a layer switch would. Picks 5 and 6 feed a sequence of packets to
/// SVC layer selection instead: AV1 dependency descriptors, or VP9 payloads.
pub(crate) fn codec(data: &[u8]) {
    const CODECS: [CodecKind; 5] = [
        CodecKind::Vp8,
        CodecKind::Vp9,
        CodecKind::Opus,
        CodecKind::H264,
        CodecKind::Av1,
    ];
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let kind = match usize::from(pick) % 7 {
        5 => return svc_sequence(payload, true),
        6 => return svc_sequence(payload, false),
        n => CODECS[n],
    };
    let info = codec::inspect(kind, payload);
    codec::starts_keyframe(kind, payload);
    vp8::keyframe_size(payload);
    let picture_id = info.picture_id.map(|id| id.wrapping_add(1));
    let tl0_pic_idx = info.tl0_pic_idx.map(|idx| idx.wrapping_add(1));
    info.vp8_patch(picture_id, tl0_pic_idx);
    info.payload_for(&Arc::from(payload), picture_id, tl0_pic_idx);
}

/// Length-prefixed chunks (one byte of length each): AV1 dependency descriptors or VP9
/// payloads of one stream, in order, through `svc::SvcStream` and three receivers'
/// selectors (top, bottom and no target). A descriptor that attaches a structure must also
/// survive serialization unchanged, and the in-place patches must keep it parsable.
fn svc_sequence(mut data: &[u8], av1: bool) {
    let mut now = Instant::now();
    let mut stream = SvcStream::default();
    let mut receivers: [SvcSelector; 3] = Default::default();
    while let Some((&len, rest)) = data.split_first() {
        let (chunk, tail) = rest.split_at(usize::from(len).min(rest.len()));
        data = tail;
        now += Duration::from_millis(5);
        let frame = if av1 {
            check_descriptor(chunk);
            match stream.on_av1(now, Some(chunk), chunk.len()) {
                Ok((frame, _)) => frame,
                Err(_) => continue,
            }
        } else {
            let info = codec::inspect(CodecKind::Vp9, chunk);
            match info.vp9() {
                Some(d) => stream.on_vp9(now, d, chunk.len()).0,
                None => continue,
            }
        };
        let targets = stream.targets(now);
        let top = targets.last().map(|t| t.dt);
        let bottom = targets.first().map(|t| t.dt);
        if let Some(frame) = frame {
            for (receiver, target) in receivers.iter_mut().zip([top, bottom, None]) {
                receiver.decide(&frame, &stream, target);
            }
        }
    }
}

fn check_descriptor(bytes: &[u8]) {
    let Ok(d) = av1_dd::parse(bytes, None) else {
        return;
    };
    let Some(structure) = d.attached.clone() else {
        return;
    };
    let written = av1_dd::write::descriptor(&d, &structure);
    assert_eq!(
        av1_dd::parse(&written, None).as_ref(),
        Ok(&d),
        "a parsed descriptor serializes to itself"
    );
    let mut patched = bytes.to_vec();
    av1_dd::patch_frame_number(&mut patched, d.frame_number.wrapping_add(1));
    av1_dd::patch_template_ids(&mut patched, 17);
    let moved = av1_dd::parse(&patched, None).expect("patches keep the descriptor parsable");
    assert_eq!(moved.frame, d.frame, "patches keep the frame's template");
}
