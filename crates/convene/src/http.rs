//! The HTTP listener (web client, XMPP over WebSocket, bridge channel, health, metrics),
//! guarded as nginx guards its own: a time limit on each request head
//! (`client_header_timeout`, which also closes idle keep-alive connections), on each pause
//! in a request body (`client_body_timeout`), and a cap on open sockets per source address
//! and in all (`limit_conn`), counted at accept, before any byte is read.
//!
//! `axum::serve` has none of these, so the accept loop is written here on hyper's HTTP/1
//! connection builder (HTTP/1 only: browsers speak HTTP/2 only over TLS, which a proxy in
//! front terminates). An upgraded WebSocket leaves hyper, and so these timers, behind (the
//! XMPP WebSocket and colibri-ws have their own keepalive) but keeps its socket's place
//! under the caps until it closes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeout;

/// Limits of the HTTP listener (`[http]`). Connections from a trusted proxy (the TLS proxy
/// the README recommends, on the same host by default) are exempt from the per-address cap,
/// and the client address their requests name in `X-Forwarded-For` is the one the XMPP
/// server's per-address limits see; from anyone else `X-Forwarded-For` is ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Seconds a client may take to send a whole request head, counted from the accept or
    /// from the end of the previous response; so also how long an idle keep-alive
    /// connection stays open.
    pub header_timeout_secs: u64,
    /// Seconds a request body may pause between two pieces.
    pub body_timeout_secs: u64,
    /// Open sockets per source address, upgraded WebSockets included; one more is closed
    /// at accept.
    pub max_connections_per_address: usize,
    /// Open sockets in all; keep it below the process's descriptor limit (`ulimit -n`)
    /// minus what the c2s listener and the bridge need.
    pub max_connections: usize,
    /// Addresses of reverse proxies in front of this listener.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_timeout_secs: 10,
            body_timeout_secs: 10,
            max_connections_per_address: 64,
            max_connections: 4096,
            trusted_proxies: vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
            ],
        }
    }
}

/// The open sockets, by source address and in all, and what was refused or timed out.
#[derive(Default)]
pub struct Connections {
    /// Shared by the accept loop and every socket's drop, held for one hash update.
    open: Mutex<OpenSockets>,
    refused_per_address: AtomicU64,
    refused_over_total: AtomicU64,
    timed_out: AtomicU64,
}

#[derive(Default)]
struct OpenSockets {
    by_address: HashMap<IpAddr, usize>,
    total: usize,
}

impl Connections {
    /// A place for a new socket from `peer`, or `None` when a cap is reached.
    fn admit(self: &Arc<Self>, peer: IpAddr, config: &HttpConfig) -> Option<Slot> {
        let mut open = self.open.lock().expect("a hash update does not panic");
        if open.total >= config.max_connections {
            self.refused_over_total.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let count = open.by_address.entry(peer).or_default();
        if *count >= config.max_connections_per_address && !config.trusted_proxies.contains(&peer) {
            self.refused_per_address.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *count += 1;
        open.total += 1;
        Some(Slot {
            connections: self.clone(),
            peer,
        })
    }

    /// The `convene_http_…` families in Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let open = self
            .open
            .lock()
            .expect("a hash update does not panic")
            .total;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut out = String::new();
        let families = [
            (
                "connections",
                "gauge",
                "Open HTTP sockets, upgraded WebSockets included.",
                vec![("", open as u64)],
            ),
            (
                "connections_refused_total",
                "counter",
                "Sockets closed at accept: too many from one address, or in all.",
                vec![
                    ("reason=\"per_address\"", load(&self.refused_per_address)),
                    ("reason=\"total\"", load(&self.refused_over_total)),
                ],
            ),
            (
                "connections_timed_out_total",
                "counter",
                "Connections closed for not sending a complete request head in time \
                 (idle keep-alive connections included).",
                vec![("", load(&self.timed_out))],
            ),
        ];
        for (name, kind, help, samples) in families {
            let _ = writeln!(out, "# HELP convene_http_{name} {help}");
            let _ = writeln!(out, "# TYPE convene_http_{name} {kind}");
            for (labels, value) in samples {
                let labels = if labels.is_empty() {
                    String::new()
                } else {
                    format!("{{{labels}}}")
                };
                let _ = writeln!(out, "convene_http_{name}{labels} {value}");
            }
        }
        out
    }
}

/// One open socket's place under the caps, given back when the socket closes.
struct Slot {
    connections: Arc<Connections>,
    peer: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .expect("a hash update does not panic");
        open.total -= 1;
        if let Some(count) = open.by_address.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.by_address.remove(&self.peer);
            }
        }
    }
}

/// A socket that holds its [`Slot`]: it travels into an upgraded WebSocket with the socket.
struct Counted {
    stream: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves `app` on `listener` until `stop` resolves; then stops accepting, lets the
/// requests in progress finish and closes idle connections, and returns once every
/// connection has ended (upgraded WebSockets are their roles' to end).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: HttpConfig,
    connections: Arc<Connections>,
    stop: impl Future<Output = ()>,
) {
    let app = RequestBodyTimeout::new(app, Duration::from_secs(config.body_timeout_secs));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(config.header_timeout_secs));
    // Every connection task holds a receiver: `closed()` below waits for all of them.
    let (stopping, stop_seen) = watch::channel(false);
    let mut stop = pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, typically: give the open ones time to close.
                    tracing::warn!("HTTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Some(slot) = connections.admit(peer.ip(), &config) else {
            tracing::debug!("HTTP connection from {peer} refused: over the connection cap");
            continue; // dropped, so closed at once
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let from_proxy = config.trusted_proxies.contains(&peer.ip());
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            // What axum's `ConnectInfo` extractor reads: the per-address limits of the
            // XMPP WebSocket endpoint use it.
            let client = if from_proxy {
                forwarded_client(request.headers()).map_or(peer, |ip| SocketAddr::new(ip, 0))
            } else {
                peer
            };
            request.extensions_mut().insert(ConnectInfo(client));
            app.clone().oneshot(request)
        });
        let stream = TokioIo::new(Counted {
            stream,
            _slot: slot,
        });
        let connection = http.serve_connection(stream, service).with_upgrades();
        let stop_seen = stop_seen.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(connection, stop_seen).await {
                if e.is_timeout() {
                    connections.timed_out.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!("HTTP connection from {peer}: {e}");
            }
        });
    }
    drop(listener);
    drop(stop_seen);
    let _ = stopping.send(true);
    stopping.closed().await;
}

/// The client address a trusted proxy appended to `X-Forwarded-For` (its last entry: the
/// earlier ones came from the client and may be forged).
fn forwarded_client(headers: &hyper::HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    last.to_str().ok()?.rsplit(',').next()?.trim().parse().ok()
}

/// Runs one connection; once the server stops, it ends after the request in progress.
async fn serve_connection<S>(
    connection: hyper::server::conn::http1::UpgradeableConnection<TokioIo<Counted>, S>,
    mut stop_seen: watch::Receiver<bool>,
) -> hyper::Result<()>
where
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connection = pin!(connection);
    tokio::select! {
        served = connection.as_mut() => return served,
        _ = stop_seen.wait_for(|stopping| *stopping) => {}
    }
    connection.as_mut().graceful_shutdown();
    connection.await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_last_forwarded_address() {
        let mut headers = hyper::HeaderMap::new();
        assert_eq!(forwarded_client(&headers), None);
        headers.append(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.4".parse().unwrap(),
        );
        assert_eq!(
            forwarded_client(&headers),
            Some(IpAddr::from([198, 51, 100, 4]))
        );
        headers.append("x-forwarded-for", "2001:db8::7".parse().unwrap());
        assert_eq!(forwarded_client(&headers), "2001:db8::7".parse().ok());
        headers.append("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(forwarded_client(&headers), None);
    }

    #[test]
    fn a_trusted_proxy_is_not_capped_per_address() {
        let config = HttpConfig {
            max_connections_per_address: 1,
            ..HttpConfig::default()
        };
        let connections = Arc::new(Connections::default());
        let proxy = IpAddr::from([127, 0, 0, 1]);
        let client = IpAddr::from([127, 0, 0, 2]);
        let held: Vec<Slot> = (0..3)
            .map(|_| {
                connections
                    .admit(proxy, &config)
                    .expect("a proxy is not capped")
            })
            .collect();
        let first = connections.admit(client, &config);
        assert!(first.is_some());
        assert!(connections.admit(client, &config).is_none(), "a client is");
        drop((held, first));
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// No route of Convene reads a request body yet (hyper closes a connection whose
    /// body went unread), so the body timer is shown on a route made to read one.
    #[tokio::test]
    async fn a_request_body_that_stalls_is_cut_after_the_body_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/echo", axum::routing::post(|body: String| async { body }));
        let config = HttpConfig {
            body_timeout_secs: 1,
            ..HttpConfig::default()
        };
        let connections = Arc::new(Connections::default());
        tokio::spawn(serve(
            listener,
            app,
            config,
            connections,
            std::future::pending(),
        ));
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(
            Duration::from_millis(2500),
            client.read_to_string(&mut answer),
        )
        .await
        .expect("cut within the body timeout")
        .unwrap();
        assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
