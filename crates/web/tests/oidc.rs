//! The OIDC sign-in's routes and `config.js` with it on: bad input is refused with a page
//! that says why, an unreachable provider gives a clear error within the timeout. The
//! whole flow against a real provider is in `tests/e2e/browser/oidc.test.js`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use convene_web::{Config, Minter, Oidc, OidcConfig, OidcUser, SignIn, router};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Signs nothing: these tests never get as far as a token.
struct Unused;

impl Minter for Unused {
    fn mint(&self, _: &OidcUser, _: &str, _: Duration) -> Result<String, String> {
        Err("not in these tests".into())
    }
}

fn sign_in() -> SignIn {
    let config = OidcConfig {
        enabled: true,
        // Nothing listens on port 1.
        issuer: "http://127.0.0.1:1".into(),
        client_id: "convene".into(),
        http_timeout_ms: 2000,
        button_label: "Sign in with Example ID".into(),
        ..OidcConfig::default()
    };
    SignIn {
        secure: true,
        password: true,
        oidc: Some(Arc::new(Oidc::new(config, Arc::new(Unused)).unwrap())),
    }
}

async fn get(uri: &str) -> (StatusCode, String) {
    let request = Request::get(uri)
        .header(header::HOST, "meet.example:8443")
        .body(Body::empty())
        .unwrap();
    let response = router("meet.example", Config::default(), sign_in())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn config_js_names_the_sign_in_and_the_guest_domain() {
    let (status, body) = get("/config.js").await;
    assert_eq!(status, StatusCode::OK);
    let object = body
        .split_once("var config = ")
        .and_then(|(_, rest)| rest.trim_end().strip_suffix(';'))
        .unwrap();
    let config: serde_json::Value = serde_json::from_str(object).unwrap();
    assert_eq!(
        config["tokenAuthUrl"],
        "http://meet.example:8443/auth/oidc/login?room={room}"
    );
    assert_eq!(config["hosts"]["anonymousdomain"], "guest.meet.example");
    assert_eq!(config["signIn"]["oidc"], "Sign in with Example ID");
    assert_eq!(config["signIn"]["password"], true);
}

#[tokio::test]
async fn bad_callbacks_are_refused_with_a_reason() {
    let (status, body) = get("/auth/oidc/callback?state=nope.nope&code=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("no sign-in is pending"), "{body}");
    let (status, body) = get("/auth/oidc/callback?code=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("malformed"), "{body}");
    let huge = "a".repeat(5000);
    let (status, body) = get(&format!("/auth/oidc/callback?state={huge}.b&code=x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("too large"), "{body}");
}

#[tokio::test]
async fn a_bad_room_or_an_unreachable_provider_is_told() {
    let (status, body) = get("/auth/oidc/login?room=no.dots").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("meeting name is not valid"), "{body}");
    let started = Instant::now();
    let (status, body) = get("/auth/oidc/login?room=standup").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.contains("provider cannot be reached"), "{body}");
    assert!(body.contains("href=\"/standup\""), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
