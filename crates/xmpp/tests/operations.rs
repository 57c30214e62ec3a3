//! What the binary needs of the server to run it: health, metrics, graceful shutdown, on
//! real sockets.

mod common;

use std::time::{Duration, Instant};

use common::{DataDir, start_server};
use convene_xmpp::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DOMAIN: &str = "ops.test";

/// Sends `text`, then reads until `marker`.
async fn exchange(stream: &mut TcpStream, text: &str, marker: &str) {
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    while !seen.contains(marker) {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("server answers")
            .unwrap();
        assert!(n > 0, "closed before {marker}: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_counted_then_shut_down_cleanly() {
    let data_dir = DataDir::new();
    let server = start_server(DOMAIN, &data_dir, Config::default()).await;
    server.health().await.expect("healthy");

    let mut client = TcpStream::connect(server.c2s_addr()).await.unwrap();
    let header = format!(
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>"
    );
    exchange(&mut client, &header, "</stream:features>").await;
    let auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>";
    exchange(&mut client, auth, "<success").await;
    exchange(&mut client, &header, "</stream:features>").await;
    let bind = "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>";
    exchange(&mut client, bind, "</iq>").await;

    let metrics = server.metrics_text().await;
    for line in [
        "convene_xmpp_connections{transport=\"tcp\"} 1",
        "convene_xmpp_sessions 1",
        "# TYPE convene_xmpp_stanzas_in_total counter",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    let started = Instant::now();
    server.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut rest))
        .await
        .expect("closed by the server")
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("<system-shutdown"), "{rest}");
    assert!(rest.ends_with("</stream:stream>"), "{rest}");
    // New connections are refused.
    let refused = async {
        while TcpStream::connect(server.c2s_addr()).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(2), refused)
        .await
        .expect("the listener is closed");
    let metrics = server.metrics_text().await;
    assert!(metrics.contains("convene_xmpp_sessions 0"), "{metrics}");
    assert!(
        metrics.contains("convene_xmpp_stream_errors_total{condition=\"system-shutdown\"} 1"),
        "{metrics}"
    );
}
