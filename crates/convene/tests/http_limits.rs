//! The HTTP listener against hostile clients on raw sockets (issue 15): silent and slow
//! ones are closed within `header_timeout_secs`, idle keep-alive connections too, one
//! address cannot hold more than `max_connections_per_address` sockets while another is
//! still served, and an upgraded WebSocket outlives the HTTP timers while it keeps its
//! place under the cap.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Convene, DOMAIN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Short limits, so that each test takes a few seconds.
const LIMITS: &str = "[http]\nheader_timeout_secs = 1\nmax_connections_per_address = 4\n";
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// Slack for the timer and a loaded machine.
const MARGIN: Duration = Duration::from_millis(1500);

/// A connection to `server` from the loopback address `source`.
async fn connect_from(source: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(server).await.unwrap()
}

/// Reads until the server closes, within `bound`; what came before.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let read_all = async {
        // A reset counts as closed too.
        while let Ok(n @ 1..) = stream.read(&mut buffer).await {
            received.extend_from_slice(&buffer[..n]);
        }
    };
    tokio::time::timeout(bound, read_all)
        .await
        .unwrap_or_else(|_| panic!("still open after {bound:?}"));
    String::from_utf8_lossy(&received).into_owned()
}

fn health_request(addr: SocketAddr) -> String {
    format!("GET /about/health HTTP/1.1\r\nHost: {addr}\r\n\r\n")
}

#[tokio::test]
async fn silent_slow_and_idle_connections_are_closed_after_the_header_timeout() {
    let convene = Convene::start_with("http-timeouts", LIMITS);
    let started = Instant::now();
    let mut silent = TcpStream::connect(convene.http).await.unwrap();
    let mut idle = TcpStream::connect(convene.http).await.unwrap();
    idle.write_all(health_request(convene.http).as_bytes())
        .await
        .unwrap();
    // A request head at a few bytes a second, never finished in time.
    let mut slow = TcpStream::connect(convene.http).await.unwrap();
    let head = health_request(convene.http);
    let trickle = async {
        for byte in head.as_bytes() {
            if slow.write_all(&[*byte]).await.is_err() {
                return; // closed by the server: what the test wants
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("a request head sent over {:?} was read", started.elapsed());
    };
    tokio::time::timeout(HEADER_TIMEOUT + MARGIN, trickle)
        .await
        .expect("the slow request closed in time");
    closed_within(&mut silent, HEADER_TIMEOUT + MARGIN).await;
    // The idle one was answered, then closed with no second request.
    let answered = closed_within(&mut idle, HEADER_TIMEOUT + MARGIN).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    let metrics = convene.get("/metrics").body;
    assert!(
        metrics.contains("convene_http_connections_timed_out_total 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn one_address_gets_its_cap_of_sockets_while_another_is_served() {
    let convene = Convene::start_with("http-cap", LIMITS);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from([127, 0, 0, 2], convene.http).await);
    }
    // The fifth from that address is closed at accept, before any byte.
    let mut over = connect_from([127, 0, 0, 2], convene.http).await;
    let refused = closed_within(&mut over, Duration::from_millis(900)).await;
    assert!(refused.is_empty(), "{refused}");
    // Another address is served meanwhile.
    let mut other = connect_from([127, 0, 0, 3], convene.http).await;
    other
        .write_all(health_request(convene.http).as_bytes())
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    other.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let metrics = convene.get("/metrics").body;
    assert!(
        metrics.contains("convene_http_connections_refused_total{reason=\"per_address\"} 1"),
        "{metrics}"
    );
    // The held ones are gone after the header timeout, and the address is served again.
    for stream in &mut held {
        closed_within(stream, HEADER_TIMEOUT + MARGIN).await;
    }
    let mut again = connect_from([127, 0, 0, 2], convene.http).await;
    again
        .write_all(health_request(convene.http).as_bytes())
        .await
        .unwrap();
    again.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
}

/// The next text frame, within a few seconds.
async fn next_text(
    socket: &mut (
             impl futures_util::Stream<
        Item = Result<
            tokio_tungstenite::tungstenite::Message,
            tokio_tungstenite::tungstenite::Error,
        >,
    > + Unpin
         ),
) -> String {
    use futures_util::StreamExt;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("an answer")
            .expect("still open")
            .expect("no error");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return text.to_string();
        }
    }
}

#[tokio::test]
async fn an_upgraded_websocket_outlives_the_http_timers_and_keeps_its_place() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    let convene = Convene::start_with("http-websocket", LIMITS);
    let mut request = format!("ws://{}/xmpp-websocket", convene.http)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "xmpp".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let open =
        format!("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{DOMAIN}' version='1.0'/>");
    socket.send(Message::text(open)).await.unwrap();
    assert!(next_text(&mut socket).await.starts_with("<open"));
    // Well past the header timeout: the stream goes on.
    tokio::time::sleep(HEADER_TIMEOUT * 2 + MARGIN).await;
    let metrics = convene.get("/metrics").body;
    // This GET and the WebSocket.
    assert!(metrics.contains("convene_http_connections 2"), "{metrics}");
    socket
        .send(Message::text(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>",
        ))
        .await
        .unwrap();
    let mut answer = next_text(&mut socket).await;
    while !answer.contains("<success") {
        answer = next_text(&mut socket).await;
    }
}
