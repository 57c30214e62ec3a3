//! SASL server side (RFC 6120 §6): ANONYMOUS, PLAIN and SCRAM-SHA-1/-256 (RFC 5802, 7677).
//!
//! Written here rather than taken from the `sasl` crate: that crate pins an older RustCrypto
//! generation and its server API wants a callback provider shape that fits our SQLite store
//! poorly; SCRAM's server side is a page of code over `hmac`/`sha1`/`sha2`/`pbkdf2`.
//! Sans-IO: fed with the client's messages and the answers to its [`Lookup`]s, it answers
//! challenges and the outcome.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rand::Rng;
use rand::rngs::StdRng;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::{Answer, Lookup};
use crate::ldap::{DirectoryError, DirectoryUser};
use crate::token::Secret;

/// PBKDF2 iterations for new credentials (RFC 7677 recommends at least 4096).
pub const ITERATIONS: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    pub const ALL: [ScramHash; 2] = [ScramHash::Sha1, ScramHash::Sha256];

    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA-1",
            Self::Sha256 => "SHA-256",
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => {
                let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Self::Sha256 => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => Sha1::digest(data).to_vec(),
            Self::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha1 => {
                let mut out = [0u8; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            Self::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// What the server stores per account and hash: never the password itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredentials {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredentials {
    pub fn derive(hash: ScramHash, password: &str, salt: Vec<u8>, iterations: u32) -> Self {
        let salted = hash.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        Self {
            stored_key: hash.hash(&client_key),
            server_key: hash.hmac(&salted, b"Server Key"),
            salt,
            iterations,
        }
    }

    pub fn new_random(hash: ScramHash, password: &str, rng: &mut StdRng) -> Self {
        Self::derive(
            hash,
            password,
            rng.random::<[u8; 16]>().to_vec(),
            ITERATIONS,
        )
    }

    fn verify_password(&self, hash: ScramHash, password: &str) -> bool {
        let candidate = Self::derive(hash, password, self.salt.clone(), self.iterations);
        bool::from(candidate.stored_key.ct_eq(&self.stored_key))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Anonymous,
    Plain,
    Scram(ScramHash),
}

impl Mechanism {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "ANONYMOUS" => Self::Anonymous,
            "PLAIN" => Self::Plain,
            "SCRAM-SHA-1" => Self::Scram(ScramHash::Sha1),
            "SCRAM-SHA-256" => Self::Scram(ScramHash::Sha256),
            _ => return None,
        })
    }
}

/// RFC 6120 §6.5 failure conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    NotAuthorized,
    MalformedRequest,
    InvalidMechanism,
    EncryptionRequired,
    Aborted,
    /// A token was refused (Prosody's token authentication answers this, with a text).
    NotAllowed,
    /// The directory that checks the password is down or slow: try again later.
    TemporaryAuthFailure,
}

impl Failure {
    pub fn condition(self) -> &'static str {
        match self {
            Self::NotAuthorized => "not-authorized",
            Self::MalformedRequest => "malformed-request",
            Self::InvalidMechanism => "invalid-mechanism",
            Self::EncryptionRequired => "encryption-required",
            Self::Aborted => "aborted",
            Self::NotAllowed => "not-allowed",
            Self::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }
}

/// The account an `<auth/>` initial response claims (PLAIN, SCRAM), lowercased, for
/// throttling before the exchange runs.
pub fn claimed_username(mechanism: Mechanism, initial: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(initial).ok()?;
    let name = match mechanism {
        Mechanism::Anonymous => return None,
        Mechanism::Plain => text.split('\0').nth(1)?,
        Mechanism::Scram(_) => text.split(',').find_map(|a| a.strip_prefix("n="))?,
    };
    Some(name.to_lowercase())
}

#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Challenge(Vec<u8>),
    /// The mechanism needs to know something (an account's credentials) before it can go
    /// on: feed the answer to [`Exchange::answer`].
    Lookup(Lookup),
    /// Authenticated as `username` (`None`: anonymous), with optional additional data;
    /// `directory` when the directory vouched for the password.
    Success {
        username: Option<String>,
        data: Vec<u8>,
        directory: Option<DirectoryUser>,
    },
    /// `username` is set when the failure concerns a named account (for throttling).
    Failure {
        condition: Failure,
        username: Option<String>,
    },
}

enum State {
    Idle,
    /// PLAIN, waiting for the account's credentials; `directory`: a user without a local
    /// account is asked about next.
    PlainLookup {
        username: String,
        password: Secret,
        authzid_ok: bool,
        directory: bool,
    },
    /// PLAIN, waiting for the directory's verdict.
    PlainDirectory {
        username: String,
    },
    /// SCRAM, client-first message read, waiting for the account's credentials.
    ScramLookup {
        hash: ScramHash,
        username: String,
        gs2_header: String,
        client_first_bare: String,
        client_nonce: String,
    },
    /// SCRAM, after the server-first message.
    ScramSent {
        hash: ScramHash,
        username: String,
        credentials: Option<ScramCredentials>,
        gs2_header: String,
        nonce: String,
        auth_message_prefix: String,
    },
}

/// One SASL exchange.
pub struct Exchange {
    state: State,
}

fn failure(condition: Failure, username: Option<String>) -> Step {
    Step::Failure {
        condition,
        username,
    }
}

impl Exchange {
    /// Starts `mechanism` with the client's initial response (if any). With `directory`,
    /// a PLAIN login of a name that has no local account is checked against the directory.
    pub fn start(mechanism: Mechanism, initial: &[u8], directory: bool) -> (Self, Step) {
        let mut exchange = Self { state: State::Idle };
        let step = match mechanism {
            Mechanism::Anonymous => success(None, Vec::new()),
            Mechanism::Plain => exchange.plain(initial, directory),
            Mechanism::Scram(hash) => exchange.scram_first(hash, initial),
        };
        (exchange, step)
    }

    /// The answer to the [`Step::Lookup`] this exchange asked for. `rng` draws the server
    /// nonce.
    pub fn answer(&mut self, answer: Answer, rng: &mut StdRng) -> Step {
        let (credentials, state) = match (answer, std::mem::replace(&mut self.state, State::Idle)) {
            (Answer::Directory(verdict), State::PlainDirectory { username }) => {
                return directory_verdict(username, verdict);
            }
            (Answer::ScramCredentials(credentials), state) => (credentials, state),
            _ => return failure(Failure::MalformedRequest, None),
        };
        match state {
            State::PlainLookup {
                username,
                password,
                authzid_ok,
                directory,
            } => match credentials {
                None if directory && authzid_ok => {
                    self.state = State::PlainDirectory {
                        username: username.clone(),
                    };
                    Step::Lookup(Lookup::Directory { username, password })
                }
                Some(c) if authzid_ok && c.verify_password(ScramHash::Sha256, &password.0) => {
                    success(Some(username), Vec::new())
                }
                _ => failure(Failure::NotAuthorized, Some(username)),
            },
            State::ScramLookup {
                hash,
                username,
                gs2_header,
                client_first_bare,
                client_nonce,
            } => {
                // Unknown users get a plausible salt so that the exchange does not reveal them.
                let (salt, iterations) = match &credentials {
                    Some(c) => (c.salt.clone(), c.iterations),
                    None => (hash.hash(username.as_bytes())[..16].to_vec(), ITERATIONS),
                };
                let nonce = format!("{client_nonce}{}", BASE64.encode(rng.random::<[u8; 18]>()));
                let server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(&salt));
                self.state = State::ScramSent {
                    hash,
                    username,
                    credentials,
                    gs2_header,
                    nonce,
                    auth_message_prefix: format!("{client_first_bare},{server_first}"),
                };
                Step::Challenge(server_first.into_bytes())
            }
            State::Idle | State::ScramSent { .. } | State::PlainDirectory { .. } => {
                failure(Failure::MalformedRequest, None)
            }
        }
    }

    /// The client's answer to our last challenge.
    pub fn respond(&mut self, response: &[u8]) -> Step {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::ScramSent {
                hash,
                username,
                credentials,
                gs2_header,
                nonce,
                auth_message_prefix,
            } => scram_final(
                hash,
                username,
                credentials,
                &gs2_header,
                &nonce,
                &auth_message_prefix,
                response,
            ),
            State::Idle
            | State::PlainLookup { .. }
            | State::PlainDirectory { .. }
            | State::ScramLookup { .. } => failure(Failure::MalformedRequest, None),
        }
    }

    fn scram_first(&mut self, hash: ScramHash, initial: &[u8]) -> Step {
        let Ok(message) = std::str::from_utf8(initial) else {
            return failure(Failure::MalformedRequest, None);
        };
        // gs2-header: channel-binding flag, optional authzid; we offer no channel binding.
        let mut parts = message.splitn(3, ',');
        let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next())
        else {
            return failure(Failure::MalformedRequest, None);
        };
        if !(flag == "n" || flag == "y") || !(authzid.is_empty() || authzid.starts_with("a=")) {
            return failure(Failure::MalformedRequest, None);
        }
        let mut username = None;
        let mut client_nonce = None;
        for attribute in bare.split(',') {
            if let Some(value) = attribute.strip_prefix("n=") {
                username = Some(value.replace("=2C", ",").replace("=3D", "="));
            } else if let Some(value) = attribute.strip_prefix("r=") {
                client_nonce = Some(value.to_owned());
            } else if attribute.starts_with("m=") {
                return failure(Failure::MalformedRequest, None);
            }
        }
        let (Some(username), Some(client_nonce)) = (username, client_nonce) else {
            return failure(Failure::MalformedRequest, None);
        };
        let username = username.to_lowercase();
        self.state = State::ScramLookup {
            hash,
            username: username.clone(),
            gs2_header: format!("{flag},{authzid},"),
            client_first_bare: bare.to_owned(),
            client_nonce,
        };
        Step::Lookup(Lookup::ScramCredentials { username, hash })
    }

    fn plain(&mut self, initial: &[u8], directory: bool) -> Step {
        let Ok(message) = std::str::from_utf8(initial) else {
            return failure(Failure::MalformedRequest, None);
        };
        let mut parts = message.split('\0');
        let (Some(authzid), Some(username), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return failure(Failure::MalformedRequest, None);
        };
        let username = username.to_lowercase();
        let authzid_ok = authzid.is_empty() || authzid.split('@').next() == Some(username.as_str());
        self.state = State::PlainLookup {
            username: username.clone(),
            password: Secret(password.to_owned()),
            authzid_ok,
            directory,
        };
        // PLAIN is checked against the SHA-256 credentials.
        Step::Lookup(Lookup::ScramCredentials {
            username,
            hash: ScramHash::Sha256,
        })
    }
}

fn scram_final(
    hash: ScramHash,
    username: String,
    credentials: Option<ScramCredentials>,
    gs2_header: &str,
    nonce: &str,
    auth_message_prefix: &str,
    response: &[u8],
) -> Step {
    let Ok(message) = std::str::from_utf8(response) else {
        return failure(Failure::MalformedRequest, Some(username));
    };
    let Some((without_proof, proof)) = message.rsplit_once(",p=") else {
        return failure(Failure::MalformedRequest, Some(username));
    };
    let mut channel_binding = None;
    let mut final_nonce = None;
    for attribute in without_proof.split(',') {
        if let Some(value) = attribute.strip_prefix("c=") {
            channel_binding = Some(value);
        } else if let Some(value) = attribute.strip_prefix("r=") {
            final_nonce = Some(value);
        }
    }
    let expected_binding = BASE64.encode(gs2_header);
    let (Ok(proof), Some(binding), Some(final_nonce)) =
        (BASE64.decode(proof), channel_binding, final_nonce)
    else {
        return failure(Failure::MalformedRequest, Some(username));
    };
    if binding != expected_binding || final_nonce != nonce {
        return failure(Failure::NotAuthorized, Some(username));
    }
    let Some(credentials) = credentials else {
        return failure(Failure::NotAuthorized, Some(username));
    };
    let auth_message = format!("{auth_message_prefix},{without_proof}");
    let client_signature = hash.hmac(&credentials.stored_key, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return failure(Failure::NotAuthorized, Some(username));
    }
    let client_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(p, s)| p ^ s)
        .collect();
    if !bool::from(hash.hash(&client_key).ct_eq(&credentials.stored_key)) {
        return failure(Failure::NotAuthorized, Some(username));
    }
    let server_signature = hash.hmac(&credentials.server_key, auth_message.as_bytes());
    success(
        Some(username),
        format!("v={}", BASE64.encode(server_signature)).into_bytes(),
    )
}

fn success(username: Option<String>, data: Vec<u8>) -> Step {
    Step::Success {
        username,
        data,
        directory: None,
    }
}

/// A wrong password is `not-authorized` (counted for throttling like any other); a
/// directory that does not answer is `temporary-auth-failure`, which the clients show as
/// a failure to retry rather than a wrong password.
fn directory_verdict(username: String, verdict: Result<DirectoryUser, DirectoryError>) -> Step {
    match verdict {
        Ok(user) => Step::Success {
            username: Some(username),
            data: Vec::new(),
            directory: Some(user),
        },
        Err(DirectoryError::Refused(_)) => failure(Failure::NotAuthorized, Some(username)),
        Err(DirectoryError::Unavailable(_)) => {
            failure(Failure::TemporaryAuthFailure, Some(username))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    struct OneUser(ScramCredentials, ScramCredentials);

    impl OneUser {
        /// Answers what the exchange asks until it needs the client again.
        fn drive(&self, exchange: &mut Exchange, mut step: Step) -> Step {
            let mut rng = StdRng::seed_from_u64(7);
            while let Step::Lookup(Lookup::ScramCredentials { username, hash }) = &step {
                let credentials = (username == "user").then(|| match hash {
                    ScramHash::Sha1 => self.0.clone(),
                    ScramHash::Sha256 => self.1.clone(),
                });
                step = exchange.answer(Answer::ScramCredentials(credentials), &mut rng);
            }
            step
        }

        fn start(&self, mechanism: Mechanism, initial: &[u8]) -> (Exchange, Step) {
            let (mut exchange, step) = Exchange::start(mechanism, initial, false);
            let step = self.drive(&mut exchange, step);
            (exchange, step)
        }
    }

    fn store() -> OneUser {
        OneUser(
            ScramCredentials::derive(
                ScramHash::Sha1,
                "pencil",
                BASE64.decode("QSXCR+Q6sek8bf92").unwrap(),
                4096,
            ),
            ScramCredentials::new_random(
                ScramHash::Sha256,
                "pencil",
                &mut StdRng::seed_from_u64(1),
            ),
        )
    }

    /// The RFC 5802 §5 example exchange, with the server nonce replaced by ours.
    #[test]
    fn scram_sha1_rfc5802_example_proof_verifies() {
        let (mut exchange, step) = store().start(
            Mechanism::Scram(ScramHash::Sha1),
            b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        );
        let Step::Challenge(first) = step else {
            panic!("{step:?}")
        };
        let first = String::from_utf8(first).unwrap();
        assert!(first.ends_with(",s=QSXCR+Q6sek8bf92,i=4096"));
        let nonce = first.split(',').next().unwrap().strip_prefix("r=").unwrap();
        // Client side of RFC 5802, computed here from the password.
        let salted = ScramHash::Sha1.salted_password(
            b"pencil",
            &BASE64.decode("QSXCR+Q6sek8bf92").unwrap(),
            4096,
        );
        let client_key = ScramHash::Sha1.hmac(&salted, b"Client Key");
        let stored = ScramHash::Sha1.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("n=user,r=fyko+d2lbbFgONRv9qkxdawL,{first},{without_proof}");
        let signature = ScramHash::Sha1.hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let step =
            exchange.respond(format!("{without_proof},p={}", BASE64.encode(&proof)).as_bytes());
        assert!(
            matches!(step, Step::Success { username: Some(ref u), .. } if u == "user"),
            "{step:?}"
        );
    }

    #[test]
    fn scram_wrong_proof_and_unknown_user_fail_alike() {
        let lookup = store();
        for user in ["user", "nobody"] {
            let (mut exchange, step) = lookup.start(
                Mechanism::Scram(ScramHash::Sha256),
                format!("n,,n={user},r=abc").as_bytes(),
            );
            let Step::Challenge(first) = step else {
                panic!()
            };
            let nonce =
                String::from_utf8(first).unwrap().split(',').next().unwrap()[2..].to_owned();
            let step = exchange
                .respond(format!("c=biws,r={nonce},p={}", BASE64.encode([0u8; 32])).as_bytes());
            assert_eq!(step, failure(Failure::NotAuthorized, Some(user.into())));
        }
    }

    #[test]
    fn claimed_username_is_read_before_the_exchange() {
        assert_eq!(
            claimed_username(Mechanism::Plain, b"\0Bob\0pw").as_deref(),
            Some("bob")
        );
        let scram = Mechanism::Scram(ScramHash::Sha1);
        assert_eq!(
            claimed_username(scram, b"n,,n=bob,r=x").as_deref(),
            Some("bob")
        );
        assert_eq!(claimed_username(Mechanism::Anonymous, b""), None);
    }

    #[test]
    fn plain_checks_password_against_scram_credentials() {
        let lookup = store();
        let (_, ok) = lookup.start(Mechanism::Plain, b"\0user\0pencil");
        assert!(matches!(ok, Step::Success { .. }));
        let (_, bad) = lookup.start(Mechanism::Plain, b"\0user\0pen");
        assert_eq!(bad, failure(Failure::NotAuthorized, Some("user".into())));
        let (_, malformed) = lookup.start(Mechanism::Plain, b"user");
        assert_eq!(malformed, failure(Failure::MalformedRequest, None));
    }

    #[test]
    fn plain_asks_the_directory_about_names_without_a_local_account() {
        let lookup = store();
        let mut rng = StdRng::seed_from_u64(7);
        // A local account answers for itself: the directory is never asked.
        let (mut exchange, step) = Exchange::start(Mechanism::Plain, b"\0user\0pen", true);
        assert!(matches!(
            step,
            Step::Lookup(Lookup::ScramCredentials { .. })
        ));
        assert_eq!(
            lookup.drive(&mut exchange, step),
            failure(Failure::NotAuthorized, Some("user".into()))
        );
        let user = DirectoryUser {
            dn: "uid=dir,dc=example".into(),
            name: None,
            email: None,
            moderator: true,
        };
        let verdicts = [
            (Ok(user.clone()), None),
            (
                Err(DirectoryError::Refused("wrong password")),
                Some(Failure::NotAuthorized),
            ),
            (
                Err(DirectoryError::Unavailable("down".into())),
                Some(Failure::TemporaryAuthFailure),
            ),
        ];
        for (verdict, expected) in verdicts {
            let (mut exchange, step) = Exchange::start(Mechanism::Plain, b"\0Dir\0hunter2", true);
            let step = lookup.drive(&mut exchange, step);
            let Step::Lookup(Lookup::Directory { username, password }) = step else {
                panic!("{step:?}")
            };
            assert_eq!((username.as_str(), password.0.as_str()), ("dir", "hunter2"));
            assert!(!format!("{:?}", Lookup::Directory { username, password }).contains("hunter2"));
            let step = exchange.answer(Answer::Directory(verdict), &mut rng);
            match expected {
                None => assert_eq!(
                    step,
                    Step::Success {
                        username: Some("dir".into()),
                        data: Vec::new(),
                        directory: Some(user.clone())
                    }
                ),
                Some(condition) => assert_eq!(step, failure(condition, Some("dir".into()))),
            }
        }
        // Without a directory, an unknown name is simply refused.
        let (mut exchange, step) = Exchange::start(Mechanism::Plain, b"\0dir\0secret", false);
        assert_eq!(
            lookup.drive(&mut exchange, step),
            failure(Failure::NotAuthorized, Some("dir".into()))
        );
    }
}
