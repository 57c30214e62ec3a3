//! The server on real sockets against peers we did not write: slixmpp over TCP/STARTTLS and
//! the `websockets` library over RFC 7395, driven by `tests/peers/xmpp_scenarios.py`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{DataDir, run_peer_script, start_server};
use convene_xmpp::{Config, XmppServer};

const DOMAIN: &str = "convene.test";
const USER: &str = "alice";
const PASSWORD: &str = "correct horse";

struct Running {
    server: XmppServer,
    ws_addr: SocketAddr,
    _data_dir: DataDir,
}

async fn start(config: Config) -> Running {
    let data_dir = DataDir::new();
    convene_xmpp::accounts::Accounts::open(data_dir.path())
        .unwrap()
        .set_password(USER, PASSWORD, false)
        .unwrap();
    let server = start_server(DOMAIN, &data_dir, config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = listener.local_addr().unwrap();
    let app = server
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Running {
        server,
        ws_addr,
        _data_dir: data_dir,
    }
}

/// Runs one scenario of `tests/peers/xmpp_scenarios.py`; panics with its output unless it passed.
async fn peer(running: &Running, scenario: &str) {
    let args = [
        format!("port={}", running.server.c2s_addr().port()),
        format!("ws=ws://{}/xmpp-websocket?room=resumption", running.ws_addr),
        format!("domain={DOMAIN}"),
        format!("user={USER}"),
        format!("password={PASSWORD}"),
    ];
    run_peer_script("xmpp_scenarios.py", scenario, &args).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_in_with_every_mechanism() {
    let running = start(Config::default()).await;
    peer(&running, "login").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_share_a_room() {
    let running = start(Config::default()).await;
    peer(&running, "muc").await;
    // The last occupant left: the room is gone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(running.server.room_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_moderator_actions_are_refused_and_change_nothing() {
    let running = start(Config::default()).await;
    peer(&running, "muc-forged").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_resource_and_resource_conflict() {
    let running = start(Config::default()).await;
    peer(&running, "second-resource").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused_and_throttled() {
    let running = start(Config::default()).await;
    peer(&running, "wrong-password").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_stream_errors() {
    let config = Config {
        max_unauthenticated_per_ip: 8,
        ..Config::default()
    };
    let running = start(config).await;
    peer(&running, "bad-input").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_session_resumes_without_loss() {
    let running = start(Config::default()).await;
    peer(&running, "resume").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slixmpp_resumes_its_tcp_session() {
    let running = start(Config::default()).await;
    peer(&running, "resume-tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pipelines_starttls_and_sasl_is_served() {
    let running = start(Config::default()).await;
    peer(&running, "pipelined").await;
}
