//! ICE-TCP fallback: a client that only speaks TCP (RFC 6544 active candidate, RFC 4571
//! framing) connects to the bridge's passive TCP candidate, completes ICE and DTLS, and
//! its media is accepted. The client is a str0m `Rtc` (no Python WebRTC stack does
//! ICE-TCP); the framing on the wire is real TCP.

use std::time::{Duration, Instant};

use convene_bridge::api::*;
use convene_bridge::testkit::client::TestClient;
use convene_bridge::{Bridge, Config};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, Input, Output};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_tcp_only_client_connects_over_ice_tcp() {
    let config = Config {
        udp_port: 0,
        addresses: vec!["127.0.0.1".parse().unwrap()],
        ..Config::default()
    };
    let bridge = Bridge::start(config, "ws://127.0.0.1:9".into())
        .await
        .unwrap();
    let handle = bridge.handle();
    let conference = ConferenceId("room".into());
    let endpoint = EndpointId("tcp-client".into());
    let BridgeResponse::EndpointAllocated(offer) = handle
        .request(BridgeRequest::AllocateEndpoint {
            conference: conference.clone(),
            endpoint: endpoint.clone(),
        })
        .await
        .unwrap()
    else {
        panic!("no offer")
    };
    let tcp = offer
        .transport
        .candidates
        .iter()
        .find(|c| c.protocol == "tcp")
        .expect("a TCP candidate in the offer");
    assert_eq!(tcp.tcptype.as_deref(), Some("passive"));
    let udp = offer
        .transport
        .candidates
        .iter()
        .find(|c| c.protocol == "udp")
        .unwrap();
    assert!(tcp.priority < udp.priority, "TCP must be the fallback");
    let bridge_addr = std::net::SocketAddr::new(tcp.ip, tcp.port);

    let mut stream = TcpStream::connect(bridge_addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    let local_candidate = Candidate::builder()
        .tcp()
        .host(local)
        .tcptype(TcpType::Active)
        .build()
        .unwrap();
    let TestClient {
        mut rtc, transport, ..
    } = TestClient::answer(&offer, local_candidate, Instant::now()).unwrap();
    handle
        .request(BridgeRequest::ConfigureEndpoint {
            conference,
            endpoint,
            transport,
            media: vec![],
            sources: SourceSet::default(),
        })
        .await
        .unwrap();

    // Drive the client: its TCP transmits go on the stream, framed; frames read back
    // are its input. Polled until timeout after every input, as str0m requires.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut connected = drain(&mut rtc, &mut stream).await;
    while !connected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ICE-TCP did not connect"
        );
        match tokio::time::timeout(Duration::from_millis(20), stream.read(&mut chunk)).await {
            Ok(Ok(0)) => panic!("the bridge closed the TCP connection"),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => {}
        }
        while buf.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
            if buf.len() < 2 + len {
                break;
            }
            let datagram: Vec<u8> = buf.drain(..2 + len).skip(2).collect();
            let receive = Receive {
                proto: Protocol::Tcp,
                source: bridge_addr,
                destination: local,
                contents: datagram.as_slice().try_into().unwrap(),
            };
            rtc.handle_input(Input::Receive(Instant::now(), receive))
                .unwrap();
            connected |= drain(&mut rtc, &mut stream).await;
        }
        rtc.handle_input(Input::Timeout(Instant::now())).unwrap();
        connected |= drain(&mut rtc, &mut stream).await;
    }
}

/// Sends the client's pending transmits as RFC 4571 frames; true if it just connected.
async fn drain(rtc: &mut str0m::Rtc, stream: &mut TcpStream) -> bool {
    let mut connected = false;
    loop {
        match rtc.poll_output().unwrap() {
            Output::Transmit(t) => {
                assert_eq!(t.proto, Protocol::Tcp);
                let mut frame = (t.contents.len() as u16).to_be_bytes().to_vec();
                frame.extend_from_slice(&t.contents);
                stream.write_all(&frame).await.unwrap();
            }
            Output::Event(Event::Connected) => connected = true,
            Output::Event(_) => {}
            Output::Timeout(_) => return connected,
        }
    }
}
