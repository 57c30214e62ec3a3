//! `[web] jitsi_meet_dir`: a folder laid out as a stock Jitsi Meet build (written by the
//! test, the stock build itself is not in the repository) served as Debian's nginx site
//! serves `/usr/share/jitsi-meet`.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use convene_web::{Config, router};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The SSI lines of the stock `index.html` (jitsi-meet `274ef35a`), one of them naming a
/// file this build lacks, and one reaching out of the folder.
const INDEX: &str = r#"<html><head>
<!--#include virtual="head.html" -->
<!--#include virtual="base.html" -->
<!--#include virtual="fonts.html"-->
<script><!--#include virtual="/config.js" --></script>
<script><!--#include virtual="/interface_config.js" --></script>
<script src="libs/app.bundle.min.js?v=139"></script>
<!--#include virtual="title.html" -->
<!--#include virtual="plugin.head.html" -->
<!--#include virtual="static/welcomePageAdditionalContent.html" -->
<!--#include virtual="static/absent.html" -->
<!--#include virtual="../secret.txt" -->
</head><body><!--#include virtual="body.html" --></body></html>
"#;

const SECRET: &str = "outside the app folder";

/// The fixture: `<tmp>/app` (the build) beside `<tmp>/secret.txt`.
struct Fixture {
    root: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let root = std::env::temp_dir().join(format!(
            "convene-stock-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let files: &[(&str, &str)] = &[
            ("app/index.html", INDEX),
            ("app/head.html", "<meta name=\"from-head\">"),
            ("app/base.html", "<base href=\"/\" />"),
            ("app/fonts.html", ""),
            ("app/title.html", "<title>Jitsi Meet</title>"),
            ("app/plugin.head.html", "<!-- plugins -->"),
            ("app/body.html", "<div id=\"from-body\"></div>"),
            (
                "app/static/welcomePageAdditionalContent.html",
                "<p>welcome</p>",
            ),
            (
                "app/interface_config.js",
                "var interfaceConfig = { APP_NAME: 'Jitsi Meet' };",
            ),
            ("app/manifest.json", "{\"name\":\"Jitsi Meet\"}"),
            ("app/libs/app.bundle.min.js", "console.log('app');"),
            ("app/libs/external_api.min.js", "var JitsiMeetExternalAPI;"),
            ("app/libs/rnnoise.wasm", "\0asm"),
            ("app/css/all.css", "body{}"),
            ("app/lang/main.json", "{}"),
            ("app/sounds/joined.mp3", "ID3"),
            ("app/images/favicon.svg", "<svg/>"),
            ("secret.txt", SECRET),
        ];
        for (path, text) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Fixture { root }
    }

    fn app(&self) -> PathBuf {
        self.root.join("app")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

struct Got {
    status: StatusCode,
    content_type: String,
    allow_origin: Option<String>,
    body: String,
}

async fn get(app: &Path, uri: &str) -> Got {
    let config = Config {
        jitsi_meet_dir: Some(app.to_owned()),
        ..Config::default()
    };
    let request = Request::get(uri)
        .header(header::HOST, "meet.example:8443")
        .header(header::ORIGIN, "https://embedder.example")
        .body(Body::empty())
        .unwrap();
    let response = router("meet.example", config, convene_web::SignIn::default())
        .oneshot(request)
        .await
        .unwrap();
    let headers = response.headers();
    let text = |name| {
        headers
            .get(name)
            .map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    Got {
        status: response.status(),
        content_type: text(header::CONTENT_TYPE).unwrap_or_default(),
        allow_origin: text(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        body: String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes())
            .into_owned(),
    }
}

/// The object `config.js` assigns.
fn config_of(script: &str) -> serde_json::Value {
    let start = script.find("var config = ").expect("a config assignment") + 13;
    let end = start + script[start..].find(";\n").expect("the assignment ends");
    serde_json::from_str(&script[start..end]).expect("the config object is JSON")
}

#[tokio::test]
async fn every_room_path_gets_index_html_with_its_includes_expanded() {
    let fixture = Fixture::new("index");
    for uri in ["/", "/DailyStandup", "/acme/DailyStandup", "/some%20room"] {
        let page = get(&fixture.app(), uri).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}");
        assert!(page.content_type.starts_with("text/html"), "{uri}");
        let body = &page.body;
        for included in [
            "<meta name=\"from-head\">",
            "<base href=\"/\" />",
            "<title>Jitsi Meet</title>",
            "<!-- plugins -->",
            "<p>welcome</p>",
            "<div id=\"from-body\"></div>",
            "var interfaceConfig = { APP_NAME: 'Jitsi Meet' };",
            "libs/app.bundle.min.js?v=139",
        ] {
            assert!(body.contains(included), "{uri}: {included} missing");
        }
        assert!(!body.contains("<!--#"), "{uri}: directive left in {body}");
        assert!(!body.contains(SECRET), "{uri}: an include left the folder");
        assert_eq!(config_of(body)["hosts"]["domain"], "meet.example");
    }
}

#[tokio::test]
async fn config_js_is_generated_for_this_deployment() {
    let fixture = Fixture::new("config");
    for uri in ["/config.js", "/acme/config.js"] {
        let script = get(&fixture.app(), uri).await;
        assert_eq!(script.status, StatusCode::OK);
        assert!(script.content_type.starts_with("text/javascript"));
        let config = config_of(&script.body);
        assert_eq!(config["hosts"]["domain"], "meet.example");
        assert_eq!(config["hosts"]["muc"], "conference.meet.example");
        assert_eq!(config["hosts"]["focus"], "focus.meet.example");
        assert_eq!(config["focusUserJid"], "focus@auth.meet.example");
        assert_eq!(config["websocket"], "ws://meet.example:8443/xmpp-websocket");
        assert!(config.get("bosh").is_none(), "no BOSH endpoint here");
        assert_eq!(config["p2p"]["enabled"], false);
        assert_eq!(config["whiteboard"]["enabled"], false);
        assert_eq!(config["disableThirdPartyRequests"], true);
        // The stock app keeps its own codec order (AV1 first), not Convene's client's.
        assert!(config.get("videoQuality").is_none());
        assert!(!script.body.contains("stun:") && !script.body.contains("turn:"));
    }
}

#[tokio::test]
async fn files_and_folders_are_served_with_their_types() {
    let fixture = Fixture::new("static");
    for (uri, mime, body) in [
        (
            "/libs/app.bundle.min.js",
            "text/javascript",
            "console.log('app');",
        ),
        (
            "/external_api.js",
            "text/javascript",
            "var JitsiMeetExternalAPI;",
        ),
        (
            "/interface_config.js",
            "text/javascript",
            "var interfaceConfig = { APP_NAME: 'Jitsi Meet' };",
        ),
        (
            "/manifest.json",
            "application/json",
            "{\"name\":\"Jitsi Meet\"}",
        ),
        (
            "/acme/manifest.json",
            "application/json",
            "{\"name\":\"Jitsi Meet\"}",
        ),
        ("/libs/rnnoise.wasm", "application/wasm", "\0asm"),
        ("/css/all.css", "text/css", "body{}"),
        ("/lang/main.json", "application/json", "{}"),
        ("/sounds/joined.mp3", "audio/mpeg", "ID3"),
        ("/images/favicon.svg", "image/svg+xml", "<svg/>"),
    ] {
        let got = get(&fixture.app(), uri).await;
        assert_eq!(got.status, StatusCode::OK, "{uri}");
        assert!(
            got.content_type.starts_with(mime),
            "{uri}: {}",
            got.content_type
        );
        assert_eq!(got.body, body, "{uri}");
    }
    // The folders are readable from pages of other origins, as nginx's site has them.
    let got = get(&fixture.app(), "/libs/app.bundle.min.js").await;
    assert_eq!(got.allow_origin.as_deref(), Some("*"));
    assert_eq!(
        get(&fixture.app(), "/libs/nope.js").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn paths_out_of_the_folder_are_refused() {
    let fixture = Fixture::new("traversal");
    for uri in [
        "/libs/../../secret.txt",
        "/libs/..%2F..%2Fsecret.txt",
        "/libs/%2e%2e/%2e%2e/secret.txt",
        "/..%2Fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/acme/..%2Fsecret.txt",
        "/..%2F/secret.txt",
        "/css/..%5C..%5Csecret.txt",
    ] {
        let got = get(&fixture.app(), uri).await;
        assert!(!got.body.contains(SECRET), "{uri} left the folder");
        assert_ne!(got.status, StatusCode::OK, "{uri}: {}", got.body);
    }
}

#[tokio::test]
async fn convenes_own_client_stays_the_default() {
    let page = router(
        "meet.example",
        Config::default(),
        convene_web::SignIn::default(),
    )
    .oneshot(Request::get("/DailyStandup").body(Body::empty()).unwrap())
    .await
    .unwrap();
    let body = page.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("/assets/app/room.js"));
}
