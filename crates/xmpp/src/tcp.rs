//! TCP client connections (RFC 6120): stream headers, STARTTLS upgrade, stanzas.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::Instrument;

use crate::XmppServer;
use crate::conn::{Conn, LINGER, Write};
use crate::hub::ConnId;
use crate::session::{StreamError, Transport};
use crate::stanza::ns;
use crate::xml::{self, StreamEvent, StreamParser};

/// Accepts connections until the server shuts down (then the listener closes, so new
/// connections are refused).
pub async fn accept_loop(
    server: XmppServer,
    listener: TcpListener,
    mut shutting_down: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutting_down.wait_for(|down| *down) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let id = server.next_conn_id();
                let span = tracing::info_span!("c2s", transport = "tcp", id = id.0);
                tokio::spawn(serve(server.clone(), id, stream, peer).instrument(span));
            }
            Err(e) => {
                tracing::warn!("c2s accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve(server: XmppServer, id: ConnId, stream: TcpStream, peer: SocketAddr) {
    tracing::debug!("connection from {peer}");
    let mut conn = Conn::connect(server, id, Transport::Tcp, peer.ip(), None, None).await;
    let (stream, early) = match run(&mut conn, stream).await {
        Ok(Ended::StartTls(stream, early)) => (stream, early),
        ended => return end(conn, ended, peer).await,
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(conn.tls_config());
    let handshake = acceptor.accept_with(stream, |tls| {
        // What the client sent before `<proceed/>` reached it goes to TLS first.
        let mut early = early.as_slice();
        while !early.is_empty() && matches!(tls.read_tls(&mut early), Ok(n) if n > 0) {}
        // An error here is kept by rustls and ends the handshake below.
        let _ = tls.process_new_packets();
    });
    match handshake.await {
        Ok(tls) => {
            conn.tls_established();
            let ended = run(&mut conn, tls).await;
            end(conn, ended, peer).await;
        }
        Err(e) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
    }
}

/// What [`run`] leaves of the socket.
enum Ended<S> {
    /// STARTTLS: the socket goes on under TLS; the bytes read past `<starttls/>` are the
    /// start of the TLS handshake (a client that did not wait for `<proceed/>`).
    StartTls(S, Vec<u8>),
    /// The server closed the stream and half-closed the socket.
    Closed(S),
    /// The peer went away.
    Gone,
}

/// The connection is over: the hub hears of it first, then a socket the server closed
/// lingers so that what was written reaches the peer.
async fn end<S: AsyncRead + Unpin>(conn: Conn, ended: std::io::Result<Ended<S>>, peer: SocketAddr) {
    drop(conn);
    match ended {
        Ok(Ended::Closed(stream)) => linger(stream).await,
        Ok(Ended::StartTls(..) | Ended::Gone) => {}
        Err(e) => tracing::debug!("c2s connection from {peer}: {e}"),
    }
}

/// Reads and discards what the peer still sends, until it closes too or [`LINGER`] passes.
async fn linger<S: AsyncRead + Unpin>(mut stream: S) {
    let mut discard = [0u8; 1024];
    let drain = async { while matches!(stream.read(&mut discard).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Runs the stream until it ends or STARTTLS asks for the socket back.
async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn,
    mut stream: S,
) -> std::io::Result<Ended<S>> {
    let mut parser = StreamParser::new(conn.limits());
    // Small on purpose: it lives as long as the connection, and most stanzas are small.
    let mut buffer = vec![0u8; 4 * 1024];
    // What was read and not yet parsed: the rest of a read after an event that ends this
    // parser's stream (a SASL restart: the new parser's; `<starttls/>`: TLS's).
    let mut unparsed = 0..0;
    let mut header_sent = false;
    let started = tokio::time::Instant::now();
    let mut keepalive = conn.keepalive();
    // Refused at accept: closed before reading anything.
    let mut refusal = conn.rejected().map(|error| vec![Write::Close(Some(error))]);
    loop {
        let silence_limit = keepalive.deadline();
        let setup_deadline = conn.setup_deadline(started, header_sent);
        let writes = if let Some(refusal) = refusal.take() {
            refusal
        } else if !unparsed.is_empty() {
            let mut data = &buffer[unparsed.clone()];
            let writes = handle_input(conn, &mut parser, &mut data).await;
            unparsed.start = unparsed.end - data.len();
            writes
        } else {
            tokio::select! {
                read = stream.read(&mut buffer) => {
                    let read = read?;
                    if read == 0 {
                        return Ok(Ended::Gone);
                    }
                    keepalive.heard();
                    unparsed = 0..read;
                    continue;
                }
                writes = conn.next_outside_writes() => writes,
                _ = tokio::time::sleep_until(setup_deadline), if !conn.is_authenticated() => {
                    vec![Write::Close(Some(StreamError::ConnectionTimeout))]
                }
                _ = tokio::time::sleep_until(silence_limit), if conn.is_bound() => {
                    if !keepalive.probe_due() {
                        return Ok(Ended::Gone); // dead peer: no clean close, so the session may resume
                    }
                    conn.probe().await
                }
            }
        };
        let mut out = String::new();
        for write in writes {
            match write {
                Write::Header { id, from } => {
                    header_sent = true;
                    out.push_str(&header(&id, &from));
                }
                Write::Element(element) => out.push_str(&xml::to_string(&element)),
                Write::Restart => parser = StreamParser::new(conn.limits()),
                Write::StartTls => {
                    stream.write_all(out.as_bytes()).await?;
                    stream.flush().await?;
                    return Ok(Ended::StartTls(stream, buffer[unparsed].to_vec()));
                }
                Write::Close(error) => {
                    conn.closing(error);
                    if let Some(error) = error {
                        if !header_sent {
                            out.push_str(&header(conn.stream_id(), ""));
                        }
                        out.push_str(&xml::to_string(&error.element()));
                    }
                    out.push_str("</stream:stream>");
                    // Everything due, then the error and the end; flushed, then our half
                    // of the socket closed (FIN), the peer's input left to `linger`.
                    stream.write_all(out.as_bytes()).await?;
                    stream.shutdown().await?;
                    return Ok(Ended::Closed(stream));
                }
            }
        }
        if !out.is_empty() {
            stream.write_all(out.as_bytes()).await?;
        }
    }
}

/// Parses what was read, event by event, until it is used up or an event ends this
/// parser's stream (STARTTLS, a SASL restart, a close): `data` is left at what follows.
async fn handle_input(conn: &mut Conn, parser: &mut StreamParser, data: &mut &[u8]) -> Vec<Write> {
    let mut writes = Vec::new();
    loop {
        let event = match parser.next(data) {
            Ok(Some(event)) => event,
            Ok(None) => return writes,
            Err(e) => {
                writes.push(Write::Close(Some(conn.xml_error(&e))));
                return writes;
            }
        };
        writes.extend(match event {
            StreamEvent::Open(header) => {
                if !header.is("stream", ns::STREAM) {
                    vec![Write::Close(Some(StreamError::InvalidNamespace))]
                } else {
                    conn.open(header.attr("to"), header.attr("version")).await
                }
            }
            StreamEvent::Element(element) => conn.element(element).await,
            StreamEvent::Close => conn.close().await,
        });
        if writes
            .iter()
            .any(|w| matches!(w, Write::Close(_) | Write::StartTls | Write::Restart))
        {
            return writes;
        }
    }
}

fn header(id: &str, from: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' id='{id}' from='{}' version='1.0' xml:lang='en'>",
        ns::CLIENT,
        ns::STREAM,
        escape_attr(from),
    )
}

/// The stream header is written by hand (minidom cannot write an unclosed start tag).
fn escape_attr(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('\'', "&apos;")
        .replace('<', "&lt;")
}
