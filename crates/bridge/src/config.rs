//! Settings of this role. The binary fills them from its TOML file and flags; every field
//! has an embedded default so that `convene` runs with no configuration at all.

use std::net::IpAddr;

use serde::Deserialize;

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
        }
    }
}
