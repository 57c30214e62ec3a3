//! A small XMPP client over plain TCP c2s (RFC 6120): stream set-up, SASL ANONYMOUS or
//! SCRAM-SHA-1, resource binding and the legacy session, then raw stanza I/O.
//!
//! Written here rather than taken from tokio-xmpp because the load generator must control
//! every round trip (and count only fully completed logins) while spending as little CPU
//! as possible: it shares the machine with the server it measures.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rxml::{AttrMap, Event, Namespace, NcName};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::scram::{ScramCache, ScramExchange};

const NS_STREAM: &str = "http://etherx.jabber.org/streams";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";

/// How long any single server reply may take before the client gives up.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// One element of the stream, with its subtree.
#[derive(Debug)]
pub struct Node {
    pub ns: Namespace<'static>,
    pub name: NcName,
    pub attrs: AttrMap,
    pub children: Vec<Node>,
    pub text: String,
}

impl Node {
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name.as_str() == name && self.ns.as_str() == ns
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(Namespace::none(), name).map(String::as_str)
    }

    pub fn child(&self, name: &str, ns: &str) -> Option<&Node> {
        self.children.iter().find(|child| child.is(name, ns))
    }

    /// The stanza in short, for error messages.
    fn describe(&self) -> String {
        let children: Vec<&str> = self.children.iter().map(|c| c.name.as_str()).collect();
        format!(
            "<{} type={:?} xmlns={}> with children {children:?} text {:?}",
            self.name,
            self.attr("type"),
            self.ns.as_str(),
            self.text
        )
    }
}

/// Parses the server's stream into top-level elements.
pub struct StanzaReader {
    reader: rxml::AsyncReader<BufReader<OwnedReadHalf>>,
}

impl StanzaReader {
    fn new(read: OwnedReadHalf) -> Self {
        Self {
            reader: rxml::AsyncReader::new(BufReader::new(read)),
        }
    }

    /// A fresh parser for the new stream after SASL success, over the same buffered bytes.
    fn restart(self) -> Self {
        let (inner, _) = self.reader.into_inner();
        Self {
            reader: rxml::AsyncReader::new(inner),
        }
    }

    async fn read_stream_header(&mut self) -> anyhow::Result<()> {
        loop {
            match self.reader.read().await? {
                None => bail!("connection closed before the stream header"),
                Some(Event::XmlDeclaration(..)) | Some(Event::Text(..)) => {}
                Some(Event::StartElement(_, (ns, name), _)) => {
                    if name.as_str() == "stream" && ns.as_str() == NS_STREAM {
                        return Ok(());
                    }
                    bail!("unexpected root element <{name}>");
                }
                Some(Event::EndElement(_)) => bail!("unexpected end of element"),
            }
        }
    }

    /// The next top-level element; an error if the server closes the stream or sends a
    /// stream error.
    pub async fn next(&mut self) -> anyhow::Result<Node> {
        let mut open: Vec<Node> = Vec::new();
        loop {
            let event = self.reader.read().await?;
            match event {
                None => bail!("connection closed by the server"),
                Some(Event::XmlDeclaration(..)) => {}
                Some(Event::StartElement(_, (ns, name), attrs)) => {
                    open.push(Node {
                        ns,
                        name,
                        attrs,
                        children: Vec::new(),
                        text: String::new(),
                    });
                }
                Some(Event::Text(_, text)) => {
                    if let Some(node) = open.last_mut() {
                        node.text.push_str(&text);
                    }
                }
                Some(Event::EndElement(_)) => {
                    let Some(node) = open.pop() else {
                        bail!("the server closed the stream");
                    };
                    match open.last_mut() {
                        Some(parent) => parent.children.push(node),
                        None if node.is("error", NS_STREAM) => {
                            bail!("stream error: {}", node.describe())
                        }
                        None => return Ok(node),
                    }
                }
            }
        }
    }

    /// The next top-level element, within [`REPLY_TIMEOUT`].
    pub async fn reply(&mut self) -> anyhow::Result<Node> {
        tokio::time::timeout(REPLY_TIMEOUT, self.next())
            .await
            .map_err(|_| anyhow!("no reply from the server within {REPLY_TIMEOUT:?}"))?
    }

    /// Skips everything up to the IQ reply with this id; an error unless it is a result.
    async fn iq_result(&mut self, id: &str) -> anyhow::Result<Node> {
        loop {
            let node = self.reply().await?;
            if node.name.as_str() == "iq" && node.attr("id") == Some(id) {
                if node.attr("type") != Some("result") {
                    bail!("IQ {id} failed: {}", node.describe());
                }
                return Ok(node);
            }
        }
    }
}

/// How a client authenticates.
pub enum Auth<'a> {
    Anonymous,
    ScramSha1 {
        username: &'a str,
        password: &'a str,
        cache: &'a ScramCache,
    },
}

/// A logged-in, bound client.
pub struct Client {
    pub reader: StanzaReader,
    pub writer: OwnedWriteHalf,
}

fn stream_header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='{NS_STREAM}' to='{domain}' version='1.0' xml:lang='en'>"
    )
}

/// Opens a stream and returns the stream features.
async fn open_stream(
    reader: &mut StanzaReader,
    writer: &mut OwnedWriteHalf,
    domain: &str,
) -> anyhow::Result<Node> {
    writer.write_all(stream_header(domain).as_bytes()).await?;
    reader.read_stream_header().await?;
    let features = reader.reply().await?;
    if !features.is("features", NS_STREAM) {
        bail!("expected stream features, got {}", features.describe());
    }
    Ok(features)
}

fn sasl_payload(node: &Node) -> anyhow::Result<Vec<u8>> {
    let text = node.text.trim();
    if text == "=" {
        return Ok(Vec::new());
    }
    BASE64.decode(text).context("SASL payload is not base64")
}

async fn authenticate(
    reader: &mut StanzaReader,
    writer: &mut OwnedWriteHalf,
    features: &Node,
    auth: &Auth<'_>,
) -> anyhow::Result<()> {
    let mechanism = match auth {
        Auth::Anonymous => "ANONYMOUS",
        Auth::ScramSha1 { .. } => "SCRAM-SHA-1",
    };
    let offered = features
        .child("mechanisms", NS_SASL)
        .is_some_and(|m| m.children.iter().any(|c| c.text.trim() == mechanism));
    if !offered {
        bail!(
            "the server does not offer SASL {mechanism}: {}",
            features.describe()
        );
    }
    match auth {
        Auth::Anonymous => {
            writer
                .write_all(format!("<auth xmlns='{NS_SASL}' mechanism='ANONYMOUS'/>").as_bytes())
                .await?;
            let outcome = reader.reply().await?;
            if !outcome.is("success", NS_SASL) {
                bail!("ANONYMOUS login refused: {}", outcome.describe());
            }
        }
        Auth::ScramSha1 {
            username,
            password,
            cache,
        } => {
            let (exchange, first) = ScramExchange::start(username);
            writer
                .write_all(
                    format!(
                        "<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>{}</auth>",
                        BASE64.encode(first)
                    )
                    .as_bytes(),
                )
                .await?;
            let challenge = reader.reply().await?;
            if !challenge.is("challenge", NS_SASL) {
                bail!("SCRAM: expected a challenge, got {}", challenge.describe());
            }
            let server_first = String::from_utf8(sasl_payload(&challenge)?)?;
            let (client_final, verifier) = exchange.finish(&server_first, password, cache)?;
            writer
                .write_all(
                    format!(
                        "<response xmlns='{NS_SASL}'>{}</response>",
                        BASE64.encode(client_final)
                    )
                    .as_bytes(),
                )
                .await?;
            let outcome = reader.reply().await?;
            if !outcome.is("success", NS_SASL) {
                bail!("SCRAM login refused: {}", outcome.describe());
            }
            verifier.verify(&String::from_utf8(sasl_payload(&outcome)?)?)?;
        }
    }
    Ok(())
}

/// Connects, authenticates, binds a server-chosen resource and, if the server requires
/// it, establishes the legacy session. Returns only once all of that has succeeded.
pub async fn login(addr: SocketAddr, domain: &str, auth: &Auth<'_>) -> anyhow::Result<Client> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    let (read, mut writer) = stream.into_split();
    let mut reader = StanzaReader::new(read);
    let features = open_stream(&mut reader, &mut writer, domain).await?;
    authenticate(&mut reader, &mut writer, &features, auth).await?;

    let mut reader = reader.restart();
    let features = open_stream(&mut reader, &mut writer, domain).await?;
    if features.child("bind", NS_BIND).is_none() {
        bail!("no resource binding offered: {}", features.describe());
    }
    writer
        .write_all(format!("<iq type='set' id='bind'><bind xmlns='{NS_BIND}'/></iq>").as_bytes())
        .await?;
    let bound = reader.iq_result("bind").await?;
    let has_jid = bound
        .child("bind", NS_BIND)
        .and_then(|bind| bind.child("jid", NS_BIND))
        .is_some();
    if !has_jid {
        bail!("bind result without a JID: {}", bound.describe());
    }

    let session_required = features
        .child("session", NS_SESSION)
        .is_some_and(|s| s.child("optional", NS_SESSION).is_none());
    if session_required {
        writer
            .write_all(
                format!("<iq type='set' id='session'><session xmlns='{NS_SESSION}'/></iq>")
                    .as_bytes(),
            )
            .await?;
        reader.iq_result("session").await?;
    }
    Ok(Client { reader, writer })
}

impl Client {
    pub async fn send(&mut self, xml: &str) -> anyhow::Result<()> {
        self.writer.write_all(xml.as_bytes()).await?;
        Ok(())
    }

    /// Closes the stream and waits for the server to close its side, so that the server's
    /// clean-up is part of what is measured.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.writer.write_all(b"</stream:stream>").await?;
        let drain = async { while self.reader.next().await.is_ok() {} };
        tokio::time::timeout(REPLY_TIMEOUT, drain)
            .await
            .map_err(|_| anyhow!("the server did not close the stream"))
    }
}
