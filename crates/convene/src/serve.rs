//! Starts every role and the shared HTTP listener.
//!
//! Each role contributes its part here: its routes on the HTTP listener and its own
//! sockets. The focus reaches the XMPP server through an `InternalLink` and the bridge
//! through a `BridgeHandle`, never through shared state.

use anyhow::Context;
use axum::Router;

use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let app = Router::new().merge(convene_web::router(&config.domain, config.web.clone()));
    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http_listen))?;
    let port = listener.local_addr()?.port();
    println!(
        "Convene is running. Open http://{}:{port}/<room> in a browser to join a room.",
        config.domain
    );
    axum::serve(listener, app).await?;
    Ok(())
}
