//! The operator's side of a running bridge: health, metrics and a graceful, bounded
//! shutdown that expires every endpoint and frees the media port.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use convene_bridge::api::*;
use convene_bridge::{Bridge, Config};

#[tokio::test]
async fn health_metrics_and_a_bounded_graceful_shutdown() {
    let config = Config {
        udp_port: 0,
        addresses: vec!["127.0.0.1".parse().unwrap()],
        ..Config::default()
    };
    let mut bridge = Bridge::start(config, "ws://127.0.0.1:9".into())
        .await
        .unwrap();
    let mut events = bridge.take_events().unwrap();
    let handle = bridge.handle();
    bridge.health().await.expect("a fresh bridge is healthy");
    let allocate = BridgeRequest::AllocateEndpoint {
        conference: ConferenceId("room@conference.localhost".into()),
        endpoint: EndpointId("e1".into()),
    };
    handle.request(allocate.clone()).await.unwrap();

    // Every series has its family's HELP and TYPE, and none names the room.
    let text = bridge.metrics_text().await;
    let (mut helped, mut typed) = (HashSet::new(), HashSet::new());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap().to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split(' ').next().unwrap().to_string());
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(name.starts_with("convene_bridge_"), "{line}");
            assert!(helped.contains(name) && typed.contains(name), "{line}");
        }
    }
    assert!(text.contains("convene_bridge_endpoints 1\n"), "{text}");
    assert!(!text.contains("room@"), "{text}");

    let started = Instant::now();
    bridge.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let expired = tokio::time::timeout(Duration::from_secs(1), events.recv())
        .await
        .expect("no event after shutdown");
    assert!(
        matches!(expired, Some(BridgeEvent::EndpointExpired { ref endpoint, .. }) if endpoint.0 == "e1"),
        "{expired:?}"
    );
    assert!(bridge.health().await.is_err());
    assert!(matches!(
        handle.request(allocate).await,
        Err(BridgeError::Unavailable)
    ));
    std::net::UdpSocket::bind(bridge.udp_addrs()[0]).expect("the media port is free");
}
