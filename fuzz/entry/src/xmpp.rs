//! The XMPP server's parsers: the XML guard on a TCP stream and on WebSocket frames, and
//! the SASL exchanges.

use convene_xmpp::auth::{Answer, Lookup};
use convene_xmpp::ldap::{DirectoryError, DirectoryUser};
use convene_xmpp::sasl::{Exchange, Mechanism, ScramCredentials, ScramHash, Step};
use convene_xmpp::stanza::ns;
use convene_xmpp::xml::{self, Limits, StreamEvent, StreamParser};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The limits the server applies by default.
pub(crate) fn server_limits() -> Limits {
    let config = convene_xmpp::Config::default();
    Limits {
        max_stanza_bytes: config.max_stanza_bytes,
        max_depth: config.max_depth,
    }
}

/// A c2s TCP stream: the first byte sets the size of the reads the rest arrives in (the
/// parser must reassemble any split), every completed element is serialized again as the
/// router does.
pub(crate) fn xml_stream(data: &[u8]) {
    let Some((&read_size, stream)) = data.split_first() else {
        return;
    };
    let mut parser = StreamParser::new(server_limits());
    for mut read in stream.chunks(usize::from(read_size).max(1)) {
        loop {
            match parser.next(&mut read) {
                Ok(Some(StreamEvent::Element(element) | StreamEvent::Open(element))) => {
                    xml::to_string(&element);
                }
                Ok(Some(StreamEvent::Close)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// One RFC 7395 WebSocket text frame, classified as `ws.rs` does.
pub(crate) fn ws_frame(data: &[u8]) {
    let Some(frame) = crate::text(data) else {
        return;
    };
    if let Ok(element) = xml::parse_frame(frame, server_limits()) {
        if element.is("open", ns::FRAMING) {
            let _ = (element.attr("to"), element.attr("version"));
        }
        xml::to_string(&element);
    }
}

/// The account the SASL target knows; any other name is an unknown account.
const USER: &str = "user";
const PASSWORD: &str = "pencil";

/// One SASL exchange: the first byte picks the mechanism, the rest is the client's
/// messages (initial response, then responses) separated by 0xFF, a byte that UTF-8 never
/// contains. Lookups are answered as the account store would.
pub(crate) fn sasl(data: &[u8]) {
    const MECHANISMS: [Mechanism; 4] = [
        Mechanism::Anonymous,
        Mechanism::Plain,
        Mechanism::Scram(ScramHash::Sha1),
        Mechanism::Scram(ScramHash::Sha256),
    ];
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mechanism = MECHANISMS[usize::from(pick & 0x7f) % MECHANISMS.len()];
    // The high bit: PLAIN logins without a local account go to the directory.
    let directory = pick & 0x80 != 0;
    let mut messages = rest.split(|&b| b == 0xff);
    let initial = messages.next().unwrap_or_default();
    convene_xmpp::sasl::claimed_username(mechanism, initial);
    let mut rng = StdRng::seed_from_u64(0);
    let (mut exchange, mut step) = Exchange::start(mechanism, initial, directory);
    loop {
        step = match step {
            Step::Lookup(Lookup::ScramCredentials { username, hash }) => exchange.answer(
                Answer::ScramCredentials(credentials(&username, hash)),
                &mut rng,
            ),
            // The directory as LDAP answers: [`USER`] with [`PASSWORD`] binds, nobody else.
            Step::Lookup(Lookup::Directory { username, password }) => {
                let verdict = (username == USER && password.0 == PASSWORD)
                    .then(|| DirectoryUser {
                        dn: format!("uid={username},dc=example"),
                        name: None,
                        email: None,
                        moderator: false,
                    })
                    .ok_or(DirectoryError::Refused("invalid credentials"));
                exchange.answer(Answer::Directory(verdict), &mut rng)
            }
            // Tokens are verified by the session, never asked for by a mechanism.
            Step::Lookup(Lookup::Token(_)) => return,
            // Clients may go on talking after the outcome: feed what is left.
            Step::Challenge(_) | Step::Success { .. } | Step::Failure { .. } => {
                match messages.next() {
                    Some(response) => exchange.respond(response),
                    None => return,
                }
            }
        };
    }
}

/// The stored credentials of [`USER`], with one PBKDF2 iteration: the real count would
/// spend the fuzzer's time in the hash, not in the parser.
fn credentials(username: &str, hash: ScramHash) -> Option<ScramCredentials> {
    (username == USER).then(|| ScramCredentials::derive(hash, PASSWORD, b"salt".to_vec(), 1))
}

/// The secret the `jwt` entry signs and verifies with.
const JWT_SECRET: &[u8] = b"fuzzing secret";

/// Jitsi tokens: the first byte chooses what the rest is. 0: a whole token, verified with
/// an HS256 secret (header, base64, JSON, signature); otherwise: a claims body, signed
/// here with that secret so that the claim rules (times, issuers, audiences, room,
/// context, moderator claims) run on it; then the room check on a few room addresses.
pub(crate) fn jwt(data: &[u8]) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use convene_xmpp::token::claims::{parse_header, verify};
    use hmac::Mac;

    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some(text) = crate::text(rest) else {
        return;
    };
    let token = if mode == 0 {
        text.to_owned()
    } else {
        let signed = format!(
            "{}.{}",
            B64.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            B64.encode(text)
        );
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(JWT_SECRET).expect("any key");
        mac.update(signed.as_bytes());
        format!("{signed}.{}", B64.encode(mac.finalize().into_bytes()))
    };
    let config = convene_xmpp::token::TokenConfig {
        app_id: "app".into(),
        ..Default::default()
    };
    let rules = config.rules();
    let key = jsonwebtoken::DecodingKey::from_secret(JWT_SECRET).expect("a secret");
    let Ok(header) = parse_header(&token, &rules) else {
        return;
    };
    let Ok(grant) = verify(&token, &header, &key, &rules, 1_800_000_000) else {
        return;
    };
    for room in [
        "room@conference.meet.example",
        "[tenant]room@conference.meet.example",
        "[]x@conference.meet.example",
    ] {
        grant
            .rooms
            .allows(&jid::BareJid::new(room).expect("a valid room"));
    }
}
