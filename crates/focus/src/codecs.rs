//! What the focus offers each participant, as Jicofo does (`JCF: jicofo-common/.../codec/
//! CodecUtil.kt` and its `reference.conf`): Opus (RED is off in Jicofo's defaults) and
//! telephone-event; AV1, VP8, H.264 and VP9, each with RTX and the rtcp-fb Jicofo lists;
//! the header extensions audio-level 1, sdes:mid 10 and transport-cc 5 for audio, the AV1
//! dependency descriptor 11, sdes:mid 10, abs-send-time 3 and transport-cc 5 for video.
//!
//! The bridge configures each endpoint's RTP session itself and says what it configured in
//! its `EndpointOffer`; the focus offers Jicofo's list in Jicofo's order, limited to what
//! the bridge configured (payload types by codec name, extensions by URI, with the bridge's
//! numbers), so the offer never names what the bridge would not understand.
//!
//! Codec choice per conference works as in a Jitsi deployment: each participant publishes
//! the video codecs it can use, preferred first, in its presence
//! (`<jitsi_participant_codecList>`), and the senders pick a codec every receiver in the
//! room supports from those lists (`LJM: modules/qualitycontrol/CodecSelection.ts`); Jicofo
//! offers every codec and never re-offers. The focus also offers every codec, and does a
//! little more for clients that take the offer's order as their choice: a participant's
//! offer lists its own codecs in its order, those that every other participant listed
//! first, then the codecs it did not list (it may still receive them: a client's screen
//! share codec is not checked against the others' lists).

use convene_colibri::{HeaderExtension, MediaDescription, MediaKind, PayloadType};
use minidom::Element;

use crate::ns;

/// A video codec as the Jitsi clients name it in presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Av1,
    Vp8,
    H264,
    Vp9,
}

impl VideoCodec {
    /// Jicofo's offer order.
    pub const ALL: [VideoCodec; 4] = [
        VideoCodec::Av1,
        VideoCodec::Vp8,
        VideoCodec::H264,
        VideoCodec::Vp9,
    ];

    /// The name in `<jitsi_participant_codecList>`.
    pub fn jitsi_name(self) -> &'static str {
        match self {
            VideoCodec::Av1 => "av1",
            VideoCodec::Vp8 => "vp8",
            VideoCodec::H264 => "h264",
            VideoCodec::Vp9 => "vp9",
        }
    }

    fn from_jitsi_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.jitsi_name().eq_ignore_ascii_case(name.trim()))
    }
}

/// The longest codec list text read from a presence: four codecs fit in 20 bytes, and a
/// client has no reason to send more than a few unknown ones besides.
const MAX_CODEC_LIST_BYTES: usize = 256;

/// A participant's video codecs, preferred first: from `<jitsi_participant_codecList>`
/// (`av1,vp9,vp8,h264`) or the legacy single `<jitsi_participant_codecType>`. Unknown names
/// and repeats are skipped; VP8 is appended when missing, as Jicofo does, since every Jitsi
/// client decodes it. `None` when the presence names no codec (Jicofo: no preference).
pub fn codec_list(presence: &Element) -> Option<Vec<VideoCodec>> {
    let text = ["jitsi_participant_codecList", "jitsi_participant_codecType"]
        .into_iter()
        .find_map(|name| presence.get_child(name, ns::CLIENT))?
        .text();
    if text.len() > MAX_CODEC_LIST_BYTES {
        return None;
    }
    let mut codecs = Vec::new();
    for codec in text.split(',').filter_map(VideoCodec::from_jitsi_name) {
        if !codecs.contains(&codec) {
            codecs.push(codec);
        }
    }
    if !codecs.contains(&VideoCodec::Vp8) {
        codecs.push(VideoCodec::Vp8);
    }
    Some(codecs)
}

/// The video codecs to offer a participant: its own list (Jicofo's order without one),
/// those that every other participant listed first, each part in the participant's order;
/// then the codecs it did not list, in Jicofo's order.
pub fn video_order<'a>(
    own: Option<&[VideoCodec]>,
    others: impl Iterator<Item = &'a [VideoCodec]> + Clone,
) -> Vec<VideoCodec> {
    let own = own.unwrap_or(&VideoCodec::ALL);
    let shared = |codec: &VideoCodec| others.clone().all(|list| list.contains(codec));
    let (mut first, rest): (Vec<VideoCodec>, Vec<VideoCodec>) =
        own.iter().copied().partition(|codec| shared(codec));
    first.extend(rest);
    first.extend(VideoCodec::ALL.iter().filter(|c| !own.contains(c)));
    first
}

const AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
const MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const TCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
const ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
/// The AV1 dependency descriptor: what an SFU reads to forward AV1 (and VP9) SVC layers.
pub const DEPENDENCY_DESCRIPTOR: &str =
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";

const AUDIO_EXTENSIONS: [&str; 3] = [AUDIO_LEVEL, MID, TCC];
const VIDEO_EXTENSIONS: [&str; 4] = [DEPENDENCY_DESCRIPTOR, MID, ABS_SEND_TIME, TCC];
/// Audio payload types in Jicofo's order (RED, off by default there, would come first).
const AUDIO_CODECS: [&str; 2] = ["opus", "telephone-event"];

/// Jicofo's offer of `bridge`'s kind, limited to what `bridge` configured: for video the
/// codecs in `video` order, then their RTX payload types in the same order.
pub fn offer(bridge: &MediaDescription, video: &[VideoCodec]) -> MediaDescription {
    let find = |name: &str| {
        bridge
            .payload_types
            .iter()
            .find(|pt| pt.name.eq_ignore_ascii_case(name))
    };
    let (payload_types, extensions): (Vec<PayloadType>, &[&str]) = match bridge.kind {
        MediaKind::Audio => (
            AUDIO_CODECS
                .iter()
                .filter_map(|name| find(name))
                .cloned()
                .collect(),
            &AUDIO_EXTENSIONS,
        ),
        MediaKind::Video => {
            let primaries: Vec<&PayloadType> = video
                .iter()
                .filter_map(|codec| find(codec_rtp_name(*codec)))
                .collect();
            let rtx = primaries.iter().filter_map(|primary| {
                bridge.payload_types.iter().find(|pt| {
                    pt.name.eq_ignore_ascii_case("rtx")
                        && pt
                            .parameters
                            .iter()
                            .any(|(k, v)| k == "apt" && *v == primary.id.to_string())
                })
            });
            let mut all: Vec<PayloadType> = primaries.iter().map(|pt| (*pt).clone()).collect();
            all.extend(rtx.cloned());
            (all, &VIDEO_EXTENSIONS)
        }
    };
    let header_extensions: Vec<HeaderExtension> = extensions
        .iter()
        .filter_map(|uri| bridge.header_extensions.iter().find(|e| e.uri == *uri))
        .cloned()
        .collect();
    MediaDescription {
        kind: bridge.kind,
        payload_types,
        header_extensions,
    }
}

fn codec_rtp_name(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::Av1 => "AV1",
        VideoCodec::Vp8 => "VP8",
        VideoCodec::H264 => "H264",
        VideoCodec::Vp9 => "VP9",
    }
}

#[cfg(test)]
mod tests {
    use super::VideoCodec::*;
    use super::*;

    fn presence(child: &str, text: &str) -> Element {
        format!("<presence xmlns='jabber:client'><{child}>{text}</{child}></presence>")
            .parse()
            .unwrap()
    }

    #[test]
    fn codec_list_is_read_in_order_with_vp8_added() {
        let list = |text| codec_list(&presence("jitsi_participant_codecList", text));
        assert_eq!(list("av1,vp9,vp8,h264"), Some(vec![Av1, Vp9, Vp8, H264]));
        assert_eq!(list("vp9, AV1"), Some(vec![Vp9, Av1, Vp8]));
        assert_eq!(list("h265,vp9,vp9"), Some(vec![Vp9, Vp8]));
        let legacy = codec_list(&presence("jitsi_participant_codecType", "h264"));
        assert_eq!(legacy, Some(vec![H264, Vp8]));
        let bare: Element = "<presence xmlns='jabber:client'/>".parse().unwrap();
        assert_eq!(codec_list(&bare), None);
    }

    #[test]
    fn an_oversized_codec_list_is_ignored() {
        let text = "vp9,".repeat(100);
        assert_eq!(
            codec_list(&presence("jitsi_participant_codecList", &text)),
            None
        );
    }

    #[test]
    fn codecs_everyone_lists_come_first() {
        let own = [Av1, Vp9, Vp8, H264];
        let vp8_only = [Vp8];
        let no_av1 = [Vp9, Vp8];
        assert_eq!(
            video_order(Some(&own), [&vp8_only[..]].into_iter()),
            vec![Vp8, Av1, Vp9, H264]
        );
        assert_eq!(
            video_order(Some(&own), [&no_av1[..]].into_iter()),
            vec![Vp9, Vp8, Av1, H264]
        );
        assert_eq!(video_order(Some(&own), std::iter::empty()), own.to_vec());
        assert_eq!(
            video_order(Some(&[Vp9, Vp8]), [&own[..]].into_iter()),
            vec![Vp9, Vp8, Av1, H264]
        );
        assert_eq!(
            video_order(None, [&vp8_only[..]].into_iter()),
            vec![Vp8, Av1, H264, Vp9]
        );
    }

    fn pt(id: u8, name: &str, apt: Option<u8>) -> PayloadType {
        PayloadType {
            id,
            name: name.into(),
            clockrate: 90_000,
            channels: None,
            parameters: apt
                .map(|apt| vec![("apt".into(), apt.to_string())])
                .unwrap_or_default(),
            rtcp_fb: vec![],
        }
    }

    fn ext(id: u8, uri: &str) -> HeaderExtension {
        HeaderExtension {
            id,
            uri: uri.into(),
        }
    }

    #[test]
    fn the_offer_follows_jicofo_within_what_the_bridge_configured() {
        let bridge = MediaDescription {
            kind: MediaKind::Video,
            payload_types: vec![
                pt(100, "VP8", None),
                pt(101, "VP9", None),
                pt(41, "AV1", None),
                pt(96, "rtx", Some(100)),
                pt(97, "rtx", Some(101)),
                pt(42, "rtx", Some(41)),
            ],
            header_extensions: vec![
                ext(3, ABS_SEND_TIME),
                ext(5, TCC),
                ext(11, DEPENDENCY_DESCRIPTOR),
                ext(13, "urn:3gpp:video-orientation"),
            ],
        };
        let offer = offer(&bridge, &[Vp9, Av1, H264, Vp8]);
        let ids: Vec<u8> = offer.payload_types.iter().map(|pt| pt.id).collect();
        assert_eq!(ids, [101, 41, 100, 97, 42, 96]);
        let ext_ids: Vec<u8> = offer.header_extensions.iter().map(|e| e.id).collect();
        assert_eq!(ext_ids, [11, 3, 5]);
    }
}
