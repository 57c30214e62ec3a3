//! Fairness under hostile load, on loopback with raw TCP clients (a Rust client reads
//! fast enough that the latencies measured are the server's): flooders in a room do not
//! delay the innocent occupants, and parallel password guessers get a handful of guesses
//! while the real user logs in at once from another address.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{DataDir, start_server};
use convene_xmpp::{Config, XmppServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

const DOMAIN: &str = "fair.test";
const ROOM: &str = "room@conference.fair.test";
const INNOCENT: usize = 10;
const FLOODERS: usize = 40;

/// One client's stream, read up to a marker at a time while logging in.
struct Stream {
    tcp: TcpStream,
    seen: String,
}

impl Stream {
    async fn connect(server: SocketAddr, from: [u8; 4]) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((from, 0))).unwrap();
        let tcp = socket.connect(server).await.unwrap();
        let mut stream = Self {
            tcp,
            seen: String::new(),
        };
        stream.open().await;
        stream
    }

    async fn open(&mut self) {
        let header = format!(
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>"
        );
        self.send(&header).await;
        self.until(&["</stream:features>"]).await;
    }

    async fn send(&mut self, text: &str) {
        self.tcp.write_all(text.as_bytes()).await.unwrap();
    }

    /// Reads until one of `markers` arrived; returns which, and forgets what came before.
    async fn until(&mut self, markers: &[&str]) -> usize {
        let mut buffer = [0u8; 4096];
        loop {
            if let Some((index, end)) = markers
                .iter()
                .enumerate()
                .filter_map(|(i, m)| self.seen.find(m).map(|at| (i, at + m.len())))
                .min_by_key(|(_, end)| *end)
            {
                self.seen.drain(..end);
                return index;
            }
            let n = self.tcp.read(&mut buffer).await.unwrap();
            assert!(n > 0, "closed: {}", self.seen);
            self.seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    }

    /// PLAIN (allowed on loopback without TLS): whether it succeeded.
    async fn plain(&mut self, user: &str, password: &str) -> bool {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{credentials}</auth>"
        ))
        .await;
        self.until(&["<success", "<failure"]).await == 0
    }

    /// Logs in anonymously, binds and joins the room as `nick`.
    async fn occupant(server: SocketAddr, nick: &str) -> Self {
        let mut stream = Self::connect(server, [127, 0, 0, 1]).await;
        stream
            .send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>")
            .await;
        stream.until(&["<success"]).await;
        stream.open().await;
        stream
            .send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
            .await;
        stream.until(&["</iq>"]).await;
        stream
            .send(&format!("<presence to='{ROOM}/{nick}'/>"))
            .await;
        // The subject message ends the join.
        stream.until(&["</message>"]).await;
        stream
    }
}

/// What one occupant's reader saw: each room message's body, with when it arrived.
enum Seen {
    Body(String, Instant),
    /// The server closed the stream.
    Closed,
}

/// Reads everything the server sends, reporting the bodies of the room's messages.
async fn read_bodies(mut read: OwnedReadHalf, seen: String, report: mpsc::UnboundedSender<Seen>) {
    let mut text = seen;
    let mut buffer = vec![0u8; 65536];
    loop {
        while let Some(start) = text.find("<body>") {
            let Some(end) = text[start..].find("</body>") else {
                break;
            };
            let body = text[start + 6..start + end].to_owned();
            let _ = report.send(Seen::Body(body, Instant::now()));
            text.drain(..start + end);
        }
        if text.contains("</stream:stream>") || text.contains("<stream:error") {
            let _ = report.send(Seen::Closed);
            return;
        }
        // Keep only what may start an unfinished body.
        if !text.contains("<body>") && text.len() > 16 {
            let keep = text.len() - 16;
            let keep = (keep..=text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap();
            text.drain(..keep);
        }
        match read.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                let _ = report.send(Seen::Closed);
                return;
            }
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buffer[..n])),
        }
    }
}

fn groupchat(body: &str) -> String {
    format!("<message to='{ROOM}' type='groupchat'><body>{body}</body></message>")
}

fn p99(latencies: &mut [Duration]) -> Duration {
    latencies.sort_unstable();
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}

/// The innocent chat at 20 messages/s in all for `span`; their messages are numbered from
/// `first` and carry their send time (µs since `epoch`).
async fn chat(
    writers: &mut [OwnedWriteHalf],
    epoch: Instant,
    first: usize,
    span: Duration,
) -> usize {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut sent = 0;
    let end = Instant::now() + span;
    while Instant::now() < end {
        tick.tick().await;
        let writer = &mut writers[sent % writers.len()];
        let micros = epoch.elapsed().as_micros();
        let body = format!("innocent-{}-{micros}", first + sent);
        writer.write_all(groupchat(&body).as_bytes()).await.unwrap();
        sent += 1;
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooders_do_not_delay_the_innocent_occupants() {
    let data_dir = DataDir::new();
    let server = start_server(DOMAIN, &data_dir, Config::default()).await;
    let addr = server.c2s_addr();
    let epoch = Instant::now();
    let (report, mut reports) = mpsc::unbounded_channel();
    let mut writers = Vec::new();
    for n in 0..INNOCENT {
        let stream = Stream::occupant(addr, &format!("innocent{n}")).await;
        let (read, write) = stream.tcp.into_split();
        let report = report.clone();
        tokio::spawn(read_bodies(read, stream.seen, report));
        writers.push(write);
    }
    let mut flooders = Vec::new();
    for n in 0..FLOODERS {
        let stream = Stream::occupant(addr, &format!("flooder{n}")).await;
        let (read, write) = stream.tcp.into_split();
        // Flooders read too (what they are sent is not what is measured).
        let (ignore, _ignored) = mpsc::unbounded_channel();
        tokio::spawn(read_bodies(read, stream.seen, ignore));
        flooders.push(write);
    }
    drop(report);

    let baseline = chat(&mut writers, epoch, 0, Duration::from_secs(2)).await;
    // Each flooder: its connection's whole burst at once, then its sustained rate. The
    // bursts come 20 ms apart, so that what is measured is the fan-out of all their bursts
    // within a second, not the parsing of all of them in one instant (which the per-connection
    // limit governs).
    let flood = tokio::spawn(async move {
        for flooder in &mut flooders {
            // Its connection's whole burst, less the login's stanzas.
            let whole = Config::default().stanza_burst as usize - 5;
            let burst: String = (0..whole)
                .map(|i| groupchat(&format!("flood-{i}")))
                .collect();
            flooder.write_all(burst.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for i in 0..150 {
            tick.tick().await;
            for flooder in &mut flooders {
                let _ = flooder
                    .write_all(groupchat(&format!("flood-more-{i}")).as_bytes())
                    .await;
            }
        }
        flooders
    });
    let during = chat(&mut writers, epoch, baseline, Duration::from_secs(3)).await;
    let _flooders = flood.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Every innocent message reaches every innocent occupant (its sender as the echo).
    let mut received = vec![0usize; baseline + during];
    let mut latencies = (Vec::new(), Vec::new());
    let mut closed = 0;
    while let Ok(seen) = reports.try_recv() {
        match seen {
            Seen::Closed => closed += 1,
            Seen::Body(body, at) => {
                let Some(rest) = body.strip_prefix("innocent-") else {
                    continue;
                };
                let (number, micros) = rest.split_once('-').unwrap();
                let number: usize = number.parse().unwrap();
                let sent = epoch + Duration::from_micros(micros.parse().unwrap());
                received[number] += 1;
                let phase = if number < baseline {
                    &mut latencies.0
                } else {
                    &mut latencies.1
                };
                phase.push(at - sent);
            }
        }
    }
    assert_eq!(closed, 0, "an innocent occupant was disconnected");
    assert!(
        received.iter().all(|n| *n == INNOCENT),
        "lost or doubled: {received:?}"
    );
    let (before, during) = (p99(&mut latencies.0), p99(&mut latencies.1));
    println!("innocent p99: baseline {before:?}, during the flood {during:?}");
    assert!(
        during < before * 5 + Duration::from_millis(50),
        "p99 {during:?} during the flood, baseline {before:?}"
    );
    let metrics = server.metrics_text().await;
    println!(
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("throttled_total{"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guessers_get_a_handful_of_guesses_and_the_real_user_logs_in_at_once() {
    let data_dir = DataDir::new();
    convene_xmpp::accounts::Accounts::open(data_dir.path())
        .unwrap()
        .set_password("alice", "the real one", false)
        .unwrap();
    // The per-address connection limit is not what is tested here.
    let config = Config {
        max_unauthenticated_per_ip: 100,
        ..Config::default()
    };
    let server: XmppServer = start_server(DOMAIN, &data_dir, config).await;
    let addr = server.c2s_addr();
    let guesses = Arc::new(AtomicUsize::new(0));
    let mut guessers = Vec::new();
    for n in 0..60 {
        let guesses = guesses.clone();
        guessers.push(tokio::spawn(async move {
            let mut stream = Stream::connect(addr, [127, 0, 0, 1]).await;
            for i in 0.. {
                assert!(!stream.plain("alice", &format!("guess-{n}-{i}")).await);
                guesses.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    // The real user, from another loopback address, in the middle of the attack.
    let started = Instant::now();
    let mut real = Stream::connect(addr, [127, 0, 0, 2]).await;
    assert!(real.plain("alice", "the real one").await);
    let login = started.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let made = guesses.load(Ordering::Relaxed);
    for guesser in guessers {
        guesser.abort();
    }
    println!("{made} guesses in 10 s; the real user logged in in {login:?}");
    assert!(made <= 10, "{made} guesses in 10 s");
    assert!(
        login < Duration::from_millis(500),
        "the real user waited {login:?}"
    );
}
