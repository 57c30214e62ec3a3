//! OpenID Connect sign-in (`[auth.oidc]`): the browser goes to `/auth/oidc/login?room=R`,
//! is sent to the provider (authorization code flow with PKCE, `state` and `nonce`), comes
//! back to `/auth/oidc/callback`, and leaves with a short-lived Jitsi token for the room:
//! a redirect to `/R?jwt=<token>`, which Convene's client and the stock Jitsi Meet app (its
//! `config.tokenAuthUrl`) both read.
//!
//! The protocol is the `openidconnect` crate's (discovery, the code exchange, the ID-token
//! checks: signature against the provider's JWKS, `iss`, `aud`, `nonce`, `exp`): it is the
//! maintained, widely used Rust implementation, strict about the spec, so none of it is
//! written here. Its HTTP calls go through reqwest with a timeout, no redirects and a body
//! cap. What is ours: the pending sign-ins ([`pending`], bounded in count and time), the
//! claim mapping ([`claims`]), and the pages. The Jitsi token is minted by the binary's
//! token code through [`Minter`]: this crate knows nothing of the XMPP server.

mod claims;
mod pending;

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
};
use serde::Deserialize;
use serde_json::{Map, Value};

pub use claims::OidcUser;
use pending::{PendingLogin, PendingLogins};

/// `[auth.oidc]`.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    pub enabled: bool,
    /// The provider's issuer URL; `<issuer>/.well-known/openid-configuration` is read.
    pub issuer: String,
    pub client_id: String,
    /// Empty for a public client (PKCE only).
    pub client_secret: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// The callback URL registered at the provider; empty: `<scheme>://<Host>/auth/oidc/callback`
    /// of the sign-in request.
    pub redirect_url: String,
    /// What the sign-in button says.
    pub button_label: String,
    pub name_claim: String,
    pub email_claim: String,
    pub avatar_claim: String,
    /// A claim (dotted path for nested ones, e.g. `realm_access.roles`) that gives the
    /// moderator right; unset: nobody gets it from the provider.
    pub moderator_claim: Option<String>,
    /// Values of `moderator_claim` (a group, a role) that make a moderator; empty: the
    /// claim must be `true`.
    pub moderator_values: Vec<String>,
    /// How long the minted Jitsi token is valid.
    pub token_lifetime_secs: u64,
    /// Sign-ins in progress kept at most (the oldest gives way).
    pub max_pending: usize,
    /// How long a sign-in may take at the provider.
    pub login_timeout_secs: u64,
    /// Each request to the provider, in milliseconds.
    pub http_timeout_ms: u64,
    /// How often discovery and the JWKS are read again.
    pub metadata_refresh_secs: u64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            issuer: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            scopes: vec!["profile".into(), "email".into()],
            redirect_url: String::new(),
            button_label: "Sign in with single sign-on".into(),
            name_claim: "name".into(),
            email_claim: "email".into(),
            avatar_claim: "picture".into(),
            moderator_claim: None,
            moderator_values: Vec::new(),
            token_lifetime_secs: 900,
            max_pending: 1024,
            login_timeout_secs: 600,
            http_timeout_ms: 5000,
            metadata_refresh_secs: 3600,
        }
    }
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("enabled", &self.enabled)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<secret>")
            .finish_non_exhaustive()
    }
}

/// Mints the Jitsi token of a signed-in user for a room, valid for `lifetime`.
pub trait Minter: Send + Sync {
    fn mint(&self, user: &OidcUser, room: &str, lifetime: Duration) -> Result<String, String>;
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("[auth.oidc] {0}")]
    Config(String),
}

/// The provider's client after discovery (authorization URL set, token URL if announced).
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Longest provider response read (discovery, JWKS, token).
const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// Longest `state` and `code` accepted from the callback's query.
const MAX_PARAM: usize = 4096;
/// An ID token signed with a key the cached JWKS lacks makes discovery run again, at most
/// this often (the provider rotated its keys).
const MIN_REDISCOVERY: Duration = Duration::from_secs(30);

/// The OIDC sign-in: configuration, the provider's client once discovered, pending logins.
pub struct Oidc {
    config: OidcConfig,
    issuer: IssuerUrl,
    redirect_url: Option<RedirectUrl>,
    http: reqwest::Client,
    minter: Arc<dyn Minter>,
    provider: tokio::sync::Mutex<Discovery>,
    pending: Mutex<PendingLogins>,
}

/// The provider's client as last discovered, and when discovery was last forced.
#[derive(Default)]
struct Discovery {
    client: Option<(Instant, Arc<Client>)>,
    forced: Option<Instant>,
}

impl Oidc {
    pub fn new(config: OidcConfig, minter: Arc<dyn Minter>) -> Result<Self, OidcError> {
        let bad = |what: &str| OidcError::Config(what.to_owned());
        let issuer = IssuerUrl::new(config.issuer.clone())
            .map_err(|e| bad(&format!("issuer is not a URL: {e}")))?;
        if config.client_id.is_empty() {
            return Err(bad("client_id is not set"));
        }
        let redirect_url = (!config.redirect_url.is_empty())
            .then(|| RedirectUrl::new(config.redirect_url.clone()))
            .transpose()
            .map_err(|e| bad(&format!("redirect_url is not a URL: {e}")))?;
        let timeout = Duration::from_millis(config.http_timeout_ms.max(1));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // The provider's answers are read as they are: a redirect could point anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| bad(&format!("cannot build the HTTP client: {e}")))?;
        let pending = PendingLogins::new(
            config.max_pending,
            Duration::from_secs(config.login_timeout_secs.max(1)),
        );
        Ok(Self {
            config,
            issuer,
            redirect_url,
            http,
            minter,
            provider: tokio::sync::Mutex::new(Discovery::default()),
            pending: Mutex::new(pending),
        })
    }

    pub fn button_label(&self) -> &str {
        &self.config.button_label
    }

    /// The provider's client, discovered on first use and again after `metadata_refresh_secs`
    /// (so rotated signing keys are picked up).
    async fn provider(&self) -> Result<Arc<Client>, String> {
        let mut cache = self.provider.lock().await;
        let fresh = Duration::from_secs(self.config.metadata_refresh_secs.max(1));
        match &cache.client {
            Some((at, client)) if at.elapsed() < fresh => Ok(client.clone()),
            _ => self.discover(&mut cache).await,
        }
    }

    /// The provider's client discovered anew (an ID token named a key the JWKS lacked),
    /// unless that was done less than [`MIN_REDISCOVERY`] ago.
    async fn rediscovered(&self) -> Result<Arc<Client>, String> {
        let mut cache = self.provider.lock().await;
        match (&cache.client, cache.forced) {
            (Some((_, client)), Some(at)) if at.elapsed() < MIN_REDISCOVERY => Ok(client.clone()),
            _ => {
                cache.forced = Some(Instant::now());
                self.discover(&mut cache).await
            }
        }
    }

    async fn discover(&self, cache: &mut Discovery) -> Result<Arc<Client>, String> {
        let http = |request| send(self.http.clone(), request);
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &http)
            .await
            .map_err(|e| {
                format!(
                    "discovery at {} failed: {}",
                    self.issuer.as_str(),
                    chain(&e)
                )
            })?;
        let secret = (!self.config.client_secret.is_empty())
            .then(|| ClientSecret::new(self.config.client_secret.clone()));
        let client = Arc::new(Client::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            secret,
        ));
        cache.client = Some((Instant::now(), client.clone()));
        Ok(client)
    }

    fn redirect_uri(&self, headers: &HeaderMap) -> Result<RedirectUrl, String> {
        if let Some(url) = &self.redirect_url {
            return Ok(url.clone());
        }
        let scheme = crate::request_scheme(headers);
        let host = crate::request_host(headers).ok_or("the request names no usable Host")?;
        RedirectUrl::new(format!("{scheme}://{host}/auth/oidc/callback")).map_err(|e| e.to_string())
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, PendingLogins> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sign-in routes, for the web router.
pub fn routes(oidc: Arc<Oidc>) -> Router {
    Router::new()
        .route("/auth/oidc/login", get(login))
        .route("/auth/oidc/callback", get(callback))
        .with_state(oidc)
}

#[derive(Deserialize)]
struct LoginQuery {
    room: String,
}

async fn login(
    State(oidc): State<Arc<Oidc>>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let room = query.room.to_lowercase();
    if !crate::is_room_name(&room) {
        return failure(
            StatusCode::BAD_REQUEST,
            "This meeting name is not valid.",
            None,
        );
    }
    let client = match oidc.provider().await {
        Ok(client) => client,
        Err(detail) => {
            tracing::warn!(%detail, "OIDC sign-in: the provider cannot be reached");
            return failure(
                StatusCode::BAD_GATEWAY,
                "The sign-in provider cannot be reached. Please try again later.",
                Some(&room),
            );
        }
    };
    let redirect_uri = match oidc.redirect_uri(&headers) {
        Ok(url) => url,
        Err(detail) => return failure(StatusCode::BAD_REQUEST, &detail, Some(&room)),
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let id = CsrfToken::new_random_len(12).into_secret();
    let secret = CsrfToken::new_random().into_secret();
    let nonce = Nonce::new_random();
    let state = oidc.pending().insert(
        Instant::now(),
        id,
        secret,
        PendingLogin {
            pkce_verifier: verifier.into_secret(),
            nonce: nonce.secret().clone(),
            room,
            redirect_uri: redirect_uri.as_str().to_owned(),
        },
    );
    let (url, _, _) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state),
            move || nonce,
        )
        .add_scopes(oidc.config.scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge)
        .set_redirect_uri(Cow::Owned(redirect_uri))
        .url();
    Redirect::to(url.as_str()).into_response()
}

#[derive(Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(State(oidc): State<Arc<Oidc>>, Query(query): Query<CallbackQuery>) -> Response {
    let state = query.state.unwrap_or_default();
    if state.len() > MAX_PARAM || query.code.as_ref().is_some_and(|c| c.len() > MAX_PARAM) {
        return failure(
            StatusCode::BAD_REQUEST,
            "The sign-in answer is too large.",
            None,
        );
    }
    let login = match oidc.pending().take(Instant::now(), &state) {
        Ok(login) => login,
        Err(e) => {
            tracing::info!(reason = %e, "OIDC sign-in refused");
            return failure(
                StatusCode::BAD_REQUEST,
                &format!("This sign-in is not valid: {e}. Please sign in again."),
                None,
            );
        }
    };
    let room = login.room.clone();
    if let Some(error) = query.error {
        let text = query.error_description.unwrap_or(error);
        tracing::info!(%text, "OIDC sign-in: the provider refused");
        return failure(
            StatusCode::FORBIDDEN,
            &format!("The sign-in provider refused the sign-in: {}", clip(&text)),
            Some(&room),
        );
    }
    let Some(code) = query.code else {
        return failure(
            StatusCode::BAD_REQUEST,
            "The sign-in answer has no code.",
            Some(&room),
        );
    };
    match finish(&oidc, login, code).await {
        Ok(token) => Redirect::to(&format!("/{room}?jwt={token}")).into_response(),
        Err(reason) => {
            tracing::info!(%reason, "OIDC sign-in refused");
            failure(
                StatusCode::FORBIDDEN,
                &format!("Sign-in failed: {reason}."),
                Some(&room),
            )
        }
    }
}

/// The code exchange, the ID token's checks, the claims, the Jitsi token.
async fn finish(oidc: &Oidc, login: PendingLogin, code: String) -> Result<String, String> {
    let client = oidc.provider().await?;
    let redirect = RedirectUrl::new(login.redirect_uri).map_err(|e| e.to_string())?;
    let http = |request| send(oidc.http.clone(), request);
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| format!("the provider has no token endpoint ({e})"))?
        .set_pkce_verifier(PkceCodeVerifier::new(login.pkce_verifier))
        .set_redirect_uri(Cow::Owned(redirect))
        .request_async(&http)
        .await
        .map_err(|e| format!("the provider did not give a token: {}", chain(&e)))?;
    let id_token = response.id_token().ok_or("the provider sent no ID token")?;
    let nonce = Nonce::new(login.nonce);
    let mut verified = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .map(drop);
    if let Err(ClaimsVerificationError::SignatureVerification(
        SignatureVerificationError::NoMatchingKey,
    )) = verified
    {
        let client = oidc.rediscovered().await?;
        verified = id_token
            .claims(&client.id_token_verifier(), &nonce)
            .map(drop);
    }
    verified.map_err(|e| format!("the ID token is not valid: {}", chain(&e)))?;
    let claims = payload(&id_token.to_string()).ok_or("the ID token's claims are unreadable")?;
    let user = claims::map_claims(&oidc.config, &claims);
    let lifetime = Duration::from_secs(oidc.config.token_lifetime_secs.max(1));
    tracing::info!(sub = %user.id, room = %login.room, moderator = user.moderator, "OIDC sign-in");
    oidc.minter.mint(&user, &login.room, lifetime)
}

/// Every claim of a JWT already verified, including the ones the typed claims leave out
/// (such as `groups`).
fn payload(jwt: &str) -> Option<Map<String, Value>> {
    let body = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
}

/// An error and its sources, in one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// At most 200 characters of a provider's text.
fn clip(text: &str) -> String {
    text.chars().take(200).collect()
}

/// The page that says why a sign-in failed, with a way back to the meeting.
fn failure(status: StatusCode, message: &str, room: Option<&str>) -> Response {
    let back = match room {
        Some(room) => {
            format!("<a class=\"button primary\" href=\"/{room}\">Back to the meeting</a>")
        }
        None => "<a class=\"button primary\" href=\"/\">Home</a>".to_owned(),
    };
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in failed</title>\
         <link rel=\"stylesheet\" href=\"/assets/css/app.css\"></head><body class=\"home\">\
         <main class=\"home-card\"><h1>Sign-in failed</h1><p id=\"signin-error\" role=\"alert\">{}</p>\
         <p>{back}</p></main></body></html>",
        escape(message)
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One HTTP request of the OIDC client through reqwest, the answer read up to
/// [`MAX_RESPONSE_BYTES`].
async fn send(
    http: reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpError> {
    let request = reqwest::Request::try_from(request)?;
    let mut response = http.execute(request).await?;
    let mut answer = axum::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        answer = answer.header(name, value);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(HttpError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    answer
        .body(body)
        .map_err(|e| HttpError::Build(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("the answer is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    Build(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_failure_page_shows_a_provider_text_as_text() {
        let response = failure(
            StatusCode::FORBIDDEN,
            "refused: <script>alert(1)</script>",
            Some("standup"),
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let page = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            page.contains("refused: &lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(!page.contains("<script>"), "{page}");
    }

    #[test]
    fn the_verified_payload_is_read_whole() {
        let claims = payload("e30.eyJzdWIiOiJhIiwiZ3JvdXBzIjpbImhvc3RzIl19.c2ln").unwrap();
        assert_eq!(claims["groups"], serde_json::json!(["hosts"]));
        assert!(payload("not a jwt").is_none());
        assert!(payload("a.%%%.c").is_none());
    }
}
