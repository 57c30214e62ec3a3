//! The focus attached to the real XMPP server and the real bridge, with participants written
//! on libraries we did not write (`tests/peers/focus_scenarios.py`): slixmpp for XMPP, aiortc for WebRTC.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

const DOMAIN: &str = "convene.test";

struct Running {
    xmpp: convene_xmpp::XmppServer,
    // Dropping it stops the focus.
    focus: convene_focus::FocusHandle,
    data_dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// XMPP server, bridge (loopback only) and focus, wired as `convene` does.
async fn start() -> Running {
    let data_dir = std::env::temp_dir().join(format!(
        "convene-focus-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let xmpp_config = convene_xmpp::Config {
        c2s_listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let xmpp = convene_xmpp::XmppServer::start(DOMAIN, &data_dir, xmpp_config)
        .await
        .unwrap();
    let bridge_config = convene_bridge::Config {
        udp_port: 0,
        addresses: vec!["127.0.0.1".parse().unwrap()],
        ..Default::default()
    };
    // No bridge-channel listener: these participants do not open the colibri WebSocket.
    let mut bridge = convene_bridge::Bridge::start(bridge_config, "ws://127.0.0.1:9".into())
        .await
        .unwrap();
    let convene_xmpp::InternalLink {
        to_server,
        from_server,
    } = xmpp.attach_internal(convene_focus::addresses(DOMAIN).unwrap());
    let focus = convene_focus::spawn(
        DOMAIN,
        convene_focus::Config::default(),
        convene_focus::StanzaLink {
            to_server,
            from_server,
        },
        vec![convene_focus::BridgeConnection {
            id: convene_bridge::api::BridgeId("local".into()),
            client: std::sync::Arc::new(bridge.handle()),
            events: bridge.take_events().unwrap(),
        }],
    );
    Running {
        xmpp,
        focus,
        data_dir,
    }
}

/// Runs one scenario of `tests/peers/focus_scenarios.py`; panics with its output unless it passed. Returns
/// its standard output.
async fn peer(running: &Running, scenario: &str) -> String {
    let python = std::env::var("CONVENE_PYTHON").unwrap_or_else(|_| "python3".into());
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/focus_scenarios.py");
    let child = tokio::process::Command::new(python)
        .arg(script)
        .arg(scenario)
        .arg(format!("port={}", running.xmpp.c2s_addr().port()))
        .arg(format!("domain={DOMAIN}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python with slixmpp and aiortc (set CONVENE_PYTHON)");
    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("peer script timed out")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("PASS {scenario}")),
        "scenario {scenario} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_get_sessions_through_the_xmpp_server_and_the_bridge() {
    let running = start().await;
    peer(&running, "conference").await;
    // The last participant left: the focus left too, and the room is gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(running.xmpp.room_count(), 0);
    assert!(
        running.focus.health().await.is_ok(),
        "the focus keeps serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_participants_exchange_media_in_sessions_the_focus_set_up() {
    let running = start().await;
    let stdout = peer(&running, "media").await;
    // e.g. "bob joined -> 10 decoded video frames from alice in 1.17 s, audio in 1.13 s"
    print!("{stdout}");
}
