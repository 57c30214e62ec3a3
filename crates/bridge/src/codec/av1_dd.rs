//! The AV1 dependency descriptor RTP header extension (AV1 RTP specification, appendix A):
//! which frame a packet belongs to, its spatial and temporal layer, the decode targets it
//! serves (decode target indications), the frames it references (frame diffs), and, on
//! keyframes, the template dependency structure that later packets refer to by template id.
//!
//! Hand-written, sans-IO: no Rust crate parses it (str0m passes unknown extensions through
//! an `ExtensionSerializer` as raw bytes; webrtc-rs and the AV1 crates parse the bitstream,
//! not this extension). The input is untrusted: every read is bounds-checked, every count
//! (templates, decode targets, frame diffs, chains, spatial layers) is limited by the spec's
//! own field widths or by [`MAX_FDIFFS`], and an inconsistent descriptor is an error, never a
//! panic.
//!
//! The mandatory fields sit at fixed bits (start/end of frame, template id, frame number in
//! the first three bytes; a structure's template id offset right after the extended flags),
//! so a forwarder rewrites them in place ([`patch_frame_number`], [`patch_template_ids`]).

use std::sync::Arc;

/// The extension's URI (Jicofo offers it as id 11).
pub const URI: &str =
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";

/// Template ids live in 6 bits.
const TEMPLATE_ID_LIMIT: u8 = 64;
/// `dt_cnt_minus_one` has 5 bits.
pub const MAX_DECODE_TARGETS: usize = 32;
/// Spatial ids: template layers could count further, but AV1 has at most 4 spatial layers.
pub const MAX_SPATIAL_LAYERS: usize = 4;
/// AV1 has at most 8 temporal layers.
pub const MAX_TEMPORAL_LAYERS: usize = 8;
/// Frame diffs per frame or template: each costs at least 5 bits, so a long list is
/// possible on the wire but not in any encoder (libwebrtc uses at most 3).
pub const MAX_FDIFFS: usize = 8;
/// The longest descriptor the two-byte header extension form can carry.
pub const MAX_LEN: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DdError {
    #[error("the descriptor ends before a field it announces")]
    Truncated,
    #[error("shorter than the three mandatory bytes")]
    TooShort,
    #[error("no template structure is known for this descriptor")]
    NoStructure,
    #[error("template id outside the structure")]
    UnknownTemplate,
    #[error("a count beyond its limit")]
    TooMany,
}

/// Decode target indication (table A.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dti {
    NotPresent = 0,
    Discardable = 1,
    Switch = 2,
    Required = 3,
}

impl Dti {
    fn from_bits(bits: u32) -> Self {
        match bits & 3 {
            0 => Dti::NotPresent,
            1 => Dti::Discardable,
            2 => Dti::Switch,
            _ => Dti::Required,
        }
    }
}

/// One indication per decode target, two bits each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dtis(u64);

impl Dtis {
    pub fn get(&self, dt: usize) -> Dti {
        if dt >= MAX_DECODE_TARGETS {
            return Dti::NotPresent;
        }
        Dti::from_bits((self.0 >> (2 * dt)) as u32)
    }

    pub fn set(&mut self, dt: usize, dti: Dti) {
        if dt < MAX_DECODE_TARGETS {
            self.0 = (self.0 & !(3 << (2 * dt))) | ((dti as u64) << (2 * dt));
        }
    }
}

/// A short list of small numbers (frame diffs, chain diffs) without allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Diffs<const N: usize> {
    len: u8,
    values: [u16; N],
}

impl<const N: usize> Default for Diffs<N> {
    fn default() -> Self {
        Self {
            len: 0,
            values: [0; N],
        }
    }
}

impl<const N: usize> Diffs<N> {
    pub fn from_slice(values: &[u16]) -> Option<Self> {
        let mut d = Self::default();
        for v in values {
            d.push(*v).ok()?;
        }
        Some(d)
    }

    fn push(&mut self, value: u16) -> Result<(), DdError> {
        let slot = self
            .values
            .get_mut(usize::from(self.len))
            .ok_or(DdError::TooMany)?;
        *slot = value;
        self.len += 1;
        Ok(())
    }

    pub fn as_slice(&self) -> &[u16] {
        &self.values[..usize::from(self.len)]
    }
}

pub type Fdiffs = Diffs<MAX_FDIFFS>;
pub type ChainDiffs = Diffs<MAX_DECODE_TARGETS>;

/// What a frame is: its layer, its decode target indications, the frames it references
/// and its chain diffs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameInfo {
    pub spatial: u8,
    pub temporal: u8,
    pub dtis: Dtis,
    pub fdiffs: Fdiffs,
    pub chains: ChainDiffs,
}

/// The template dependency structure a keyframe's first packet attaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Structure {
    pub template_id_offset: u8,
    pub decode_targets: u8,
    /// Templates in order; their spatial/temporal ids never decrease.
    pub templates: Vec<FrameInfo>,
    pub chain_count: u8,
    /// Per decode target, the chain protecting it (when there are chains).
    pub protected_by: [u8; MAX_DECODE_TARGETS],
    /// Per spatial layer, (width, height), when the sender includes them.
    pub resolutions: Vec<(u16, u16)>,
}

impl Structure {
    /// The spatial and temporal layer of decode target `dt`: the highest of the templates
    /// it includes (A.8.3, `decode_target_layers`).
    pub fn layer_of(&self, dt: usize) -> (u8, u8) {
        self.templates
            .iter()
            .filter(|t| t.dtis.get(dt) != Dti::NotPresent)
            .fold((0, 0), |(s, t), f| (s.max(f.spatial), t.max(f.temporal)))
    }

    pub fn max_spatial(&self) -> u8 {
        self.templates.iter().map(|t| t.spatial).max().unwrap_or(0)
    }

    /// The template a packet's id names, if the structure has it.
    fn template(&self, template_id: u8) -> Result<&FrameInfo, DdError> {
        let index = (template_id + TEMPLATE_ID_LIMIT - self.template_id_offset) % TEMPLATE_ID_LIMIT;
        self.templates
            .get(usize::from(index))
            .ok_or(DdError::UnknownTemplate)
    }
}

/// One packet's descriptor, resolved against its structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub start_of_frame: bool,
    pub end_of_frame: bool,
    pub template_id: u8,
    pub frame_number: u16,
    /// The structure this packet attaches (keyframes' first packets).
    pub attached: Option<Arc<Structure>>,
    /// Which decode targets the sender currently produces, when it says.
    pub active_decode_targets: Option<u32>,
    pub frame: FrameInfo,
    /// Whether the frame's dtis, fdiffs, chains were written out rather than taken from
    /// the template (kept for re-serialization).
    pub custom: (bool, bool, bool),
}

impl Descriptor {
    /// A keyframe's first packet: it attaches the structure and references nothing.
    pub fn starts_keyframe(&self) -> bool {
        self.start_of_frame
            && self.attached.is_some()
            && self.frame.fdiffs.as_slice().is_empty()
            && self.frame.spatial == 0
    }
}

/// MSB-first bit reader over untrusted bytes.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn f(&mut self, n: u32) -> Result<u32, DdError> {
        let mut value = 0u32;
        for _ in 0..n {
            let byte = self.data.get(self.pos / 8).ok_or(DdError::Truncated)?;
            let bit = (byte >> (7 - self.pos % 8)) & 1;
            value = (value << 1) | u32::from(bit);
            self.pos += 1;
        }
        Ok(value)
    }

    fn flag(&mut self) -> Result<bool, DdError> {
        Ok(self.f(1)? == 1)
    }

    /// Non-symmetric unsigned value below `n` (A.8.2, `ns(n)`).
    fn ns(&mut self, n: u32) -> Result<u32, DdError> {
        let w = 32 - n.leading_zeros();
        let m = (1u32 << w) - n;
        let v = self.f(w.saturating_sub(1))?;
        if v < m {
            return Ok(v);
        }
        let extra = self.f(1)?;
        Ok((v << 1) - m + extra)
    }
}

/// Parses one packet's descriptor. `known` is the structure last seen on the stream; a
/// descriptor that attaches its own is resolved against that one.
pub fn parse(bytes: &[u8], known: Option<&Arc<Structure>>) -> Result<Descriptor, DdError> {
    if bytes.len() < 3 {
        return Err(DdError::TooShort);
    }
    if bytes.len() > MAX_LEN {
        return Err(DdError::TooMany);
    }
    let mut r = Bits {
        data: bytes,
        pos: 0,
    };
    let start_of_frame = r.flag()?;
    let end_of_frame = r.flag()?;
    let template_id = r.f(6)? as u8;
    let frame_number = r.f(16)? as u16;
    let (mut attach, mut active_present, mut custom) = (false, false, (false, false, false));
    if bytes.len() > 3 {
        attach = r.flag()?;
        active_present = r.flag()?;
        custom = (r.flag()?, r.flag()?, r.flag()?);
    }
    let attached = if attach {
        Some(Arc::new(read_structure(&mut r)?))
    } else {
        None
    };
    let structure = attached.as_ref().or(known).ok_or(DdError::NoStructure)?;
    let dt_count = u32::from(structure.decode_targets);
    let mut active_decode_targets = attached.as_ref().map(|_| low_bits(dt_count));
    if active_present {
        active_decode_targets = Some(r.f(dt_count)?);
    }
    let template = structure.template(template_id)?;
    let mut frame = *template;
    if custom.0 {
        frame.dtis = Dtis::default();
        for dt in 0..usize::from(structure.decode_targets) {
            frame.dtis.set(dt, Dti::from_bits(r.f(2)?));
        }
    }
    if custom.1 {
        frame.fdiffs = Fdiffs::default();
        loop {
            let size = r.f(2)?;
            if size == 0 {
                break;
            }
            frame.fdiffs.push(r.f(4 * size)? as u16 + 1)?;
        }
    }
    if custom.2 {
        frame.chains = ChainDiffs::default();
        for _ in 0..structure.chain_count {
            frame.chains.push(r.f(8)? as u16)?;
        }
    }
    Ok(Descriptor {
        start_of_frame,
        end_of_frame,
        template_id,
        frame_number,
        attached,
        active_decode_targets,
        frame,
        custom,
    })
}

fn low_bits(n: u32) -> u32 {
    if n >= 32 { u32::MAX } else { (1 << n) - 1 }
}

/// `template_dependency_structure()` (A.8.3).
fn read_structure(r: &mut Bits) -> Result<Structure, DdError> {
    let template_id_offset = r.f(6)? as u8;
    let decode_targets = r.f(5)? as u8 + 1;
    let dt_count = usize::from(decode_targets);
    // template_layers(): ids only ever step up, so the count is bounded by the id limit.
    let mut templates = Vec::new();
    let (mut spatial, mut temporal) = (0u8, 0u8);
    loop {
        if templates.len() >= usize::from(TEMPLATE_ID_LIMIT) {
            return Err(DdError::TooMany);
        }
        templates.push(FrameInfo {
            spatial,
            temporal,
            ..FrameInfo::default()
        });
        match r.f(2)? {
            0 => {}
            1 => temporal += 1,
            2 => {
                temporal = 0;
                spatial += 1;
            }
            _ => break,
        }
        if usize::from(temporal) >= MAX_TEMPORAL_LAYERS
            || usize::from(spatial) >= MAX_SPATIAL_LAYERS
        {
            return Err(DdError::TooMany);
        }
    }
    for t in &mut templates {
        for dt in 0..dt_count {
            t.dtis.set(dt, Dti::from_bits(r.f(2)?));
        }
    }
    for t in &mut templates {
        while r.flag()? {
            t.fdiffs.push(r.f(4)? as u16 + 1)?;
        }
    }
    let chain_count = r.ns(u32::from(decode_targets) + 1)? as u8;
    let mut protected_by = [0; MAX_DECODE_TARGETS];
    if chain_count > 0 {
        for p in protected_by.iter_mut().take(dt_count) {
            *p = r.ns(u32::from(chain_count))? as u8;
        }
        for t in &mut templates {
            for _ in 0..chain_count {
                t.chains.push(r.f(4)? as u16)?;
            }
        }
    }
    let mut resolutions = Vec::new();
    if r.flag()? {
        let max_spatial = templates.last().map_or(0, |t| t.spatial);
        for _ in 0..=max_spatial {
            let width = r.f(16)? as u16;
            let height = r.f(16)? as u16;
            resolutions.push((width.wrapping_add(1), height.wrapping_add(1)));
        }
    }
    Ok(Structure {
        template_id_offset,
        decode_targets,
        templates,
        chain_count,
        protected_by,
        resolutions,
    })
}

/// The bit where an attached structure's `template_id_offset` starts: after the 24
/// mandatory bits and the five extended flags.
const TEMPLATE_OFFSET_BIT: usize = 29;

/// Writes `frame_number` over the descriptor's (bits 8..24). False, leaving `bytes`
/// untouched, when it is shorter than the mandatory fields.
pub fn patch_frame_number(bytes: &mut [u8], frame_number: u16) -> bool {
    let Some(field) = bytes.get_mut(1..3) else {
        return false;
    };
    field.copy_from_slice(&frame_number.to_be_bytes());
    true
}

/// Adds `delta` (mod 64) to the template id and, when the descriptor attaches a structure,
/// to its template id offset: the frame keeps its template while the ids move to a range
/// the receiver has not seen on the stream (so its late packets of older frames cannot be
/// read against the new structure). False, untouched, when too short.
pub fn patch_template_ids(bytes: &mut [u8], delta: u8) -> bool {
    let Some(&first) = bytes.first() else {
        return false;
    };
    let attaches = bytes.len() > 3 && bytes[3] & 0x80 != 0;
    if attaches {
        if bytes.len() * 8 < TEMPLATE_OFFSET_BIT + 6 {
            return false;
        }
        let offset = read_bits(bytes, TEMPLATE_OFFSET_BIT, 6) as u8;
        write_bits(
            bytes,
            TEMPLATE_OFFSET_BIT,
            6,
            u32::from(offset.wrapping_add(delta) % TEMPLATE_ID_LIMIT),
        );
    }
    let id = (first & 0x3f).wrapping_add(delta);
    bytes[0] = (first & 0xc0) | (id % TEMPLATE_ID_LIMIT);
    true
}

fn read_bits(bytes: &[u8], at: usize, n: usize) -> u32 {
    let mut r = Bits {
        data: bytes,
        pos: at,
    };
    r.f(n as u32).unwrap_or(0)
}

fn write_bits(bytes: &mut [u8], at: usize, n: usize, value: u32) {
    for i in 0..n {
        let bit = (value >> (n - 1 - i)) & 1;
        let pos = at + i;
        let mask = 0x80 >> (pos % 8);
        if let Some(byte) = bytes.get_mut(pos / 8) {
            *byte = if bit == 1 {
                *byte | mask
            } else {
                *byte & !mask
            };
        }
    }
}

/// Serialization, for the test clients, the benchmark's senders and the fuzz target's
/// round trip (the bridge itself only patches fields in place).
#[cfg(any(test, feature = "test-support", feature = "fuzzing"))]
pub mod write {
    use super::*;

    struct BitWriter {
        bytes: Vec<u8>,
        pos: usize,
    }

    impl BitWriter {
        fn put(&mut self, n: u32, value: u32) {
            for i in 0..n {
                if self.pos.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                let bit = (value >> (n - 1 - i)) & 1;
                if bit == 1 {
                    let last = self.bytes.len() - 1;
                    self.bytes[last] |= 0x80 >> (self.pos % 8);
                }
                self.pos += 1;
            }
        }

        fn ns(&mut self, n: u32, v: u32) {
            let w = 32 - n.leading_zeros();
            let m = (1u32 << w) - n;
            if v < m {
                self.put(w - 1, v);
            } else {
                let x = v + m;
                self.put(w - 1, x >> 1);
                self.put(1, x & 1);
            }
        }
    }

    /// The descriptor's bytes. `structure` is the one the frame refers to (attached or not).
    pub fn descriptor(d: &Descriptor, structure: &Structure) -> Vec<u8> {
        let mut w = BitWriter {
            bytes: Vec::new(),
            pos: 0,
        };
        w.put(1, u32::from(d.start_of_frame));
        w.put(1, u32::from(d.end_of_frame));
        w.put(6, u32::from(d.template_id));
        w.put(16, u32::from(d.frame_number));
        let default_active = d
            .attached
            .as_ref()
            .map(|_| low_bits(structure.decode_targets.into()));
        let active = d
            .active_decode_targets
            .filter(|a| Some(*a) != default_active);
        let extended =
            d.attached.is_some() || active.is_some() || d.custom != (false, false, false);
        if !extended {
            return w.bytes;
        }
        w.put(1, u32::from(d.attached.is_some()));
        w.put(1, u32::from(active.is_some()));
        w.put(1, u32::from(d.custom.0));
        w.put(1, u32::from(d.custom.1));
        w.put(1, u32::from(d.custom.2));
        if let Some(s) = &d.attached {
            structure_bits(&mut w, s);
        }
        let dt_count = usize::from(structure.decode_targets);
        if let Some(a) = active {
            w.put(dt_count as u32, a);
        }
        if d.custom.0 {
            for dt in 0..dt_count {
                w.put(2, d.frame.dtis.get(dt) as u32);
            }
        }
        if d.custom.1 {
            for &fdiff in d.frame.fdiffs.as_slice() {
                let v = u32::from(fdiff.wrapping_sub(1));
                let size = if v < 1 << 4 {
                    1
                } else if v < 1 << 8 {
                    2
                } else {
                    3
                };
                w.put(2, size);
                w.put(4 * size, v);
            }
            w.put(2, 0);
        }
        if d.custom.2 {
            for &c in d.frame.chains.as_slice() {
                w.put(8, u32::from(c));
            }
        }
        w.bytes
    }

    fn structure_bits(w: &mut BitWriter, s: &Structure) {
        w.put(6, u32::from(s.template_id_offset));
        w.put(5, u32::from(s.decode_targets) - 1);
        for pair in s.templates.windows(2) {
            let idc = match (
                pair[1].spatial > pair[0].spatial,
                pair[1].temporal > pair[0].temporal,
            ) {
                (true, _) => 2,
                (false, true) => 1,
                (false, false) => 0,
            };
            w.put(2, idc);
        }
        w.put(2, 3);
        let dt_count = usize::from(s.decode_targets);
        for t in &s.templates {
            for dt in 0..dt_count {
                w.put(2, t.dtis.get(dt) as u32);
            }
        }
        for t in &s.templates {
            for &fdiff in t.fdiffs.as_slice() {
                w.put(1, 1);
                w.put(4, u32::from(fdiff.wrapping_sub(1)));
            }
            w.put(1, 0);
        }
        w.ns(u32::from(s.decode_targets) + 1, u32::from(s.chain_count));
        if s.chain_count > 0 {
            for &p in &s.protected_by[..dt_count] {
                w.ns(u32::from(s.chain_count), u32::from(p));
            }
            for t in &s.templates {
                for &c in t.chains.as_slice() {
                    w.put(4, u32::from(c));
                }
            }
        }
        w.put(1, u32::from(!s.resolutions.is_empty()));
        for &(width, height) in &s.resolutions {
            w.put(16, u32::from(width.wrapping_sub(1)));
            w.put(16, u32::from(height.wrapping_sub(1)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::svc::l2t3_key;

    fn descriptor(structure: &Arc<Structure>, template: usize, attach: bool) -> Descriptor {
        Descriptor {
            start_of_frame: true,
            end_of_frame: false,
            template_id: (template as u8 + structure.template_id_offset) % 64,
            frame_number: 0xfffe,
            attached: attach.then(|| structure.clone()),
            active_decode_targets: attach.then_some(0x3f),
            frame: structure.templates[template],
            custom: (false, false, false),
        }
    }

    #[test]
    fn keyframe_descriptor_round_trips_with_its_structure() {
        let s = Arc::new(l2t3_key());
        let d = descriptor(&s, 0, true);
        let bytes = write::descriptor(&d, &s);
        assert!(bytes.len() > 16, "needs the two-byte header form");
        let parsed = parse(&bytes, None).unwrap();
        assert_eq!(parsed, d);
        assert!(parsed.starts_keyframe());
        let structure = parsed.attached.unwrap();
        assert_eq!(structure.resolutions, vec![(640, 360), (1280, 720)]);
        assert_eq!(structure.protected_by[..6], [0, 0, 0, 1, 1, 1]);
        // Decode target 3 × spatial + temporal.
        for dt in 0..6 {
            assert_eq!(structure.layer_of(dt), ((dt / 3) as u8, (dt % 3) as u8));
        }
    }

    #[test]
    fn delta_descriptors_are_three_bytes_resolved_against_the_known_structure() {
        let s = Arc::new(l2t3_key());
        for template in 1..s.templates.len() {
            let mut d = descriptor(&s, template, false);
            d.end_of_frame = true;
            let bytes = write::descriptor(&d, &s);
            assert_eq!(bytes.len(), 3);
            let parsed = parse(&bytes, Some(&s)).unwrap();
            assert_eq!(parsed, d);
            assert!(!parsed.starts_keyframe());
            assert_eq!(parse(&bytes, None), Err(DdError::NoStructure));
        }
        // A template id the structure does not have.
        assert_eq!(
            parse(&[0x80 | 9, 0, 0], Some(&s)),
            Err(DdError::UnknownTemplate)
        );
    }

    #[test]
    fn custom_fields_and_active_targets_round_trip() {
        let s = Arc::new(Structure {
            template_id_offset: 60,
            ..l2t3_key()
        });
        let mut d = descriptor(&s, 5, false);
        d.custom = (true, true, true);
        d.frame.dtis.set(0, Dti::Required);
        d.frame.fdiffs = Fdiffs::from_slice(&[1, 17, 300, 4096]).unwrap();
        d.frame.chains = ChainDiffs::from_slice(&[255, 0]).unwrap();
        d.active_decode_targets = Some(0b000111);
        let bytes = write::descriptor(&d, &s);
        assert_eq!(parse(&bytes, Some(&s)).unwrap(), d);
        // The template id wraps around 64 from the offset.
        assert_eq!(d.template_id, 1);
    }

    #[test]
    fn truncated_and_oversized_descriptors_are_errors() {
        let s = Arc::new(l2t3_key());
        let bytes = write::descriptor(&descriptor(&s, 0, true), &s);
        for len in 0..3 {
            assert_eq!(parse(&bytes[..len], None), Err(DdError::TooShort));
        }
        for len in 4..bytes.len() - 1 {
            assert!(parse(&bytes[..len], None).is_err(), "{len} bytes");
        }
        assert_eq!(parse(&[0; MAX_LEN + 1], Some(&s)), Err(DdError::TooMany));
        // 65 templates (next_layer_idc 0 each) are more than template ids can name.
        let mut many = vec![0x80, 0, 0, 0x80, 0x00, 0x00];
        many.resize(40, 0);
        assert_eq!(parse(&many, None), Err(DdError::TooMany));
        // Custom fdiffs beyond MAX_FDIFFS.
        let mut d = descriptor(&s, 1, false);
        d.custom.1 = true;
        d.frame.fdiffs = Fdiffs::from_slice(&[1; MAX_FDIFFS]).unwrap();
        let mut long = write::descriptor(&d, &s);
        assert!(parse(&long, Some(&s)).is_ok());
        // Turn the terminating size 0 into one more fdiff.
        long.extend_from_slice(&[0xff, 0xff]);
        let at = 3 * 8 + 5 + MAX_FDIFFS * 6;
        write_bits(&mut long, at, 2, 1);
        assert_eq!(parse(&long, Some(&s)), Err(DdError::TooMany));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let s = Arc::new(l2t3_key());
        let mut x: u32 = 0x1234_5678;
        for len in 0..80 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                let _ = parse(&bytes, Some(&s));
                let _ = parse(&bytes, None);
            }
        }
    }

    #[test]
    fn frame_number_and_template_ids_are_patched_in_place() {
        let s = Arc::new(l2t3_key());
        let mut key = write::descriptor(&descriptor(&s, 0, true), &s);
        assert!(patch_frame_number(&mut key, 7));
        assert!(patch_template_ids(&mut key, 62));
        let parsed = parse(&key, None).unwrap();
        assert_eq!(parsed.frame_number, 7);
        assert_eq!(parsed.template_id, 62);
        let moved = parsed.attached.clone().unwrap();
        assert_eq!(moved.template_id_offset, 62);
        assert_eq!(parsed.frame, s.templates[0]);
        // A delta frame moved by the same amount resolves against the moved structure.
        let mut delta = write::descriptor(&descriptor(&s, 6, false), &s);
        assert!(patch_template_ids(&mut delta, 62));
        assert_eq!(parse(&delta, Some(&moved)).unwrap().frame, s.templates[6]);
        assert!(!patch_frame_number(&mut [0x80, 0], 1));
        assert!(!patch_template_ids(&mut [], 1));
    }
}
