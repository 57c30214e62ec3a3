//! The binary with `[web] jitsi_meet_dir` (issue 10): the stock app's page comes from the
//! folder with the deployment's `config.js` in it, the XMPP WebSocket URL answers the
//! stock client's cross-origin keep-alive, and a folder that is no Jitsi Meet build stops
//! the start. The folder is a small stand-in written here (the stock build never enters
//! the repository; `tests/e2e/browser/stock-app.test.js` runs the real one).

mod common;

use std::process::{Command, Stdio};

use common::{Convene, DOMAIN, http_get_with};

const INDEX: &str = "<html><head><!--#include virtual=\"title.html\" -->\
                     <script><!--#include virtual=\"/config.js\" --></script></head></html>";

fn app_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("convene-stock-{name}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("libs")).unwrap();
    std::fs::write(dir.join("index.html"), INDEX).unwrap();
    std::fs::write(dir.join("title.html"), "<title>Jitsi Meet</title>").unwrap();
    std::fs::write(dir.join("libs/app.bundle.min.js"), "/* app */").unwrap();
    dir
}

#[test]
fn serves_the_stock_app_and_answers_its_keep_alive_across_origins() {
    let dir = app_dir("serve");
    let convene = Convene::start_with(
        "stock",
        &format!("[web]\njitsi_meet_dir = {:?}\n", dir.display().to_string()),
    );
    let page = convene.get("/SomeRoom");
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert!(
        page.body.contains("<title>Jitsi Meet</title>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!("\"muc\":\"conference.{DOMAIN}\"")),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(&format!(
            "\"websocket\":\"ws://{}/xmpp-websocket\"",
            convene.http
        )),
        "{}",
        page.body
    );
    assert_eq!(convene.get("/libs/app.bundle.min.js").body, "/* app */");
    // The XMPP WebSocket and the rest of the HTTP space are still Convene's.
    assert_eq!(convene.get("/about/health").status, 200);

    // lib-jitsi-meet's keep-alive: a plain GET of the WebSocket URL from the page's origin.
    let keep_alive = http_get_with(
        convene.http,
        "/xmpp-websocket?room=someroom",
        "Origin: https://app.example\r\n",
    )
    .unwrap();
    assert_eq!(keep_alive.status, 200);
    assert!(
        keep_alive
            .head
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{}",
        keep_alive.head
    );
    drop(convene);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_folder_without_index_html_stops_the_start() {
    let dir = std::env::temp_dir().join(format!("convene-stock-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("convene.toml");
    std::fs::write(
        &config,
        format!(
            "http_listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[bridge]\nudp_port = 0\n\
             [xmpp]\nc2s_listen = \"127.0.0.1:0\"\n[web]\njitsi_meet_dir = {:?}\n",
            dir.join("data").display().to_string(),
            dir.display().to_string()
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_convene"))
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .expect("the convene binary");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("jitsi_meet_dir"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
