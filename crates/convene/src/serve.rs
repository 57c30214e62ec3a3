//! Starts every role and the shared HTTP listener, and stops them on SIGTERM or Ctrl-C.
//!
//! Each role contributes its part here: its routes on the HTTP listener and its own
//! sockets. The focus reaches the XMPP server through an `InternalLink` (as its
//! `StanzaLink`) and the bridge through a `BridgeHandle` (as its `BridgeClient`), never
//! through shared state.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;

use crate::config::Config;
use crate::{api, http, ops};

/// From the stop signal to the end of `run`, whatever a role does (a hung role is left
/// behind rather than keeping the process alive).
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// What the pages offer for signing in, from `[auth]`; the OIDC sign-in mints its Jitsi
/// tokens with the token settings, so it needs them.
fn sign_in(config: &Config) -> anyhow::Result<convene_web::SignIn> {
    let auth = &config.auth.xmpp;
    let oidc = if config.auth.oidc.enabled {
        anyhow::ensure!(
            auth.token.enabled,
            "[auth.oidc] needs [auth.token] enabled (with app_id and app_secret): its users connect with a token"
        );
        let minter = Arc::new(crate::token::TokenMinter::new(config)?);
        Some(Arc::new(convene_web::Oidc::new(
            config.auth.oidc.clone(),
            minter,
        )?))
    } else {
        None
    };
    Ok(convene_web::SignIn {
        secure: auth.secure_domain || (auth.token.enabled && !auth.token.allow_empty_token),
        password: auth.secure_domain || auth.ldap.enabled,
        oidc,
    })
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    if let Some(dir) = &config.web.jitsi_meet_dir {
        anyhow::ensure!(
            dir.join("index.html").is_file(),
            "[web] jitsi_meet_dir: {} has no index.html (a Jitsi Meet build is expected)",
            dir.display()
        );
    }
    let stop_signal = ops::stop_signal().context("cannot listen for SIGTERM")?;
    let xmpp = convene_xmpp::XmppServer::start(&config.domain, &config.data_dir, config.xmpp())
        .await
        .context("cannot start the XMPP server")?;
    let app = Router::new().merge(convene_web::router(
        &config.domain,
        config.web.clone(),
        sign_in(&config)?,
    ));
    // A stock app served from another origin probes the WebSocket URL with a plain GET (its
    // keep-alive, lib-jitsi-meet's `XmppConnection`) and fails on a response without CORS.
    let app = app.merge(
        xmpp.router()
            .layer(tower_http::cors::CorsLayer::new().allow_origin(tower_http::cors::Any)),
    );
    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http_listen))?;
    let port = listener.local_addr()?.port();
    // Bridge: media on its own UDP port, colibri-ws on the HTTP listener.
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
    let focus = convene_focus::spawn(
        &config.domain,
        config.focus(),
        convene_focus::StanzaLink {
            to_server,
            from_server,
        },
        vec![convene_focus::BridgeConnection {
            id: convene_bridge::api::BridgeId("local".into()),
            client: Arc::new(bridge.handle()),
            events: bridge_events,
        }],
    );
    let connections = Arc::new(http::Connections::default());
    let roles = Arc::new(ops::Roles {
        xmpp,
        focus,
        bridge,
        http: connections.clone(),
    });
    let app = app.merge(ops::router(roles.clone()));
    let app = if config.api.enabled() {
        app.merge(api::router(Arc::new(config.clone())))
    } else {
        app
    };
    println!(
        "Convene is running. Open http://{}:{port}/<room> in a browser to join a room.",
        config.domain
    );
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut http = tokio::spawn(http::serve(
        listener,
        app,
        config.http.clone(),
        connections,
        async {
            let _ = http_stopped.await;
        },
    ));
    tokio::select! {
        signal = stop_signal => tracing::info!("{signal}: stopping"),
        served = &mut http => {
            served.context("the HTTP server panicked")?;
            anyhow::bail!("the HTTP server stopped");
        }
    }
    let stopped = tokio::time::timeout(STOP_DEADLINE, async {
        roles.shutdown().await;
        tracing::info!("stopping the HTTP server");
        let _ = stop_http.send(());
        http.await
    })
    .await;
    match stopped {
        Ok(served) => served.context("the HTTP server panicked")?,
        Err(_) => tracing::warn!("not stopped within {STOP_DEADLINE:?}; exiting anyway"),
    }
    tracing::info!("stopped");
    Ok(())
}
