//! XMPP over WebSocket (RFC 7395) at `/xmpp-websocket`: subprotocol `xmpp`, one element per
//! text frame, `<open/>`/`<close/>` framing. Of the query parameters the Jitsi clients
//! append (`room`, `token`, `previd`), `token` (else an `Authorization: Bearer` header) is
//! the Jitsi token an anonymous login on the main domain is verified with, and `room` the
//! room the room-control services act on, as Prosody's `mod_jitsi_session` reads them;
//! `previd` is ignored (resumption uses `<resume/>`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use minidom::Element;
use tracing::Instrument;

use crate::XmppServer;
use crate::conn::{Conn, LINGER, Write};
use crate::hub::ConnId;
use crate::session::{StreamError, Transport};
use crate::stanza::{n, ns};
use crate::token::BearerToken;
use crate::xml;

pub fn routes(server: XmppServer) -> Router {
    Router::new()
        .route("/xmpp-websocket", get(upgrade))
        .with_state(server)
}

/// The query parameters read here; the others are ignored.
#[derive(serde::Deserialize)]
struct Params {
    token: Option<String>,
    room: Option<String>,
}

/// Longest `?room=` kept (a room name is a JID node: at most 1023 bytes).
const MAX_ROOM_BYTES: usize = 1023;

/// The session's room (`?room=`), lower case; none when absent, empty or too long.
fn web_room(params: &Result<Query<Params>, QueryRejection>) -> Option<String> {
    let room = params.as_ref().ok()?.room.as_deref()?;
    (!room.is_empty() && room.len() <= MAX_ROOM_BYTES).then(|| room.to_lowercase())
}

/// The connection's token: `?token=`, else `Authorization: Bearer`.
fn bearer_token(
    params: Result<Query<Params>, QueryRejection>,
    headers: &HeaderMap,
) -> Option<BearerToken> {
    let from_query = params.ok().and_then(|Query(params)| params.token);
    let from_header = || {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        value.strip_prefix("Bearer ").map(str::to_owned)
    };
    from_query
        .or_else(from_header)
        .filter(|token| !token.is_empty())
        .map(BearerToken)
}

async fn upgrade(
    State(server): State<XmppServer>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    params: Result<Query<Params>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Plain GETs are the Jitsi clients' keep-alive probes: any 200 will do.
    let Ok(upgrade) = upgrade else {
        return "".into_response();
    };
    let peer = peer.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ConnectInfo(addr))| addr.ip(),
    );
    if server.is_shutting_down() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let room = web_room(&params);
    let token = bearer_token(params, &headers);
    let max = server.inner.config.max_stanza_bytes;
    let id = server.next_conn_id();
    let span = tracing::info_span!("c2s", transport = "websocket", id = id.0);
    upgrade
        .protocols(["xmpp"])
        .max_message_size(max + 1024)
        // tungstenite reserves 128 KiB per connection by default; stanzas are small.
        .read_buffer_size(8 * 1024)
        .on_upgrade(move |socket| serve(server, id, socket, peer, token, room).instrument(span))
}

async fn serve(
    server: XmppServer,
    id: ConnId,
    mut socket: WebSocket,
    peer: IpAddr,
    token: Option<BearerToken>,
    room: Option<String>,
) {
    tracing::debug!("connection from {peer}");
    let mut conn = Conn::connect(server, id, Transport::WebSocket, peer, token, room).await;
    let closed = run(&mut conn, &mut socket).await;
    // The hub hears of the end first; then a socket the server closed lingers.
    drop(conn);
    if closed {
        let drain = async { while let Some(Ok(_)) = socket.recv().await {} };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}

/// Runs the stream until it ends: `true` if the server closed it (a close frame sent, the
/// peer's answer still to come), `false` if the peer went away.
async fn run(conn: &mut Conn, socket: &mut WebSocket) -> bool {
    let started = tokio::time::Instant::now();
    let mut opened = false;
    let mut keepalive = conn.keepalive();
    // Refused at accept: closed before reading anything.
    let mut refusal = conn.rejected().map(|error| vec![Write::Close(Some(error))]);
    loop {
        let silence_limit = keepalive.deadline();
        let setup_deadline = conn.setup_deadline(started, opened);
        let writes = if let Some(refusal) = refusal.take() {
            refusal
        } else {
            tokio::select! {
                message = socket.recv() => {
                    keepalive.heard();
                    match message {
                    // Whitespace keep-alives are not RFC 7395, but harmless: ignore them.
                    Some(Ok(Message::Text(text))) if text.trim().is_empty() => continue,
                    Some(Ok(Message::Text(text))) => match xml::parse_frame(text.as_str(), conn.limits()) {
                        Ok(element) if element.is("open", ns::FRAMING) => {
                            conn.open(element.attr("to"), element.attr("version")).await
                        }
                        Ok(element) if element.is("close", ns::FRAMING) => conn.close().await,
                        Ok(element) => conn.element(element).await,
                        Err(e) => vec![Write::Close(Some(conn.xml_error(&e)))],
                    },
                    Some(Ok(Message::Binary(_))) => vec![Write::Close(Some(StreamError::UnsupportedStanzaType))],
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    // tungstenite refuses frames over `max_message_size` (and broken framing)
                    // with an error; tell the client why, in case the socket still works.
                    Some(Err(_)) => vec![Write::Close(Some(StreamError::PolicyViolation))],
                    Some(Ok(Message::Close(_))) | None => return false,
                }},
                writes = conn.next_outside_writes() => writes,
                _ = tokio::time::sleep_until(setup_deadline), if !conn.is_authenticated() => {
                    vec![Write::Close(Some(StreamError::ConnectionTimeout))]
                }
                _ = tokio::time::sleep_until(silence_limit), if conn.is_bound() => {
                    if !keepalive.probe_due() {
                        return false; // dead peer: no clean close, so the session may resume
                    }
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        return false;
                    }
                    continue;
                }
            }
        };
        for write in writes {
            let frame = match write {
                Write::Header { id, from } => {
                    opened = true;
                    open_element(&id, &from)
                }
                Write::Element(element) => element,
                Write::StartTls | Write::Restart => continue,
                Write::Close(error) => {
                    conn.closing(error);
                    // Everything due went out before; then the error, `<close/>` and the
                    // close frame, each flushed by `send`.
                    let close = Element::bare("close", ns::FRAMING);
                    for element in error.map(|e| e.element()).into_iter().chain([close]) {
                        let _ = socket
                            .send(Message::Text(xml::to_string(&element).into()))
                            .await;
                    }
                    return socket.send(Message::Close(None)).await.is_ok();
                }
            };
            if socket
                .send(Message::Text(xml::to_string(&frame).into()))
                .await
                .is_err()
            {
                return false;
            }
        }
    }
}

fn open_element(id: &str, from: &str) -> Element {
    Element::builder("open", ns::FRAMING)
        .attr(n("id"), id)
        .attr(n("from"), from)
        .attr(n("version"), "1.0")
        .build()
}
