//! A simulated endpoint for the bare relay: the same RTP packets as the WebRTC endpoint,
//! sent in the clear (no ICE, no DTLS, no SRTP, no RTCP).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Result;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::sleep_until;

use crate::far_future;
use crate::recorder::{Recorder, SeqExtender};
use crate::source::{MediaSource, OutPacket};

const RTP_HEADER_LEN: usize = 12;
const OPUS_PT: u8 = 111;
const VP8_PT: u8 = 100;
const AV1_PT: u8 = 41;

pub struct PlainEndpoint {
    pub socket: UdpSocket,
    pub relay: SocketAddr,
    pub source: Option<MediaSource>,
    pub recorder: Recorder,
}

fn serialize(packet: &OutPacket) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(RTP_HEADER_LEN + packet.payload.len());
    datagram.push(0x80);
    // The relay copies bytes: the dependency descriptor is left out (it would only add
    // a header extension the relay never reads).
    let pt = match (packet.audio, packet.dd.is_some()) {
        (true, _) => OPUS_PT,
        (false, true) => AV1_PT,
        (false, false) => VP8_PT,
    };
    datagram.push(if packet.marker { 0x80 | pt } else { pt });
    datagram.extend_from_slice(&(packet.seq as u16).to_be_bytes());
    datagram.extend_from_slice(&packet.timestamp.to_be_bytes());
    datagram.extend_from_slice(&packet.ssrc.to_be_bytes());
    datagram.extend_from_slice(&packet.payload);
    datagram
}

impl PlainEndpoint {
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<()> {
        let mut buf = vec![0u8; 2048];
        let mut extenders: HashMap<u32, SeqExtender> = HashMap::new();
        loop {
            let next_send = self.source.as_ref().map(MediaSource::next_at);
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    let (len, _) = received?;
                    let now = Instant::now();
                    if len < RTP_HEADER_LEN {
                        continue;
                    }
                    let seq = u16::from_be_bytes([buf[2], buf[3]]);
                    let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                    let seq = extenders.entry(ssrc).or_default().extend(seq);
                    self.recorder.record(ssrc, seq, len, &buf[RTP_HEADER_LEN..len], now);
                }
                _ = sleep_until(next_send.unwrap_or_else(far_future).into()), if next_send.is_some() => {
                    let source = self.source.as_mut().expect("guarded by next_send");
                    for packet in source.due_packets(Instant::now()) {
                        self.socket.send_to(&serialize(&packet), self.relay).await?;
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }
}
