//! The colibri-ws bridge channel's WebSockets: authentication through the core, then
//! messages both ways until either side closes.

use std::collections::HashMap;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::engine::{ChannelAuthError, EndpointKey};
use crate::{Control, Shared, channel};

/// Outgoing bridge-channel messages queued per WebSocket before it drops them.
const CHANNEL_QUEUE: usize = 256;

pub(crate) async fn colibri_ws(
    State(shared): State<Shared>,
    Path((server_id, conference, endpoint)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if server_id != shared.server_id {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some(pwd) = query.get("pwd").cloned() else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let (sink, outgoing) = mpsc::channel(CHANNEL_QUEUE);
    let (reply, result) = oneshot::channel();
    let open = Control::ChannelOpen {
        conference,
        endpoint,
        pwd,
        sink,
        reply,
    };
    if shared.control.send(open).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match result.await {
        Ok(Ok((key, sink_id))) => upgrade
            .max_message_size(channel::MAX_MESSAGE_BYTES)
            .on_upgrade(move |socket| serve_channel(socket, shared, key, sink_id, outgoing)),
        Ok(Err(ChannelAuthError::BadPassword)) => StatusCode::FORBIDDEN.into_response(),
        Ok(Err(ChannelAuthError::Unknown)) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn serve_channel(
    socket: WebSocket,
    shared: Shared,
    key: EndpointKey,
    sink_id: u64,
    mut outgoing: mpsc::Receiver<String>,
) {
    let (mut tx, mut rx) = socket.split();
    loop {
        tokio::select! {
            incoming = rx.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let message = Control::ChannelMessage { key, text: text.as_str().to_owned() };
                    if shared.control.send(message).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            message = outgoing.recv() => match message {
                Some(text) => {
                    if tx.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                // The endpoint expired: "going away" (1001).
                None => {
                    let frame = axum::extract::ws::CloseFrame { code: 1001, reason: "endpoint expired".into() };
                    let _ = tx.send(Message::Close(Some(frame))).await;
                    break;
                }
            },
        }
    }
    let _ = shared
        .control
        .send(Control::ChannelClosed { key, sink_id })
        .await;
}
