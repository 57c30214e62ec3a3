//! Starts every role and the shared HTTP listener.
//!
//! Each role contributes its part here: its routes on the HTTP listener and its own
//! sockets. The focus reaches the XMPP server through an `InternalLink` (as its
//! `StanzaLink`) and the bridge through a `BridgeHandle` (as its `BridgeClient`), never
//! through shared state.

use anyhow::Context;
use axum::Router;

use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let xmpp =
        convene_xmpp::XmppServer::start(&config.domain, &config.data_dir, config.xmpp.clone())
            .await
            .context("cannot start the XMPP server")?;
    let app = Router::new().merge(convene_web::router(&config.domain, config.web.clone()));
    let app = app.merge(xmpp.router());
    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http_listen))?;
    let port = listener.local_addr()?.port();
    // Bridge: media on its own UDP port, colibri-ws and /metrics on the HTTP listener.
    let mut bridge = convene_bridge::Bridge::start(
        config.bridge.clone(),
        format!("ws://{}:{port}", config.domain),
    )
    .await
    .context("cannot start the bridge")?;
    let app = app.merge(bridge.router());
    // Focus: an in-process XMPP entity that drives the bridge.
    let focus_addresses =
        convene_focus::addresses(&config.domain).context("the domain is not a valid JID")?;
    let bridge_events = bridge
        .take_events()
        .context("bridge events already taken")?;
    let convene_xmpp::InternalLink {
        to_server,
        from_server,
    } = xmpp.attach_internal(focus_addresses);
    let _focus = convene_focus::spawn(
        &config.domain,
        config.focus.clone(),
        convene_focus::StanzaLink {
            to_server,
            from_server,
        },
        vec![convene_focus::BridgeConnection {
            id: convene_bridge::api::BridgeId("local".into()),
            client: std::sync::Arc::new(bridge.handle()),
            events: bridge_events,
        }],
    );
    println!(
        "Convene is running. Open http://{}:{port}/<room> in a browser to join a room.",
        config.domain
    );
    // Peer addresses feed the per-IP limits of the XMPP WebSocket endpoint.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}
