//! The server side of a benchmark run: `bench-bridge server bridge|relay`, controlled by
//! [`ControlRequest`] lines on stdin and answering with [`ControlReply`] lines on stdout.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, Result};
use convene_bridge::Bridge;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Stdout};

use crate::control::{BridgeTuning, ControlReply, ControlRequest, ServerKind};
use crate::relay;

async fn reply(stdout: &mut Stdout, reply: &ControlReply) -> Result<()> {
    let mut line = serde_json::to_vec(reply)?;
    line.push(b'\n');
    stdout.write_all(&line).await?;
    stdout.flush().await?;
    Ok(())
}

/// Serves control requests until stdin closes.
pub async fn serve(kind: ServerKind, tuning: BridgeTuning) -> Result<()> {
    let mut stdout = tokio::io::stdout();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    match kind {
        ServerKind::Relay => {
            // Default socket buffers, as the bridge's tokio socket has: the same kernel
            // queue in front of both servers.
            let socket = std::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
            let media = socket.local_addr()?;
            let (routes, routes_rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("relay".into())
                .spawn(move || relay::run(socket, routes_rx))?;
            reply(&mut stdout, &ControlReply::Ready { media: Some(media) }).await?;
            while let Some(line) = lines.next_line().await? {
                let answer = match serde_json::from_str(&line) {
                    Ok(ControlRequest::Forward { ssrc, to }) => {
                        routes.send((ssrc, to)).context("relay thread ended")?;
                        ControlReply::Done
                    }
                    Ok(other) => ControlReply::Failed(format!("the relay cannot {other:?}")),
                    Err(e) => ControlReply::Failed(format!("bad request: {e}")),
                };
                reply(&mut stdout, &answer).await?;
            }
        }
        ServerKind::Bridge => {
            let mut config = convene_bridge::Config {
                udp_port: 0,
                addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
                ..Default::default()
            };
            if let Some(bps) = tuning.bridge_initial_bandwidth_bps {
                config.initial_bandwidth_bps = bps;
            }
            // The colibri-ws URL goes into offers only; the benchmark opens no bridge channel.
            let bridge = Bridge::start(config, "ws://127.0.0.1:0".into()).await?;
            let handle = bridge.handle();
            let media = bridge.udp_addrs().first().copied();
            reply(&mut stdout, &ControlReply::Ready { media }).await?;
            while let Some(line) = lines.next_line().await? {
                let answer = match serde_json::from_str(&line) {
                    Ok(ControlRequest::Bridge(request)) => {
                        ControlReply::Bridge(handle.request(request).await)
                    }
                    Ok(other) => ControlReply::Failed(format!("the bridge cannot {other:?}")),
                    Err(e) => ControlReply::Failed(format!("bad request: {e}")),
                };
                reply(&mut stdout, &answer).await?;
            }
        }
    }
    Ok(())
}
