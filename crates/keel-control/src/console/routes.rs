//! The Routes page: every route of the serving generation, a page at a time, with its
//! requests, error rate and p99 since the generation started serving, and the same
//! figures summed per service. The Now page lists only the busiest
//! [`MAX_LIVE_ROUTES`](super::MAX_LIVE_ROUTES) of the last second; this page is where the
//! other 9,950 of a 10,000-route config are found: filtered by a word (route, host,
//! path or service), ordered busiest first or in file order, [`ROUTES_PER_PAGE`] rows a
//! page. Server-rendered: one request reads each route's cumulative counters once
//! (relaxed atomic loads), nothing the data plane waits on, and sends one page of rows.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use keel_proxy::Generation;
use keel_proxy::stats::{Outcome, bucket_quantile};
use serde::Deserialize;

use super::html::{escape, layout, message_page, no_store, sign_in};
use super::{ConsoleState, session_of};

/// Rows on one page of the Routes page (100).
pub const ROUTES_PER_PAGE: usize = 100;
/// Longest filter text accepted (200 bytes).
const MAX_FILTER_LEN: usize = 200;
/// Label of a route without a host condition (as on the Now page).
const ANY_HOST: &str = "(any host)";

#[derive(Debug, Default, Deserialize)]
pub(super) struct RoutesQuery {
    page: Option<usize>,
    q: Option<String>,
    order: Option<String>,
}

/// One route's figures since its generation started serving.
struct Row {
    index: usize,
    name: String,
    host: String,
    path: String,
    service: String,
    pools: String,
    requests: u64,
    failures: u64,
    latency: [u64; 14],
}

impl Row {
    fn matches(&self, filter: &str) -> bool {
        [
            &self.name,
            &self.host,
            &self.path,
            &self.service,
            &self.pools,
        ]
        .iter()
        .any(|field| field.to_lowercase().contains(filter))
    }
}

/// `GET /ui/routes?page=N&q=WORD&order=busy|file`.
pub(super) async fn page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    query: Result<Query<RoutesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some((_, session)) = session_of(&state, &headers) else {
        return sign_in(StatusCode::UNAUTHORIZED, None);
    };
    let Ok(Query(query)) = query else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "Routes: bad query",
            "page is a number from 1, order is busy or file.",
        );
    };
    let filter = query.q.as_deref().map(str::trim).unwrap_or_default();
    if filter.len() > MAX_FILTER_LEN {
        return message_page(
            StatusCode::BAD_REQUEST,
            "Routes: filter too long",
            "Filter by a word of a route's name, host, path or service.",
        );
    }
    let by_file = match query.order.as_deref() {
        None | Some("busy") => false,
        Some("file") => true,
        Some(_) => {
            return message_page(
                StatusCode::BAD_REQUEST,
                "Routes: unknown order",
                "order is busy (the default) or file.",
            );
        }
    };
    let Some(active) = state.admin.controller.plane().active() else {
        return message_page(
            StatusCode::OK,
            "Routes",
            "No generation serves yet: there are no routes.",
        );
    };
    let generation = &active.primary;
    let all = rows(generation);
    let services = services_html(&all);
    let filter = filter.to_lowercase();
    let mut shown: Vec<&Row> = all.iter().filter(|row| row.matches(&filter)).collect();
    if !by_file {
        shown.sort_by_key(|row| (std::cmp::Reverse(row.requests), row.index));
    }
    let pages = shown.len().div_ceil(ROUTES_PER_PAGE).max(1);
    let page = query.page.unwrap_or(1);
    if page == 0 || page > pages {
        return message_page(
            StatusCode::NOT_FOUND,
            "Routes: no such page",
            &format!("There are {pages} pages of routes."),
        );
    }
    let first = (page - 1) * ROUTES_PER_PAGE;
    let rows: String = shown
        .iter()
        .skip(first)
        .take(ROUTES_PER_PAGE)
        .map(|row| row_html(row))
        .collect();
    let order = if by_file { "file" } else { "busy" };
    let link = |page: usize| {
        format!(
            "/ui/routes?page={page}&amp;order={order}&amp;q={}",
            escape(&url_encode(&filter))
        )
    };
    let mut nav = String::new();
    if page > 1 {
        let _ = write!(
            nav,
            r#"<a href="{}" rel="prev">← previous</a> "#,
            link(page - 1)
        );
    }
    let _ = write!(nav, "page {page} of {pages}");
    if page < pages {
        let _ = write!(
            nav,
            r#" <a href="{}" rel="next">next →</a>"#,
            link(page + 1)
        );
    }
    let body = format!(
        r#"<h1>Routes</h1>
<p class="hint">Generation {generation}: {total} routes. Figures are since it started serving; the Now page has the last second's busiest.</p>
<section aria-labelledby="services-h"><h2 id="services-h">Per service</h2>{services}</section>
<section aria-labelledby="list-h"><h2 id="list-h">Every route</h2>
<form method="get" action="/ui/routes" class="inline"><label for="q">Filter</label> <input id="q" name="q" value="{q}" maxlength="{MAX_FILTER_LEN}">
<label for="order">order</label> <select id="order" name="order"><option value="busy"{busy_selected}>busiest first</option><option value="file"{file_selected}>file order</option></select>
<button type="submit">Show</button></form>
<p id="routes-count">{matching} routes{filtered}, {from}–{to} shown.</p>
<table><thead><tr><th scope="col">#</th><th scope="col">route</th><th scope="col">host</th><th scope="col">path</th><th scope="col">service</th><th scope="col">pools</th><th scope="col">requests</th><th scope="col">errors</th><th scope="col">p99</th></tr></thead>
<tbody id="all-routes">{rows}</tbody></table>
<nav aria-label="pages" id="pages">{nav}</nav></section>"#,
        generation = generation.id,
        total = all.len(),
        q = escape(&filter),
        busy_selected = if by_file { "" } else { " selected" },
        file_selected = if by_file { " selected" } else { "" },
        matching = shown.len(),
        filtered = if filter.is_empty() {
            String::new()
        } else {
            format!(" matching “{}”", escape(&filter))
        },
        from = if shown.is_empty() { 0 } else { first + 1 },
        to = (first + ROUTES_PER_PAGE).min(shown.len()),
    );
    (
        StatusCode::OK,
        no_store(),
        Html(layout("Routes", Some(&session), &body)),
    )
        .into_response()
}

fn rows(generation: &Generation) -> Vec<Row> {
    let config = &generation.config;
    config
        .routes
        .iter()
        .zip(generation.stats.routes.iter())
        .enumerate()
        .map(|(index, (route, stats))| {
            let (mut requests, mut failures) = (0, 0);
            for (outcome, n) in Outcome::ALL.iter().zip(stats.totals()) {
                requests += n;
                if outcome.is_failure() {
                    failures += n;
                }
            }
            let pools = generation
                .table
                .routes()
                .get(index)
                .map(|compiled| {
                    compiled
                        .targets
                        .iter()
                        .filter_map(|(pool, _)| config.pools.get_index(*pool))
                        .map(|(name, _)| name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            Row {
                index,
                name: route.name.value.clone(),
                host: route
                    .host
                    .as_ref()
                    .map_or_else(|| ANY_HOST.to_string(), |h| h.value.to_string()),
                path: route
                    .path
                    .as_ref()
                    .map_or_else(String::new, |p| p.value.to_string()),
                service: route.service().map_or_else(
                    || {
                        if route.redirect().is_some() {
                            "(redirect)".to_string()
                        } else {
                            "(fixed answer)".to_string()
                        }
                    },
                    |s| s.value.clone(),
                ),
                pools,
                requests,
                failures,
                latency: stats.latency_buckets(),
            }
        })
        .collect()
}

fn error_rate(requests: u64, failures: u64) -> String {
    if requests == 0 {
        return "—".to_string();
    }
    format!("{:.1} %", failures as f64 * 100.0 / requests as f64)
}

fn p99(latency: &[u64; 14]) -> String {
    bucket_quantile(latency, 0.99).map_or_else(
        || "—".to_string(),
        |us| format!("≤ {} ms", us as f64 / 1000.0),
    )
}

fn row_html(row: &Row) -> String {
    format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        row.index + 1,
        escape(&row.name),
        escape(&row.host),
        escape(&row.path),
        escape(&row.service),
        escape(&row.pools),
        row.requests,
        error_rate(row.requests, row.failures),
        p99(&row.latency),
    )
}

/// Routes, requests, error rate and p99 summed per service, busiest first.
fn services_html(rows: &[Row]) -> String {
    let mut services: Vec<(&str, usize, u64, u64, [u64; 14])> = Vec::new();
    for row in rows {
        let at = match services.iter().position(|s| s.0 == row.service) {
            Some(at) => at,
            None => {
                services.push((&row.service, 0, 0, 0, [0; 14]));
                services.len() - 1
            }
        };
        if let Some(entry) = services.get_mut(at) {
            entry.1 += 1;
            entry.2 += row.requests;
            entry.3 += row.failures;
            for (sum, n) in entry.4.iter_mut().zip(row.latency) {
                *sum += n;
            }
        }
    }
    services.sort_by_key(|s| std::cmp::Reverse(s.2));
    let body: String = services
        .iter()
        .map(|(service, routes, requests, failures, latency)| {
            format!(
                "<tr><td>{}</td><td>{routes}</td><td>{requests}</td><td>{}</td><td>{}</td></tr>",
                escape(service),
                error_rate(*requests, *failures),
                p99(latency),
            )
        })
        .collect();
    format!(
        r#"<table><thead><tr><th scope="col">service</th><th scope="col">routes</th><th scope="col">requests</th><th scope="col">errors</th><th scope="col">p99</th></tr></thead><tbody id="per-service">{body}</tbody></table>"#
    )
}

/// `text` for a query string value.
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
