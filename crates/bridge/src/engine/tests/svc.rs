//! Single-SSRC SVC through the whole core on simulated time: a str0m client sends AV1
//! `L2T3_KEY` with dependency descriptors (or VP9 `L3T3_KEY`) as Chrome does, receivers
//! with different constraints and downlinks get the decode target that fits, switching
//! only where they can decode, with continuous numbering; bad descriptors are dropped and
//! counted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use foldhash::HashSet;
use str0m::Event;
use str0m::media::Pt;
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc};

use super::{World, key_of, video_world};
use crate::codec::av1_dd::{self, Structure};
use crate::media::DependencyDescriptor;
use crate::metrics::DropReason;
use crate::testkit::client::{self as test_client};
use crate::testkit::network::Link;
use crate::testkit::svc::{Av1L2T3, SvcPacket, Vp9L3T3};

const SSRC: u32 = 500;
const RTX: u32 = 501;

/// The sender "s" sending one SSRC (and its RTX), and receivers `(id, address)`.
fn svc_world(receivers: &[(&str, &str)]) -> (World, Pt, Pt) {
    svc_world_signalling(receivers, &[(SSRC, RTX)])
}

/// As `svc_world`, with the sender signalling `signalled` (a simulcast group when more
/// than one) while it sends on the first SSRC only, as lib-jitsi-meet does with SVC.
fn svc_world_signalling(receivers: &[(&str, &str)], signalled: &[(u32, u32)]) -> (World, Pt, Pt) {
    let sources = test_client::sender_sources("s", None, signalled);
    let (world, sender_offer) = video_world(&[(SSRC, RTX)], sources, receivers);
    let video = &sender_offer.media[1];
    let dd = video
        .header_extensions
        .iter()
        .find(|h| h.uri == av1_dd::URI)
        .expect("the offer has the dependency descriptor");
    assert_eq!(dd.id, 11, "Jicofo's id");
    let pt = |name: &str| {
        let found = video.payload_types.iter().find(|p| p.name == name);
        Pt::from(found.expect("offered").id)
    };
    (world, pt("AV1"), pt("VP9"))
}

/// The sender's encoder: 30 fps, a keyframe at start and a few frames after a PLI.
struct Encoder {
    pt: Pt,
    av1: Av1L2T3,
    vp9: Vp9L3T3,
    seq: u64,
    timestamp: u32,
    want_key: u8,
    /// Packets of one frame per spatial layer, and their size.
    per_frame: [usize; 3],
    size: usize,
}

impl Encoder {
    fn new(pt: Pt, per_frame: [usize; 3], size: usize) -> Self {
        Self {
            pt,
            av1: Av1L2T3::default(),
            vp9: Vp9L3T3::default(),
            seq: 7,
            timestamp: 0,
            want_key: 1,
            per_frame,
            size,
        }
    }

    fn picture(&mut self, av1: bool) -> Vec<SvcPacket> {
        let keyframe = self.want_key == 1;
        self.want_key = self.want_key.saturating_sub(1);
        if av1 {
            let [s0, s1, _] = self.per_frame;
            self.av1.next_picture(keyframe, [s0, s1], self.size)
        } else {
            self.vp9.next_picture(keyframe, self.per_frame, self.size)
        }
    }

    fn frame(&mut self, world: &mut World, av1: bool) {
        let sender = &mut world.clients[0];
        for e in sender.events.drain(..) {
            if matches!(e, Event::KeyframeRequest(_)) && self.want_key == 0 {
                self.want_key = 4;
            }
        }
        self.timestamp = self.timestamp.wrapping_add(3000);
        for mut p in self.picture(av1) {
            let mut ext_vals = ExtensionValues::default();
            if let Some(dd) = p.dd.take() {
                ext_vals.user_values.set(DependencyDescriptor(dd));
            }
            // The layers, for the receivers' checks.
            p.payload.push((p.spatial << 4) | p.temporal);
            self.send(world, p.payload, p.marker, ext_vals);
        }
    }

    fn send(&mut self, world: &mut World, payload: Vec<u8>, marker: bool, ext: ExtensionValues) {
        let write = RtpWrite::new(self.pt, self.seq.into(), self.timestamp, world.now, payload)
            .marker(marker)
            .nackable(true)
            .ext_vals(ext);
        world.clients[0]
            .rtc
            .direct_api()
            .stream_tx(&Ssrc::from(SSRC))
            .unwrap()
            .write_rtp(write);
        self.seq += 1;
    }

    fn run(&mut self, world: &mut World, ms: u32, av1: bool) {
        for i in 0..ms {
            if i % 33 == 0 {
                self.frame(world, av1);
            }
            world.tick();
        }
    }
}

fn received(world: &mut World, client: usize) -> Vec<RtpPacket> {
    world.clients[client]
        .events
        .drain(..)
        .filter_map(|e| match e {
            Event::RtpPacket(p) if *p.header.ssrc == SSRC => Some(p),
            _ => None,
        })
        .collect()
}

/// (spatial, temporal) of a packet, as the sender marked it.
fn layers(p: &RtpPacket) -> (u8, u8) {
    let marked = *p.payload.last().unwrap();
    (marked >> 4, marked & 0x0f)
}

/// What a receiver's decoder would see of the AV1 stream, from the descriptors it got.
#[derive(Default)]
struct Decoder {
    structure: Option<Arc<Structure>>,
    frames: HashSet<u16>,
    /// Frames received whose references were not.
    undecodable: usize,
    spatial: HashSet<u8>,
    last_seq: Option<u64>,
    seq_gaps: usize,
    keyframes: usize,
}

impl Decoder {
    fn feed(&mut self, packets: &[RtpPacket]) {
        for p in packets {
            if let Some(last) = self.last_seq
                && *p.seq_no != last + 1
            {
                self.seq_gaps += 1;
            }
            self.last_seq = Some(*p.seq_no);
            let dd = p
                .header
                .ext_vals
                .user_values
                .get::<DependencyDescriptor>()
                .expect("the dependency descriptor reached the receiver");
            let d = av1_dd::parse(&dd.0, self.structure.as_ref()).unwrap();
            if let Some(s) = &d.attached {
                self.structure = Some(s.clone());
            }
            assert_eq!((d.frame.spatial, d.frame.temporal), layers(p));
            if !d.start_of_frame {
                continue;
            }
            self.spatial.insert(d.frame.spatial);
            self.keyframes += usize::from(d.starts_keyframe());
            let missing = d
                .frame
                .fdiffs
                .as_slice()
                .iter()
                .any(|f| !self.frames.contains(&d.frame_number.wrapping_sub(*f)));
            self.undecodable += usize::from(missing);
            self.frames.insert(d.frame_number);
        }
    }
}

/// Receiver "small" (client 2) constrained to 180p, "big" (client 1) not, for 3 s of AV1
/// `L2T3_KEY`: small gets only the lowest spatial layer (180p is below both, 360p and
/// 720p), big the top one, both decodable and gap-free. Returns the encoder and big's view.
fn big_and_small_at_180p(world: &mut World, av1: Pt) -> (Encoder, Decoder) {
    let small = key_of(&world.core, "small");
    world.core.channel_message(
        world.now,
        small,
        r#"{"colibriClass":"ReceiverVideoConstraints","defaultConstraints":{"maxHeight":180}}"#,
    );
    let mut encoder = Encoder::new(av1, [2, 4, 0], 900);
    let (mut big, mut small_rx) = (Decoder::default(), Decoder::default());
    for _ in 0..6 {
        encoder.run(world, 500, true);
        big.feed(&received(world, 1));
        small_rx.feed(&received(world, 2));
    }
    assert!(
        small_rx.frames.len() > 70,
        "small got {} frames",
        small_rx.frames.len()
    );
    assert_eq!(small_rx.spatial, HashSet::from_iter([0]));
    assert!(big.spatial.contains(&1));
    for (name, d) in [("big", &big), ("small", &small_rx)] {
        assert_eq!(d.undecodable, 0, "{name} got frames it cannot decode");
        assert_eq!(d.seq_gaps, 0, "{name} saw sequence gaps");
    }
    (encoder, big)
}

#[test]
fn av1_l2t3_receivers_get_the_spatial_layer_that_fits_and_can_always_decode() {
    let (mut world, av1, _) = svc_world(&[("big", "10.0.0.3:5000"), ("small", "10.0.0.4:5000")]);
    let (mut encoder, mut big) = big_and_small_at_180p(&mut world, av1);
    assert!(big.frames.len() > 80, "big got {} frames", big.frames.len());

    // Now big is constrained to 360p: it moves to S0 on a keyframe it asks for.
    let big_key = key_of(&world.core, "big");
    let requests = world.core.counters().keyframe_requests;
    world.core.channel_message(
        world.now,
        big_key,
        r#"{"colibriClass":"ReceiverVideoConstraints","defaultConstraints":{"maxHeight":360}}"#,
    );
    encoder.run(&mut world, 2000, true);
    let after = received(&mut world, 1);
    big.spatial.clear();
    let keyframes_before = big.keyframes;
    big.feed(&after);
    assert!(world.core.counters().keyframe_requests > requests);
    assert!(big.keyframes > keyframes_before);
    let last_s1 = after.iter().rposition(|p| layers(p).0 == 1).unwrap();
    assert!(after[last_s1 + 1..].iter().all(|p| layers(p).0 == 0));
    assert!(after.len() - last_s1 > 60, "S0 only after the switch");
    assert_eq!((big.undecodable, big.seq_gaps), (0, 0));
    // Markers end each picture the receiver gets: on S0's last packet now.
    let tail = &after[last_s1 + 1..];
    assert!(tail.iter().filter(|p| p.header.marker).count() * 2 >= tail.len());
}

#[test]
fn av1_svc_on_one_ssrc_of_a_signalled_simulcast_group_is_selected_within_it() {
    let group = [(SSRC, RTX), (502, 503), (504, 505)];
    let (mut world, av1, _) = svc_world_signalling(
        &[("big", "10.0.0.3:5000"), ("small", "10.0.0.4:5000")],
        &group,
    );
    big_and_small_at_180p(&mut world, av1);
}

#[test]
fn av1_receiver_behind_a_slow_link_gets_lower_layers_and_keeps_video() {
    let (mut world, av1, _) = svc_world(&[("fast", "10.0.0.3:5000"), ("slow", "10.0.0.4:5000")]);
    let slow_addr: SocketAddr = "10.0.0.4:5000".parse().unwrap();
    world.links.insert(
        slow_addr,
        Link::new(1_000_000, Duration::from_millis(100), world.now),
    );
    // About 500 kb/s for S0 (360p) and 1.5 Mb/s for S1 (720p).
    let mut encoder = Encoder::new(av1, [2, 6, 0], 1000);
    encoder.run(&mut world, 6000, true);
    received(&mut world, 1);
    received(&mut world, 2);
    let slow = key_of(&world.core, "slow");
    let (mut top, mut video, mut fast_top) = (0, 0, 0);
    for _ in 0..40 {
        encoder.run(&mut world, 500, true);
        let got = received(&mut world, 2);
        video += usize::from(got.len() > 5);
        let current = world.core.endpoints[&slow].out[&SSRC].svc.current();
        top += usize::from(current == Some(5));
        let fast_got = received(&mut world, 1);
        fast_top += usize::from(fast_got.iter().any(|p| layers(p) == (1, 2)));
    }
    assert!(
        top <= 4,
        "slow on the top decode target in {top} of 40 samples"
    );
    assert_eq!(video, 40, "slow lost its video");
    assert_eq!(fast_top, 40, "fast left the top decode target");
}

#[test]
fn bad_dependency_descriptors_are_dropped_and_counted() {
    let (mut world, av1, _) = svc_world(&[("r", "10.0.0.3:5000")]);
    let mut encoder = Encoder::new(av1, [1, 1, 0], 200);
    encoder.run(&mut world, 1000, true);
    let mut d = Decoder::default();
    let before = received(&mut world, 1);
    d.feed(&before);
    assert!(before.len() > 20);
    let bad: [&[u8]; 4] = [
        // A template id the structure does not have.
        &[0xc0 | 40, 0x00, 0x01],
        // Attaches a structure that ends early.
        &[0xc0, 0x00, 0x02, 0x80, 0x00],
        // Custom fdiffs running past the end.
        &[0xc1, 0x00, 0x03, 0x16, 0xff],
        // A structure whose template list never ends.
        &[
            0x80, 0x00, 0x04, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ],
    ];
    for dd in bad {
        let mut ext = ExtensionValues::default();
        ext.user_values.set(DependencyDescriptor(dd.to_vec()));
        encoder.send(&mut world, vec![0x10, 0xee, 0x00], true, ext);
        world.tick();
    }
    assert_eq!(
        world
            .core
            .counters()
            .dropped(DropReason::MalformedDependencyDescriptor),
        4
    );
    let during = received(&mut world, 1);
    assert!(during.iter().all(|p| p.payload[1] != 0xee));
    d.feed(&during);
    // The stream goes on (its sequence numbers jumped by the dropped packets: the
    // receiver sees a gap it may NACK, not a broken stream).
    let frames = d.frames.len();
    encoder.run(&mut world, 1000, true);
    d.feed(&received(&mut world, 1));
    assert!(d.frames.len() > frames + 20 && d.undecodable == 0);
}

#[test]
fn vp9_l3t3_receiver_constrained_to_360p_gets_two_spatial_layers() {
    let (mut world, _, vp9) = svc_world(&[("r", "10.0.0.3:5000"), ("all", "10.0.0.4:5000")]);
    let r = key_of(&world.core, "r");
    world.core.channel_message(
        world.now,
        r,
        r#"{"colibriClass":"ReceiverVideoConstraints","defaultConstraints":{"maxHeight":360}}"#,
    );
    let mut encoder = Encoder::new(vp9, [1, 2, 4], 600);
    encoder.run(&mut world, 3000, false);
    let got = received(&mut world, 1);
    let all = received(&mut world, 2);
    let spatial = |packets: &[RtpPacket]| {
        let mut s: Vec<u8> = packets.iter().map(|p| layers(p).0).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    assert_eq!(spatial(&got), vec![0, 1]);
    assert_eq!(spatial(&all), vec![0, 1, 2]);
    assert!(got.len() > 200, "{}", got.len());
    for pair in got.windows(2) {
        assert_eq!(*pair[1].seq_no, *pair[0].seq_no + 1, "sequence gap");
    }
    // Each picture ends with a marker on its S1 packet.
    let s1_ends = got
        .iter()
        .filter(|p| layers(p).0 == 1 && p.payload[0] & 0x04 != 0)
        .count();
    assert_eq!(got.iter().filter(|p| p.header.marker).count(), s1_ends);
}
