//! `muc#owner` (XEP-0045 §10): the room configuration form, submitting it, and destroying
//! the room.

use minidom::Element;

use super::room::{Notice, Room, Status, status_element};
use crate::stanza::{Delivery, n, ns};

const ROOMCONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";

impl Room {
    pub(super) fn config_form(&self) -> Element {
        let bool_text = |b: bool| if b { "1" } else { "0" };
        let mut query = Element::builder("query", ns::MUC_OWNER).build();
        query.append_child(data_form(
            "form",
            ROOMCONFIG,
            &[
                (
                    "muc#roomconfig_roomsecret",
                    "text-private",
                    self.password.as_deref().unwrap_or_default(),
                ),
                (
                    "muc#roomconfig_passwordprotectedroom",
                    "boolean",
                    bool_text(self.password.is_some()),
                ),
                (
                    "muc#roomconfig_membersonly",
                    "boolean",
                    bool_text(self.members_only),
                ),
                ("muc#roomconfig_whois", "list-single", "anyone"),
                ("muc#roomconfig_persistentroom", "boolean", "0"),
            ],
        ));
        query
    }

    /// Applies a submitted configuration form and announces the change.
    pub(super) fn configure(&mut self, query: &Element, out: &mut Vec<Delivery>) {
        let Some(form) = query.get_child("x", ns::DATA_FORMS) else {
            return;
        };
        if form.attr("type") != Some("submit") {
            return;
        }
        let field = |var: &str| {
            form.children()
                .find(|f| f.is("field", ns::DATA_FORMS) && f.attr("var") == Some(var))
                .map(|f| {
                    f.get_child("value", ns::DATA_FORMS)
                        .map(Element::text)
                        .unwrap_or_default()
                })
        };
        let truthy = |v: &str| v == "1" || v == "true";
        if let Some(secret) = field("muc#roomconfig_roomsecret") {
            self.password = (!secret.is_empty()).then_some(secret);
        }
        if field("muc#roomconfig_passwordprotectedroom").is_some_and(|v| !truthy(&v)) {
            self.password = None;
        }
        if let Some(members_only) = field("muc#roomconfig_membersonly") {
            self.members_only = truthy(&members_only);
        }
        // Clients re-read the room's disco#info when told the configuration changed.
        for occupant in &self.occupants {
            let notice = Element::builder("message", ns::CLIENT)
                .attr(n("type"), "groupchat")
                .attr(n("from"), self.jid.to_string())
                .attr(n("to"), occupant.real.to_string())
                .append(
                    Element::builder("x", ns::MUC_USER)
                        .append(status_element(Status::ConfigChanged))
                        .build(),
                )
                .build();
            out.push(Delivery {
                to: occupant.real.clone(),
                stanza: notice,
            });
        }
    }

    /// Tells every occupant the room is gone (for `reason`, if not empty) and removes them;
    /// the caller drops the room.
    pub(super) fn destroy(&mut self, reason: &str, out: &mut Vec<Delivery>) {
        let notice = Notice {
            destroy: Some(reason),
            ..Notice::default()
        };
        while !self.occupants.is_empty() {
            self.remove_occupant(self.occupants.len() - 1, &notice, out);
        }
    }
}

/// A data form (XEP-0004) of `kind` (`form`, `result`) from `(var, type, value)` fields.
pub(super) fn data_form(kind: &str, form_type: &str, fields: &[(&str, &str, &str)]) -> Element {
    let field = |var: &str, kind: &str, value: &str| {
        Element::builder("field", ns::DATA_FORMS)
            .attr(n("var"), var)
            .attr(n("type"), kind)
            .append(
                Element::builder("value", ns::DATA_FORMS)
                    .append(value)
                    .build(),
            )
            .build()
    };
    let mut form = Element::builder("x", ns::DATA_FORMS)
        .attr(n("type"), kind)
        .append(field("FORM_TYPE", "hidden", form_type));
    for (var, kind, value) in fields {
        form = form.append(field(var, kind, value));
    }
    form.build()
}
