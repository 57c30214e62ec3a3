//! Stanza routing between client sessions, internal entities, the server itself and the
//! MUC service. Sans-IO: callers pass in stanzas whose `from` they have authenticated and
//! receive the deliveries to make.

use std::collections::{HashMap, HashSet};

use jid::{BareJid, Jid};
use minidom::Element;

use crate::muc::Muc;
use crate::stanza::{self, StanzaError, error_reply, iq_result, iq_result_with, ns};

/// One stanza to hand to the session or internal entity at `to`.
#[derive(Debug)]
pub struct Delivery {
    pub to: Jid,
    pub stanza: Element,
}

/// The domains derived from the one configured domain (Jitsi's layout).
#[derive(Debug, Clone)]
pub struct Domains {
    /// Accounts, and anonymous logins from the default web client.
    pub main: String,
    /// Anonymous guests.
    pub guest: String,
    /// Internal entities (the focus's account).
    pub auth: String,
    /// The MUC service.
    pub conference: String,
    /// The focus component.
    pub focus: String,
}

impl Domains {
    pub fn new(domain: &str) -> Self {
        Self {
            main: domain.to_owned(),
            guest: format!("guest.{domain}"),
            auth: format!("auth.{domain}"),
            conference: format!("conference.{domain}"),
            focus: format!("focus.{domain}"),
        }
    }

    /// Domains a client may connect to (the stream's `to`).
    pub fn is_client_host(&self, host: &str) -> bool {
        host == self.main || host == self.guest || host == self.auth
    }

    fn is_server_host(&self, host: &str) -> bool {
        self.is_client_host(host) || host == self.focus
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BindError {
    #[error("resource already bound")]
    Conflict,
}

pub struct Router {
    domains: Domains,
    /// Bound client resources per account.
    sessions: HashMap<BareJid, HashSet<String>>,
    /// Addresses of in-process entities (the focus).
    internal: HashSet<Jid>,
    muc: Muc,
}

impl Router {
    pub fn new(domains: Domains) -> Self {
        let muc = Muc::new(domains.conference.clone());
        Self {
            domains,
            sessions: HashMap::new(),
            internal: HashSet::new(),
            muc,
        }
    }

    pub fn domains(&self) -> &Domains {
        &self.domains
    }

    pub fn room_count(&self) -> usize {
        self.muc.room_count()
    }

    pub fn attach_internal(&mut self, addresses: &[Jid]) {
        self.internal.extend(addresses.iter().cloned());
    }

    pub fn is_bound(&self, jid: &Jid) -> bool {
        self.internal.contains(jid) || self.session_exists(jid)
    }

    fn session_exists(&self, jid: &Jid) -> bool {
        jid.resource().is_some_and(|r| {
            self.sessions
                .get(&jid.to_bare())
                .is_some_and(|set| set.contains(r.as_str()))
        })
    }

    /// Registers a client resource; fails if it is already bound.
    pub fn bind(&mut self, jid: &Jid) -> Result<(), BindError> {
        let resource = jid
            .resource()
            .ok_or(BindError::Conflict)?
            .as_str()
            .to_owned();
        if !self
            .sessions
            .entry(jid.to_bare())
            .or_default()
            .insert(resource)
        {
            return Err(BindError::Conflict);
        }
        Ok(())
    }

    /// A session ended: it leaves its rooms.
    pub fn unbind(&mut self, jid: &Jid, out: &mut Vec<Delivery>) {
        let bare = jid.to_bare();
        if let (Some(set), Some(resource)) = (self.sessions.get_mut(&bare), jid.resource()) {
            set.remove(resource.as_str());
            if set.is_empty() {
                self.sessions.remove(&bare);
            }
        }
        self.muc.disconnect(jid, out);
    }

    /// Routes a stanza sent by `from` (a bound session or an internal entity).
    pub fn route(&mut self, from: &Jid, mut stanza: Element, out: &mut Vec<Delivery>) {
        stanza::set_attr(&mut stanza, "from", from.to_string());
        let to = match stanza::jid_attr(&stanza, "to") {
            Ok(Some(to)) => to,
            Ok(None) => Jid::new(&self.domains.main).expect("configured domain is a valid JID"),
            Err(_) => {
                reply(error_reply(&stanza, StanzaError::BadRequest), out);
                return;
            }
        };
        if self.internal.contains(&to) {
            out.push(Delivery { to, stanza });
            return;
        }
        let trusted = self.internal.contains(from);
        if to.domain().as_str() == self.domains.conference {
            self.muc.handle(from, &to, trusted, stanza, out);
            return;
        }
        if to.node().is_none() && self.domains.is_server_host(to.domain().as_str()) {
            self.to_server(stanza, out);
            return;
        }
        self.to_client(&to, stanza, out);
    }

    fn to_client(&self, to: &Jid, stanza: Element, out: &mut Vec<Delivery>) {
        let resources = self.sessions.get(&to.to_bare());
        if self.session_exists(to) {
            out.push(Delivery {
                to: to.clone(),
                stanza,
            });
            return;
        }
        match (stanza.name(), to.resource(), resources) {
            // A message to an account goes to all of its resources (RFC 6121 §8.5.2).
            ("message", _, Some(resources)) if !resources.is_empty() => {
                for resource in resources {
                    if let Ok(full) = to.to_bare().with_resource_str(resource) {
                        out.push(Delivery {
                            to: full.into(),
                            stanza: stanza.clone(),
                        });
                    }
                }
            }
            // Presence to someone absent is dropped silently (RFC 6121 §8.5.2.2).
            ("presence", _, _) => {}
            // The server answers iq on behalf of an account's bare JID (RFC 6120 §10.5.3).
            ("iq", None, Some(_)) => self.to_server(stanza, out),
            _ => reply(error_reply(&stanza, StanzaError::ServiceUnavailable), out),
        }
    }

    /// Stanzas for the server itself: disco#info, ping, and errors for the rest.
    fn to_server(&self, stanza: Element, out: &mut Vec<Delivery>) {
        if stanza.name() != "iq" || !matches!(stanza.attr("type"), Some("get") | Some("set")) {
            if stanza.name() != "presence" && stanza.name() != "iq" {
                reply(error_reply(&stanza, StanzaError::ServiceUnavailable), out);
            }
            return;
        }
        let namespace = stanza::payload(&stanza)
            .map(Element::ns)
            .unwrap_or_default();
        let getting = stanza.attr("type") == Some("get");
        let answer = match namespace.as_str() {
            ns::PING if getting => iq_result(&stanza),
            ns::DISCO_INFO if getting => {
                let is_host = stanza
                    .attr("to")
                    .is_none_or(|to| Jid::new(to).is_ok_and(|to| to.node().is_none()));
                let info = if is_host {
                    stanza::disco_info(
                        &[
                            ("server", "im", "Convene"),
                            ("conference", "text", &self.domains.conference),
                        ],
                        &[ns::DISCO_INFO, ns::DISCO_ITEMS, ns::PING, ns::SM, ns::MUC],
                    )
                } else {
                    stanza::disco_info(
                        &[("account", "registered", "")],
                        &[ns::DISCO_INFO, ns::PING],
                    )
                };
                iq_result_with(&stanza, Some(info))
            }
            ns::DISCO_ITEMS if getting => {
                let mut items = Element::bare("query", ns::DISCO_ITEMS);
                items.append_child(
                    Element::builder("item", ns::DISCO_ITEMS)
                        .attr(stanza::n("jid"), self.domains.conference.as_str())
                        .build(),
                );
                iq_result_with(&stanza, Some(items))
            }
            _ => {
                reply(error_reply(&stanza, StanzaError::ServiceUnavailable), out);
                return;
            }
        };
        reply(Some(answer), out);
    }
}

fn reply(answer: Option<Element>, out: &mut Vec<Delivery>) {
    if let Some(answer) = answer
        && let Some(to) = answer.attr("to").and_then(|t| Jid::new(t).ok())
    {
        out.push(Delivery { to, stanza: answer });
    }
}
