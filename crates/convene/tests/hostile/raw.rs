//! A bare XMPP stream over TCP, for the attackers: what no well-behaved library lets one
//! send (bursts at the connection's limit, pipelined input, silent sockets, a loop of
//! joins), from a chosen loopback address.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::DOMAIN;

/// How long any one answer may take before the attacker gives up on it.
const ANSWER: Duration = Duration::from_secs(15);

/// A connection to `server` from the loopback address `from`.
pub async fn connect_from(from: [u8; 4], server: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(server).await
}

pub struct Raw {
    pub tcp: TcpStream,
    seen: String,
}

impl Raw {
    /// A stream opened from `from`, its features read.
    pub async fn open_from(from: [u8; 4], server: SocketAddr) -> io::Result<Raw> {
        let tcp = connect_from(from, server).await?;
        let mut raw = Raw {
            tcp,
            seen: String::new(),
        };
        raw.open().await?;
        Ok(raw)
    }

    /// Logged in anonymously from `from` and bound.
    pub async fn anonymous(from: [u8; 4], server: SocketAddr) -> io::Result<Raw> {
        let mut raw = Raw::open_from(from, server).await?;
        raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>")
            .await?;
        raw.until(&["<success"]).await?;
        raw.open().await?;
        raw.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
            .await?;
        raw.until(&["</iq>"]).await?;
        Ok(raw)
    }

    async fn open(&mut self) -> io::Result<()> {
        let header = format!(
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>"
        );
        self.send(&header).await?;
        self.until(&["</stream:features>"]).await.map(drop)
    }

    pub async fn send(&mut self, text: &str) -> io::Result<()> {
        self.tcp.write_all(text.as_bytes()).await
    }

    /// Reads until one of `markers` arrived; which one, forgetting all up to its end.
    pub async fn until(&mut self, markers: &[&str]) -> io::Result<usize> {
        let mut buffer = [0u8; 8192];
        loop {
            if let Some((index, end)) = markers
                .iter()
                .enumerate()
                .filter_map(|(i, m)| self.seen.find(m).map(|at| (i, at + m.len())))
                .min_by_key(|(_, end)| *end)
            {
                self.seen.drain(..end);
                return Ok(index);
            }
            let n = tokio::time::timeout(ANSWER, self.tcp.read(&mut buffer))
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, format!("no {markers:?}"))
                })??;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("closed before {markers:?}: {}", self.seen),
                ));
            }
            self.seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
            // Keep what a marker may still start in; the rest is read and forgotten.
            if self.seen.len() > 1 << 20 {
                let cut = self.seen.len() - 4096;
                let cut = (cut..).find(|i| self.seen.is_char_boundary(*i)).unwrap();
                self.seen.drain(..cut);
            }
        }
    }

    /// SASL PLAIN (allowed on loopback without TLS): whether it succeeded.
    pub async fn plain(&mut self, user: &str, password: &str) -> io::Result<bool> {
        let credentials = STANDARD.encode(format!("\0{user}\0{password}"));
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{credentials}</auth>"
        ))
        .await?;
        Ok(self.until(&["<success", "<failure"]).await? == 0)
    }

    /// Joins `room` as `nick`: whether the room let it in (the subject ends a join; a
    /// refusal is a presence error).
    pub async fn join(&mut self, room: &str, nick: &str) -> io::Result<bool> {
        self.send(&format!(
            "<presence to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))
        .await?;
        Ok(self
            .until(&["<subject", "type=\"error\"", "type='error'"])
            .await?
            == 0)
    }

    /// Leaves `room`, until its own unavailable presence (status 110) came back.
    pub async fn leave(&mut self, room: &str, nick: &str) -> io::Result<()> {
        self.send(&format!(
            "<presence to='{room}/{nick}' type='unavailable'/>"
        ))
        .await?;
        self.until(&["code=\"110\"", "code='110'"]).await.map(drop)
    }

    /// Everything the server sends until it closes, within `bound`; an error for a reset.
    pub async fn read_to_close(mut self, bound: Duration) -> io::Result<String> {
        let mut rest = Vec::new();
        tokio::time::timeout(bound, self.tcp.read_to_end(&mut rest))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "still open"))??;
        self.seen.push_str(&String::from_utf8_lossy(&rest));
        Ok(self.seen)
    }
}
