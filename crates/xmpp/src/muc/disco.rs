//! Service discovery (XEP-0030) of the MUC service and of its rooms.

use minidom::Element;

use super::config::data_form;
use super::room::Room;
use crate::stanza::{
    self, Delivery, StanzaError, iq_result, iq_result_with, ns, push_reply, reply_error,
};

const ROOMINFO: &str = "http://jabber.org/protocol/muc#roominfo";

/// An iq request to the service's own address.
pub(super) fn service_iq(stanza: &Element, out: &mut Vec<Delivery>) {
    let namespace = stanza::payload(stanza).map(Element::ns).unwrap_or_default();
    let reply = match namespace.as_str() {
        ns::DISCO_INFO => iq_result_with(
            stanza,
            Some(stanza::disco_info(
                &[("conference", "text", "Chatrooms")],
                &[ns::MUC, ns::DISCO_INFO],
            )),
        ),
        // Rooms are not listed: which meetings exist is nobody else's business.
        ns::DISCO_ITEMS => iq_result_with(stanza, Some(Element::bare("query", ns::DISCO_ITEMS))),
        ns::PING => iq_result(stanza),
        _ => {
            reply_error(stanza, StanzaError::ServiceUnavailable, out);
            return;
        }
    };
    push_reply(reply, out);
}

impl Room {
    pub(super) fn disco_info(&self) -> Element {
        let features = [
            ns::MUC,
            if self.password.is_some() {
                "muc_passwordprotected"
            } else {
                "muc_unsecured"
            },
            if self.members_only {
                "muc_membersonly"
            } else {
                "muc_open"
            },
            "muc_nonanonymous",
            "muc_temporary",
            "muc_unmoderated",
            "muc_hidden",
        ];
        let name = self.jid.node().map(|n| n.as_str()).unwrap_or_default();
        let mut query = stanza::disco_info(&[("conference", "text", name)], &features);
        query.append_child(data_form(
            "result",
            ROOMINFO,
            &[
                (
                    "muc#roominfo_occupants",
                    "text-single",
                    &self.occupants.len().to_string(),
                ),
                ("muc#roominfo_meetingId", "text-single", &self.meeting_id),
                // Jitsi's mod_conference_duration: the meeting timer; empty until it starts.
                (
                    "muc#roominfo_created_timestamp",
                    "text-single",
                    &self.created_ms.map(|ms| ms.to_string()).unwrap_or_default(),
                ),
                ("muc#roominfo_subject", "text-single", &self.subject),
            ],
        ));
        query
    }
}
