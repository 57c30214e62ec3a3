//! The authentication phase of a stream: SASL `<auth/>`, challenges and responses, the
//! lookups a mechanism asks the shell for, and the identity success yields.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use jid::Jid;
use minidom::Element;

use super::{Action, Login, Phase, Session, StreamError, TokenAuth, anonymous_node};
use crate::auth::{self, Answer, Lookup};
use crate::ldap::DirectoryUser;
use crate::sasl::{self, Exchange, Mechanism, Step};
use crate::stanza::ns;
use crate::token::{Grant, TokenError};

impl Session {
    pub(super) fn auth(&mut self, element: &Element, out: &mut Vec<Action>) {
        if !matches!(self.phase, Phase::Negotiating) {
            out.push(Action::Close(Some(StreamError::PolicyViolation)));
            return;
        }
        let name = element.attr("mechanism").unwrap_or_default();
        let Some(mechanism) =
            Mechanism::parse(name).filter(|_| self.offered_mechanisms().contains(&name))
        else {
            let condition = if name == "PLAIN" {
                sasl::Failure::EncryptionRequired
            } else {
                sasl::Failure::InvalidMechanism
            };
            out.push(Action::Send(sasl_failure(condition)));
            return;
        };
        let Some(initial) = decode_sasl(&element.text()) else {
            out.push(Action::Send(sasl_failure(sasl::Failure::MalformedRequest)));
            return;
        };
        let (exchange, step) = Exchange::start(mechanism, &initial, self.config.directory);
        self.sasl = Some(exchange);
        self.sasl_step(step, out);
    }

    pub(super) fn sasl_response(&mut self, element: &Element, out: &mut Vec<Action>) {
        let (Some(exchange), Some(response)) = (self.sasl.as_mut(), decode_sasl(&element.text()))
        else {
            out.push(Action::Send(sasl_failure(sasl::Failure::MalformedRequest)));
            return;
        };
        let step = exchange.respond(&response);
        self.sasl_step(step, out);
    }

    pub(super) fn sasl_abort(&mut self, out: &mut Vec<Action>) {
        self.sasl = None;
        self.token_pending = None;
        out.push(Action::Send(sasl_failure(sasl::Failure::Aborted)));
    }

    /// The answer to the [`Action::Lookup`] the SASL exchange asked for.
    pub fn answer(&mut self, answer: Answer, out: &mut Vec<Action>) {
        if let Answer::Token(result) = answer {
            self.token_answer(result, out);
            return;
        }
        let Some(exchange) = self.sasl.as_mut() else {
            return; // aborted meanwhile
        };
        let step = exchange.answer(answer, &mut self.rng);
        self.sasl_step(step, out);
    }

    fn sasl_step(&mut self, step: Step, out: &mut Vec<Action>) {
        match step {
            Step::Challenge(data) => {
                out.push(Action::Send(
                    Element::builder("challenge", ns::SASL)
                        .append(BASE64.encode(data))
                        .build(),
                ));
            }
            Step::Lookup(lookup) => out.push(Action::Lookup(lookup)),
            Step::Failure {
                condition,
                username,
            } => {
                self.sasl = None;
                out.push(Action::AuthFailed { username });
                out.push(Action::Send(sasl_failure(condition)));
            }
            Step::Success {
                username,
                data,
                directory,
            } => {
                self.sasl = None;
                if username.is_none() && self.token_login() {
                    match self.config.token.clone() {
                        Some(token) => {
                            self.token_pending = Some(data);
                            out.push(Action::Lookup(Lookup::Token(token)));
                        }
                        None if self.config.token_auth == TokenAuth::Required => {
                            self.refuse_token(&TokenError::Required, out);
                        }
                        None => self.succeed(None, data, Vouched::Sasl, out),
                    }
                    return;
                }
                let vouched = directory.map_or(Vouched::Sasl, Vouched::Directory);
                self.succeed(username, data, vouched, out);
            }
        }
    }

    /// An anonymous login on the main domain is a token login while tokens are on.
    fn token_login(&self) -> bool {
        self.config.token_auth != TokenAuth::Off
            && self.host.as_deref() == Some(self.domains.main.as_str())
    }

    fn token_answer(&mut self, result: Result<Grant, TokenError>, out: &mut Vec<Action>) {
        let Some(data) = self.token_pending.take() else {
            return; // no token login under way
        };
        match result {
            Ok(grant) => self.succeed(None, data, Vouched::Token(grant), out),
            Err(error) => self.refuse_token(&error, out),
        }
    }

    /// The shape the Jitsi clients read the reason from: `<not-allowed/>` and a `<text>`.
    fn refuse_token(&mut self, error: &TokenError, out: &mut Vec<Action>) {
        tracing::debug!("token refused: {error}");
        out.push(Action::AuthFailed { username: None });
        let mut failure = sasl_failure(sasl::Failure::NotAllowed);
        failure.append_child(
            Element::builder("text", ns::SASL)
                .append(error.to_string())
                .build(),
        );
        out.push(Action::Send(failure));
    }

    fn succeed(
        &mut self,
        username: Option<String>,
        data: Vec<u8>,
        vouched: Vouched,
        out: &mut Vec<Action>,
    ) {
        let host = self.host.take().expect("streams are open before SASL");
        let node = username
            .clone()
            .unwrap_or_else(|| anonymous_node(&mut self.rng));
        // Accounts live on the main domain, anonymous sessions on the host they chose.
        let domain = if username.is_some() && host != self.domains.auth {
            self.domains.main.clone()
        } else {
            host
        };
        let Ok(bare) = Jid::new(&format!("{node}@{domain}")) else {
            out.push(Action::Send(sasl_failure(sasl::Failure::NotAuthorized)));
            return;
        };
        let text = if data.is_empty() {
            String::new()
        } else {
            BASE64.encode(data)
        };
        out.push(Action::Send(
            Element::builder("success", ns::SASL).append(text).build(),
        ));
        let login = Login {
            username,
            token: matches!(vouched, Vouched::Token(_)),
        };
        out.push(Action::Authenticated(login.clone()));
        out.push(Action::Restart);
        let policy = self.config.moderator;
        let identity = match vouched {
            Vouched::Token(grant) => auth::token_identity(bare, grant, policy),
            Vouched::Directory(user) => auth::directory_identity(bare, user, policy),
            Vouched::Sasl => auth::sasl_identity(bare, login.username.as_deref(), policy),
        };
        self.phase = Phase::Authenticated { identity, login };
    }
}

/// Who vouches for a successful login beyond the SASL exchange itself.
enum Vouched {
    /// The exchange alone: a local account or a guest.
    Sasl,
    Token(Grant),
    Directory(DirectoryUser),
}

fn sasl_failure(condition: sasl::Failure) -> Element {
    Element::builder("failure", ns::SASL)
        .append(Element::bare(condition.condition(), ns::SASL))
        .build()
}

/// SASL payloads are base64; `=` stands for an empty initial response.
pub fn decode_sasl(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.is_empty() || text == "=" {
        return Some(Vec::new());
    }
    BASE64.decode(text).ok()
}
