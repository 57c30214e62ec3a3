//! Jitsi tokens end to end: the verifier's key sources (a key server on loopback, a folder,
//! a JWKS; a key server that is down or silent), then WebSocket logins with `?token=` by
//! `tests/peers/auth_scenarios.py` (the `websockets` library), HS256, RS256 and ES256,
//! each joining the room its token allows and refused another.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use common::{DataDir, run_peer_script, start_server};
use convene_xmpp::auth::AuthConfig;
use convene_xmpp::token::{Secret, TokenConfig, TokenError, TokenVerifier};
use convene_xmpp::{Config, XmppServer};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const DOMAIN: &str = "convene.test";
const SECRET: &str = "s3cret shared with the integration";

/// Signing keys and the key server that publishes their public halves.
struct Keys {
    rsa: rcgen::KeyPair,
    ec: rcgen::KeyPair,
    server: SocketAddr,
    fetches: Arc<AtomicUsize>,
}

/// The key server's files (name, PEM) and its count of requests.
type KeyFiles = (Arc<Vec<(String, String)>>, Arc<AtomicUsize>);

const RSA_KID: &str = "vpaas-magic-cookie-1234/4f4910";
const EC_KID: &str = "ec-key-1";

fn kid_file(kid: &str) -> String {
    let digest = Sha256::digest(kid.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.pem")
}

/// The EC key as a JWK (`x`, `y` from the uncompressed point).
fn ec_jwk(ec: &rcgen::KeyPair) -> Value {
    let point = ec.public_key_raw();
    json!({"kty": "EC", "crv": "P-256", "kid": EC_KID, "alg": "ES256", "use": "sig",
        "x": BASE64URL.encode(&point[1..33]), "y": BASE64URL.encode(&point[33..65])})
}

async fn key_server() -> Keys {
    let rsa = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let files = Arc::new(vec![
        (kid_file(RSA_KID), rsa.public_key_pem()),
        (kid_file(EC_KID), ec.public_key_pem()),
    ]);
    let jwks = json!({"keys": [ec_jwk(&ec)]}).to_string();
    let fetches = Arc::new(AtomicUsize::new(0));
    let state = (files, fetches.clone());
    let app = axum::Router::new()
        .route(
            "/asap/{file}",
            get(
                |State((files, fetches)): State<KeyFiles>, Path(file): Path<String>| async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    files
                        .iter()
                        .find(|(name, _)| *name == file)
                        .map(|(_, pem)| (StatusCode::OK, pem.clone()))
                        .unwrap_or((StatusCode::NOT_FOUND, String::new()))
                },
            ),
        )
        .route("/jwks.json", get(move || async move { jwks }))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Keys {
        rsa,
        ec,
        server,
        fetches,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(room: &str, name: &str) -> Value {
    json!({"iss": "my_app", "aud": "jitsi", "sub": DOMAIN, "room": room,
        "iat": now(), "exp": now() + 600,
        "context": {"user": {"id": name.to_lowercase(), "name": name}}})
}

fn hs256(claims: &Value, secret: &str) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn signed(alg: Algorithm, kid: &str, key: &rcgen::KeyPair, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    let pem = key.serialize_pem();
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    };
    encode(&header, claims, &key.unwrap()).unwrap()
}

fn token_config(keys: &Keys) -> TokenConfig {
    TokenConfig {
        enabled: true,
        app_id: "my_app".into(),
        app_secret: Secret(SECRET.into()),
        key_server: format!("http://{}/asap", keys.server),
        key_fetch_timeout_ms: 1000,
        ..TokenConfig::default()
    }
}

#[tokio::test]
async fn public_keys_come_from_the_key_server_once() {
    let keys = key_server().await;
    let verifier = TokenVerifier::new(&token_config(&keys)).unwrap();
    let token = signed(Algorithm::RS256, RSA_KID, &keys.rsa, &claims("a", "Ann"));
    for _ in 0..3 {
        let grant = verifier.verify(&token).await.unwrap();
        assert_eq!(grant.user.name.as_deref(), Some("Ann"));
    }
    assert_eq!(
        keys.fetches.load(Ordering::SeqCst),
        1,
        "cached after the first"
    );
    let es = signed(Algorithm::ES256, EC_KID, &keys.ec, &claims("a", "Eve"));
    assert!(verifier.verify(&es).await.is_ok());

    let unknown = signed(
        Algorithm::RS256,
        "no-such-kid",
        &keys.rsa,
        &claims("a", "Ann"),
    );
    let error = verifier.verify(&unknown).await.unwrap_err();
    assert!(
        matches!(&error, TokenError::KeyUnavailable { detail } if detail.contains("404")),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "could not obtain public key");
    // The RSA key under the EC key's kid: of the wrong family.
    let mismatched = signed(Algorithm::RS256, EC_KID, &keys.rsa, &claims("a", "Ann"));
    assert!(matches!(
        verifier.verify(&mismatched).await,
        Err(TokenError::KeyUnavailable { .. })
    ));
    let no_kid = encode(
        &Header::new(Algorithm::RS256),
        &claims("a", "Ann"),
        &EncodingKey::from_rsa_pem(keys.rsa.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(verifier.verify(&no_kid).await, Err(TokenError::KidMissing));
}

#[tokio::test]
async fn keys_from_a_folder_and_from_a_jwks() {
    let keys = key_server().await;
    let folder = DataDir::new();
    std::fs::write(
        folder.path().join(kid_file(RSA_KID)),
        keys.rsa.public_key_pem(),
    )
    .unwrap();
    let config = TokenConfig {
        key_server: String::new(),
        key_folder: Some(folder.path().to_owned()),
        jwks_url: format!("http://{}/jwks.json", keys.server),
        ..token_config(&keys)
    };
    let verifier = TokenVerifier::new(&config).unwrap();
    let rs = signed(Algorithm::RS256, RSA_KID, &keys.rsa, &claims("a", "Ann"));
    assert!(verifier.verify(&rs).await.is_ok(), "from the folder");
    let es = signed(Algorithm::ES256, EC_KID, &keys.ec, &claims("a", "Eve"));
    assert!(verifier.verify(&es).await.is_ok(), "from the JWKS");
    let traversal = signed(
        Algorithm::RS256,
        "../../etc/passwd",
        &keys.rsa,
        &claims("a", "A"),
    );
    assert!(matches!(
        verifier.verify(&traversal).await,
        Err(TokenError::KeyUnavailable { .. })
    ));
    assert_eq!(
        keys.fetches.load(Ordering::SeqCst),
        0,
        "no key server asked"
    );
}

#[tokio::test]
async fn a_key_server_that_is_down_or_silent_is_a_clear_error_within_seconds() {
    let keys = key_server().await;
    // Nothing listens: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let token = signed(Algorithm::RS256, RSA_KID, &keys.rsa, &claims("a", "Ann"));
    for (addr, what) in [(closed_addr, "cannot connect"), (silent_addr, "timed out")] {
        let config = TokenConfig {
            key_server: format!("http://{addr}/asap"),
            ..token_config(&keys)
        };
        let verifier = TokenVerifier::new(&config).unwrap();
        let started = Instant::now();
        let error = verifier.verify(&token).await.unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{what}: took {took:?}");
        match &error {
            TokenError::KeyUnavailable { detail } => {
                assert!(detail.contains(what), "{detail}");
                assert!(detail.contains(&addr.to_string()), "{detail}");
            }
            other => panic!("{what}: {other:?}"),
        }
        println!("key server {what}: refused after {took:?}");
    }
}

#[test]
fn configurations_that_cannot_work_are_refused_at_start() {
    let none = TokenConfig {
        enabled: true,
        ..TokenConfig::default()
    };
    assert!(TokenVerifier::new(&none).is_err(), "no key at all");
    let bad_url = TokenConfig {
        key_server: "keys.example/asap".into(),
        ..none.clone()
    };
    assert!(TokenVerifier::new(&bad_url).is_err());
    let secret = TokenConfig {
        app_secret: Secret("x".into()),
        ..none
    };
    assert!(
        !format!("{secret:?}").contains("\"x\""),
        "the secret is never printed"
    );
}

struct Running {
    _server: XmppServer,
    ws_addr: SocketAddr,
    _data_dir: DataDir,
}

async fn start(token: TokenConfig) -> Running {
    let data_dir = DataDir::new();
    let config = Config {
        auth: AuthConfig {
            token,
            ..AuthConfig::default()
        },
        ..Config::default()
    };
    let server = start_server(DOMAIN, &data_dir, config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = listener.local_addr().unwrap();
    let app = server
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Running {
        _server: server,
        ws_addr,
        _data_dir: data_dir,
    }
}

fn case(name: &str, token: String, expect: &str, user: &str) -> Value {
    json!({"name": name, "token": token, "expect": expect, "user": user,
        "allowed": format!("standup@conference.{DOMAIN}"),
        "denied": format!("other@conference.{DOMAIN}")})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_logins_with_tokens_join_only_their_room() {
    let keys = key_server().await;
    let running = start(token_config(&keys)).await;
    let good = |name: &str| claims("standup", name);
    let mut expired = good("Mallory");
    expired["exp"] = json!(now() - 30);
    expired.as_object_mut().unwrap().remove("iat");
    let cases = json!([
        case("hs256", hs256(&good("Alice"), SECRET), "ok", "Alice"),
        case(
            "rs256",
            signed(Algorithm::RS256, RSA_KID, &keys.rsa, &good("Bob")),
            "ok",
            "Bob"
        ),
        case(
            "es256",
            signed(Algorithm::ES256, EC_KID, &keys.ec, &good("Eve")),
            "ok",
            "Eve"
        ),
        case(
            "wrong-secret",
            hs256(&good("Mallory"), "guessed"),
            "Invalid signature",
            ""
        ),
        case(
            "expired",
            hs256(&expired, SECRET),
            "Not acceptable by exp (3",
            ""
        ),
        case(
            "alg-none",
            format!(
                "{}.{}.",
                BASE64URL.encode(r#"{"alg":"none","typ":"JWT"}"#),
                BASE64URL.encode(good("Mallory").to_string())
            ),
            "Invalid or incorrect alg",
            ""
        ),
        case(
            "unknown-kid",
            signed(Algorithm::RS256, "unknown", &keys.rsa, &good("M")),
            "could not obtain public key",
            ""
        ),
        case("malformed", "not.a-token".into(), "Invalid token", ""),
        case(
            "too-large",
            "x".repeat(20_000),
            "token too large (20000 bytes, at most 8192)",
            ""
        ),
    ]);
    run_peer(&running, &cases).await;
}

async fn run_peer(running: &Running, cases: &Value) {
    let dir = DataDir::new();
    let file = dir.path().join("cases.json");
    std::fs::write(&file, cases.to_string()).unwrap();
    let args = [
        format!("ws=ws://{}/xmpp-websocket", running.ws_addr),
        format!("domain={DOMAIN}"),
        format!("cases={}", file.display()),
    ];
    let stdout = run_peer_script("auth_scenarios.py", "tokens", &args).await;
    println!("{stdout}");
}
