//! The Topology page: services → pools → backends, each backend with its state as a word
//! beside its colour (healthy, unhealthy, misidentified, ejected, unknown), for a
//! misidentified one the service it claims to be (from the identity value it answered with), requests in
//! flight and queued, and each pool's requests/s. Rendered from `GET /status`'s health
//! at load time, then redrawn by the page's script from the same event stream as Now.
//!
//! A pool of more than [`MAX_LISTED_BACKENDS`] backends is summed up: its backends
//! counted per state, and only those out of traffic (unhealthy, misidentified,
//! ejected) listed one by one, so 500 backends make a page one can read.

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use keel_proxy::BackendState;

use super::html::{escape, layout, no_store, sign_in};
use super::{ConsoleState, session_of};
use crate::{BackendHealth, PoolHealth};

/// Most backends of one pool the page lists one by one (12); a larger pool shows its
/// counts per state and lists only the backends out of traffic (`console.js` reads the
/// same number from the page).
pub const MAX_LISTED_BACKENDS: usize = 12;
/// States in the order a pool's summary counts them.
const STATE_ORDER: [BackendState; 5] = [
    BackendState::Healthy,
    BackendState::Unknown,
    BackendState::Unhealthy,
    BackendState::Misidentified,
    BackendState::Ejected,
];

pub(super) async fn page(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let Some((_, session)) = session_of(&state, &headers) else {
        return sign_in(StatusCode::UNAUTHORIZED, None);
    };
    let status = state.admin.controller.status();
    let body = format!(
        r#"<h1>Topology</h1>
<p class="hint">Services, the pools that serve them, and their backends. A backend's state is written beside its colour; requests/s is the last second's traffic into the pool.</p>
<p>{serving} of {backends} backends serving, {out} out.</p>
<div id="topology" aria-live="polite" data-list-max="{MAX_LISTED_BACKENDS}">{pools}</div>
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

/// True for the states that take a backend out of traffic.
fn out_of_traffic(state: &str) -> bool {
    [
        BackendState::Unhealthy,
        BackendState::Misidentified,
        BackendState::Ejected,
    ]
    .iter()
    .any(|s| s.as_str() == state)
}

/// A large pool in one line: its backends counted per state.
fn summary_html(pool: &PoolHealth) -> String {
    let counts: Vec<String> = STATE_ORDER
        .iter()
        .filter_map(|state| {
            let n = pool
                .backends
                .iter()
                .filter(|b| b.state == state.as_str())
                .count();
            (n > 0).then(|| format!("{n} {}", state.as_str()))
        })
        .collect();
    let listed = if pool.backends.iter().any(|b| out_of_traffic(&b.state)) {
        "; those out of traffic:"
    } else {
        ""
    };
    format!(
        r#" <span class="summary">— {} backends: {}{listed}</span>"#,
        pool.backends.len(),
        counts.join(", ")
    )
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
                    let many = pool.backends.len() > MAX_LISTED_BACKENDS;
                    let backends: String = pool
                        .backends
                        .iter()
                        .filter(|b| !many || out_of_traffic(&b.state))
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
                        r#"<li>pool <strong>{name}</strong>{summary}<ul>{backends}</ul></li>"#,
                        name = escape(&pool.name),
                        summary = if many { summary_html(pool) } else { String::new() },
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
