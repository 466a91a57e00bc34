//! One request through the data plane: pick the generation (primary or canary), route,
//! choose a pool and a backend, forward, retry when it is safe, verify the identity of
//! the answer when the service asks for it, count, and log.
//!
//! Retry rule: a request that never reached a backend (connect failure, or hyper hands
//! it back unsent) may go to another backend whatever its method; one that reached a
//! backend is retried only if its method is idempotent and it has no body. Each retry
//! goes to a backend this request has not tried. The route timeout bounds all
//! attempts together.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, Uri, Version};
use http_body::Body;
use hyper::body::Incoming;
use keel_config::HashKey;
use keel_route::{RequestShape, RequestView, Ring, RouteId, is_idempotent};
use tokio::time::Instant;

use crate::access_log::{AccessRecord, now_rfc3339};
use crate::backend::{Backend, BackendState};
use crate::balance::Tried;
use crate::body::{InFlight, Lease, ResponseBody, UpstreamBody};
use crate::dataplane::DataPlane;
use crate::errors::{ProxyFailure, respond};
use crate::events::ProxyEvent;
use crate::generation::Generation;
use crate::headers::{X_KEEL_GENERATION, ensure_request_id, set_forwarding, strip_hop_by_hop};
use crate::stats::Outcome;

/// Per-connection facts every request of the connection shares.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    pub(crate) peer_header: HeaderValue,
}

/// The request as routing sees it, borrowed from the request head.
struct View<'a>(&'a Parts);

impl RequestView for View<'_> {
    fn method(&self) -> &str {
        self.0.method.as_str()
    }
    fn host(&self) -> Option<&str> {
        match self.0.uri.authority() {
            Some(authority) => Some(authority.as_str()),
            None => self
                .0
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok()),
        }
    }
    fn path(&self) -> &str {
        self.0.uri.path()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.0.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What happened to one request, for stats and the access log.
struct Served {
    route: Option<RouteId>,
    pool: Option<usize>,
    backend: Option<Arc<Backend>>,
    retries: u32,
    error: Option<ProxyFailure>,
}

impl DataPlane {
    /// Serves one request.
    pub(crate) async fn handle(
        &self,
        request: Request<Incoming>,
        conn: &ConnInfo,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let (mut parts, body) = request.into_parts();
        let Some((generation, route)) = self.choose(&parts, conn) else {
            return respond(
                ProxyFailure::Starting,
                "no configuration is active yet",
                None,
            );
        };
        if self.sample.capacity() > 0 {
            self.sample
                .offer(|| shape(&parts, &generation, route, conn));
        }
        let request_id = ensure_request_id(&mut parts.headers);
        let (response, served) = match route {
            None => {
                generation.stats.unrouted.fetch_add(1, Relaxed);
                let detail = format!(
                    "no route matches {} {}{}",
                    parts.method,
                    View(&parts).host().unwrap_or(""),
                    parts.uri.path()
                );
                let served = Served {
                    route: None,
                    pool: None,
                    backend: None,
                    retries: 0,
                    error: Some(ProxyFailure::NoRoute),
                };
                (
                    respond(ProxyFailure::NoRoute, &detail, Some(&generation.header)),
                    served,
                )
            }
            Some(route) => {
                let head = take_head(&mut parts, self.access_log.is_some());
                self.forward(&generation, route, head, body, conn, started)
                    .await
            }
        };
        if let Some(log) = &self.access_log {
            log_request(
                log,
                &parts,
                &generation,
                &served,
                &response,
                &request_id,
                started,
                conn,
            );
        }
        let mut response = response;
        if self.options.generation_header {
            response
                .headers_mut()
                .insert(X_KEEL_GENERATION.clone(), generation.header.clone());
        }
        response
    }

    /// The generation that serves this request (primary, or canary for its slice) and
    /// the route it picks.
    fn choose(&self, parts: &Parts, conn: &ConnInfo) -> Option<(Arc<Generation>, Option<RouteId>)> {
        let guard = self.load();
        let active = guard.as_ref()?;
        let view = View(parts);
        let route = active.primary.table.find(&view);
        if let Some(canary) = &active.canary {
            let key_hash = route
                .and_then(|r| hash_key_of(&active.primary, r, parts, conn))
                .or_else(|| {
                    parts
                        .headers
                        .get(&crate::headers::X_REQUEST_ID)
                        .map(|v| Ring::hash_key(v.as_bytes()))
                })
                .unwrap_or_else(|| fastrand::u64(..));
            if key_hash % 1000 < u64::from(canary.permille) {
                let generation = canary.generation.clone();
                let route = generation.table.find(&view);
                return Some((generation, route));
            }
        }
        Some((active.primary.clone(), route))
    }

    async fn forward(
        &self,
        generation: &Arc<Generation>,
        route_id: RouteId,
        head: Head,
        body: Incoming,
        conn: &ConnInfo,
        started: Instant,
    ) -> (Response<ResponseBody>, Served) {
        let route = generation.table.route(route_id);
        let stats = &generation.stats.routes[route_id];
        let target = pick_target(route.targets.as_ref());
        let pool_id = route.targets[target].0;
        let pool = &generation.pools[pool_id];
        let key_hash = pool
            .hash_key
            .as_ref()
            .and_then(|key| extract_hash(key, &head.headers, conn));
        let replayable = is_idempotent(head.method.as_str()) && body.is_end_stream();
        let deadline = started + route.timeout;
        let mut outgoing = Some(head.into_upstream(conn, UpstreamBody::Incoming(body)));
        let mut tried = Tried::default();
        let mut served = Served {
            route: Some(route_id),
            pool: Some(pool_id),
            backend: None,
            retries: 0,
            error: None,
        };
        let mut last_failure = ProxyFailure::NoHealthyBackend;
        for attempt in 0..=route.retries {
            served.retries = attempt;
            let Some(request) = outgoing.take() else {
                break;
            };
            let Some(index) = pool.balancer.pick(&pool.backends, key_hash, tried) else {
                break;
            };
            tried.add(index);
            let backend = &pool.backends[index];
            served.backend = Some(backend.clone());
            let template = replayable.then(|| request.head_copy());
            let mut sender =
                match tokio::time::timeout_at(deadline, backend.upstream.checkout()).await {
                    Ok(Ok(sender)) => sender,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "connect failed");
                        backend.record_failure("connect failed");
                        last_failure = ProxyFailure::ConnectFailed;
                        outgoing = Some(request);
                        continue;
                    }
                    Err(_) => {
                        last_failure = ProxyFailure::Timeout;
                        break;
                    }
                };
            backend.start_request();
            let in_flight = InFlight(backend.clone());
            let result = tokio::time::timeout_at(deadline, sender.try_send_request(request)).await;
            let response = match result {
                Ok(Ok(response)) => response,
                Ok(Err(mut error)) => {
                    backend.record_failure("exchange failed");
                    last_failure = ProxyFailure::UpstreamReset;
                    outgoing = error
                        .take_message()
                        .or_else(|| template.map(|t| t.with_body(UpstreamBody::Empty)));
                    continue;
                }
                Err(_) => {
                    last_failure = ProxyFailure::Timeout;
                    break;
                }
            };
            let status = response.status().as_u16();
            if let Some((header, expected)) = &generation.routes[route_id].verify {
                let seen = response.headers().get(header).and_then(|v| v.to_str().ok());
                if seen != Some(&**expected) {
                    self.identity_mismatch(generation, route_id, pool_id, backend, seen);
                    stats.targets[target][index].record(Outcome::Misidentified);
                    last_failure = ProxyFailure::Misidentified;
                    outgoing = template.map(|t| t.with_body(UpstreamBody::Empty));
                    continue;
                }
            }
            let outcome = Outcome::of_status(status);
            if outcome == Outcome::ServerError {
                backend.record_failure("5xx answer");
            } else {
                backend.record_success();
            }
            stats.targets[target][index].record(outcome);
            stats.latency.observe(started.elapsed());
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let lease = Lease {
                sender,
                backend: backend.clone(),
            };
            return (
                Response::from_parts(parts, ResponseBody::upstream(body, lease, in_flight)),
                served,
            );
        }
        let outcome = match last_failure {
            ProxyFailure::Misidentified => Outcome::Misidentified,
            ProxyFailure::NoHealthyBackend => Outcome::ServerError,
            _ => Outcome::ConnectFailure,
        };
        match &served.backend {
            Some(backend) if last_failure != ProxyFailure::Misidentified => {
                let index = pool
                    .backends
                    .iter()
                    .position(|b| Arc::ptr_eq(b, backend))
                    .unwrap_or(0);
                if let Some(counter) = stats.targets[target].get(index) {
                    counter.record(outcome);
                }
            }
            Some(_) => {}
            None => stats.unassigned.record(outcome),
        }
        served.error = Some(last_failure);
        let detail = format!("route `{}`, pool `{}`", route.name, pool.name);
        (
            respond(last_failure, &detail, Some(&generation.header)),
            served,
        )
    }

    fn identity_mismatch(
        &self,
        generation: &Generation,
        route: RouteId,
        pool: usize,
        backend: &Arc<Backend>,
        seen: Option<&str>,
    ) {
        backend.note_identity(seen);
        let runtime = &generation.pools[pool];
        // The backend contradicts its own pool's service: it is the wrong server.
        // Otherwise the route is aimed at the wrong pool: the backend is fine.
        if let Some((_, own)) = &runtime.identity
            && seen != Some(&**own)
        {
            backend.set_health(
                BackendState::Misidentified,
                &format!("answered as `{}`", seen.unwrap_or("nothing")),
            );
        }
        let now_ms = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
        )
        .unwrap_or(0);
        if backend.should_report_mismatch(now_ms) {
            let expected = generation.routes[route].service.to_string();
            let event = ProxyEvent::IdentityMismatch {
                generation: generation.id,
                route: generation.table.route(route).name.to_string(),
                pool: runtime.name.to_string(),
                backend: backend.addr,
                expected,
                seen: seen.map(str::to_string),
            };
            tracing::warn!("{}", event.summary());
            let _ = self.events.send(event);
        }
    }
}

/// The part of a request that is kept to build (and rebuild) upstream requests.
pub(crate) struct Head {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

/// Takes the method, URI and headers out of the request head for forwarding, leaving
/// a copy of the headers behind only when the access log still needs them.
fn take_head(parts: &mut Parts, keep_copy: bool) -> Head {
    let headers = if keep_copy {
        parts.headers.clone()
    } else {
        std::mem::take(&mut parts.headers)
    };
    Head {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers,
    }
}

/// A copy of an upstream request's head, to send it again after a failure.
struct Template(Request<UpstreamBody>);

impl Head {
    fn into_upstream(mut self, conn: &ConnInfo, body: UpstreamBody) -> Request<UpstreamBody> {
        let host = match self.uri.authority() {
            Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
            None => self.headers.get(header::HOST).cloned(),
        };
        strip_hop_by_hop(&mut self.headers);
        set_forwarding(&mut self.headers, &conn.peer_header, host.as_ref());
        if let Some(host) = host {
            self.headers.insert(header::HOST, host);
        }
        let uri = self
            .uri
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
        let mut request = Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = self.headers;
        request
    }
}

trait HeadCopy {
    fn head_copy(&self) -> Template;
}

impl HeadCopy for Request<UpstreamBody> {
    fn head_copy(&self) -> Template {
        let mut copy = Request::new(UpstreamBody::Empty);
        *copy.method_mut() = self.method().clone();
        *copy.uri_mut() = self.uri().clone();
        *copy.version_mut() = self.version();
        *copy.headers_mut() = self.headers().clone();
        Template(copy)
    }
}

impl Template {
    fn with_body(self, body: UpstreamBody) -> Request<UpstreamBody> {
        let (parts, _) = self.0.into_parts();
        Request::from_parts(parts, body)
    }
}

/// Index of the split arm for this request (a weighted random draw).
#[inline]
fn pick_target(targets: &[(usize, u32)]) -> usize {
    if targets.len() == 1 {
        return 0;
    }
    let total: u32 = targets.iter().map(|(_, w)| *w).sum();
    if total == 0 {
        return 0;
    }
    let mut roll = fastrand::u32(..total);
    for (i, (_, weight)) in targets.iter().enumerate() {
        if roll < *weight {
            return i;
        }
        roll -= weight;
    }
    0
}

/// The hash of a request's sticky key for the pool of its route, if the pool hashes.
fn hash_key_of(
    generation: &Generation,
    route: RouteId,
    parts: &Parts,
    conn: &ConnInfo,
) -> Option<u64> {
    let pool = generation.table.route(route).targets.first()?.0;
    let key = generation.pools.get(pool)?.hash_key.as_ref()?;
    extract_hash(key, &parts.headers, conn)
}

/// Hashes the request's value for a hash key; `None` when the request has none.
fn extract_hash(key: &HashKey, headers: &HeaderMap, conn: &ConnInfo) -> Option<u64> {
    key_bytes(key, headers, conn, Ring::hash_key)
}

fn key_bytes<T>(
    key: &HashKey,
    headers: &HeaderMap,
    conn: &ConnInfo,
    with: impl FnOnce(&[u8]) -> T,
) -> Option<T> {
    match key {
        HashKey::Header(name) => headers.get(name.as_str()).map(|v| with(v.as_bytes())),
        HashKey::Cookie(name) => cookie(headers, name).map(|v| with(v.as_bytes())),
        HashKey::ClientIp => Some(with(conn.peer_header.as_bytes())),
    }
}

/// The value of cookie `name`, if the request carries it.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// The request's shape for the traffic sample.
fn shape(
    parts: &Parts,
    generation: &Generation,
    route: Option<RouteId>,
    conn: &ConnInfo,
) -> RequestShape {
    let view = View(parts);
    let mut buffer = [0u8; keel_route::MAX_HOST_LEN];
    let host = view
        .host()
        .and_then(|h| keel_route::normalize_host(h, &mut buffer))
        .unwrap_or("")
        .to_string();
    let headers = generation
        .matched_headers
        .iter()
        .filter_map(|name| {
            Some((
                name.as_str().to_string(),
                parts.headers.get(name)?.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    let hash_key = route
        .and_then(|r| generation.table.route(r).targets.first().map(|t| t.0))
        .and_then(|pool| generation.pools.get(pool)?.hash_key.as_ref())
        .and_then(|key| {
            key_bytes(key, &parts.headers, conn, |b| {
                String::from_utf8_lossy(b).into_owned()
            })
        });
    RequestShape {
        method: parts.method.as_str().to_string(),
        host,
        path: parts.uri.path().to_string(),
        headers,
        hash_key,
    }
}

#[allow(clippy::too_many_arguments)]
fn log_request(
    log: &crate::access_log::AccessLog,
    parts: &Parts,
    generation: &Generation,
    served: &Served,
    response: &Response<ResponseBody>,
    request_id: &HeaderValue,
    started: Instant,
    conn: &ConnInfo,
) {
    let view = View(parts);
    let mut buffer = [0u8; keel_route::MAX_HOST_LEN];
    let host = view
        .host()
        .and_then(|h| keel_route::normalize_host(h, &mut buffer))
        .unwrap_or("");
    let pool = served.pool.and_then(|p| generation.pools.get(p));
    let hash_key = pool.and_then(|p| p.hash_key.as_ref()).and_then(|key| {
        key_bytes(key, &parts.headers, conn, |b| {
            String::from_utf8_lossy(b).into_owned()
        })
    });
    let headers: Vec<(&str, &str)> = generation
        .matched_headers
        .iter()
        .filter_map(|name| Some((name.as_str(), parts.headers.get(name)?.to_str().ok()?)))
        .collect();
    log.write(&AccessRecord {
        time: now_rfc3339(),
        request_id: request_id.to_str().unwrap_or(""),
        method: parts.method.as_str(),
        host,
        path: parts.uri.path(),
        status: response.status().as_u16(),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        bytes: response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
        route: served.route.map(|r| &*generation.table.route(r).name),
        pool: pool.map(|p| &*p.name),
        backend: served.backend.as_ref().map(|b| b.addr.to_string()),
        generation: generation.id,
        retries: served.retries,
        error: served.error.map(ProxyFailure::code),
        headers,
        hash_key: hash_key.as_deref(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_many() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; cart_id=abc"));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, "cart_id"), Some("abc"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn split_arms_follow_weights() {
        let targets = [(0usize, 3u32), (1, 1)];
        let mut counts = [0u32; 2];
        for _ in 0..40_000 {
            counts[pick_target(&targets)] += 1;
        }
        let share = f64::from(counts[0]) / 40_000.0;
        assert!((0.73..0.77).contains(&share), "{share}");
        assert_eq!(pick_target(&[(5, 0), (6, 0)]), 0);
    }
}
