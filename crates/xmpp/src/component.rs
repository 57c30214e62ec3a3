//! The seam between the router and the services that live at their own host: the MUC at
//! `conference.<domain>` today, and beside it the room-control services that a stock Jitsi
//! deployment runs as Prosody components (lobby, breakout rooms, polls, A/V moderation,
//! speaker stats, end-meeting).
//!
//! The router knows only this trait and which host each component answers at; it stamps and
//! authenticates the sender, then hands over every stanza addressed to that host or to any
//! JID at it. Components are sans-IO like the router: they answer by appending to `out`.

use std::time::SystemTime;

use jid::{BareJid, Jid};
use minidom::Element;

use crate::identity::Identity;
use crate::stanza::Delivery;

/// How far the server trusts the sender of a stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// An in-process entity of the server (the focus), attached with
    /// [`Router::attach_internal`](crate::router::Router::attach_internal). Like a Prosody
    /// admin it is owner of every room and exempt from the limits set for clients.
    Internal,
    /// A client session.
    Client,
}

/// Who sent a stanza, as the router vouches for it.
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    /// The sender's address, already stamped as the stanza's `from`: a bound full JID or an
    /// address an internal entity owns.
    pub jid: &'a Jid,
    pub trust: Trust,
    /// What the authenticator said about the session at bind time; `None` for an internal
    /// entity (which never binds).
    pub identity: Option<&'a Identity>,
}

impl Sender<'_> {
    pub fn is_internal(&self) -> bool {
        self.trust == Trust::Internal
    }
}

/// How the server's disco#info names a component (XEP-0030 identity `category`/`type`; the
/// identity's `name` is the component's host, as Prosody's Jitsi modules announce theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoIdentity {
    pub category: &'static str,
    pub kind: &'static str,
}

/// What a client's stanza to a component sets in motion, for the hub's fan-out budgets
/// (`crate::fanout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fanout {
    /// Joins `room`, which has `audience` occupants: it costs about twice that.
    Join { room: BareJid, audience: usize },
    /// Leaves `room`, telling its `audience`.
    Leave { room: BareJid, audience: usize },
    /// Reaches every one of `room`'s `audience`: a group chat message, or (`presence`) an
    /// occupant's presence update, which a later one may replace.
    Broadcast {
        room: BareJid,
        audience: usize,
        presence: bool,
    },
}

/// A service the router hands every stanza for its host to.
pub trait Component: Send {
    /// A stanza from `sender` addressed to `to` (the component's host or a JID at it),
    /// routed at wall-clock time `now` (what Prosody's modules read from `os.time()`).
    fn handle(
        &mut self,
        now: SystemTime,
        sender: Sender<'_>,
        to: &Jid,
        stanza: Element,
        out: &mut Vec<Delivery>,
    );

    /// The session at `jid` ended: forget it (an occupant leaves its rooms).
    fn disconnect(&mut self, jid: &Jid, out: &mut Vec<Delivery>);

    /// What `stanza` from `from` to `to` would fan out to; `None` for what reaches one
    /// recipient (or none).
    fn fanout(&self, _from: &Jid, _to: &Jid, _stanza: &Element) -> Option<Fanout> {
        None
    }

    /// Who a broadcast to `room` reaches now (its occupants).
    fn audience(&self, _room: &BareJid) -> usize {
        0
    }

    /// How the server's disco#info lists this component.
    fn disco_identity(&self) -> DiscoIdentity;

    /// Features the server's own disco#info advertises on this component's behalf.
    fn server_features(&self) -> &'static [&'static str] {
        &[]
    }

    /// Rooms this component holds (the MUC, later breakout and lobby rooms), for metrics.
    fn room_count(&self) -> usize {
        0
    }

    /// Occupants over this component's rooms, for metrics.
    fn occupant_count(&self) -> usize {
        0
    }
}
