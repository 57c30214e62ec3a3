//! Resource binding (RFC 6120 §7): the session asks for a JID, the hub decides whether it
//! is free (a live session keeps its resource, a detached one gives way), and the answer
//! comes back through [`Session::bind_result`].

use jid::Jid;
use minidom::Element;

use super::{Action, Phase, Session, random_hex};
use crate::identity::Identity;
use crate::router::BindError;
use crate::stanza::{self, StanzaError, iq_result_with, ns};

impl Session {
    /// A stanza before binding: a bind request, the legacy session element, or an error.
    pub(super) fn bind(&mut self, stanza: Element, out: &mut Vec<Action>) {
        let Phase::Authenticated { identity, login } = &self.phase else {
            self.reply_error(&stanza, StanzaError::NotAuthorized, out);
            return;
        };
        let Some(bind) = stanza
            .get_child("bind", ns::BIND)
            .filter(|_| stanza.attr("type") == Some("set"))
        else {
            // Only session establishment is allowed before binding.
            if stanza.name() == "iq" && stanza.get_child("session", ns::SESSION).is_some() {
                out.push(Action::Send(iq_result_with(&stanza, None)));
            } else {
                self.reply_error(&stanza, StanzaError::NotAuthorized, out);
            }
            return;
        };
        let requested = bind
            .get_child("resource", ns::BIND)
            .map(Element::text)
            .filter(|r| !r.is_empty());
        let resource = requested.unwrap_or_else(|| random_hex(&mut self.rng, 6));
        let Ok(jid) = Jid::new(&format!("{}/{resource}", identity.jid)) else {
            self.reply_error(&stanza, StanzaError::BadRequest, out);
            return;
        };
        let identity = Identity {
            jid,
            web_room: self.config.web_room.clone(),
            ..identity.clone()
        };
        out.push(Action::Bind(identity.clone()));
        self.phase = Phase::Binding {
            login: login.clone(),
            identity,
            request: stanza,
        };
    }

    /// The hub's answer to [`Action::Bind`].
    pub fn bind_result(&mut self, result: Result<(), BindError>, out: &mut Vec<Action>) {
        let Phase::Binding {
            login,
            mut identity,
            request,
        } = std::mem::replace(&mut self.phase, Phase::Negotiating)
        else {
            return;
        };
        if result.is_err() {
            // Back to before the request: the client may ask for another resource.
            identity.jid = identity.jid.to_bare().into();
            self.phase = Phase::Authenticated { identity, login };
            self.reply_error(&request, StanzaError::Conflict, out);
            return;
        }
        let jid = identity.jid;
        let answer = Element::builder("bind", ns::BIND)
            .append(
                Element::builder("jid", ns::BIND)
                    .append(jid.to_string())
                    .build(),
            )
            .build();
        let mut reply = iq_result_with(&request, Some(answer));
        stanza::remove_attr(&mut reply, "from");
        out.push(Action::Send(reply));
        self.phase = Phase::Bound { login, jid };
    }
}
