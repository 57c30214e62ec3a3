//! Where a forwarded packet goes: the seam between forwarding (which stream, which layer,
//! what numbering: `forward.rs`) and the receiver that takes the rewritten packet.
//!
//! Only WebRTC endpoints receive today. A recorder or a relay to another bridge becomes
//! another variant of [`Receiver`]: an enum rather than a trait object so that the hot
//! path stays a `match`, with no allocation or copy per forwarded packet.

use std::sync::Arc;
use std::time::Instant;

use str0m::media::Pt;
use str0m::rtp::{ExtensionValues, RtpWrite, Ssrc, Vp8Patch};

use super::endpoint::Endpoint;

/// One rewritten packet for one receiver's stream.
pub(super) struct Forwarded<'a> {
    /// The receiver-view SSRC of the stream.
    pub(super) ssrc: u32,
    pub(super) payload_type: Pt,
    /// Extended outgoing sequence number.
    pub(super) seq: u64,
    pub(super) timestamp: u32,
    /// On the bridge's clock, for the receiver's sender reports.
    pub(super) captured: Instant,
    pub(super) marker: bool,
    /// Kept for retransmission (video).
    pub(super) nackable: bool,
    /// Shared with the other receivers unless the codec had to patch it.
    pub(super) payload: Arc<[u8]>,
    /// Without the per-hop values (transport-wide sequence number, mid, rid).
    pub(super) ext_vals: &'a ExtensionValues,
    /// Written over the VP8 descriptor when the packet is serialized.
    pub(super) vp8_patch: Option<Vp8Patch>,
}

/// A receiver of forwarded streams.
pub(super) enum Receiver<'a> {
    /// A WebRTC endpoint: the packet goes into its str0m send stream (RTX cache, SRTP).
    Endpoint(&'a mut Endpoint),
}

impl Receiver<'_> {
    /// Hands `packet` over. True when the receiver holds media it has not sent yet and
    /// was not listed for sending before (the core lists it in `Core::unsent`).
    pub(super) fn write(&mut self, packet: Forwarded) -> bool {
        match self {
            Receiver::Endpoint(ep) => {
                let mut write = RtpWrite::new(
                    packet.payload_type,
                    packet.seq.into(),
                    packet.timestamp,
                    packet.captured,
                    packet.payload,
                )
                .marker(packet.marker)
                .ext_vals(packet.ext_vals.clone());
                if let Some(patch) = packet.vp8_patch {
                    write = write.vp8_patch(patch);
                }
                let ssrc = Ssrc::from(packet.ssrc);
                ep.rtc.call(|rtc| {
                    if let Some(tx) = rtc.direct_api().stream_tx(&ssrc) {
                        // str0m answers a NACK with a resend on the stream's RTX SSRC,
                        // and panics (expiring the receiver) when the sender signalled
                        // the source without one: such a stream keeps nothing to resend.
                        let nackable = packet.nackable && tx.rtx().is_some();
                        tx.write_rtp(write.nackable(nackable));
                    }
                });
                // str0m sends queued media on its next timeout; serving that once per
                // receiver after a batch of input (`Core::poll_output`) rather than per
                // packet keeps one timeout computation and one GSO batch per turn.
                !std::mem::replace(&mut ep.unsent, true)
            }
        }
    }
}
