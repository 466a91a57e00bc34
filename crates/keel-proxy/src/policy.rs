//! A route's traffic policies on the hot path: its client address rule (`allow` /
//! `deny`), judged on the TCP peer's address before the request is forwarded (a
//! refused request is answered `403 client-not-allowed` and counted in the route's
//! stats as a client error, like any answer), then its rate limit (`429 rate-limited`,
//! buckets in [`crate::rate_limit`]), its header rules, compiled once per generation
//! and applied to the forwarded request and to the answer, and its path rewrite.

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

use http::Response;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::body::ResponseBody;
use crate::errors::{ProxyFailure, respond};
use crate::forward::Served;
use crate::generation::Generation;
use crate::request::ConnInfo;
use crate::stats::Outcome;

/// The client's address as policies judge it: the TCP peer, or, when the peer is one
/// of `[server] trusted_proxies`, the rightmost `x-forwarded-for` entry that is not a
/// trusted proxy (each trusted hop vouches for the one before it). An entry that is
/// not a plain address ends the walk at the last hop believed.
///
/// The peer address is read back from the connection's rendered `x-forwarded-for`
/// value: only routes with a policy on the client pay for that parse, and the
/// connection setup stays as it is.
pub(crate) fn client_address(
    generation: &Generation,
    parts: &http::request::Parts,
    conn: &ConnInfo,
) -> Option<IpAddr> {
    let peer = conn
        .peer_header
        .to_str()
        .ok()
        .and_then(|text| text.parse::<IpAddr>().ok())?;
    let trusted = &generation.config.server.trusted_proxies;
    let is_trusted = |addr: IpAddr| trusted.iter().any(|b| b.value.contains(addr));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let lines: Vec<&[u8]> = parts
        .headers
        .get_all(&crate::headers::X_FORWARDED_FOR)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let mut believed = peer;
    for entry in lines
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(|b| *b == b','))
    {
        let Some(addr) = std::str::from_utf8(entry)
            .ok()
            .and_then(|text| text.trim().parse::<IpAddr>().ok())
        else {
            return Some(believed);
        };
        believed = addr;
        if !is_trusted(addr) {
            return Some(addr);
        }
    }
    Some(believed)
}

/// A sampled request's shape, with the client address policies judge and its arrival
/// time: what the blast radius replays address rules and rate limits on.
pub(crate) fn sampled_shape(
    parts: &http::request::Parts,
    generation: &Generation,
    route: Option<usize>,
    conn: &ConnInfo,
) -> keel_route::RequestShape {
    let mut shape = crate::request::shape(parts, generation, route, conn);
    shape.client = client_address(generation, parts, conn);
    shape.at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok());
    shape
}

/// The refusal for a client the route's address rule does not admit, or `None` to
/// serve it. An address that cannot be read is refused by an allow list and served
/// by a deny list (it is in no block).
pub(crate) fn refuse_by_address(
    generation: &Generation,
    route_id: usize,
    parts: &http::request::Parts,
    conn: &ConnInfo,
) -> Option<(Response<ResponseBody>, Served)> {
    let access = generation.routes[route_id].access.as_ref()?;
    let peer = client_address(generation, parts, conn);
    let admitted = match peer {
        Some(addr) => access.admits(addr),
        None => access.mode == keel_config::AccessMode::Deny,
    };
    if admitted {
        return None;
    }
    let stats = &generation.stats.routes[route_id];
    stats.unassigned.record(Outcome::ClientError);
    stats.policy_refused.fetch_add(1, Relaxed);
    let detail = format!(
        "route `{}` does not serve client {} (its `{}` list)",
        generation.table.route(route_id).name,
        peer.map_or_else(|| "?".to_string(), |p| p.to_string()),
        access.mode.key()
    );
    let served = Served {
        error: Some(ProxyFailure::ClientNotAllowed),
        ..Served::default()
    };
    Some((
        respond(ProxyFailure::ClientNotAllowed, &detail, None),
        served,
    ))
}

/// The `429` for a request the route's rate limit has no token for, or `None` to serve
/// it (see [`crate::rate_limit`]).
pub(crate) fn refuse_by_rate(
    generation: &Generation,
    route_id: usize,
    parts: &http::request::Parts,
    conn: &ConnInfo,
) -> Option<(Response<ResponseBody>, Served)> {
    let limiter = generation.routes[route_id].limiter.as_ref()?;
    let client = (limiter.keys_by_client() && !generation.config.server.trusted_proxies.is_empty())
        .then(|| client_address(generation, parts, conn))
        .flatten();
    let retry = limiter.admit(parts, conn, client).err()?;
    let stats = &generation.stats.routes[route_id];
    stats.unassigned.record(Outcome::ClientError);
    stats.policy_refused.fetch_add(1, Relaxed);
    stats.rate_limited.fetch_add(1, Relaxed);
    let detail = format!(
        "route `{}` is over its rate limit for this client; retry in {} s",
        generation.table.route(route_id).name,
        retry.0
    );
    let mut response = respond(ProxyFailure::RateLimited, &detail, None);
    let (name, value) = retry.header();
    response.headers_mut().insert(name, value);
    let served = Served {
        error: Some(ProxyFailure::RateLimited),
        ..Served::default()
    };
    Some((response, served))
}

/// A route's header rules for one direction, as the hot path applies them.
#[derive(Debug)]
pub(crate) struct CompiledRules {
    remove: Box<[HeaderName]>,
    set: Box<[(HeaderName, HeaderValue)]>,
}

impl CompiledRules {
    /// The rules of a config, or `None` when they change nothing. Names and values were
    /// validated by the parser; one that still fails to convert is skipped.
    pub(crate) fn compile(rules: Option<&keel_config::HeaderRules>) -> Option<Box<Self>> {
        let rules = rules.filter(|r| !r.is_empty())?;
        let remove = rules
            .remove
            .iter()
            .filter_map(|name| HeaderName::from_bytes(name.value.as_bytes()).ok())
            .collect();
        let set = rules
            .set
            .iter()
            .filter_map(|h| {
                let name = HeaderName::from_bytes(h.value.0.as_bytes()).ok()?;
                let value = HeaderValue::from_str(&h.value.1).ok()?;
                Some((name, value))
            })
            .collect();
        Some(Box::new(Self { remove, set }))
    }

    /// Removes, then sets (replacing every header of the name).
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// A route's path rewrite on the hot path: the `path_prefix` it matched and what
/// replaces it (see [`keel_config::Rewrite::apply`], which `keel check` uses for the
/// `rewritten_path` of route tests: one rule for both).
#[derive(Debug)]
pub(crate) struct CompiledRewrite {
    matched: Box<str>,
    rule: keel_config::Rewrite,
}

impl CompiledRewrite {
    /// The rewrite of a route matched by `path_prefix`, or `None` (the parser refuses a
    /// rewrite on any other route).
    pub(crate) fn compile(route: &keel_config::Route) -> Option<Box<Self>> {
        let rule = route.rewrite.as_ref()?.value.clone();
        let keel_config::PathMatch::Prefix(matched) = &route.path.as_ref()?.value else {
            return None;
        };
        Some(Box::new(Self {
            matched: matched.as_str().into(),
            rule,
        }))
    }

    /// Rewrites the origin-form target of a request about to be forwarded. The new
    /// target is the old one with its prefix replaced by a validated path, so it always
    /// parses; were it not to, the request would go unchanged.
    pub(crate) fn apply(&self, uri: &mut http::Uri) {
        let Some(target) = uri.path_and_query().map(|pq| pq.as_str()) else {
            return;
        };
        if let Some(new) = self.rule.apply(&self.matched, target)
            && let Ok(parsed) = http::Uri::try_from(new)
        {
            *uri = parsed;
        }
    }
}
