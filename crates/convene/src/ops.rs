//! Operations: `/about/health`, `/metrics` and the graceful stop, across the three roles.
//!
//! Each role answers for itself (`health()`, `metrics_text()`, `shutdown()` on its handle);
//! this module asks all of them, bounds how long it waits, and puts the answers on HTTP.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// A role promises to answer `health()` within a second; past this it counts as failing.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// A role promises to stop within this; past it the next role is stopped regardless, so
/// that one hung role does not keep the others from ending their sessions cleanly.
const ROLE_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Prometheus text exposition format, version 0.0.4.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The running roles, shared by the operations routes and the stop sequence.
pub struct Roles {
    pub xmpp: convene_xmpp::XmppServer,
    pub focus: convene_focus::FocusHandle,
    pub bridge: convene_bridge::Bridge,
    /// The HTTP listener's sockets, for its metrics.
    pub http: Arc<crate::http::Connections>,
}

/// One role's answer to a health check: `Err` carries why it is failing.
type RoleHealth = (&'static str, Result<(), String>);

impl Roles {
    /// Every role's health, asked concurrently, each bounded by [`HEALTH_TIMEOUT`].
    async fn health(&self) -> [RoleHealth; 3] {
        let (xmpp, focus, bridge) = tokio::join!(
            bounded_health(HEALTH_TIMEOUT, self.xmpp.health()),
            bounded_health(HEALTH_TIMEOUT, self.focus.health()),
            bounded_health(HEALTH_TIMEOUT, self.bridge.health()),
        );
        [("xmpp", xmpp), ("focus", focus), ("bridge", bridge)]
    }

    /// The three roles' metrics and the HTTP listener's, one exposition after the other
    /// (their prefixes differ).
    async fn metrics_text(&self) -> String {
        let (xmpp, focus, bridge) = tokio::join!(
            self.xmpp.metrics_text(),
            self.focus.metrics_text(),
            self.bridge.metrics_text(),
        );
        [xmpp, focus, bridge, self.http.metrics_text()].concat()
    }

    /// Stops the roles in dependency order: the focus first (no new conferences), then
    /// the XMPP server (sessions end with `<system-shutdown/>`), then the bridge. The
    /// focus's wait for its running conferences overlaps the XMPP shutdown: they end only
    /// when their participants leave, which the ended sessions make them do; waiting for
    /// them first would hold every stop with a meeting on for the focus's whole bound.
    /// `join!` polls the focus first, so its refusal of new conferences is queued (its
    /// control channel has room) before the XMPP server starts ending sessions.
    pub async fn shutdown(&self) {
        tokio::join!(
            stop_role("focus", self.focus.shutdown()),
            stop_role("xmpp", self.xmpp.shutdown()),
        );
        stop_role("bridge", self.bridge.shutdown()).await;
    }
}

async fn stop_role(role: &'static str, stop: impl Future<Output = ()>) {
    tracing::info!(role, "stopping");
    if tokio::time::timeout(ROLE_STOP_TIMEOUT, stop).await.is_err() {
        tracing::warn!(role, "not stopped within {ROLE_STOP_TIMEOUT:?}; going on");
    }
}

async fn bounded_health<E: std::fmt::Display>(
    limit: Duration,
    check: impl Future<Output = Result<(), E>>,
) -> Result<(), String> {
    match tokio::time::timeout(limit, check).await {
        Ok(answer) => answer.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// `/about/health` (Jitsi's path) and `/metrics`.
pub fn router(roles: Arc<Roles>) -> Router {
    Router::new()
        .route("/about/health", get(health_page))
        .route("/metrics", get(metrics_page))
        .with_state(roles)
}

async fn health_page(State(roles): State<Arc<Roles>>) -> Response {
    health_response(&roles.health().await)
}

/// 200 when every role is healthy, else 503; the body names each role with `ok` or why
/// it fails, e.g. `{"status":"ok","roles":{"xmpp":"ok","focus":"ok","bridge":"ok"}}`.
fn health_response(roles: &[RoleHealth]) -> Response {
    let mut healthy = true;
    let mut by_role = serde_json::Map::new();
    for (role, health) in roles {
        let state = match health {
            Ok(()) => "ok".to_owned(),
            Err(why) => {
                tracing::warn!(role, why, "role unhealthy");
                healthy = false;
                why.clone()
            }
        };
        by_role.insert((*role).to_owned(), state.into());
    }
    let (status, summary) = if healthy {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    };
    let body = serde_json::json!({ "status": summary, "roles": by_role });
    (status, axum::Json(body)).into_response()
}

async fn metrics_page(State(roles): State<Arc<Roles>>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        roles.metrics_text().await,
    )
        .into_response()
}

/// Resolves on the first SIGTERM or Ctrl-C (SIGINT), naming which. Both handlers are
/// installed here, so call it before the roles start: a signal during start-up then stops
/// the process gracefully once it is up instead of killing it half-started.
pub fn stop_signal() -> std::io::Result<impl Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "Ctrl-C",
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn all_healthy_is_200_naming_every_role() {
        let response = health_response(&[("xmpp", Ok(())), ("focus", Ok(())), ("bridge", Ok(()))]);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            body_json(response).await,
            serde_json::json!({"status": "ok", "roles": {"xmpp": "ok", "focus": "ok", "bridge": "ok"}})
        );
    }

    #[tokio::test]
    async fn one_failing_role_is_503_naming_it() {
        let response = health_response(&[
            ("xmpp", Ok(())),
            ("focus", Err("the focus task has stopped".into())),
            ("bridge", Ok(())),
        ]);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = body_json(response).await;
        assert_eq!(body["status"], "unhealthy");
        assert_eq!(body["roles"]["focus"], "the focus task has stopped");
        assert_eq!(body["roles"]["xmpp"], "ok");
    }

    #[tokio::test]
    async fn a_role_that_does_not_answer_fails_after_the_timeout() {
        let limit = Duration::from_millis(10);
        let hung = bounded_health(limit, std::future::pending::<Result<(), std::io::Error>>());
        assert_eq!(hung.await, Err("no answer within 10ms".to_owned()));
    }
}
