//! The Timeline page: the store's events since a chosen time, the same content as
//! `keel timeline --since ..` (keel-report's post-mortem draft), shown on the page and
//! downloadable as Markdown (`GET /ui/timeline.md?since=..`).

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use keel_report::{ReportError, Timeline, parse_time};
use serde::Deserialize;

use super::html::{escape, layout, message_page, no_store, sign_in};
use super::{ConsoleState, session_of};

/// The window the page opens with when no `since` is given (the last hour).
pub const DEFAULT_TIMELINE_SINCE: &str = "1h";
/// Longest `since` text accepted (64 bytes): it is a time or a duration.
const MAX_SINCE_LEN: usize = 64;

#[derive(Debug, Default, Deserialize)]
pub(super) struct TimelineQuery {
    since: Option<String>,
}

/// The timeline's Markdown for `since` (as `keel timeline --since` reads it), or the
/// error page.
async fn markdown(state: &ConsoleState, since: &str) -> Result<String, Response> {
    if since.len() > MAX_SINCE_LEN {
        return Err(message_page(
            StatusCode::BAD_REQUEST,
            "Since: too long",
            "Give a time (2026-03-15T14:00:00Z) or a duration (1h, 30m).",
        ));
    }
    let since_ms = parse_time(since, keel_store::now_ms()).map_err(|error| {
        message_page(
            StatusCode::BAD_REQUEST,
            "Since: not a time",
            &error.to_string(),
        )
    })?;
    let built = state
        .admin
        .controller
        .with_store(move |store| Ok(Timeline::build(store, Some(since_ms), None)))
        .await;
    match built {
        Ok(Ok(timeline)) => Ok(timeline.render_markdown()),
        Ok(Err(error @ ReportError::EmptyRange { .. })) => Err(message_page(
            StatusCode::BAD_REQUEST,
            "Empty window",
            &error.to_string(),
        )),
        Ok(Err(error)) => Err(message_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Cannot build the timeline",
            &error.to_string(),
        )),
        Err(error) => Err(message_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Cannot read the store",
            &error.to_string(),
        )),
    }
}

fn since_of(
    query: Result<Query<TimelineQuery>, axum::extract::rejection::QueryRejection>,
) -> String {
    query
        .ok()
        .and_then(|Query(q)| q.since)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_TIMELINE_SINCE.to_string())
}

/// `GET /ui/timeline?since=..`.
pub(super) async fn page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    query: Result<Query<TimelineQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some((_, session)) = session_of(&state, &headers) else {
        return sign_in(StatusCode::UNAUTHORIZED, None);
    };
    let since = since_of(query);
    let text = match markdown(&state, &since).await {
        Ok(text) => text,
        Err(page) => return page,
    };
    let since_html = escape(&since);
    let since_query: String = url_encode(&since);
    let body = format!(
        r#"<h1>Timeline</h1>
<form method="get" action="/ui/timeline"><label for="since">Since (a time such as 2026-03-15T14:00:00Z, or a duration back from now such as 1h)</label>
<input id="since" name="since" value="{since_html}" maxlength="{MAX_SINCE_LEN}"> <button type="submit">Show</button></form>
<p><a class="button" href="/ui/timeline.md?since={since_query}" download="keel-timeline.md">Download the post-mortem draft (Markdown)</a></p>
<pre class="timeline">{}</pre>"#,
        escape(&text)
    );
    (
        StatusCode::OK,
        no_store(),
        Html(layout("Timeline", Some(&session), &body)),
    )
        .into_response()
}

/// `GET /ui/timeline.md?since=..`: the same Markdown as a download.
pub(super) async fn download(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    query: Result<Query<TimelineQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if session_of(&state, &headers).is_none() {
        return sign_in(StatusCode::UNAUTHORIZED, None);
    }
    match markdown(&state, &since_of(query)).await {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, "text/markdown; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"keel-timeline.md\"",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            text,
        )
            .into_response(),
        Err(page) => page,
    }
}

/// `text` percent-encoded for a query value.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
