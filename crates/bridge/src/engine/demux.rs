//! Datagrams to endpoints: RFC 7983 demultiplexing, the endpoint by address or by STUN
//! username, and the cheap checks made before str0m sees the bytes.

use std::net::SocketAddr;
use std::time::Instant;

use foldhash::HashSet;
use str0m::Input;
use str0m::ice::StunMessage;
use str0m::net::{Protocol, Receive};
use tracing::debug;

use super::{Core, count};
use crate::metrics::DropReason;

impl Core {
    /// One UDP datagram, or one RFC 4571 frame of an ICE-TCP connection.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        if let Err(reason) = self.accept_datagram(now, proto, source, destination, data) {
            self.counters.drop(reason);
            debug!(%source, ?reason, len = data.len(), "datagram dropped");
        }
        self.settle(now);
    }

    fn accept_datagram(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> Result<(), DropReason> {
        if data.len() > self.settings.max_datagram_bytes {
            return Err(DropReason::Oversized);
        }
        // RFC 7983 demultiplexing by the first byte.
        let first = *data.first().ok_or(DropReason::Garbage)?;
        let is_stun = first <= 3;
        let is_rtp_or_rtcp = (128..=191).contains(&first);
        if !is_stun && !(20..=63).contains(&first) && !is_rtp_or_rtcp {
            return Err(DropReason::Garbage);
        }
        let key = match self.by_addr.get(&(proto, source, destination)) {
            Some(key) => *key,
            None if is_stun => {
                let stun = StunMessage::parse(data).map_err(|_| DropReason::Garbage)?;
                let (local_ufrag, _) = stun.split_username().ok_or(DropReason::Unauthenticated)?;
                *self
                    .by_ufrag
                    .get(local_ufrag)
                    .ok_or(DropReason::Unauthenticated)?
            }
            None => return Err(DropReason::Unauthenticated),
        };
        let contents = data.try_into().map_err(|_| DropReason::Garbage)?;
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );
        let ep = self
            .endpoints
            .get_mut(&key)
            .ok_or(DropReason::Unauthenticated)?;
        if ep.rtc.call(|rtc| rtc.accepts(&input)) != Some(true) {
            return Err(DropReason::Unauthenticated);
        }
        if is_rtp_or_rtcp {
            check_rtp_or_rtcp(data, &ep.known_ssrcs)?;
        }
        if is_stun {
            self.by_addr.insert((proto, source, destination), key);
        }
        ep.last_activity = now;
        count(
            &mut self.counters,
            &mut self.conferences,
            &ep.conference,
            |c| {
                c.packets_in += 1;
                c.bytes_in += data.len() as u64;
            },
        );
        match ep.rtc.call(|rtc| rtc.handle_input(input)) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                debug!(endpoint = %ep.id.0, "str0m rejected input: {e}");
                self.counters.drop(DropReason::RtcError);
            }
            None => {}
        }
        self.drain(now, key);
        Ok(())
    }
}

/// Cheap checks on the clear-text parts of SRTP/SRTCP before str0m sees them.
pub fn check_rtp_or_rtcp(data: &[u8], known_ssrcs: &HashSet<u32>) -> Result<(), DropReason> {
    let payload_type = data.get(1).ok_or(DropReason::Garbage)? & 0x7f;
    if (64..=95).contains(&payload_type) {
        // RTCP (RFC 5761 §4): the first packet's length must fit the datagram.
        let words = data.get(2..4).ok_or(DropReason::MalformedRtcp)?;
        let len = (usize::from(u16::from_be_bytes([words[0], words[1]])) + 1) * 4;
        if data.len() < 8 || len > data.len() {
            return Err(DropReason::MalformedRtcp);
        }
        return Ok(());
    }
    let ssrc = data.get(8..12).ok_or(DropReason::Garbage)?;
    let ssrc = u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]);
    if !known_ssrcs.contains(&ssrc) {
        return Err(DropReason::UnknownSsrc);
    }
    Ok(())
}
