//! The Now page: which generation serves and since when, the open alerts first (each
//! naming the generation it blames), then the busiest routes and the traffic share per
//! service per host with the intents' bands. The server renders what `GET /status` says
//! at load time, so the page is useful without its script; the script then keeps every
//! part current from `GET /ui/events`.

use std::time::Duration;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, StatusCode};

use super::html::{escape, layout, no_store, sign_in};
use super::{ConsoleState, human_duration, session_of};
use crate::Status;

pub(super) async fn page(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let Some((_, session)) = session_of(&state, &headers) else {
        return sign_in(StatusCode::UNAUTHORIZED, None);
    };
    let status = state.admin.controller.status();
    let body = format!(
        r#"<h1>Now</h1>
<section aria-labelledby="alerts-h"><h2 id="alerts-h">Open alerts</h2><div id="alerts" aria-live="polite">{alerts}</div></section>
<section aria-labelledby="gen-h"><h2 id="gen-h">Serving</h2><p id="generation" aria-live="polite">{generation}</p><p id="canary">{canary}</p></section>
<section aria-labelledby="share-h"><h2 id="share-h">Traffic share per host</h2>
<p class="hint">Each bar is one host's traffic in the last second, split by service. A bracket marks an intent's allowed band for a service; a share outside it is marked <strong>OUTSIDE</strong>.</p>
<div id="shares"><p>Waiting for the first measurement…</p></div></section>
<section aria-labelledby="routes-h"><h2 id="routes-h">Routes</h2><p id="routes-note" class="hint"></p>
<table><thead><tr><th scope="col">route</th><th scope="col">host</th><th scope="col">service</th><th scope="col">requests/s</th><th scope="col">errors</th><th scope="col">p99</th></tr></thead>
<tbody id="routes"><tr><td colspan="6">Waiting for the first measurement…</td></tr></tbody></table></section>
<p id="live" class="hint" role="status">Live updates: connecting…</p>
<script src="/ui/assets/console.js"></script>"#,
        alerts = alerts_html(&status),
        generation = generation_html(&status),
        canary = status
            .canary
            .as_ref()
            .map(|c| format!(
                "Canary: generation {} takes {:.1} % of requests.",
                c.generation,
                f64::from(c.permille) / 10.0
            ))
            .unwrap_or_default(),
    );
    (
        StatusCode::OK,
        no_store(),
        Html(layout("Now", Some(&session), &body)),
    )
        .into_response()
}

fn generation_html(status: &Status) -> String {
    let Some(active) = &status.active else {
        return "No generation serves yet.".to_string();
    };
    let mut flags = Vec::new();
    if active.known_good {
        flags.push("known-good");
    }
    if active.forced {
        flags.push("FORCED");
    }
    format!(
        r#"Generation <strong class="gen-id">{id}</strong> serves since {since} ({ago} ago), applied by {author}: “{message}”{flags}."#,
        id = active.id,
        since = escape(&active.active_since),
        ago = human_duration(Duration::from_secs(active.active_for_secs)),
        author = escape(&active.author),
        message = escape(&active.message),
        flags = if flags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", flags.join(", "))
        },
    )
}

fn alerts_html(status: &Status) -> String {
    if status.open_alerts.is_empty() {
        return "<p>No open alerts.</p>".to_string();
    }
    let items: String = status
        .open_alerts
        .iter()
        .map(|alert| {
            format!(
                r#"<li class="alert {severity}"><strong>{severity_word}</strong> {time} — {summary} <em>(blames generation {generation}, {detector})</em></li>"#,
                severity = escape(&alert.severity),
                severity_word = escape(&alert.severity.to_uppercase()),
                time = escape(&alert.time),
                summary = escape(&alert.summary),
                generation = alert.generation,
                detector = escape(&alert.detector),
            )
        })
        .collect();
    let more = status
        .open_alerts_total
        .saturating_sub(status.open_alerts.len());
    let more = if more > 0 {
        format!("<p>and {more} more</p>")
    } else {
        String::new()
    };
    format!("<ul>{items}</ul>{more}")
}
