//! Datagrams to endpoints: RFC 7983 demultiplexing, the endpoint by address or by STUN
//! username, and the cheap checks made before str0m sees the bytes (including the
//! endpoint's ingress budget, `ingress`).

use std::net::SocketAddr;
use std::time::Instant;

use str0m::Input;
use str0m::ice::StunMessage;
use str0m::net::{Protocol, Receive};
use tracing::trace;

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
            // Counted; a flood of them must not become a flood of log lines either.
            trace!(%source, ?reason, len = data.len(), "datagram dropped");
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
            match classify_rtp_or_rtcp(data)? {
                Srtp::Rtp { ssrc } => ep.ingress.admit_rtp(now, ssrc, data.len())?,
                Srtp::Rtcp => ep.ingress.admit_rtcp(now)?,
            }
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
                trace!(endpoint = %ep.id.0, "str0m rejected input: {e}");
                self.counters.drop(DropReason::RtcError);
            }
            None => {}
        }
        self.drain(now, key);
        Ok(())
    }
}

/// The datagram's kind, from the clear-text parts of SRTP/SRTCP, before str0m decrypts
/// it: RTCP must have a first packet that fits the datagram, RTP an SSRC to be metered on.
pub fn classify_rtp_or_rtcp(data: &[u8]) -> Result<Srtp, DropReason> {
    let payload_type = data.get(1).ok_or(DropReason::Garbage)? & 0x7f;
    if (64..=95).contains(&payload_type) {
        // RTCP (RFC 5761 §4): the first packet's length must fit the datagram.
        let words = data.get(2..4).ok_or(DropReason::MalformedRtcp)?;
        let len = (usize::from(u16::from_be_bytes([words[0], words[1]])) + 1) * 4;
        if data.len() < 8 || len > data.len() {
            return Err(DropReason::MalformedRtcp);
        }
        return Ok(Srtp::Rtcp);
    }
    let ssrc = data.get(8..12).ok_or(DropReason::Garbage)?;
    Ok(Srtp::Rtp {
        ssrc: u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]),
    })
}

/// What the clear-text header says an SRTP or SRTCP datagram is.
pub enum Srtp {
    Rtp { ssrc: u32 },
    Rtcp,
}
