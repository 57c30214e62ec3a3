use std::time::{Duration, Instant};

use super::*;
use crate::testkit::svc::{Av1L2T3, SvcPacket, Vp9L3T3};

/// Decode targets of the synthetic streams: AV1 `3 × spatial + temporal`, VP9 `8 × spatial
/// + temporal`.
const AV1_S0T2: usize = 2;
const AV1_S1T2: usize = 5;
const AV1_S0T0: usize = 0;

struct Run {
    now: Instant,
    stream: SvcStream,
    receiver: SvcSelector,
    /// Per packet the receiver got: (spatial, temporal, marker).
    got: Vec<(u8, u8, bool)>,
    keyframe_wanted: bool,
}

impl Run {
    fn new() -> Self {
        Self {
            now: Instant::now(),
            stream: SvcStream::default(),
            receiver: SvcSelector::default(),
            got: Vec::new(),
            keyframe_wanted: false,
        }
    }

    fn feed(&mut self, packets: Vec<SvcPacket>, target: Option<usize>) {
        self.now += Duration::from_millis(33);
        self.got.clear();
        self.keyframe_wanted = false;
        for p in packets {
            let frame = match &p.dd {
                Some(dd) => {
                    self.stream
                        .on_av1(self.now, Some(dd), p.payload.len())
                        .unwrap()
                        .0
                }
                None => {
                    let d = Vp9Descriptor::parse(&p.payload).unwrap();
                    self.stream.on_vp9(self.now, &d, p.payload.len()).0
                }
            };
            let frame = frame.unwrap();
            assert_eq!((frame.spatial, frame.temporal), (p.spatial, p.temporal));
            let d = self.receiver.decide(&frame, &self.stream, target);
            self.keyframe_wanted |= d.want_keyframe;
            if d.forward {
                self.got.push((p.spatial, p.temporal, p.marker || d.marker));
            }
        }
    }

    fn spatial_got(&self) -> Vec<u8> {
        let mut s: Vec<u8> = self.got.iter().map(|g| g.0).collect();
        s.dedup();
        s
    }
}

#[test]
fn av1_targets_come_from_the_structure_and_the_meters() {
    let mut run = Run::new();
    let mut sender = Av1L2T3::default();
    assert!(!run.stream.is_scalable());
    for i in 0..40 {
        run.feed(sender.next_picture(i == 0, [2; 2], 1000), Some(AV1_S1T2));
    }
    assert!(run.stream.is_scalable());
    let targets = run.stream.targets(run.now);
    let layers: Vec<(u8, u8, u32)> = targets
        .iter()
        .map(|t| (t.spatial, t.temporal, t.height))
        .collect();
    assert_eq!(
        layers,
        vec![
            (0, 0, 360),
            (0, 1, 360),
            (0, 2, 360),
            (1, 0, 720),
            (1, 1, 720),
            (1, 2, 720)
        ]
    );
    assert!(targets.iter().all(|t| t.active));
    // Measured: each temporal layer adds to its spatial layer's rate; S0T2 carries all S0
    // frames (16 kB/s × 8 = about 500 kb/s).
    let rate = |dt: usize| targets.iter().find(|t| t.dt == dt).unwrap().bitrate_bps;
    assert!(rate(0) < rate(1) && rate(1) < rate(2), "{targets:?}");
    assert!((400_000..600_000).contains(&rate(AV1_S0T2)), "{targets:?}");
}

#[test]
fn av1_low_target_gets_only_the_base_spatial_layer_with_markers() {
    let mut run = Run::new();
    let mut sender = Av1L2T3::default();
    run.feed(sender.next_picture(true, [3; 2], 100), Some(AV1_S0T2));
    assert_eq!(run.spatial_got(), vec![0]);
    assert_eq!(run.got.len(), 3);
    // The S0 frame's last packet carries the marker, as the picture's end for the receiver.
    assert_eq!(
        run.got.iter().map(|g| g.2).collect::<Vec<_>>(),
        vec![false, false, true]
    );
    for _ in 0..12 {
        run.feed(sender.next_picture(false, [3; 2], 100), Some(AV1_S0T2));
        assert_eq!(run.spatial_got(), vec![0]);
        assert!(run.got.last().unwrap().2);
        assert!(!run.keyframe_wanted);
    }
}

#[test]
fn av1_top_target_drops_base_deltas_of_the_key_structure() {
    let mut run = Run::new();
    let mut sender = Av1L2T3::default();
    run.feed(sender.next_picture(true, [1; 2], 100), Some(AV1_S1T2));
    assert_eq!(run.spatial_got(), vec![0, 1]);
    for _ in 0..8 {
        run.feed(sender.next_picture(false, [1; 2], 100), Some(AV1_S1T2));
        assert_eq!(run.spatial_got(), vec![1]);
    }
}

#[test]
fn av1_spatial_switches_wait_for_a_keyframe_and_ask_for_one() {
    let mut run = Run::new();
    let mut sender = Av1L2T3::default();
    run.feed(sender.next_picture(true, [1; 2], 100), Some(AV1_S1T2));
    for _ in 0..8 {
        run.feed(sender.next_picture(false, [1; 2], 100), Some(AV1_S1T2));
    }
    // Down to S0: the receiver has none of S0's delta frames since the keyframe's, so it
    // needs a keyframe.
    for _ in 0..8 {
        run.feed(sender.next_picture(false, [1; 2], 100), Some(AV1_S0T2));
        assert_eq!(run.spatial_got(), vec![1], "stays on S1 meanwhile");
    }
    assert!(run.keyframe_wanted);
    run.feed(sender.next_picture(true, [1; 2], 100), Some(AV1_S0T2));
    assert_eq!(run.spatial_got(), vec![0]);
    assert_eq!(run.receiver.current(), Some(AV1_S0T2));
    // And back up, again on a keyframe only.
    run.feed(sender.next_picture(false, [1; 2], 100), Some(AV1_S1T2));
    assert_eq!(run.spatial_got(), vec![0]);
    assert!(run.keyframe_wanted);
    run.feed(sender.next_picture(true, [1; 2], 100), Some(AV1_S1T2));
    assert_eq!(run.spatial_got(), vec![0, 1]);
}

#[test]
fn av1_temporal_switches_down_at_once_and_up_at_a_switch_frame() {
    let mut run = Run::new();
    let mut sender = Av1L2T3::default();
    run.feed(sender.next_picture(true, [1; 2], 100), Some(AV1_S0T2));
    // Picture 1 is T2: down to T0 drops it at once, no keyframe needed.
    run.feed(sender.next_picture(false, [1; 2], 100), Some(AV1_S0T0));
    assert!(run.got.is_empty() && !run.keyframe_wanted);
    assert_eq!(run.receiver.current(), Some(AV1_S0T0));
    // Pictures 2 (T1) and 3 (T2) are not switch points for T2 after T0 only...
    run.feed(sender.next_picture(false, [1; 2], 100), Some(AV1_S0T2));
    assert!(run.got.is_empty());
    run.feed(sender.next_picture(false, [1; 2], 100), Some(AV1_S0T2));
    assert!(run.got.is_empty());
    // ...the next T0 is, and everything of S0 flows again.
    for expected in [0, 2, 1, 2] {
        run.feed(sender.next_picture(false, [1; 2], 100), Some(AV1_S0T2));
        assert_eq!(run.got, vec![(0, expected, true)]);
    }
    assert!(!run.keyframe_wanted);
}

#[test]
fn av1_resuming_without_a_keyframe_asks_for_one() {
    let mut run = Run::new();
    let mut sender = Av1L2T3::default();
    run.feed(sender.next_picture(true, [1; 2], 100), Some(AV1_S0T2));
    // The receiver is paused for a while (no target), then resumes on a delta frame
    // whose references it was never sent.
    for _ in 0..4 {
        run.feed(sender.next_picture(false, [1; 2], 100), None);
        assert!(run.got.is_empty());
    }
    run.feed(sender.next_picture(false, [1; 2], 100), Some(AV1_S0T2));
    assert!(run.got.is_empty() && run.keyframe_wanted);
}

#[test]
fn later_packets_of_a_frame_follow_its_first_packets_decision() {
    let mut run = Run::new();
    let mut sender = Av1L2T3::default();
    run.feed(sender.next_picture(true, [1; 2], 100), Some(AV1_S1T2));
    let mut packets = sender.next_picture(false, [4; 2], 100);
    // The target changes in the middle of the S1 frame: the frame is kept whole.
    let tail = packets.split_off(6);
    run.feed(packets, Some(AV1_S1T2));
    run.feed(tail, Some(AV1_S0T0));
    assert_eq!(run.got, vec![(1, 2, false), (1, 2, true)]);
}

const VP9_S1T2: usize = 8 + 2;
const VP9_S2T2: usize = 16 + 2;

#[test]
fn vp9_selection_keeps_lower_spatial_layers_and_switches_up_on_keyframes() {
    let mut run = Run::new();
    let mut sender = Vp9L3T3::default();
    run.feed(sender.next_picture(true, [2; 3], 100), Some(VP9_S1T2));
    assert!(run.stream.is_scalable());
    let heights: Vec<u32> = run
        .stream
        .targets(run.now)
        .iter()
        .map(|t| t.height)
        .collect();
    assert_eq!(
        heights,
        vec![180, 360, 720],
        "one temporal layer seen so far"
    );
    assert_eq!(run.spatial_got(), vec![0, 1]);
    assert_eq!(run.got.iter().filter(|g| g.2).count(), 1);
    assert!(run.got.last().unwrap().2, "S1's end marks the picture");
    for _ in 0..3 {
        run.feed(sender.next_picture(false, [2; 3], 100), Some(VP9_S1T2));
        assert_eq!(run.spatial_got(), vec![0, 1]);
    }
    assert_eq!(run.stream.targets(run.now).len(), 9);
    // Up to S2 needs a keyframe (L3T3_KEY predicts S2 from S1 only there).
    run.feed(sender.next_picture(false, [2; 3], 100), Some(VP9_S2T2));
    assert_eq!(run.spatial_got(), vec![0, 1]);
    assert!(run.keyframe_wanted);
    run.feed(sender.next_picture(true, [2; 3], 100), Some(VP9_S2T2));
    assert_eq!(run.spatial_got(), vec![0, 1, 2]);
    // Down to S0T0 at the next picture.
    run.feed(sender.next_picture(false, [2; 3], 100), Some(0));
    assert!(run.got.is_empty(), "a T2 picture");
    run.feed(sender.next_picture(false, [2; 3], 100), Some(0));
    assert!(run.got.is_empty(), "a T1 picture");
    run.feed(sender.next_picture(false, [2; 3], 100), Some(0));
    assert!(run.got.is_empty(), "a T2 picture");
    run.feed(sender.next_picture(false, [2; 3], 100), Some(0));
    assert_eq!(run.got, vec![(0, 0, false), (0, 0, true)]);
}

#[test]
fn frame_window_tracks_sent_frames_across_the_wrap() {
    let mut w = FrameWindow::default();
    assert!(!w.contains(0));
    w.insert(0xfffe);
    w.insert(1);
    w.insert(0xffff - 200);
    assert!(w.contains(0xfffe) && w.contains(1) && !w.contains(0xffff) && !w.contains(0));
    assert!(!w.contains(0xffff - 200), "older than the window");
    w.insert(1 + FORWARDED_WINDOW);
    assert!(!w.contains(1) && w.contains(1 + FORWARDED_WINDOW));
}
