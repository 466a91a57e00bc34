//! Redirect routes: a route with `redirect = { scheme, host, port, path_prefix, status }`
//! has no pool, and Keel answers `301`/`302`/`307`/`308` with a `Location` built by
//! [`keel_config::Redirect::location`] (the rule `keel check` uses too) from the
//! request's scheme (`https` on a TLS connection), host and path and query. A request
//! whose host the rule needs but cannot use safely (missing, or not a plain host name
//! once normalised) gets `400 bad-request` instead: no request byte reaches `Location`
//! unchecked. Counted in the route's `unassigned` outcomes by status (the `3xx` class)
//! and in its `redirected` counter; the route's response header rules apply.

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use http::header::{HeaderValue, LOCATION};
use http::{Response, StatusCode};
use keel_config::{RedirectRequest, RedirectScheme};

use crate::body::ResponseBody;
use crate::errors::{ProxyFailure, respond};
use crate::forward::Served;
use crate::generation::Generation;
use crate::request::{ConnInfo, View};
use crate::stats::Outcome;

/// A route's redirect rule, ready for the hot path.
#[derive(Debug)]
pub(crate) struct CompiledRedirect {
    status: StatusCode,
    rule: keel_config::Redirect,
}

impl CompiledRedirect {
    /// The redirect of a config's route, or `None` when the route does not redirect.
    /// The parser allowed only redirect statuses; one that still fails to convert gets
    /// the default.
    pub(crate) fn compile(route: &keel_config::Route) -> Option<Box<Self>> {
        let rule = route.redirect()?.value.clone();
        let status = StatusCode::from_u16(rule.status.value)
            .ok()
            .filter(StatusCode::is_redirection)
            .unwrap_or(StatusCode::PERMANENT_REDIRECT);
        Some(Box::new(Self { status, rule }))
    }
}

/// The redirect answer of `route_id`, or `None` when the route does not redirect.
pub(crate) fn redirect(
    generation: &Generation,
    route_id: usize,
    parts: &http::request::Parts,
    conn: &ConnInfo,
) -> Option<(Response<ResponseBody>, Served)> {
    let runtime = &generation.routes[route_id];
    let compiled = runtime.redirect.as_ref()?;
    let stats = &generation.stats.routes[route_id];
    let view = View(parts, None);
    let request = RedirectRequest {
        scheme: RedirectScheme::of_request(conn.tls.is_some()),
        authority: keel_route::RequestView::host(&view),
        path_and_query: parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
    };
    let location = compiled
        .rule
        .location(&request)
        .and_then(|l| HeaderValue::from_str(&l).ok());
    let Some(location) = location else {
        stats.unassigned.record(Outcome::ClientError);
        let detail = format!(
            "route `{}` redirects to the request's host, and this request has no usable host",
            generation.table.route(route_id).name
        );
        let served = Served {
            error: Some(ProxyFailure::BadRequest),
            ..Served::default()
        };
        return Some((respond(ProxyFailure::BadRequest, &detail, None), served));
    };
    let mut response = Response::new(ResponseBody::full(Bytes::new()));
    *response.status_mut() = compiled.status;
    response.headers_mut().insert(LOCATION, location);
    if let Some(rules) = &runtime.response_rules {
        rules.apply(response.headers_mut());
    }
    stats
        .unassigned
        .record(Outcome::of_status(compiled.status.as_u16()));
    stats.redirected.fetch_add(1, Relaxed);
    Some((response, Served::default()))
}
