//! XML namespaces used on the wire, verbatim (see the protocol notes' cheat sheet).

pub const CLIENT: &str = "jabber:client";
pub const JINGLE: &str = "urn:xmpp:jingle:1";
pub const JINGLE_ERRORS: &str = "urn:xmpp:jingle:errors:1";
pub const RTP: &str = "urn:xmpp:jingle:apps:rtp:1";
pub const SSMA: &str = "urn:xmpp:jingle:apps:rtp:ssma:0";
pub const RTCP_FB: &str = "urn:xmpp:jingle:apps:rtp:rtcp-fb:0";
pub const HDREXT: &str = "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0";
pub const ICE_UDP: &str = "urn:xmpp:jingle:transports:ice-udp:1";
pub const DTLS: &str = "urn:xmpp:jingle:apps:dtls:0";
pub const GROUPING: &str = "urn:xmpp:jingle:apps:grouping:0";
pub const JITMEET: &str = "http://jitsi.org/jitmeet";
pub const FOCUS: &str = "http://jitsi.org/protocol/focus";
pub const COLIBRI: &str = "http://jitsi.org/protocol/colibri";
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const MUC: &str = "http://jabber.org/protocol/muc";
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub const PING: &str = "urn:xmpp:ping";
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// Remote-mute IQs, one namespace per media (`LJM: JitsiConference.ts`).
pub const MUTE_AUDIO: &str = "http://jitsi.org/jitmeet/audio";
pub const MUTE_VIDEO: &str = "http://jitsi.org/jitmeet/video";
pub const MUTE_DESKTOP: &str = "http://jitsi.org/jitmeet/desktop";
