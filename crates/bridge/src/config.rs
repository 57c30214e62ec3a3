//! Settings of this role. The binary fills them from its TOML file and flags; every field
//! has an embedded default so that `convene` runs with no configuration at all.

use std::net::IpAddr;

use serde::Deserialize;

use crate::engine::IngressLimits;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The one UDP port all endpoints share (0 picks a free port, for tests).
    pub udp_port: u16,
    /// Also listen for ICE-TCP (RFC 6544 passive candidates, RFC 4571 framing) on the same
    /// port number over TCP, for clients whose UDP is blocked.
    pub ice_tcp: bool,
    /// Addresses to bind and advertise as host candidates. Empty: the machine's
    /// non-loopback interface addresses, else loopback.
    pub addresses: Vec<IpAddr>,
    /// Public addresses of this machine behind a 1:1 NAT (a cloud VM's public IP): each
    /// bound candidate is also advertised with these addresses, same port.
    pub public_addresses: Vec<IpAddr>,
    /// Base URL of the colibri-ws endpoint as the clients reach it (`wss://meet.example.com`).
    /// Empty: derived by the binary from the domain and HTTP port.
    pub colibri_ws_base: String,
    /// Path segment identifying this bridge in colibri-ws URLs.
    pub server_id: String,
    /// An endpoint that receives nothing for this long is expired.
    pub endpoint_idle_timeout_secs: u64,
    /// Downlink estimate assumed for a receiver before the congestion controller has one.
    pub initial_bandwidth_bps: u64,
    /// Datagrams longer than this are dropped unparsed.
    pub max_datagram_bytes: usize,
    /// RTP bits per second one signalled SSRC (a simulcast layer, its RTX, an audio
    /// stream) may carry; the excess is dropped before it is decrypted.
    pub ingress_ssrc_max_bps: u64,
    /// RTP packets per second one signalled SSRC may carry.
    pub ingress_ssrc_max_packets_per_sec: u32,
    /// RTP bits per second of all of one endpoint's SSRCs together.
    pub ingress_endpoint_max_bps: u64,
    /// RTP packets per second of all of one endpoint's SSRCs together.
    pub ingress_endpoint_max_packets_per_sec: u32,
    /// RTCP packets per second from one endpoint (NACK, PLI, TWCC feedback, reports).
    pub ingress_rtcp_max_packets_per_sec: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            udp_port: 10000,
            ice_tcp: true,
            addresses: Vec::new(),
            public_addresses: Vec::new(),
            colibri_ws_base: String::new(),
            server_id: "jvb1".into(),
            endpoint_idle_timeout_secs: 60,
            initial_bandwidth_bps: 2_500_000,
            max_datagram_bytes: 1500,
            // Above what Jitsi Meet sends on its highest layer (2.5 Mb/s for 720p, more
            // for a 1080p screen share) and on all its layers and a screen share together.
            ingress_ssrc_max_bps: 5_000_000,
            ingress_ssrc_max_packets_per_sec: 1000,
            ingress_endpoint_max_bps: 10_000_000,
            ingress_endpoint_max_packets_per_sec: 2500,
            // A browser sends a few dozen a second (TWCC every 50-100 ms, reports, NACKs).
            ingress_rtcp_max_packets_per_sec: 250,
        }
    }
}

impl From<&Config> for IngressLimits {
    fn from(config: &Config) -> Self {
        Self {
            ssrc_bps: config.ingress_ssrc_max_bps,
            ssrc_packets_per_sec: config.ingress_ssrc_max_packets_per_sec,
            endpoint_bps: config.ingress_endpoint_max_bps,
            endpoint_packets_per_sec: config.ingress_endpoint_max_packets_per_sec,
            rtcp_packets_per_sec: config.ingress_rtcp_max_packets_per_sec,
        }
    }
}
