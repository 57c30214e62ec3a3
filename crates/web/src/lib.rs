//! The web client: static ES modules embedded in the binary, plus the generated `config.js`.
//!
//! The client (`client/`) is plain JavaScript modules with JSDoc types: nothing is built,
//! so the files are embedded as they are at compile time and `cargo run` from a fresh
//! clone serves a working client. URL space, as a Jitsi Meet deployment has it:
//!
//! | path | what |
//! |---|---|
//! | `/` | home page: create or enter a room |
//! | `/<room>`, `/<tenant>/<room>` | the room page (pre-join screen, then the meeting); a tenant is a URL prefix only |
//! | `/external_api.js`, `/<tenant>/external_api.js`, `/libs/external_api.min.js` | the iframe API (`JitsiMeetExternalAPI`) |
//! | `/config.js` | `var config = {...}` generated from the domain and the request's `Host` |
//! | `/assets/<file>` | the embedded client files |
//! | `/auth/oidc/login`, `/auth/oidc/callback` | OpenID Connect sign-in, when on ([`oidc`]) |
//!
//! `/xmpp-websocket` and `/colibri-ws/...` belong to the XMPP server and the bridge.
//!
//! With `jitsi_meet_dir` set, a stock Jitsi Meet build is served instead ([`stock`]).

pub mod config;
pub mod oidc;
mod ssi;
mod stock;
pub use config::Config;
pub use oidc::{Minter, Oidc, OidcConfig, OidcUser};

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use include_dir::{Dir, include_dir};
use serde_json::json;

static CLIENT: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/client");

/// Longest room name accepted in a URL (Jitsi limits MUC node parts similarly).
const MAX_ROOM_NAME: usize = 64;
/// Longest `Host` header copied into the generated WebSocket URL.
const MAX_HOST: usize = 255;

struct Site {
    domain: String,
    config: Config,
    sign_in: SignIn,
}

/// How users sign in, as far as the pages need to know.
#[derive(Clone, Default)]
pub struct SignIn {
    /// The main domain is for signed-in users: guests sign in anonymously at `guest.D`
    /// (`hosts.anonymousdomain`) and wait for a host.
    pub secure: bool,
    /// User name and password logins (accounts, a directory) are offered on the main domain.
    pub password: bool,
    /// OpenID Connect sign-in.
    pub oidc: Option<Arc<Oidc>>,
}

/// The client's routes. `domain` is the XMPP domain; the MUC, focus and auth addresses
/// derive from it as in a stock Jitsi deployment. With `config.jitsi_meet_dir` set, the
/// stock Jitsi Meet build in that folder is served instead of Convene's own client.
pub fn router(domain: &str, config: Config, sign_in: SignIn) -> Router {
    let stock_dir = config.jitsi_meet_dir.clone();
    let oidc = sign_in.oidc.clone();
    let site = Arc::new(Site {
        domain: domain.to_owned(),
        config,
        sign_in,
    });
    let pages = match stock_dir {
        Some(dir) => stock::router(site, dir),
        None => Router::new()
            .route("/", get(home_page))
            .route("/config.js", get(config_js))
            .route("/favicon.ico", get(favicon))
            .route("/assets/{*path}", get(asset))
            .route("/external_api.js", get(external_api))
            .route("/libs/external_api.min.js", get(external_api))
            .route("/{tenant}/external_api.js", get(external_api))
            .route("/{room}", get(room_page))
            .route("/{tenant}/{room}", get(tenant_room_page))
            .with_state(site),
    };
    match oidc {
        Some(oidc) => oidc::routes(oidc).merge(pages),
        None => pages,
    }
}

async fn home_page() -> Response {
    embedded("index.html")
}

async fn favicon() -> Response {
    embedded("favicon.svg")
}

async fn room_page(Path(room): Path<String>) -> Response {
    if is_room_name(&room) {
        embedded("room.html")
    } else {
        (StatusCode::NOT_FOUND, "no such page").into_response()
    }
}

/// `/<tenant>/<room>`: the same page; the room is the last segment (the MUC is shared, as a
/// stock deployment behind Debian's nginx site has it for tenant paths).
async fn tenant_room_page(Path((tenant, room)): Path<(String, String)>) -> Response {
    if is_room_name(&tenant) && is_room_name(&room) {
        embedded("room.html")
    } else {
        (StatusCode::NOT_FOUND, "no such page").into_response()
    }
}

/// The iframe API, for any page embedding a meeting (docs/embedding.md).
async fn external_api() -> Response {
    embedded("external_api.js")
}

async fn asset(Path(path): Path<String>) -> Response {
    embedded(&path)
}

/// A room name as it may appear in the URL: the MUC node part of the room's JID, so
/// letters, digits, `-` and `_` only (no dots, which would collide with file names).
fn is_room_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROOM_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn embedded(path: &str) -> Response {
    let Some(file) = CLIENT.get_file(path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    (
        [
            (header::CONTENT_TYPE, mime.as_ref().to_owned()),
            // Small files served from memory: always revalidate so an upgraded binary's
            // client is picked up at once.
            (header::CACHE_CONTROL, "no-cache".to_owned()),
        ],
        file.contents(),
    )
        .into_response()
}

async fn config_js(State(site): State<Arc<Site>>, headers: HeaderMap) -> Response {
    script_response(config_script(&client_config(&site, &headers)))
}

/// `config` as the `config.js` script.
fn config_script(config: &serde_json::Value) -> String {
    format!("// Generated by Convene for this server.\nvar config = {config};\n")
}

/// A generated script, never cached (it names the request's host).
fn script_response(body: String) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// The `config` object in Jitsi Meet's shape. The XMPP WebSocket URL is built from the
/// `Host` the browser used, so the same server works under any name; it names no STUN or
/// TURN server: media goes to the bridge's advertised addresses only.
fn client_config(site: &Site, headers: &HeaderMap) -> serde_json::Value {
    let domain = &site.domain;
    let scheme = request_scheme(headers);
    let host = request_host(headers).unwrap_or(domain);
    let ws = if scheme == "https" { "wss" } else { "ws" };
    let config = &site.config;
    let sign_in = &site.sign_in;
    let mut hosts = json!({
        "domain": domain,
        "muc": format!("conference.{domain}"),
        "focus": format!("focus.{domain}"),
    });
    if sign_in.secure {
        hosts["anonymousdomain"] = json!(format!("guest.{domain}"));
    }
    let oidc = sign_in.oidc.as_ref();
    let mut client = json!({
        "hosts": hosts,
        "focusUserJid": format!("focus@auth.{domain}"),
        "websocket": format!("{ws}://{host}/xmpp-websocket"),
        "p2p": { "enabled": false },
        "disableSimulcast": !config.simulcast,
        "videoQuality": { "codecPreferenceOrder": config.codec_preference_order },
        "resolution": config.resolution,
        "prejoinConfig": { "enabled": config.prejoin },
        "appName": config.app_name,
        "channelLastN": -1,
        // Convene's client: what its sign-in screen offers.
        "signIn": {
            "password": sign_in.password,
            "oidc": oidc.map(|o| o.button_label()),
        },
    });
    if oidc.is_some() {
        // The stock app's login button (and Convene's client) go there; `{room}` is
        // filled in by the app.
        client["tokenAuthUrl"] = json!(format!("{scheme}://{host}/auth/oidc/login?room={{room}}"));
    }
    client
}

/// The scheme the browser used: `https` behind a proxy that says so (`X-Forwarded-Proto`).
fn request_scheme(headers: &HeaderMap) -> &'static str {
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    if secure { "https" } else { "http" }
}

/// The request's `Host`, when it is safe to put in a URL.
fn request_host(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_host(h))
}

/// A `Host` header value safe to put in a URL: host name or IP literal and optional port.
fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= MAX_HOST
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(uri: &str, host: Option<&str>) -> (StatusCode, String, String) {
        let mut request = Request::get(uri);
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        let response = router("meet.example", Config::default(), SignIn::default())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let mime = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, mime, String::from_utf8_lossy(&body).into_owned())
    }

    fn parse_config(js: &str) -> serde_json::Value {
        let object = js
            .split_once("var config = ")
            .and_then(|(_, rest)| rest.trim_end().strip_suffix(';'))
            .expect("config.js assigns one object");
        serde_json::from_str(object).expect("config object is JSON")
    }

    #[tokio::test]
    async fn config_js_names_the_derived_addresses_and_the_request_host() {
        let (status, mime, body) = get("/config.js", Some("meet.example:8443")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(mime.starts_with("text/javascript"));
        let config = parse_config(&body);
        assert_eq!(config["hosts"]["domain"], "meet.example");
        assert_eq!(config["hosts"]["muc"], "conference.meet.example");
        assert_eq!(config["hosts"]["focus"], "focus.meet.example");
        assert_eq!(config["focusUserJid"], "focus@auth.meet.example");
        assert_eq!(config["websocket"], "ws://meet.example:8443/xmpp-websocket");
        assert_eq!(config["p2p"]["enabled"], false);
        assert_eq!(
            config["videoQuality"]["codecPreferenceOrder"],
            serde_json::json!(["VP8", "VP9", "AV1", "H264"])
        );
        assert!(!body.contains("stun:") && !body.contains("turn:"));
    }

    #[tokio::test]
    async fn hostile_host_header_falls_back_to_the_domain() {
        let (_, _, body) = get("/config.js", Some("evil\";alert(1)//")).await;
        assert_eq!(
            parse_config(&body)["websocket"],
            "ws://meet.example/xmpp-websocket"
        );
        let (_, _, body) = get("/config.js", None).await;
        assert_eq!(
            parse_config(&body)["websocket"],
            "ws://meet.example/xmpp-websocket"
        );
    }

    #[tokio::test]
    async fn pages_and_assets_are_served_with_their_types() {
        let (status, mime, body) = get("/", None).await;
        assert_eq!((status, mime.as_str()), (StatusCode::OK, "text/html"));
        assert!(body.contains("/assets/app/home.js"));
        let (status, _, body) = get("/Daily-Standup_2", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("/assets/app/room.js"));
        let (status, mime, _) = get("/assets/lib/xmpp.js", None).await;
        assert_eq!((status, mime.as_str()), (StatusCode::OK, "text/javascript"));
        let (status, mime, _) = get("/assets/css/app.css", None).await;
        assert_eq!((status, mime.as_str()), (StatusCode::OK, "text/css"));
    }

    #[tokio::test]
    async fn tenant_paths_get_the_room_page() {
        let (status, _, body) = get("/meeting/Weekly_sync", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("/assets/app/room.js"));
    }

    #[tokio::test]
    async fn the_iframe_api_is_served_where_integrations_look_for_it() {
        for uri in [
            "/external_api.js",
            "/external_api.js?release=release-1234",
            "/meeting/external_api.js",
            "/libs/external_api.min.js",
        ] {
            let (status, mime, body) = get(uri, None).await;
            assert_eq!(
                (status, mime.as_str()),
                (StatusCode::OK, "text/javascript"),
                "{uri}"
            );
            assert!(body.contains("JitsiMeetExternalAPI"), "{uri}");
        }
    }

    #[tokio::test]
    async fn unknown_paths_and_bad_room_names_are_not_found() {
        for uri in [
            "/assets/nope.js",
            "/assets/../Cargo.toml",
            "/room.with.dots",
            "/a/b.c",
            "/a/b/c",
            "/a.b/room",
            &format!("/{}", "r".repeat(MAX_ROOM_NAME + 1)),
        ] {
            assert_eq!(get(uri, None).await.0, StatusCode::NOT_FOUND, "{uri}");
        }
    }
}
