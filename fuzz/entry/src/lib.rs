//! One entry function per parser fed by the network, each taking arbitrary bytes as the
//! fuzz target of the same name does (`fuzz/fuzz_targets/<name>.rs`). The corpus replay
//! (`tests/replay.rs`) calls the same functions through [`TARGETS`], so a reproducer that
//! crashed a fuzz target fails the ordinary test suite.
//!
//! An entry may panic only where the code under test would: a panic is a finding.

mod bridge;
mod focus;
mod session;
mod xmpp;

/// A fuzz target's body: any bytes in, a panic only for a finding.
pub type Entry = fn(&[u8]);

/// `(target name, entry)`: the name is the fuzz target's and its corpus directory's.
pub const TARGETS: &[(&str, Entry)] = &[
    ("xml_stream", xmpp::xml_stream),
    ("ws_frame", xmpp::ws_frame),
    ("sasl", xmpp::sasl),
    ("jwt", xmpp::jwt),
    ("jingle", focus::jingle),
    ("json_sources", focus::json_sources),
    ("bridge_channel", bridge::bridge_channel),
    ("datagram", bridge::datagram),
    ("codec", bridge::codec),
    ("session", session::session),
];

/// The entry for target `name`.
pub fn entry(name: &str) -> Entry {
    TARGETS
        .iter()
        .find(|(target, _)| *target == name)
        .map(|(_, entry)| *entry)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
}

/// Text inputs: bytes that are not UTF-8 never reach these parsers (the WebSocket layer
/// refuses them as text frames).
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
