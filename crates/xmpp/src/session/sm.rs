//! Stream management (XEP-0198): counters, the unacknowledged outbound queue, and the
//! state a dropped session leaves behind for resumption. Where a detached session waits
//! (and for how long) is the hub's business; what it carries is decided here.

use std::collections::VecDeque;

use jid::Jid;
use minidom::Element;

use super::{Action, Phase, Session, StreamError, random_hex};
use crate::stanza::{n, ns};

/// Unacknowledged stanzas that make the server ask for an acknowledgement.
pub const ACK_EVERY: usize = 5;

/// XEP-0198 counters and the unacknowledged outbound queue.
#[derive(Debug)]
pub struct StreamManagement {
    pub id: String,
    /// Stanzas received from the client.
    inbound: u32,
    /// Stanzas sent to the client.
    outbound: u32,
    unacked: VecDeque<Element>,
    ack_requested: bool,
}

impl StreamManagement {
    fn acknowledge(&mut self, h: u32) {
        let first_unacked = self.outbound.wrapping_sub(self.unacked.len() as u32);
        let newly_acked = (h.wrapping_sub(first_unacked) as usize).min(self.unacked.len());
        self.unacked.drain(..newly_acked);
        self.ack_requested = false;
    }
}

/// Who signed in on a stream, as far as resumption cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Login {
    /// The account (`None`: anonymous, token users included).
    pub username: Option<String>,
    /// A Jitsi token vouched for the login, verified at that login.
    pub token: bool,
}

/// A session whose connection dropped with stream management on, awaiting resumption.
#[derive(Debug)]
pub struct Detached {
    pub jid: Jid,
    login: Login,
    sm: StreamManagement,
}

impl Detached {
    /// The resumption id.
    pub fn id(&self) -> &str {
        &self.sm.id
    }

    /// Whether `claimant` may take this session over.
    pub fn may_resume(&self, claimant: &Login) -> bool {
        may_resume(&self.login, claimant)
    }
}

/// Whether `claimant` may resume a session `owner` signed in. Anonymous sessions have no
/// account to match: the unguessable resumption id is the proof. A token session resumes
/// only on a login with a token, verified at that login: an expired token (which the
/// login refuses) cannot carry the session on, nor can a guest login that learnt its id.
pub fn may_resume(owner: &Login, claimant: &Login) -> bool {
    let account = owner.username.is_none() || owner.username == claimant.username;
    account && (!owner.token || claimant.token)
}

/// What a resuming connection takes over: the detached session and the stanzas routed to
/// it since (not yet sent, so not yet counted).
#[derive(Debug)]
pub struct Resumption {
    pub detached: Detached,
    pub queued: VecDeque<Element>,
}

impl Session {
    pub(super) fn stream_management(
        &mut self,
        name: &str,
        element: &Element,
        out: &mut Vec<Action>,
    ) {
        match (name, &self.phase) {
            ("enable", Phase::Bound { .. }) if self.sm.is_none() => {
                let id = random_hex(&mut self.rng, 16);
                self.sm = Some(StreamManagement {
                    id: id.clone(),
                    inbound: 0,
                    outbound: 0,
                    unacked: VecDeque::new(),
                    ack_requested: false,
                });
                let resume = element
                    .attr("resume")
                    .is_some_and(|v| v == "true" || v == "1");
                let mut enabled = Element::builder("enabled", ns::SM).attr(n("id"), id.as_str());
                if resume {
                    enabled = enabled
                        .attr(n("resume"), "true")
                        .attr(n("max"), self.config.resume_timeout.as_secs().to_string());
                    out.push(Action::SmEnabled(id));
                }
                out.push(Action::Send(enabled.build()));
            }
            ("resume", Phase::Authenticated { .. }) => {
                let previd = element.attr("previd").unwrap_or_default().to_owned();
                match element.attr("h").and_then(|h| h.parse().ok()) {
                    Some(h) => out.push(Action::Resume { previd, h }),
                    None => out.push(Action::Send(sm_failed("bad-request"))),
                }
            }
            ("r", _) if self.sm.is_some() => {
                let h = self.sm.as_ref().map_or(0, |sm| sm.inbound);
                out.push(Action::Send(
                    Element::builder("a", ns::SM)
                        .attr(n("h"), h.to_string())
                        .build(),
                ));
            }
            ("a", _) if self.sm.is_some() => {
                let sm = self.sm.as_mut().expect("checked");
                match element.attr("h").and_then(|h| h.parse().ok()) {
                    Some(h) => sm.acknowledge(h),
                    None => out.push(Action::Close(Some(StreamError::BadFormat))),
                }
            }
            _ => out.push(Action::Send(sm_failed("unexpected-request"))),
        }
    }

    /// A stanza from the client: counted when stream management is on.
    pub(super) fn count_inbound(&mut self) {
        if let Some(sm) = self.sm.as_mut() {
            sm.inbound = sm.inbound.wrapping_add(1);
        }
    }

    /// A stanza routed to this session: counted and queued for acknowledgement when stream
    /// management is on.
    pub fn deliver(&mut self, stanza: Element, out: &mut Vec<Action>) {
        if let Some(sm) = self.sm.as_mut() {
            sm.outbound = sm.outbound.wrapping_add(1);
            sm.unacked.push_back(stanza.clone());
            if sm.unacked.len() > self.config.max_unacked {
                out.push(Action::Close(Some(StreamError::ResourceConstraint)));
                return;
            }
        }
        out.push(Action::Send(stanza));
    }

    /// After a batch of deliveries: ask the client to acknowledge what it has.
    pub fn request_ack(&mut self, out: &mut Vec<Action>) {
        if let Some(sm) = self.sm.as_mut()
            && sm.unacked.len() >= ACK_EVERY
            && !sm.ack_requested
        {
            sm.ack_requested = true;
            out.push(Action::Send(Element::bare("r", ns::SM)));
        }
    }

    /// The connection dropped without a closing handshake: hand over the bound session and
    /// its stream management state for resumption (`None` if there is nothing to resume).
    pub fn detach(&mut self) -> Option<Detached> {
        let Phase::Bound { login, jid } = std::mem::replace(&mut self.phase, Phase::Negotiating)
        else {
            return None;
        };
        let sm = self.sm.take()?;
        Some(Detached { jid, login, sm })
    }

    /// Takes over a detached session after `<resume h/>`: resends what the client has not
    /// seen, then what was queued for it meanwhile.
    pub fn resume(&mut self, resumption: Resumption, h: u32, out: &mut Vec<Action>) {
        let Resumption {
            mut detached,
            queued,
        } = resumption;
        detached.sm.acknowledge(h);
        let resumed = Element::builder("resumed", ns::SM)
            .attr(n("previd"), detached.sm.id.as_str())
            .attr(n("h"), detached.sm.inbound.to_string())
            .build();
        out.push(Action::Send(resumed));
        for stanza in &detached.sm.unacked {
            out.push(Action::Send(stanza.clone()));
        }
        self.phase = Phase::Bound {
            login: detached.login,
            jid: detached.jid,
        };
        self.sm = Some(detached.sm);
        for stanza in queued {
            self.deliver(stanza, out);
        }
        self.request_ack(out);
    }

    /// `<resume/>` named no session we could resume.
    pub fn resume_failed(&self, out: &mut Vec<Action>) {
        out.push(Action::Send(sm_failed("item-not-found")));
    }
}

fn sm_failed(condition: &str) -> Element {
    Element::builder("failed", ns::SM)
        .append(Element::bare(condition, ns::STANZAS))
        .build()
}
