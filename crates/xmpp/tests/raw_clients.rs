//! Clients on raw sockets: misbehaving below what an XMPP library lets one do (one that
//! stops reading, one that falls silent), and a session seeing what the binary needs of
//! the server (health, metrics, graceful shutdown).

mod common;

use std::time::{Duration, Instant};

use common::{DataDir, start_server};
use convene_xmpp::{Config, XmppServer};
use jid::Jid;
use minidom::Element;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DOMAIN: &str = "slow.test";
const ROOM: &str = "room@conference.slow.test";

/// Reads until `marker` has arrived; the rest of that read is dropped.
async fn read_until(stream: &mut TcpStream, marker: &str) {
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    while !seen.contains(marker) {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("server answers")
            .unwrap();
        assert!(n > 0, "closed before {marker}: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
}

/// Sends `text`, then reads until `marker`.
async fn exchange(stream: &mut TcpStream, text: &str, marker: &str) {
    stream.write_all(text.as_bytes()).await.unwrap();
    read_until(stream, marker).await;
}

fn element(xml: &str) -> Element {
    xml.parse().unwrap()
}

/// Logs in anonymously over plain TCP (allowed on loopback) and binds a resource.
async fn anonymous_login(server: &XmppServer) -> TcpStream {
    let mut stream = TcpStream::connect(server.c2s_addr()).await.unwrap();
    let header = format!(
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>"
    );
    let auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>";
    let bind = "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>";
    exchange(&mut stream, &header, "</stream:features>").await;
    exchange(&mut stream, auth, "<success").await;
    exchange(&mut stream, &header, "</stream:features>").await;
    exchange(&mut stream, bind, "</iq>").await;
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_stops_reading_is_evicted() {
    let config = Config {
        max_unacked: 20,
        ..Config::default()
    };
    let data_dir = DataDir::new();
    let server = start_server(DOMAIN, &data_dir, config).await;
    let focus = Jid::new("focus@auth.slow.test/focus").unwrap();
    let mut link = server.attach_internal(vec![focus.clone()]);
    let join = format!("<presence xmlns='jabber:client' from='{focus}' to='{ROOM}/focus'/>");
    link.to_server.send(element(&join)).await.unwrap();

    // The slow client: logs in anonymously, joins, then never reads again.
    let mut slow = anonymous_login(&server).await;
    exchange(
        &mut slow,
        &format!("<presence to='{ROOM}/slow'/>"),
        "</message>",
    )
    .await;

    // The focus floods the room with big messages until the slow client is gone.
    let body = "x".repeat(4000);
    let message = format!(
        "<message xmlns='jabber:client' from='{focus}' to='{ROOM}' type='groupchat'><body>{body}</body></message>"
    );
    let evicted = async {
        loop {
            let stanza = link.from_server.recv().await.expect("link open");
            if stanza.name() == "presence"
                && stanza.attr("from") == Some(&*format!("{ROOM}/slow"))
                && stanza.attr("type") == Some("unavailable")
            {
                return;
            }
        }
    };
    let flood = async {
        for _ in 0..20_000 {
            link.to_server.send(element(&message)).await.unwrap();
        }
        std::future::pending::<()>().await
    };
    tokio::time::timeout(Duration::from_secs(30), async {
        tokio::select! {
            () = evicted => {}
            () = flood => {}
        }
    })
    .await
    .expect("the slow reader was evicted");
    // The room lives on with its other occupant.
    assert_eq!(server.room_count(), 1);
    // The slow client finds, after what was already on its way, the stream error.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest))
        .await
        .expect("connection closed")
        .unwrap();
    let tail = String::from_utf8_lossy(&rest[rest.len().saturating_sub(300)..]).into_owned();
    assert!(tail.contains("<resource-constraint"), "{tail}");
    assert!(tail.ends_with("</stream:stream>"), "{tail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_probed_then_dropped() {
    let config = Config {
        keepalive_secs: 1,
        ..Config::default()
    };
    let data_dir = DataDir::new();
    let server = start_server(DOMAIN, &data_dir, config).await;
    let mut silent = anonymous_login(&server).await;
    // After a second of silence: an XEP-0199 ping from the server.
    read_until(&mut silent, "urn:xmpp:ping").await;
    // Still silent a second later: the connection is dropped.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut rest))
        .await
        .expect("dropped")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_counted_then_shut_down_cleanly() {
    let data_dir = DataDir::new();
    let server = start_server(DOMAIN, &data_dir, Config::default()).await;
    server.health().await.expect("healthy");

    let mut client = anonymous_login(&server).await;

    let metrics = server.metrics_text().await;
    for line in [
        "convene_xmpp_connections{transport=\"tcp\"} 1",
        "convene_xmpp_sessions 1",
        "# TYPE convene_xmpp_stanzas_in_total counter",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    let started = Instant::now();
    server.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut rest))
        .await
        .expect("closed by the server")
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("<system-shutdown"), "{rest}");
    assert!(rest.ends_with("</stream:stream>"), "{rest}");
    // New connections are refused.
    let refused = async {
        while TcpStream::connect(server.c2s_addr()).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(2), refused)
        .await
        .expect("the listener is closed");
    let metrics = server.metrics_text().await;
    assert!(metrics.contains("convene_xmpp_sessions 0"), "{metrics}");
    assert!(
        metrics.contains("convene_xmpp_stream_errors_total{condition=\"system-shutdown\"} 1"),
        "{metrics}"
    );
}

/// A WebSocket upgrade request's status line.
async fn upgrade_status(addr: std::net::SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = "GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .expect("an answer")
        .unwrap();
    let head = String::from_utf8_lossy(&buffer[..n]);
    head.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_are_refused_after_shutdown() {
    let data_dir = DataDir::new();
    let server = start_server(DOMAIN, &data_dir, Config::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = server.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    assert!(upgrade_status(addr).await.contains("101"));
    server.shutdown().await;
    assert!(upgrade_status(addr).await.contains("503"));
}
