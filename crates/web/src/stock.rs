//! A stock Jitsi Meet build (`[web] jitsi_meet_dir`), served as Debian's nginx site
//! (`jitsi-meet.example`) serves `/usr/share/jitsi-meet`:
//!
//! | path | what |
//! |---|---|
//! | `/`, `/<room>`, `/<tenant>/<room>` | `index.html` with its server-side includes expanded ([`crate::ssi`]) |
//! | `/config.js`, `/<tenant>/config.js` | generated for this deployment, also inlined into `index.html` |
//! | `/external_api.js` | `libs/external_api.min.js` |
//! | `/libs/`, `/css/`, `/static/`, `/images/`, `/fonts/`, `/lang/`, `/sounds/`, `/.well-known/` | the folders, readable from any origin |
//! | `/<file>` | a file at the top of the folder (`interface_config.js`, `manifest.json`, ...) |
//! | `/<tenant>/<path>` | as `/<path>` |
//!
//! Files are read at each request, as nginx does, so a folder updated in place is served at
//! once. A tenant is only a URL prefix here: its rooms are in the one MUC.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::cors::CorsLayer;
use tower_http::services::{ServeDir, ServeFile};

use crate::Site;

/// The folders nginx serves as they are (`location ~ ^/(libs|css|...)/(.*)$`).
const FOLDERS: &[&str] = &[
    "libs",
    "css",
    "static",
    "images",
    "fonts",
    "lang",
    "sounds",
    ".well-known",
];

/// Longest path segment taken for a room (or tenant) name.
const MAX_SEGMENT: usize = 256;

/// Largest file inlined into `index.html`.
const MAX_INCLUDE: u64 = 1 << 20;

struct Stock {
    site: Arc<Site>,
    dir: PathBuf,
}

/// The routes serving the stock app in `dir`.
pub(crate) fn router(site: Arc<Site>, dir: PathBuf) -> Router {
    let mut router = Router::new();
    for folder in FOLDERS {
        // Readable from any origin, as in the nginx site (pages embedding the app load them).
        router = router.nest_service(
            &format!("/{folder}"),
            tower::ServiceBuilder::new()
                .layer(CorsLayer::new().allow_origin(tower_http::cors::Any))
                .service(ServeDir::new(dir.join(folder))),
        );
    }
    router
        .route_service(
            "/external_api.js",
            ServeFile::new(dir.join("libs/external_api.min.js")),
        )
        .route("/", get(index_page))
        .route("/config.js", get(config_js))
        .route("/{name}", get(top_level))
        .route("/{tenant}/config.js", get(config_js))
        .route("/{tenant}/{name}", get(tenant_path))
        .with_state(Arc::new(Stock { site, dir }))
}

async fn config_js(State(stock): State<Arc<Stock>>, headers: HeaderMap) -> Response {
    crate::script_response(config_script(&stock.site, &headers))
}

/// `var config = {...}`: Convene's client configuration plus what the stock app needs to
/// stay on this server (no whiteboard in a build without it, no third-party requests).
fn config_script(site: &Site, headers: &HeaderMap) -> String {
    let mut config = crate::client_config(site, headers);
    config["whiteboard"] = serde_json::json!({ "enabled": false });
    config["disableThirdPartyRequests"] = true.into();
    crate::config_script(&config)
}

async fn index_page(State(stock): State<Arc<Stock>>, headers: HeaderMap) -> Response {
    let config = config_script(&stock.site, &headers);
    let dir = stock.dir.clone();
    let page = tokio::task::spawn_blocking(move || {
        let index = read_limited(&dir.join("index.html"))?;
        Some(crate::ssi::expand(&index, &mut |virtual_path| {
            include(&dir, &config, virtual_path)
        }))
    })
    .await
    .ok()
    .flatten();
    match page {
        Some(page) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            page,
        )
            .into_response(),
        None => {
            tracing::warn!("{}/index.html cannot be read", stock.dir.display());
            (StatusCode::INTERNAL_SERVER_ERROR, "index.html missing").into_response()
        }
    }
}

/// What `<!--#include virtual="path" -->` stands for: the generated `config.js`, or a file
/// of the folder (a query string is ignored, as nginx maps the URI to a file).
fn include(dir: &FsPath, config: &str, virtual_path: &str) -> Option<String> {
    let path = virtual_path.split('?').next()?.trim_start_matches('/');
    if path == "config.js" {
        return Some(config.to_owned());
    }
    let mut file = dir.to_path_buf();
    for segment in path.split('/') {
        if !is_safe_segment(segment) {
            return None;
        }
        file.push(segment);
    }
    read_limited(&file)
}

fn read_limited(file: &FsPath) -> Option<String> {
    let metadata = std::fs::metadata(file).ok()?;
    if !metadata.is_file() || metadata.len() > MAX_INCLUDE {
        return None;
    }
    let bytes = std::fs::read(file).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// A file at the top of the folder when there is one, else the page for room `name`
/// (nginx: `try_files $uri @root_path`).
async fn top_level(
    State(stock): State<Arc<Stock>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve_top_level(stock, name, headers).await
}

async fn tenant_path(
    State(stock): State<Arc<Stock>>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !is_safe_segment(&tenant) {
        return not_found();
    }
    serve_top_level(stock, name, headers).await
}

async fn serve_top_level(stock: Arc<Stock>, name: String, headers: HeaderMap) -> Response {
    if !is_safe_segment(&name) {
        return not_found();
    }
    let file = stock.dir.join(&name);
    if tokio::fs::metadata(&file)
        .await
        .is_ok_and(|metadata| metadata.is_file())
    {
        let mut request = axum::http::Request::new(axum::body::Body::empty());
        *request.headers_mut() = headers;
        return match tower::ServiceExt::oneshot(ServeFile::new(file), request).await {
            Ok(response) => response.into_response(),
            Err(infallible) => match infallible {},
        };
    }
    index_page(State(stock), headers).await
}

/// A path segment that names something inside the folder: not empty, not `.` or `..`, no
/// separator (a `%2F` arrives decoded) and no control character.
fn is_safe_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= MAX_SEGMENT
        && segment != "."
        && segment != ".."
        && !segment
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}
