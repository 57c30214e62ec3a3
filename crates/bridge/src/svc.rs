//! Layer selection within one SSRC (SVC): the stock Jitsi clients on Chrome send AV1
//! `L2T3_KEY` or VP9 `L3T3_KEY` on one SSRC, and each receiver gets the decode target
//! (spatial and temporal layer) the allocator chose for it by dropping the frames that
//! target does not need.
//!
//! Sans-IO. [`SvcStream`] is the sender side of one SSRC: it reads each packet's frame
//! ([`SvcFrame`]) from the AV1 dependency descriptor (keeping the last template structure)
//! or the VP9 payload descriptor, and meters every decode target. [`SvcSelector`] is one
//! receiver's view: which decode target it currently gets, which frames it was sent, and
//! per frame whether to forward it, switching targets only where the receiver can decode
//! from: a keyframe; a switch frame of the new target whose references it was sent; or,
//! for a target whose frames are all frames of the current one (lower temporal layers,
//! lower spatial layers of a full-SVC structure), at any frame boundary.
//!
//! Only what stays readable under end-to-end encryption is used: the dependency
//! descriptor is a header extension, and the VP9 payload descriptor stays in clear text.

use std::sync::Arc;
use std::time::Instant;

use crate::codec::av1_dd::{self, DdError, Dti, Dtis, Fdiffs, Structure};
use crate::codec::vp9::{self, Vp9Descriptor};
use crate::meter::Meter;

/// Height assumed for the top spatial layer when the sender does not say.
const ASSUMED_TOP_HEIGHT: u32 = 720;
/// VP9 decode target ids: spatial × this + temporal.
const VP9_TEMPORAL_SLOTS: usize = 8;
/// Frames a selector remembers having sent, for reference checks.
const FORWARDED_WINDOW: u16 = 128;
/// Recent frames whose decision later packets of the same frame follow.
const DECISIONS: usize = 8;

/// One frame of an SVC stream, as selection sees it.
#[derive(Debug, Clone, Copy)]
pub struct SvcFrame {
    /// Identifies the frame among recent ones: AV1 frame number; VP9 picture id × 8 +
    /// spatial layer.
    pub id: u32,
    pub spatial: u8,
    pub temporal: u8,
    pub start: bool,
    pub end: bool,
    /// An intra frame starting a keyframe: every decode target can start here.
    pub keyframe: bool,
    kind: FrameKind,
}

#[derive(Debug, Clone, Copy)]
enum FrameKind {
    /// Decode target indications and the frames referenced (frame number diffs).
    Av1 { dtis: Dtis, fdiffs: Fdiffs },
    /// P (inter-picture predicted) and U (switching-up point).
    Vp9 {
        inter_predicted: bool,
        switching_up: bool,
    },
}

/// How the stream is layered: what its decode targets are.
#[derive(Debug, Clone)]
enum Layout {
    Av1 {
        structure: Arc<Structure>,
        /// Decode targets the sender says it produces.
        active: u32,
    },
    Vp9 {
        spatial_layers: u8,
        temporal_layers: u8,
        heights: [Option<u16>; vp9::MAX_SPATIAL_LAYERS],
    },
}

/// One decode target, as the allocator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub dt: usize,
    pub spatial: u8,
    pub temporal: u8,
    pub height: u32,
    pub bitrate_bps: u64,
    pub active: bool,
}

/// The sender side of one SSRC: its layout and what each decode target carries.
#[derive(Debug, Default)]
pub struct SvcStream {
    layout: Option<Layout>,
    /// Per decode target id (AV1: its index; VP9: spatial × 8 + temporal).
    meters: Vec<Meter>,
}

impl SvcStream {
    /// Whether the stream has more than one decode target to choose from.
    pub fn is_scalable(&self) -> bool {
        match &self.layout {
            Some(Layout::Av1 { structure, .. }) => structure.decode_targets > 1,
            Some(Layout::Vp9 {
                spatial_layers,
                temporal_layers,
                ..
            }) => spatial_layers * temporal_layers > 1,
            None => false,
        }
    }

    /// Reads one AV1 packet's dependency descriptor (`None`: the packet has none). An
    /// error means the descriptor is malformed or refers to a structure never seen:
    /// the packet must not be forwarded.
    pub fn on_av1(
        &mut self,
        now: Instant,
        dd: Option<&[u8]>,
        bytes: usize,
    ) -> Result<(Option<SvcFrame>, bool), DdError> {
        let Some(dd) = dd else {
            return Ok((None, false));
        };
        let known = match &self.layout {
            Some(Layout::Av1 { structure, .. }) => Some(structure),
            _ => None,
        };
        let d = av1_dd::parse(dd, known)?;
        let mut changed = false;
        if let Some(structure) = &d.attached {
            let same = known.is_some_and(|k| k == structure);
            if !same {
                self.meters = vec![Meter::default(); usize::from(structure.decode_targets)];
                changed = true;
            }
            self.layout = Some(Layout::Av1 {
                structure: structure.clone(),
                active: u32::MAX,
            });
        }
        if let (Some(mask), Some(Layout::Av1 { active, .. })) =
            (d.active_decode_targets, &mut self.layout)
        {
            changed |= *active != mask;
            *active = mask;
        }
        for (dt, meter) in self.meters.iter_mut().enumerate() {
            if d.frame.dtis.get(dt) != Dti::NotPresent {
                changed |= meter.on_packet(now, bytes);
            }
        }
        let frame = SvcFrame {
            id: u32::from(d.frame_number),
            spatial: d.frame.spatial,
            temporal: d.frame.temporal,
            start: d.start_of_frame,
            end: d.end_of_frame,
            keyframe: d.starts_keyframe(),
            kind: FrameKind::Av1 {
                dtis: d.frame.dtis,
                fdiffs: d.frame.fdiffs,
            },
        };
        Ok((Some(frame), changed))
    }

    /// Reads one VP9 packet's descriptor: an SVC frame when it has layer indices and a
    /// picture id. The second value is true when the layout or a target's activity changed.
    pub fn on_vp9(
        &mut self,
        now: Instant,
        d: &Vp9Descriptor,
        bytes: usize,
    ) -> (Option<SvcFrame>, bool) {
        let (Some(layers), Some(picture_id)) = (d.layers, d.picture_id) else {
            return (None, false);
        };
        let mut changed = false;
        if !matches!(self.layout, Some(Layout::Vp9 { .. })) {
            self.layout = Some(Layout::Vp9 {
                spatial_layers: 1,
                temporal_layers: 1,
                heights: [None; vp9::MAX_SPATIAL_LAYERS],
            });
            self.meters = vec![Meter::default(); vp9::MAX_SPATIAL_LAYERS * VP9_TEMPORAL_SLOTS];
            changed = true;
        }
        let Some(Layout::Vp9 {
            spatial_layers,
            temporal_layers,
            heights,
        }) = &mut self.layout
        else {
            return (None, false);
        };
        if let Some(ss) = d.ss {
            changed |= *spatial_layers != ss.spatial_layers;
            *spatial_layers = ss.spatial_layers;
            for (s, h) in heights.iter_mut().enumerate() {
                *h = ss.resolution(s as u8).map(|(_, h)| h);
            }
        }
        let seen = (layers.spatial + 1, layers.temporal + 1);
        if seen.0 > *spatial_layers || seen.1 > *temporal_layers {
            *spatial_layers = (*spatial_layers).max(seen.0);
            *temporal_layers = (*temporal_layers).max(seen.1);
            changed = true;
        }
        // A frame counts towards every target at or above its layers.
        for s in layers.spatial..*spatial_layers {
            for t in layers.temporal..*temporal_layers {
                let meter = &mut self.meters[vp9_dt(s, t)];
                changed |= meter.on_packet(now, bytes);
            }
        }
        let frame = SvcFrame {
            id: (u32::from(picture_id.value) << 3) | u32::from(layers.spatial),
            spatial: layers.spatial,
            temporal: layers.temporal,
            start: d.begins_frame,
            end: d.ends_frame,
            keyframe: d.starts_keyframe(),
            kind: FrameKind::Vp9 {
                inter_predicted: d.inter_predicted,
                switching_up: layers.switching_up,
            },
        };
        (Some(frame), changed)
    }

    /// The decode targets, lowest (spatial, temporal) first.
    pub fn targets(&self, now: Instant) -> Vec<Target> {
        let mut targets: Vec<Target> = match &self.layout {
            None => Vec::new(),
            Some(Layout::Av1 { structure, active }) => {
                let top = structure.max_spatial();
                (0..usize::from(structure.decode_targets))
                    .map(|dt| {
                        let (spatial, temporal) = structure.layer_of(dt);
                        let given = structure.resolutions.get(usize::from(spatial));
                        let height = given.map_or(assumed_height(spatial, top), |r| u32::from(r.1));
                        let meter = &self.meters[dt];
                        Target {
                            dt,
                            spatial,
                            temporal,
                            height,
                            bitrate_bps: meter.expected_bps(height),
                            active: meter.is_active(now) && (dt >= 32 || active & (1 << dt) != 0),
                        }
                    })
                    .collect()
            }
            Some(Layout::Vp9 {
                spatial_layers,
                temporal_layers,
                heights,
            }) => {
                let top = spatial_layers - 1;
                let mut targets = Vec::new();
                for spatial in 0..*spatial_layers {
                    for temporal in 0..*temporal_layers {
                        let dt = vp9_dt(spatial, temporal);
                        let height = heights[usize::from(spatial)]
                            .map_or(assumed_height(spatial, top), u32::from);
                        let meter = &self.meters[dt];
                        targets.push(Target {
                            dt,
                            spatial,
                            temporal,
                            height,
                            bitrate_bps: meter.expected_bps(height),
                            active: meter.is_active(now),
                        });
                    }
                }
                targets
            }
        };
        targets.sort_by_key(|t| (t.spatial, t.temporal, t.dt));
        targets
    }

    /// The (spatial, temporal) layer of decode target `dt`.
    fn layer_of(&self, dt: usize) -> (u8, u8) {
        match &self.layout {
            Some(Layout::Av1 { structure, .. }) => structure.layer_of(dt),
            _ => (
                (dt / VP9_TEMPORAL_SLOTS) as u8,
                (dt % VP9_TEMPORAL_SLOTS) as u8,
            ),
        }
    }

    /// Whether decode target `dt` needs `frame`.
    fn needs(&self, frame: &SvcFrame, dt: usize) -> bool {
        match frame.kind {
            FrameKind::Av1 { dtis, .. } => dtis.get(dt) != Dti::NotPresent,
            FrameKind::Vp9 { .. } => {
                let (s, t) = self.layer_of(dt);
                frame.spatial <= s && frame.temporal <= t
            }
        }
    }

    /// Whether every frame decode target `inner` needs is also needed by `outer`, per
    /// the structure's templates (AV1).
    fn contained(&self, inner: usize, outer: usize) -> bool {
        match &self.layout {
            Some(Layout::Av1 { structure, .. }) => structure.templates.iter().all(|t| {
                t.dtis.get(inner) == Dti::NotPresent || t.dtis.get(outer) != Dti::NotPresent
            }),
            _ => {
                let (a, b) = (self.layer_of(inner), self.layer_of(outer));
                a.0 <= b.0 && a.1 <= b.1
            }
        }
    }
}

fn vp9_dt(spatial: u8, temporal: u8) -> usize {
    usize::from(spatial) * VP9_TEMPORAL_SLOTS + usize::from(temporal)
}

fn assumed_height(spatial: u8, top: u8) -> u32 {
    ASSUMED_TOP_HEIGHT >> top.saturating_sub(spatial).min(8)
}

/// What to do with one packet for one receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub forward: bool,
    /// Set the RTP marker: the packet ends the highest spatial layer frame the receiver
    /// gets of this picture, so its decoder need not wait for the dropped ones.
    pub marker: bool,
    /// The receiver needs a keyframe: it waits for a spatial switch, or it was sent a
    /// frame whose reference it does not have.
    pub want_keyframe: bool,
}

/// The frame numbers sent to one receiver, over the last [`FORWARDED_WINDOW`].
#[derive(Debug, Default)]
struct FrameWindow {
    newest: Option<u16>,
    bits: u128,
}

impl FrameWindow {
    fn insert(&mut self, n: u16) {
        let Some(newest) = self.newest else {
            self.newest = Some(n);
            self.bits = 1;
            return;
        };
        let ahead = n.wrapping_sub(newest);
        if ahead != 0 && ahead < 0x8000 {
            self.bits = if ahead >= FORWARDED_WINDOW {
                0
            } else {
                self.bits << ahead
            };
            self.bits |= 1;
            self.newest = Some(n);
        } else {
            let behind = newest.wrapping_sub(n);
            if behind < FORWARDED_WINDOW {
                self.bits |= 1 << behind;
            }
        }
    }

    fn contains(&self, n: u16) -> bool {
        self.newest.is_some_and(|newest| {
            let behind = newest.wrapping_sub(n);
            behind < FORWARDED_WINDOW && self.bits & (1 << behind) != 0
        })
    }
}

/// One receiver's selection within one SVC stream.
#[derive(Debug, Default)]
pub struct SvcSelector {
    current: Option<usize>,
    sent: FrameWindow,
    /// The latest frames decided (id, forwarded), newest last.
    decided: Vec<(u32, bool)>,
}

impl SvcSelector {
    /// The decode target currently forwarded.
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// Decides for one packet of `frame`, given the allocator's `target` decode target.
    pub fn decide(
        &mut self,
        frame: &SvcFrame,
        stream: &SvcStream,
        target: Option<usize>,
    ) -> Decision {
        let known = self.decided.iter().rev().find(|(id, _)| *id == frame.id);
        if let Some(&(_, forward)) = known {
            return Decision {
                forward,
                marker: forward && self.ends_picture(frame, stream),
                want_keyframe: false,
            };
        }
        let mut want_keyframe = false;
        match target {
            None => self.current = None,
            Some(to) if self.current != Some(to) => {
                if self.can_switch(frame, stream, to) {
                    self.current = Some(to);
                } else {
                    let spatial = |dt: usize| stream.layer_of(dt).0;
                    want_keyframe = self.current.is_none_or(|c| spatial(c) != spatial(to));
                }
            }
            Some(_) => {}
        }
        let forward = self.current.is_some_and(|c| stream.needs(frame, c));
        if forward {
            want_keyframe |= !frame.keyframe && !self.has_references(frame);
            if let FrameKind::Av1 { .. } = frame.kind {
                self.sent.insert(frame.id as u16);
            }
        }
        if self.decided.len() == DECISIONS {
            self.decided.remove(0);
        }
        self.decided.push((frame.id, forward));
        Decision {
            forward,
            marker: forward && self.ends_picture(frame, stream),
            want_keyframe,
        }
    }

    fn ends_picture(&self, frame: &SvcFrame, stream: &SvcStream) -> bool {
        frame.end
            && self
                .current
                .is_some_and(|c| stream.layer_of(c).0 == frame.spatial)
    }

    /// Whether the receiver was sent every frame `frame` references (VP9 in non-flexible
    /// mode names none: assumed).
    fn has_references(&self, frame: &SvcFrame) -> bool {
        match frame.kind {
            FrameKind::Av1 { fdiffs, .. } => fdiffs
                .as_slice()
                .iter()
                .all(|d| self.sent.contains((frame.id as u16).wrapping_sub(*d))),
            FrameKind::Vp9 { .. } => true,
        }
    }

    /// Whether the receiver can start decoding target `to` at `frame`.
    fn can_switch(&self, frame: &SvcFrame, stream: &SvcStream, to: usize) -> bool {
        if frame.keyframe {
            return true;
        }
        let Some(from) = self.current else {
            return false;
        };
        match frame.kind {
            // Into a target contained in the current one at once (it was sent every
            // frame the new one needs); else at a switch frame whose references were sent.
            FrameKind::Av1 { dtis, .. } => {
                stream.contained(to, from)
                    || (dtis.get(to) == Dti::Switch && self.has_references(frame))
            }
            FrameKind::Vp9 {
                inter_predicted,
                switching_up,
            } => {
                let ((s, _), (cs, ct)) = (stream.layer_of(to), stream.layer_of(from));
                if s > cs {
                    // Up in space: at a frame of the new layer predicted only from the
                    // layer below (the receiver has that one).
                    frame.spatial == s && frame.start && !inter_predicted && frame.temporal == 0
                } else {
                    // Otherwise at the start of a picture; up in time only where the
                    // sender says it is possible.
                    let (_, t) = stream.layer_of(to);
                    frame.spatial == 0
                        && frame.start
                        && (t <= ct || frame.temporal == 0 || switching_up)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
