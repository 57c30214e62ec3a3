//! The REST API for applications that embed Convene (docs/api.md), on the HTTP listener
//! when `[api] key` and `secret` are set. Described in OpenAPI at `/api/v1/openapi.json`.
//!
//! A request is authenticated by a short-lived request token, as LiveKit's and JaaS's APIs
//! do: a JWT (HS256) signed with the API secret, `iss` = the API key, and an `exp` at most
//! `max_request_token_secs` ahead. The signature is checked by aws-lc's HMAC verification
//! (constant time); the secret is never logged.
//!
//! | method | path | what |
//! |---|---|---|
//! | `GET` | `/api/v1/openapi.json` | this API's OpenAPI description (no authentication) |
//! | `POST` | `/api/v1/tokens` | mints a join token (the fields of `convene token`, as JSON) |

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use convene_xmpp::token::Secret;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::Config;
use crate::token::{TokenArgs, mint, unix_now};

/// Largest request body taken.
const MAX_BODY: usize = 16 * 1024;
/// Longest text field of a token request (names, e-mail, avatar URL, `sub`, `aud`).
const MAX_FIELD: usize = 1024;
/// Most features one token may grant.
const MAX_FEATURES: usize = 32;
/// Longest life of a minted join token: a week.
const MAX_JOIN_TOKEN_SECS: u64 = 7 * 24 * 3600;
/// Longest room name in a token (as in a URL), besides `*`.
const MAX_ROOM: usize = 64;

const OPENAPI: &str = include_str!("api/openapi.json");

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// The API key: the `iss` of request tokens. Empty: no REST API.
    pub key: String,
    /// The secret request tokens are signed with. Empty: no REST API.
    pub secret: Secret,
    /// How far ahead a request token's `exp` may be (seconds).
    pub max_request_token_secs: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            key: String::new(),
            secret: Secret::default(),
            max_request_token_secs: 600,
        }
    }
}

impl ApiConfig {
    pub fn enabled(&self) -> bool {
        !self.key.is_empty() && !self.secret.0.is_empty()
    }
}

/// The API's routes (serve them only when [`ApiConfig::enabled`]).
pub fn router(config: Arc<Config>) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/tokens", post(mint_token))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(config)
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Checks the request token of `headers`: signed with the secret, issued by the key, and
/// expiring within `max_request_token_secs` of `now`.
fn authorize(api: &ApiConfig, headers: &HeaderMap, now: u64) -> Result<(), &'static str> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or("a request token is required (Authorization: Bearer)")?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[&api.key]);
    validation.set_required_spec_claims(&["exp", "iss"]);
    validation.validate_aud = false;
    validation.leeway = 0;
    let key =
        DecodingKey::from_secret(api.secret.0.as_bytes()).map_err(|_| "no usable API secret")?;
    let data = decode::<Value>(token, &key, &validation).map_err(|_| "invalid request token")?;
    let exp = data.claims["exp"].as_u64().ok_or("invalid request token")?;
    if exp > now.saturating_add(api.max_request_token_secs) {
        return Err("the request token lives too long");
    }
    Ok(())
}

/// `POST /api/v1/tokens`: `{room, name?, id?, email?, avatar?, moderator?, sub?, aud?,
/// valid_secs?, features?}` → `201 {"token": …}`.
async fn mint_token(
    State(config): State<Arc<Config>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(now) = unix_now() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "no clock");
    };
    if let Err(why) = authorize(&config.api, &headers, now) {
        return error(StatusCode::UNAUTHORIZED, why);
    }
    let args: TokenArgs = match serde_json::from_slice(&body) {
        Ok(args) => args,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad token request: {e}")),
    };
    if let Err(why) = check(&args) {
        return error(StatusCode::BAD_REQUEST, why);
    }
    match mint(&config, &args, now) {
        Ok(token) => (StatusCode::CREATED, axum::Json(json!({ "token": token }))).into_response(),
        // Only a missing `[auth.token]` app id or secret makes minting fail.
        Err(e) => error(StatusCode::CONFLICT, &e.to_string()),
    }
}

/// The limits of a token request.
fn check(args: &TokenArgs) -> Result<(), &'static str> {
    let room_ok = args.room == "*"
        || (!args.room.is_empty()
            && args.room.len() <= MAX_ROOM
            && args
                .room
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    if !room_ok {
        return Err("room: letters, digits, '-' and '_' (at most 64), or '*'");
    }
    let fields = [&args.name, &args.id, &args.email, &args.avatar, &args.sub];
    if fields
        .iter()
        .flat_map(|f| f.as_deref())
        .any(|f| f.len() > MAX_FIELD)
        || args.aud.len() > MAX_FIELD
        || args.features.len() > MAX_FEATURES
        || args.features.iter().any(|f| f.len() > MAX_FIELD)
    {
        return Err("a field is too long");
    }
    if args.valid_secs == 0 || args.valid_secs > MAX_JOIN_TOKEN_SECS {
        return Err("valid_secs: from 1 to 604800");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
