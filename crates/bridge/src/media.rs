//! The codecs and RTP header extensions the bridge offers, in one table shared by the
//! Jingle-facing [`EndpointOffer`](crate::api::EndpointOffer) and str0m's session config.
//!
//! Payload type numbers are Jicofo's defaults so that logs and captures look familiar:
//! Opus 111; VP8 100 (RTX 96); VP9 101 (RTX 97); H.264 107 (RTX 99); AV1 41 (RTX 42).
//! Header extension ids: ssrc-audio-level 1, abs-send-time 3, transport-wide-cc 5, the AV1
//! dependency descriptor 11 (Jicofo's id), video-orientation 13. `sdes:mid` and
//! `rtp-stream-id` are deliberately absent: receivers demultiplex by SSRC, and a mid of
//! ours would not match the browser's own m-line mids.

use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, Pt};
use str0m::rtp::{Extension, ExtensionSerializer, ExtensionValues};
use str0m::{Rtc, RtcConfig};

use crate::api::{HeaderExtension, MediaDescription, MediaKind, PayloadType};

/// What a payload type carries, as far as forwarding cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecKind {
    Opus,
    Vp8,
    Vp9,
    H264,
    Av1,
}

struct CodecEntry {
    pt: u8,
    rtx: Option<u8>,
    kind: CodecKind,
}

const CODECS: [CodecEntry; 5] = [
    CodecEntry {
        pt: 111,
        rtx: None,
        kind: CodecKind::Opus,
    },
    CodecEntry {
        pt: 100,
        rtx: Some(96),
        kind: CodecKind::Vp8,
    },
    CodecEntry {
        pt: 101,
        rtx: Some(97),
        kind: CodecKind::Vp9,
    },
    CodecEntry {
        pt: 107,
        rtx: Some(99),
        kind: CodecKind::H264,
    },
    CodecEntry {
        pt: 41,
        rtx: Some(42),
        kind: CodecKind::Av1,
    },
];

const H264_PROFILE_LEVEL_ID: u32 = 0x42e01f;

const EXTENSIONS: [(u8, &str, Extension); 4] = [
    (
        1,
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        Extension::AudioLevel,
    ),
    (
        3,
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        Extension::AbsoluteSendTime,
    ),
    (
        5,
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        Extension::TransportSequenceNumber,
    ),
    (
        13,
        "urn:3gpp:video-orientation",
        Extension::VideoOrientation,
    ),
];

/// The AV1 dependency descriptor's id (Jicofo's).
pub const DEPENDENCY_DESCRIPTOR_ID: u8 = 11;

/// One packet's AV1 dependency descriptor, as received: str0m knows the extension only
/// as a URI with a serializer of ours ([`DependencyDescriptorExt`]), which keeps the raw
/// bytes in the packet's `ExtensionValues::user_values` and writes them out again when the
/// packet is forwarded (and retransmitted from str0m's RTX cache), so receivers get the
/// descriptor they need for AV1 SVC. Parsing is `codec::av1_dd`'s, once per packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyDescriptor(pub Vec<u8>);

/// str0m's hook for the dependency descriptor (str0m 0.25 has no built-in variant; an
/// `Extension::with_serializer` is its way to carry an extension it does not know).
#[derive(Debug)]
pub struct DependencyDescriptorExt;

impl ExtensionSerializer for DependencyDescriptorExt {
    fn write_to(&self, buf: &mut [u8], ev: &ExtensionValues) -> usize {
        match ev.user_values.get::<DependencyDescriptor>() {
            Some(dd) if dd.0.len() <= buf.len() => {
                buf[..dd.0.len()].copy_from_slice(&dd.0);
                dd.0.len()
            }
            _ => 0,
        }
    }

    fn parse_value(&self, buf: &[u8], ev: &mut ExtensionValues) -> bool {
        // Fewer than the three mandatory bytes is no descriptor: `codec::av1_dd` would
        // refuse it, and forwarding it would only pass the garbage on.
        if buf.len() < 3 {
            return false;
        }
        ev.user_values.set(DependencyDescriptor(buf.to_vec()));
        true
    }

    fn is_video(&self) -> bool {
        true
    }

    fn is_audio(&self) -> bool {
        false
    }

    /// A keyframe's descriptor carries its template structure: longer than the one-byte
    /// form's 16 bytes (the offer has `extmap-allow-mixed`).
    fn requires_two_byte_form(&self, ev: &ExtensionValues) -> bool {
        ev.user_values
            .get::<DependencyDescriptor>()
            .is_some_and(|dd| dd.0.len() > 16)
    }
}

/// The dependency descriptor as str0m's extension.
pub fn dependency_descriptor_extension() -> Extension {
    Extension::with_serializer(crate::codec::av1_dd::URI, DependencyDescriptorExt)
}

/// The codec of a (primary, not RTX) payload type we offered.
pub fn codec_of(pt: Pt) -> Option<CodecKind> {
    let pt = *pt;
    CODECS.iter().find(|c| c.pt == pt).map(|c| c.kind)
}

fn fb(kind: &str, subtype: Option<&str>) -> (String, Option<String>) {
    (kind.to_string(), subtype.map(str::to_string))
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The audio and video descriptions put in every offer.
pub fn offered_media() -> Vec<MediaDescription> {
    let video_fb = vec![
        fb("ccm", Some("fir")),
        fb("nack", None),
        fb("nack", Some("pli")),
        fb("transport-cc", None),
    ];
    let extensions = |wanted: &[u8]| {
        EXTENSIONS
            .iter()
            .filter(|(id, _, _)| wanted.contains(id))
            .map(|(id, uri, _)| HeaderExtension {
                id: *id,
                uri: uri.to_string(),
            })
            .collect()
    };
    let mut video = Vec::new();
    for codec in CODECS.iter().filter(|c| c.kind != CodecKind::Opus) {
        let (name, parameters) = match codec.kind {
            CodecKind::Vp8 => ("VP8", vec![]),
            CodecKind::Vp9 => ("VP9", params(&[("profile-id", "0")])),
            CodecKind::H264 => (
                "H264",
                params(&[
                    ("profile-level-id", "42e01f"),
                    ("level-asymmetry-allowed", "1"),
                    ("packetization-mode", "1"),
                ]),
            ),
            CodecKind::Av1 | CodecKind::Opus => ("AV1", vec![]),
        };
        video.push(PayloadType {
            id: codec.pt,
            name: name.into(),
            clockrate: 90_000,
            channels: None,
            parameters,
            rtcp_fb: video_fb.clone(),
        });
    }
    for codec in CODECS.iter() {
        if let Some(rtx) = codec.rtx {
            video.push(PayloadType {
                id: rtx,
                name: "rtx".into(),
                clockrate: 90_000,
                channels: None,
                parameters: params(&[("apt", &codec.pt.to_string())]),
                rtcp_fb: vec![],
            });
        }
    }
    vec![
        MediaDescription {
            kind: MediaKind::Audio,
            payload_types: vec![PayloadType {
                id: 111,
                name: "opus".into(),
                clockrate: 48_000,
                channels: Some(2),
                parameters: params(&[("minptime", "10"), ("useinbandfec", "1")]),
                rtcp_fb: vec![fb("transport-cc", None)],
            }],
            header_extensions: extensions(&[1, 3, 5]),
        },
        MediaDescription {
            kind: MediaKind::Video,
            payload_types: video,
            header_extensions: {
                let mut video: Vec<HeaderExtension> = extensions(&[3, 5, 13]);
                video.push(HeaderExtension {
                    id: DEPENDENCY_DESCRIPTOR_ID,
                    uri: crate::codec::av1_dd::URI.to_string(),
                });
                video
            },
        },
    ]
}

/// str0m's session config matching [`offered_media`]: RTP mode, raw packets for [`crate::bwe`].
pub fn rtc_config() -> RtcConfig {
    let mut config = Rtc::builder()
        .set_rtp_mode(true)
        .set_ice_lite(false)
        // No str0m estimator (and so no str0m pacer, see `crate::bwe`): the raw packet
        // events carry what our own estimator needs, the transport-wide sequence number of
        // each sent packet and the receivers' feedback. str0m calls them costly (a copy of
        // each packet); measured at 5x10, about 0.6 µs per forwarded packet, where str0m's
        // estimator and pacer cost about 4 µs (docs/benchmarks.md).
        .enable_raw_packets(true)
        // Retransmission cache per outgoing video stream: about 2 s of a 720p layer is
        // plenty for NACKs (str0m's 1000 packets per stream multiplies per receiver).
        .set_send_buffer_video(400)
        .clear_codecs()
        .clear_extension_map();
    for (id, _, ext) in EXTENSIONS {
        config = config.set_extension(id, ext);
    }
    config = config.set_extension(DEPENDENCY_DESCRIPTOR_ID, dependency_descriptor_extension());
    let codecs = config.codec_config();
    for codec in &CODECS {
        let (pt, rtx) = (Pt::from(codec.pt), codec.rtx.map(Pt::from));
        match codec.kind {
            CodecKind::Opus => codecs.add_config(
                pt,
                None,
                Codec::Opus,
                Frequency::FORTY_EIGHT_KHZ,
                Some(2),
                FormatParams {
                    min_p_time: Some(10),
                    use_inband_fec: Some(true),
                    ..Default::default()
                },
            ),
            CodecKind::H264 => codecs.add_h264(pt, rtx, true, H264_PROFILE_LEVEL_ID),
            CodecKind::Vp8 | CodecKind::Vp9 | CodecKind::Av1 => {
                let codec = match codec.kind {
                    CodecKind::Vp8 => Codec::Vp8,
                    CodecKind::Vp9 => Codec::Vp9,
                    _ => Codec::Av1,
                };
                codecs.add_config(
                    pt,
                    rtx,
                    codec,
                    Frequency::NINETY_KHZ,
                    None,
                    FormatParams::default(),
                )
            }
        }
    }
    config
}
