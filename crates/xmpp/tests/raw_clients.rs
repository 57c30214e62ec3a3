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

/// Reads until the server closes; `Err` if the peer reset the connection.
async fn read_to_close(stream: &mut TcpStream, bound: Duration) -> std::io::Result<String> {
    let mut rest = Vec::new();
    tokio::time::timeout(bound, stream.read_to_end(&mut rest))
        .await
        .expect("closed by the server in time")?;
    Ok(String::from_utf8_lossy(&rest).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_capped_at_accept_and_closed_after_the_open_timeout() {
    let config = Config {
        max_unauthenticated_per_ip: 3,
        open_timeout_secs: 1,
        ..Config::default()
    };
    let data_dir = DataDir::new();
    let server = start_server(DOMAIN, &data_dir, config).await;
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(server.c2s_addr()).await.unwrap());
    }
    // Each connection registers from its own task: let the three arrive first.
    while !server
        .metrics_text()
        .await
        .contains("convene_xmpp_connections{transport=\"tcp\"} 3")
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Over the cap, before sending a byte: closed at once (not at the open timeout),
    // saying why.
    let mut over = TcpStream::connect(server.c2s_addr()).await.unwrap();
    let refused = read_to_close(&mut over, Duration::from_secs(3))
        .await
        .unwrap();
    assert!(refused.contains("<policy-violation"), "{refused}");
    assert!(refused.ends_with("</stream:stream>"), "{refused}");
    // The silent ones go after the open timeout, freeing the address for a real client.
    for stream in &mut silent {
        let closed = read_to_close(stream, Duration::from_secs(3)).await.unwrap();
        assert!(closed.contains("<connection-timeout"), "{closed}");
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    anonymous_login(&server).await;
}

/// Logs in and sends `count` pings at once; burst and rate are such that the session is
/// cut part of the way.
const PIPELINED_PINGS: usize = 400;

fn pings() -> String {
    (0..PIPELINED_PINGS)
        .map(|i| format!("<iq type='get' id='p{i}'><ping xmlns='urn:xmpp:ping'/></iq>"))
        .collect()
}

fn rate_limited_config() -> Config {
    Config {
        stanzas_per_second: 1.0,
        stanza_burst: 50.0,
        ..Config::default()
    }
}

/// What a client that was cut for its rate must see: the answers to what it sent within
/// its budget, in order, then the stream error.
fn assert_answers_then_policy_violation(received: &str) {
    let cut = received
        .find("<policy-violation")
        .unwrap_or_else(|| panic!("no policy-violation in {received}"));
    let answered = received[..cut].matches("type='result'/>").count();
    assert!(
        answered >= 40,
        "only {answered} answers before the cut: {received}"
    );
    assert!(!received[cut..].contains("type='result'"), "{received}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_cut_over_tcp_delivers_the_answers_then_the_stream_error() {
    let data_dir = DataDir::new();
    let server = start_server(DOMAIN, &data_dir, rate_limited_config()).await;
    let mut client = anonymous_login(&server).await;
    client.write_all(pings().as_bytes()).await.unwrap();
    // A reset here (unread input at close) would lose what is below.
    let received = read_to_close(&mut client, Duration::from_secs(5))
        .await
        .expect("a clean close, not a reset");
    assert_answers_then_policy_violation(&received);
    assert!(received.ends_with("</stream:stream>"), "{received}");
}

/// An RFC 7395 WebSocket to `server`'s endpoint, served on an ephemeral loopback port.
async fn websocket(
    server: &XmppServer,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = server.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut request = format!("ws://{addr}/xmpp-websocket")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "xmpp".parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_cut_over_websocket_delivers_the_answers_then_close_frames() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let data_dir = DataDir::new();
    let server = start_server(DOMAIN, &data_dir, rate_limited_config()).await;
    let mut socket = websocket(&server).await;
    let open =
        format!("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{DOMAIN}' version='1.0'/>");
    let mut frames = vec![
        open.clone(),
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>".to_owned(),
        open,
        "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>".to_owned(),
    ];
    frames.extend((0..PIPELINED_PINGS).map(|i| {
        format!("<iq xmlns='jabber:client' type='get' id='p{i}'><ping xmlns='urn:xmpp:ping'/></iq>")
    }));
    for frame in frames {
        // The server may cut before all are sent.
        if socket.feed(Message::text(frame)).await.is_err() {
            break;
        }
    }
    let _ = socket.flush().await;
    let mut received = String::new();
    let mut close_frame = false;
    let read_all = async {
        while let Some(message) = socket.next().await {
            match message.expect("a clean close, not a reset") {
                Message::Text(text) => received.push_str(&text),
                Message::Close(_) => close_frame = true,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_all)
        .await
        .expect("closed by the server in time");
    assert_answers_then_policy_violation(&received);
    assert!(
        received.ends_with("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"),
        "{received}"
    );
    assert!(close_frame, "no close frame after {received}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_that_never_opens_its_stream_is_closed_after_the_open_timeout() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let config = Config {
        open_timeout_secs: 1,
        ..Config::default()
    };
    let data_dir = DataDir::new();
    let server = start_server(DOMAIN, &data_dir, config).await;
    let mut socket = websocket(&server).await;
    let mut received = String::new();
    let read_all = async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message {
                received.push_str(&text);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(3), read_all)
        .await
        .expect("closed after the open timeout");
    assert!(received.contains("<connection-timeout"), "{received}");
}
