//! The attacks of issue 15, each bounded in count and time, each asserting what the server
//! must do to the attacker; each returns a line of figures for the report.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::raw::{Raw, connect_from};

/// Slack for timers on a loaded 2-core machine.
pub const MARGIN: Duration = Duration::from_millis(1500);

/// The server's defaults these attacks meet (`docs/config.md`).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_PER_ADDRESS: usize = 64;
const UNAUTHENTICATED_PER_ADDRESS: usize = 20;
const STANZA_BURST: usize = 100;

fn groupchat(room: &str, body: &str) -> String {
    format!("<message to='{room}' type='groupchat'><body>{body}</body></message>")
}

/// Reads and forgets everything until the server closes; the stream error it sent, if any.
async fn drain(mut read: impl AsyncRead + Unpin) -> Option<String> {
    let mut buffer = vec![0u8; 65536];
    let mut tail = String::new();
    while let Ok(n @ 1..) = read.read(&mut buffer).await {
        tail.push_str(&String::from_utf8_lossy(&buffer[..n]));
        if let Some(at) = tail.find("<stream:error") {
            return Some(tail[at..].to_owned());
        }
        let keep = tail.len().saturating_sub(32);
        let keep = (keep..).find(|i| tail.is_char_boundary(*i)).unwrap();
        tail.drain(..keep);
    }
    None
}

/// 20 authenticated occupants each send their connection's whole burst into the room at
/// once, then keep to 40 of its 50 stanzas a second for `span`.
pub async fn flood(c2s: SocketAddr, room: &str, span: Duration) -> String {
    const FLOODERS: usize = 20;
    // Within the per-connection limit, with room for a server that reads late: three
    // quarters of the burst at once.
    const BURST: usize = STANZA_BURST / 4 * 3;
    let mut flooders = Vec::new();
    for n in 0..FLOODERS {
        let mut raw = Raw::anonymous([127, 0, 0, 8], c2s).await.unwrap();
        assert!(raw.join(room, &format!("flooder{n}")).await.unwrap());
        flooders.push(raw);
    }
    let sent = Arc::new(AtomicUsize::new(0));
    let tasks = flooders.into_iter().enumerate().map(|(n, raw)| {
        let (room, sent) = (room.to_owned(), sent.clone());
        tokio::spawn(async move {
            let (read, mut write) = raw.tcp.into_split();
            let cut = tokio::spawn(drain(read));
            let burst: String = (0..BURST)
                .map(|i| groupchat(&room, &format!("flood-{n}-{i}")))
                .collect();
            // A write fails only if the server cut the flooder: the reader says why.
            let _ = write.write_all(burst.as_bytes()).await;
            sent.fetch_add(BURST, Ordering::Relaxed);
            let mut tick = tokio::time::interval(Duration::from_millis(25));
            let end = Instant::now() + span;
            let mut i = 0;
            while Instant::now() < end {
                tick.tick().await;
                let more = groupchat(&room, &format!("flood-{n}-more-{i}"));
                if write.write_all(more.as_bytes()).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            // Closing ends the session: it leaves the room.
            drop(write);
            cut.await.unwrap()
        })
    });
    let cut: Vec<String> = join_all(tasks)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();
    assert!(
        cut.is_empty(),
        "flooders within their connection's limit were cut: {cut:?}"
    );
    format!(
        "{FLOODERS} flooders sent {} messages in {span:?} (burst {BURST} each, then 40/s)",
        sent.load(Ordering::Relaxed)
    )
}

/// 200 clients, 10 from each of 20 addresses, join and leave the room in a loop for
/// `span`; then they disconnect.
pub async fn join_storm(c2s: SocketAddr, room: &str, span: Duration) -> String {
    const ADDRESSES: u8 = 20;
    const PER_ADDRESS: usize = 10;
    let started = Instant::now();
    let logins = (1..=ADDRESSES)
        .flat_map(|a| (0..PER_ADDRESS).map(move |_| Raw::anonymous([127, 0, 1, a], c2s)));
    let clients: Vec<Raw> = join_all(logins)
        .await
        .into_iter()
        .map(|r| r.expect("a storm client logs in"))
        .collect();
    let logged_in = started.elapsed();
    let (joins, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let end = Instant::now() + span;
    let loops = clients.into_iter().enumerate().map(|(n, mut raw)| {
        let (room, joins, refused) = (room.to_owned(), joins.clone(), refused.clone());
        async move {
            let nick = format!("storm{n}");
            let cycle = async {
                while Instant::now() < end {
                    if raw.join(&room, &nick).await.unwrap() {
                        joins.fetch_add(1, Ordering::Relaxed);
                        raw.leave(&room, &nick).await.unwrap();
                    } else {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            };
            // A join still queued at the end is given up with the connection.
            let _ = tokio::time::timeout_at(end.into(), cycle).await;
        }
    });
    join_all(loops).await;
    format!(
        "200 clients (logged in in {logged_in:?}) joined and left {} times in {span:?}; {} joins refused",
        joins.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    )
}

/// 60 parallel connections (20 from each of three addresses, the unauthenticated cap)
/// try up to 500 wrong passwords for `account` for `span`; halfway, the real user logs in
/// from 127.0.0.2 and must get in promptly.
pub async fn guess(c2s: SocketAddr, account: (&str, &str), span: Duration) -> String {
    const PROMPTLY: Duration = Duration::from_millis(500);
    let (user, password) = (account.0.to_owned(), account.1.to_owned());
    // Attempts started (at most 500) and wrong passwords answered.
    let (started, made) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let end = Instant::now() + span;
    let mut guessers = Vec::new();
    for n in 0..60u8 {
        let (user, started, made) = (user.clone(), started.clone(), made.clone());
        guessers.push(tokio::spawn(async move {
            let mut raw = Raw::open_from([127, 0, 2, 1 + n % 3], c2s).await.unwrap();
            let attempts = async {
                while started.fetch_add(1, Ordering::Relaxed) < 500 {
                    assert!(
                        !raw.plain(&user, &format!("guess-{n}-{started:?}"))
                            .await
                            .unwrap()
                    );
                    made.fetch_add(1, Ordering::Relaxed);
                }
            };
            let _ = tokio::time::timeout_at(end.into(), attempts).await;
        }));
    }
    tokio::time::sleep(span / 2).await;
    let started = Instant::now();
    let mut real = Raw::open_from([127, 0, 0, 2], c2s).await.unwrap();
    assert!(real.plain(&user, &password).await.unwrap());
    let login = started.elapsed();
    join_all(guessers).await;
    let made = made.load(Ordering::Relaxed);
    assert!(login < PROMPTLY, "the real user waited {login:?}");
    assert!(made <= 30, "{made} guesses in {span:?}");
    format!("60 guessers made {made} guesses in {span:?}; the real user logged in in {login:?}")
}

/// How long after `since` the server closed `stream` (a reset counts), and what it sent;
/// `None` if still open after `bound`.
async fn closed_after(
    mut stream: tokio::net::TcpStream,
    since: Instant,
    bound: Duration,
) -> Option<(Duration, String)> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let read_all = async {
        while let Ok(n @ 1..) = stream.read(&mut buffer).await {
            received.extend_from_slice(&buffer[..n]);
        }
    };
    tokio::time::timeout(bound, read_all).await.ok()?;
    Some((
        since.elapsed(),
        String::from_utf8_lossy(&received).into_owned(),
    ))
}

/// Splits close times into those closed at accept (within a second) and the rest, which
/// must all have been closed at `timeout` (not before, and within the margin after).
fn at_accept_and_at(closes: &[Duration], timeout: Duration, what: &str) -> (usize, usize) {
    let at_once = closes
        .iter()
        .filter(|d| **d < Duration::from_secs(1))
        .count();
    for close in closes.iter().filter(|d| **d >= Duration::from_secs(1)) {
        assert!(
            *close > timeout - Duration::from_millis(500) && *close < timeout + MARGIN,
            "{what} closed after {close:?}, its timeout being {timeout:?}"
        );
    }
    (at_once, closes.len() - at_once)
}

/// Silent and 1-byte/s HTTP connections to the HTTP port (200 silent from one address,
/// 10 slow from another) and 500 silent c2s connections from a third, all at once; the
/// HTTP port keeps serving others, and a real client from the c2s attacker's address
/// gets in once the silent ones are gone.
pub async fn idle_sockets(http: SocketAddr, c2s: SocketAddr) -> String {
    const SILENT_HTTP: usize = 200;
    const SLOW_HTTP: usize = 10;
    const SILENT_C2S: usize = 500;
    let bound = HEADER_TIMEOUT.max(OPEN_TIMEOUT) + MARGIN;
    let silent_http = (0..SILENT_HTTP).map(|_| async {
        let stream = connect_from([127, 0, 0, 3], http).await.unwrap();
        let (after, _) = closed_after(stream, Instant::now(), bound)
            .await
            .expect("a silent HTTP connection still open");
        after
    });
    let slow_http = (0..SLOW_HTTP).map(|_| async {
        let since = Instant::now();
        let mut stream = connect_from([127, 0, 0, 4], http).await.unwrap();
        let head = format!("GET /about/health HTTP/1.1\r\nHost: {http}\r\n\r\n");
        let mut answer = [0u8; 64];
        for byte in head.as_bytes() {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            // A second until the next byte, unless the server closes meanwhile.
            match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut answer)).await {
                Err(_) => assert!(since.elapsed() < bound, "a 1-byte/s HTTP head still read"),
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => panic!("a slow head was answered: {:?}", &answer[..n]),
            }
        }
        let (after, answer) = closed_after(stream, since, bound)
            .await
            .expect("a slow HTTP connection still open");
        assert!(answer.is_empty(), "a slow head was answered: {answer}");
        after
    });
    let silent_c2s = (0..SILENT_C2S).map(|_| async {
        let stream = connect_from([127, 0, 0, 5], c2s).await.unwrap();
        closed_after(stream, Instant::now(), bound)
            .await
            .expect("a silent c2s connection still open")
    });
    // Meanwhile the HTTP port serves another address, and the attacker's own address gets
    // a real client in once its silent connections are gone.
    let others = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut other = connect_from([127, 0, 0, 7], http).await.unwrap();
        let request =
            format!("GET /about/health HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
        other.write_all(request.as_bytes()).await.unwrap();
        let (_, answer) = closed_after(other, Instant::now(), MARGIN)
            .await
            .expect("answered");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        tokio::time::sleep(OPEN_TIMEOUT + MARGIN - Duration::from_secs(2)).await;
        let started = Instant::now();
        Raw::anonymous([127, 0, 0, 5], c2s)
            .await
            .expect("a real client from the attacker's address after the open timeout");
        started.elapsed()
    };
    let (silent_http, slow_http, silent_c2s, real) = tokio::join!(
        join_all(silent_http),
        join_all(slow_http),
        join_all(silent_c2s),
        others
    );
    let (refused, held) =
        at_accept_and_at(&silent_http, HEADER_TIMEOUT, "a silent HTTP connection");
    assert_eq!(
        (refused, held),
        (SILENT_HTTP - HTTP_PER_ADDRESS, HTTP_PER_ADDRESS),
        "silent HTTP: closed at accept, at the header timeout"
    );
    let (_, slow) = at_accept_and_at(&slow_http, HEADER_TIMEOUT, "a slow HTTP connection");
    assert_eq!(slow, SLOW_HTTP, "slow HTTP closed at the header timeout");
    let c2s_closes: Vec<Duration> = silent_c2s.iter().map(|(after, _)| *after).collect();
    let (refused_c2s, held_c2s) =
        at_accept_and_at(&c2s_closes, OPEN_TIMEOUT, "a silent c2s connection");
    for (after, said) in &silent_c2s {
        let wanted = if *after < Duration::from_secs(1) {
            "<policy-violation"
        } else {
            "<connection-timeout"
        };
        assert!(said.contains(wanted), "closed after {after:?} with {said}");
        assert!(said.ends_with("</stream:stream>"), "{said}");
    }
    assert_eq!(
        (refused_c2s, held_c2s),
        (
            SILENT_C2S - UNAUTHENTICATED_PER_ADDRESS,
            UNAUTHENTICATED_PER_ADDRESS
        ),
        "silent c2s: closed at accept, at the open timeout"
    );
    let slowest = |closes: &[Duration]| closes.iter().max().copied().unwrap_or_default();
    format!(
        "HTTP: {SILENT_HTTP} silent from one address: {refused} closed at accept, {held} at \
         {:?} at the latest; {SLOW_HTTP} at 1 byte/s closed at {:?} at the latest. c2s: \
         {SILENT_C2S} silent from one address: {refused_c2s} closed at accept with \
         policy-violation, {held_c2s} at {:?} at the latest; a real client from that \
         address then logged in in {real:?}",
        slowest(&silent_http),
        slowest(&slow_http),
        slowest(&c2s_closes),
    )
}

/// How many pings a client that was cut for its rate had answered before its stream
/// error: answers p0, p1, ... in order, none after the error.
fn answers_then_policy_violation(received: &str) -> usize {
    let cut = received
        .find("<policy-violation")
        .unwrap_or_else(|| panic!("no policy-violation in {received}"));
    let answered = |text: &str, i: usize| {
        text.contains(&format!("id='p{i}'")) || text.contains(&format!("id=\"p{i}\""))
    };
    let count = (0..).take_while(|i| answered(&received[..cut], *i)).count();
    assert!(
        count >= STANZA_BURST / 2,
        "only {count} answers before the cut"
    );
    assert!(
        !answered(received, count),
        "answers out of order: {received}"
    );
    assert!(
        !received[cut..].contains("type='result'"),
        "answered after the cut"
    );
    count
}

fn ping(i: usize) -> String {
    format!("<iq xmlns='jabber:client' type='get' id='p{i}'><ping xmlns='urn:xmpp:ping'/></iq>")
}

/// A client pipelines 1000 pings after logging in, over TCP and over WebSocket: it is
/// cut at its burst, and still gets the answers already due, then the stream error and
/// the stream's end (and a close frame), without a reset.
pub async fn pipelined_cut(c2s: SocketAddr, http: SocketAddr) -> String {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    const PINGS: usize = 1000;

    let mut raw = Raw::anonymous([127, 0, 0, 9], c2s).await.unwrap();
    let pings: String = (0..PINGS).map(ping).collect();
    raw.send(&pings).await.unwrap();
    let received = raw
        .read_to_close(Duration::from_secs(5))
        .await
        .expect("a clean close, not a reset");
    let over_tcp = answers_then_policy_violation(&received);
    assert!(received.ends_with("</stream:stream>"), "{received}");

    let mut request = format!("ws://{http}/xmpp-websocket")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "xmpp".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let open = format!(
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{}' version='1.0'/>",
        crate::common::DOMAIN
    );
    let mut frames = vec![
        open.clone(),
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>".to_owned(),
        open,
        "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>".to_owned(),
    ];
    frames.extend((0..PINGS).map(ping));
    for frame in frames {
        // The server may cut before all are sent.
        if socket.feed(Message::text(frame)).await.is_err() {
            break;
        }
    }
    let _ = socket.flush().await;
    let (mut text, mut close_frame) = (String::new(), false);
    let read_all = async {
        while let Some(message) = socket.next().await {
            match message.expect("a clean close, not a reset") {
                Message::Text(frame) => text.push_str(&frame),
                Message::Close(_) => close_frame = true,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_all)
        .await
        .expect("closed by the server in time");
    let over_ws = answers_then_policy_violation(&text);
    assert!(
        text.ends_with("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"),
        "{text}"
    );
    assert!(close_frame, "no close frame after {text}");
    format!(
        "{PINGS} pipelined pings: {over_tcp} answers then policy-violation and the stream end over \
         TCP; {over_ws} answers, policy-violation, <close/> and a close frame over WebSocket"
    )
}
