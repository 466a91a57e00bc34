//! The Topology page: services → pools → backends, each backend with its state as a word
//! beside its colour (healthy, unhealthy, misidentified, ejected, unknown), for a
//! misidentified one the service it claims to be (from the identity value it answered with), requests in
//! flight and queued, and each pool's requests/s. Rendered from `GET /status`'s health
//! at load time, then redrawn by the page's script from the same event stream as Now.

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use keel_proxy::BackendState;

use super::html::{escape, layout, no_store, sign_in};
use super::{ConsoleState, session_of};
use crate::{BackendHealth, PoolHealth};

pub(super) async fn page(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let Some((_, session)) = session_of(&state, &headers) else {
        return sign_in(StatusCode::UNAUTHORIZED, None);
    };
    let status = state.admin.controller.status();
    let body = format!(
        r#"<h1>Topology</h1>
<p class="hint">Services, the pools that serve them, and their backends. A backend's state is written beside its colour; requests/s is the last second's traffic into the pool.</p>
<p>{serving} of {backends} backends serving, {out} out.</p>
<div id="topology" aria-live="polite">{pools}</div>
<p id="live" class="hint" role="status">Live updates: connecting…</p>
<script src="/ui/assets/console.js"></script>"#,
        serving = status.health.serving,
        backends = status.health.backends,
        out = status.health.out,
        pools = pools_html(&status.health.pools),
    );
    (
        StatusCode::OK,
        no_store(),
        Html(layout("Topology", Some(&session), &body)),
    )
        .into_response()
}

/// What a misidentified backend claims to be (`console.js` words it the same way).
fn claim_html(backend: &BackendHealth) -> String {
    if backend.state != BackendState::Misidentified.as_str() {
        return String::new();
    }
    match (&backend.claims, &backend.identity_seen) {
        (Some(service), Some(seen)) => format!(
            r#" <span class="claim">claims to be service <strong>{}</strong> (identity “{}”)</span>"#,
            escape(service),
            escape(seen)
        ),
        (None, Some(seen)) => format!(
            r#" <span class="claim">answers as “{}”, no service of this config</span>"#,
            escape(seen)
        ),
        (_, None) => r#" <span class="claim">answers without an identity</span>"#.to_string(),
    }
}

/// Pools grouped by service, in the order `GET /status` lists them.
fn pools_html(pools: &[PoolHealth]) -> String {
    let mut services: Vec<&str> = Vec::new();
    for pool in pools {
        if !services.contains(&pool.service.as_str()) {
            services.push(&pool.service);
        }
    }
    services
        .iter()
        .map(|service| {
            let pools: String = pools
                .iter()
                .filter(|p| p.service == *service)
                .map(|pool| {
                    let backends: String = pool
                        .backends
                        .iter()
                        .map(|b| {
                            format!(
                                r#"<li class="backend state-{state}"><span class="dot" aria-hidden="true">●</span> <strong>{state}</strong> {addr}{claim} — {in_flight} in flight, {queued} queued</li>"#,
                                state = escape(&b.state),
                                claim = claim_html(b),
                                addr = escape(&b.addr),
                                in_flight = b.in_flight,
                                queued = b.queued,
                            )
                        })
                        .collect();
                    format!(
                        r#"<li>pool <strong>{name}</strong><ul>{backends}</ul></li>"#,
                        name = escape(&pool.name)
                    )
                })
                .collect();
            format!(
                r#"<section class="service"><h2>service {service}</h2><ul>{pools}</ul></section>"#,
                service = escape(service)
            )
        })
        .collect()
}
