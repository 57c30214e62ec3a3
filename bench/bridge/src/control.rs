//! The control channel between the benchmark driver and its server process: one JSON
//! message per line, requests on the server's stdin, replies on its stdout.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use convene_bridge::api::{BridgeError, BridgeRequest, BridgeResponse};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Which server a `server` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// The real bridge (`convene_bridge::Bridge`).
    Bridge,
    /// The bare UDP relay baseline.
    Relay,
}

/// Bridge settings a run may override, passed to the server process as flags.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct BridgeTuning {
    /// Bridge only: the downlink estimate (bit/s) assumed for a receiver before congestion
    /// control has one. Default: the bridge's own default.
    #[arg(long)]
    pub bridge_initial_bandwidth_bps: Option<u64>,
}

impl BridgeTuning {
    fn args(&self) -> Vec<String> {
        self.bridge_initial_bandwidth_bps
            .map(|bps| vec!["--bridge-initial-bandwidth-bps".into(), bps.to_string()])
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControlRequest {
    /// Passed to the bridge's `BridgeHandle::request`.
    Bridge(BridgeRequest),
    /// Relay only: copy every packet carrying `ssrc` to each of `to`.
    Forward { ssrc: u32, to: Vec<SocketAddr> },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControlReply {
    /// First line a server prints; the relay says where it receives media.
    Ready {
        media: Option<SocketAddr>,
    },
    Bridge(Result<BridgeResponse, BridgeError>),
    Done,
    Failed(String),
}

/// A running server process as seen from the driver.
pub struct ServerProcess {
    child: Child,
    stdin: ChildStdin,
    replies: Lines<BufReader<ChildStdout>>,
    pub media: Option<SocketAddr>,
}

impl ServerProcess {
    /// Starts `exe server <kind>` and waits until it is ready.
    pub async fn spawn(exe: &Path, kind: ServerKind, tuning: BridgeTuning) -> Result<Self> {
        let kind_arg = serde_json::to_value(kind)?;
        let mut child = Command::new(exe)
            .arg("server")
            .arg(kind_arg.as_str().context("server kind")?)
            .args(tuning.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let stdin = child.stdin.take().context("server stdin")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut server = Self {
            child,
            stdin,
            replies: BufReader::new(stdout).lines(),
            media: None,
        };
        match server.next_reply().await? {
            ControlReply::Ready { media } => server.media = media,
            other => bail!("server did not start: {other:?}"),
        }
        Ok(server)
    }

    pub fn pid(&self) -> Result<u32> {
        self.child.id().context("server process has exited")
    }

    async fn next_reply(&mut self) -> Result<ControlReply> {
        let line = self
            .replies
            .next_line()
            .await?
            .context("server closed its control channel")?;
        serde_json::from_str(&line).with_context(|| format!("bad reply line {line:?}"))
    }

    pub async fn request(&mut self, request: &ControlRequest) -> Result<ControlReply> {
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await?;
        self.next_reply().await
    }

    pub async fn bridge(&mut self, request: BridgeRequest) -> Result<BridgeResponse> {
        match self.request(&ControlRequest::Bridge(request)).await? {
            ControlReply::Bridge(result) => Ok(result?),
            other => bail!("unexpected reply {other:?}"),
        }
    }

    pub async fn forward(&mut self, ssrc: u32, to: Vec<SocketAddr>) -> Result<()> {
        match self.request(&ControlRequest::Forward { ssrc, to }).await? {
            ControlReply::Done => Ok(()),
            other => bail!("unexpected reply {other:?}"),
        }
    }

    pub async fn stop(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}
