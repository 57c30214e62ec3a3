//! ICE-TCP (RFC 6544 passive candidates): accepting connections and RFC 4571 framing;
//! frames reach the core like UDP datagrams.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::net::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, warn};

use crate::{Control, Datagram};

/// ICE-TCP connections open at once, bridge-wide.
pub(crate) const MAX_TCP_CONNECTIONS: usize = 1024;
/// An ICE-TCP connection silent for this long is closed (ICE consent checks come every
/// few seconds).
const TCP_IDLE: Duration = Duration::from_secs(30);

pub(crate) async fn accept_tcp(
    local: SocketAddr,
    listener: TcpListener,
    to_core: mpsc::Sender<Datagram>,
    control: mpsc::Sender<Control>,
    connections: Arc<Semaphore>,
) {
    loop {
        let Ok((stream, remote)) = listener.accept().await else {
            continue;
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            // The client's address stays out of logs at the default level.
            warn!("too many ICE-TCP connections; refusing one");
            debug!(%remote, "ICE-TCP connection refused");
            continue;
        };
        let (to_core, control) = (to_core.clone(), control.clone());
        tokio::spawn(async move {
            serve_tcp(stream, remote, local, to_core, control.clone()).await;
            let _ = control.send(Control::TcpClosed { remote, local }).await;
            drop(permit);
        });
    }
}

/// One ICE-TCP connection: RFC 4571 frames (16-bit length, then the datagram) both ways;
/// frames go to the core like UDP datagrams (which drops and counts oversized ones).
/// Written by hand because it is a dozen lines and no maintained crate does only this.
async fn serve_tcp(
    stream: TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    to_core: mpsc::Sender<Datagram>,
    control: mpsc::Sender<Control>,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (sink, mut outgoing) = mpsc::channel::<Vec<u8>>(256);
    if control
        .send(Control::TcpOpened {
            remote,
            local,
            sink,
        })
        .await
        .is_err()
    {
        return;
    }
    let writing = tokio::spawn(async move {
        while let Some(datagram) = outgoing.recv().await {
            let mut frame = Vec::with_capacity(datagram.len() + 2);
            frame.extend_from_slice(&(datagram.len() as u16).to_be_bytes());
            frame.extend_from_slice(&datagram);
            if writer.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, reader.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            _ => break,
        };
        let mut data = vec![0u8; len];
        if reader.read_exact(&mut data).await.is_err() {
            break;
        }
        let datagram = Datagram {
            at: Instant::now(),
            proto: Protocol::Tcp,
            source: remote,
            local,
            data,
        };
        if to_core.send(datagram).await.is_err() {
            break;
        }
    }
    writing.abort();
}
