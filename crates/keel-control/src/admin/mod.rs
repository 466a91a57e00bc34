//! The admin API: an axum router on its own listener (`[admin] addr`, loopback by
//! default), JSON in and out. Full request and response formats: `docs/admin-api.md`.
//!
//! | route | token | does |
//! |---|---|---|
//! | `GET /healthz` | no | 200 `{"status":"ok","generation":N}` once a generation serves, else 503 |
//! | `GET /status` | yes | active generation, since when, who, kept generations, backend health |
//! | `GET /generations?limit=N` | yes | newest generations first, every state, without config text |
//! | `GET /generations/{id}` | yes | one generation: config text, author, message, time, check report, state |
//! | `POST /apply` | yes | `{config, author, message, force, dry_run, file_name}`: full check, gate, apply; 422 with findings when refused |
//! | `POST /rollback` | yes | `{to?, author?, reason?, force?, dry_run?, watch_ms?, wait?}`: blast radius, swap to a generation kept in memory, watch it; 409 when there is none, or it is not known-good without `force` |
//! | `POST /generations/{id}/mark-bad` | yes | `{author?, reason?}`: withdraw its known-good mark for good; 404 unknown, 409 rejected |
//! | `GET /config` | yes | `{generation, config}`: the active config text |
//! | `GET /traffic/sample` | yes | the live traffic sample, one JSON request shape per line |
//! | `GET /metrics` | only with `[admin] metrics_require_token` | Prometheus text exposition (keel-watch) |
//! | `GET /alerts?limit=N` | yes | `{"alerts": [...]}`, newest first |
//! | `/ui/...` | console session | the web console (module [`crate::console`], `docs/console.md`) |
//!
//! `POST /apply` also takes `canary` (percent), `watch_ms`, `no_guard` and `wait`: a
//! canary apply answers when the canary is promoted or reverted.
//!
//! Authentication: `Authorization: Bearer <token>` (see [`AdminToken`]); 401 without a
//! token, 403 with a wrong one. `POST /apply` bodies are limited to
//! [`crate::api::MAX_APPLY_BODY_BYTES`], other bodies to [`crate::api::MAX_SMALL_BODY_BYTES`],
//! and a body must arrive within [`ADMIN_BODY_READ_TIMEOUT`]. The listener's own bounds
//! (connection cap, head and idle timeout) are in [`AdminLimits`] (module `listener`).

mod auth;
mod handlers;
mod listener;
mod token;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub(crate) use listener::read_body_in_time;
pub use listener::{
    ADMIN_BODY_READ_TIMEOUT, ADMIN_HEADER_READ_TIMEOUT, AdminLimits, MAX_ADMIN_CONNECTIONS,
};
pub use token::{AdminToken, TOKEN_ENV, TOKEN_FILE_NAME, TokenError};

use crate::Controller;
use crate::api::{MAX_APPLY_BODY_BYTES, MAX_SMALL_BODY_BYTES};

/// What every admin handler shares.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// The controller.
    pub controller: Controller,
    /// The token mutating and reading routes require.
    pub token: AdminToken,
}

/// The admin API's routes (see the module docs).
///
/// Whether `GET /metrics` needs the token is read from the active generation's
/// `[admin] metrics_require_token` when the router is built (at startup), and so is
/// the console's `[admin] read_token`. The console's event streams of this router do
/// not end on shutdown: [`serve_with`] builds a router that stops them.
pub fn router(state: AdminState) -> Router {
    router_with_console(state, Arc::new(AtomicBool::new(false)))
}

/// [`router`], with the console's event streams ending once `console_stopping` is set.
fn router_with_console(state: AdminState, console_stopping: Arc<AtomicBool>) -> Router {
    let console = crate::console::router(&state, console_stopping);
    let metrics_require_token = state
        .controller
        .active()
        .is_some_and(|a| a.generation.config.admin.metrics_require_token);
    let metrics = Router::new().route("/metrics", get(handlers::metrics));
    let (open_metrics, guarded_metrics) = if metrics_require_token {
        (Router::new(), metrics)
    } else {
        (metrics, Router::new())
    };
    let guarded = Router::new()
        .merge(guarded_metrics)
        .route("/alerts", get(handlers::alerts))
        .route("/status", get(handlers::status))
        .route("/generations", get(handlers::generations))
        .route("/generations/{id}", get(handlers::generation))
        .route("/generations/{id}/mark-bad", post(handlers::mark_bad))
        .route(
            "/apply",
            post(handlers::apply).layer(DefaultBodyLimit::max(MAX_APPLY_BODY_BYTES)),
        )
        .route("/rollback", post(handlers::rollback))
        .route("/config", get(handlers::config))
        .route("/traffic/sample", get(handlers::traffic_sample))
        .layer(DefaultBodyLimit::max(MAX_SMALL_BODY_BYTES))
        // Inside the token check: no body is read for a caller without the token.
        .route_layer(axum::middleware::from_fn(listener::read_body_in_time))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .merge(open_metrics)
        .merge(guarded)
        .with_state(state)
        .merge(console)
}

/// Serves the admin API on `listener` within the default [`AdminLimits`] until
/// `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, AdminLimits::default(), shutdown).await
}

/// Serves the admin API on `listener` within `limits` until `shutdown` completes.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AdminState,
    limits: AdminLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let console_stopping = Arc::new(AtomicBool::new(false));
    let router = router_with_console(state, console_stopping.clone());
    let shutdown = async move {
        shutdown.await;
        // Console event streams never end by themselves: they end at their next tick,
        // so the graceful shutdown that follows does not wait for them.
        console_stopping.store(true, Ordering::Relaxed);
    };
    listener::serve_bounded(listener, router, limits, shutdown).await
}
