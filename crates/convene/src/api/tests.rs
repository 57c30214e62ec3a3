use super::*;
use axum::body::Body;
use axum::http::Request;
use jsonwebtoken::{EncodingKey, Header, encode};
use tower::ServiceExt;

const KEY: &str = "app-key";
const SECRET: &str = "api secret";
const APP_SECRET: &str = "join secret";

fn config() -> Arc<Config> {
    let mut config = Config::default();
    config.api.key = KEY.into();
    config.api.secret = Secret(SECRET.into());
    config.auth.xmpp.token.app_id = "my_app".into();
    config.auth.xmpp.token.app_secret = Secret(APP_SECRET.into());
    Arc::new(config)
}

/// A request token signed with `secret`, issued by `iss`, expiring `exp_in` seconds from now.
fn request_token(secret: &str, iss: &str, exp_in: i64) -> String {
    let now = unix_now().unwrap() as i64;
    let claims = json!({ "iss": iss, "exp": now + exp_in, "iat": now });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn call(config: Arc<Config>, auth: Option<&str>, body: &str) -> (StatusCode, Value) {
    let mut request =
        Request::post("/api/v1/tokens").header(header::CONTENT_TYPE, "application/json");
    if let Some(auth) = auth {
        request = request.header(header::AUTHORIZATION, format!("Bearer {auth}"));
    }
    let response = router(config)
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_BODY)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn mints_a_join_token_the_server_accepts() {
    let auth = request_token(SECRET, KEY, 60);
    let body = r#"{"room":"standup","name":"Alice","moderator":true,"valid_secs":120}"#;
    let (status, answer) = call(config(), Some(&auth), body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let token = answer["token"].as_str().unwrap();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["jitsi"]);
    let key = DecodingKey::from_secret(APP_SECRET.as_bytes()).unwrap();
    let claims = decode::<Value>(token, &key, &validation).unwrap().claims;
    assert_eq!(claims["iss"], "my_app");
    assert_eq!(claims["room"], "standup");
    assert_eq!(claims["context"]["user"]["name"], "Alice");
    assert_eq!(claims["context"]["user"]["moderator"], true);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        120
    );
}

#[tokio::test]
async fn refuses_missing_wrong_expired_and_long_lived_request_tokens() {
    let body = r#"{"room":"standup"}"#;
    for (auth, what) in [
        (None, "no token"),
        (Some("not.a.jwt".to_owned()), "garbage"),
        (
            Some(request_token("other secret", KEY, 60)),
            "another secret",
        ),
        (Some(request_token(SECRET, "other-key", 60)), "another key"),
        (Some(request_token(SECRET, KEY, -5)), "expired"),
        (Some(request_token(SECRET, KEY, 3600)), "lives too long"),
    ] {
        let (status, answer) = call(config(), auth.as_deref(), body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
        assert!(answer["error"].is_string(), "{what}");
    }
}

#[tokio::test]
async fn refuses_bad_bodies_and_fields_over_their_limits() {
    let auth = request_token(SECRET, KEY, 60);
    let long = "x".repeat(MAX_FIELD + 1);
    for body in [
        "",
        "{",
        r#"{"name":"no room"}"#,
        r#"{"room":"standup","unknown":1}"#,
        r#"{"room":"a/b"}"#,
        r#"{"room":"standup","valid_secs":0}"#,
        r#"{"room":"standup","valid_secs":999999999}"#,
        &format!(r#"{{"room":"standup","name":"{long}"}}"#),
        &format!(r#"{{"room":"{}"}}"#, "r".repeat(MAX_ROOM + 1)),
    ] {
        let (status, _) = call(config(), Some(&auth), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:.80}");
    }
    let huge = format!(r#"{{"room":"standup","name":"{}"}}"#, "x".repeat(MAX_BODY));
    assert_eq!(
        call(config(), Some(&auth), &huge).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn says_when_there_is_nothing_to_sign_join_tokens_with() {
    let mut without = (*config()).clone();
    without.auth.token.app_secret = Secret::default();
    let auth = request_token(SECRET, KEY, 60);
    let (status, answer) = call(Arc::new(without), Some(&auth), r#"{"room":"*"}"#).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(answer["error"].as_str().unwrap().contains("app_secret"));
}

#[tokio::test]
async fn describes_itself_in_openapi() {
    let response = router(config())
        .oneshot(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/tokens"]["post"].is_object());
}
