//! Everything that leaves the core: stanzas and bridge requests, in order, plus what is
//! needed to produce them (the focus's addresses, its settings, ids and randomness).

use std::collections::VecDeque;

use convene_colibri::{BridgeId, BridgeRequest};
use jid::Jid;
use minidom::Element;
use rand::Rng;
use rand::distr::Alphanumeric;
use rand::rngs::StdRng;

use super::FOCUS_NICK;
use super::bridge_queue::{BridgeQueues, Purpose};
use super::metrics::Counters;
use crate::Config;
use crate::stanza::iq;

/// Identifies a bridge request, so its response can be matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A stanza for the XMPP server.
    Stanza(Element),
    /// A request to run on `bridge`; its outcome goes to
    /// [`Focus::handle_bridge_response`](super::Focus::handle_bridge_response).
    Bridge {
        bridge: BridgeId,
        id: RequestId,
        request: BridgeRequest,
    },
}

/// The addresses of the focus, all derived from the XMPP domain.
#[derive(Debug, Clone)]
pub(super) struct Addresses {
    /// `focus.D`, where clients send the conference request.
    pub component: String,
    /// `focus@auth.D`, announced as `focusjid`.
    pub bare: String,
    /// `focus@auth.D/focus`, the real JID in every room.
    pub full: String,
    /// `conference.D`, the only MUC service the focus serves.
    pub muc: String,
    /// `D`: with authentication on, only users of this domain (accounts, token users)
    /// open conferences.
    pub login_domain: String,
}

impl Addresses {
    pub fn new(domain: &str) -> Self {
        Addresses {
            component: format!("focus.{domain}"),
            bare: format!("focus@auth.{domain}"),
            full: format!("focus@auth.{domain}/{FOCUS_NICK}"),
            muc: format!("conference.{domain}"),
            login_domain: domain.to_owned(),
        }
    }
}

/// The addresses the XMPP server must route to the focus of `domain`: `focus.D`, where
/// clients send the conference request, and `focus@auth.D/focus`, its real JID in rooms.
pub fn addresses(domain: &str) -> Result<Vec<Jid>, jid::Error> {
    let addresses = Addresses::new(domain);
    [addresses.component, addresses.full]
        .iter()
        .map(|address| Jid::new(address))
        .collect()
}

pub(super) struct Outbox {
    pub addresses: Addresses,
    pub config: Config,
    pub outputs: VecDeque<Output>,
    pub bridge: BridgeQueues,
    pub next_id: u64,
    /// Session ids and meeting ids must stay unpredictable: in production a CSPRNG.
    pub rng: StdRng,
    pub counters: Counters,
}

impl Outbox {
    pub fn send(&mut self, stanza: Element) {
        self.outputs.push_back(Output::Stanza(stanza));
    }

    fn next_iq_id(&mut self) -> String {
        self.next_id += 1;
        format!("focus-{}", self.next_id)
    }

    /// Sends an IQ `set` to an occupant, from the focus's real JID (the MUC rewrites `from`
    /// to `room@conference.D/focus`).
    pub fn send_set(&mut self, to: &str, payload: Element) {
        let id = self.next_iq_id();
        let stanza = iq("set", &id, &self.addresses.full, to, payload);
        self.send(stanza);
    }

    /// Queues `request` for `bridge`, behind the conference's earlier requests.
    pub fn bridge(&mut self, bridge: &BridgeId, request: BridgeRequest, purpose: Purpose) {
        self.bridge.push(
            bridge,
            request,
            purpose,
            &mut self.next_id,
            &mut self.outputs,
        );
    }

    /// Starts the next waiting request of `conference` on `bridge`, if any.
    pub fn pump(&mut self, bridge: &BridgeId, conference: &convene_colibri::ConferenceId) {
        self.bridge
            .pump(bridge, conference, &mut self.next_id, &mut self.outputs);
    }

    /// A random alphanumeric id of `len` characters.
    pub fn random_id(&mut self, len: usize) -> String {
        (&mut self.rng)
            .sample_iter(&Alphanumeric)
            .take(len)
            .map(char::from)
            .collect()
    }
}
