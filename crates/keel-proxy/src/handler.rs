//! One request through the data plane: refuse it if its host is ambiguous (see
//! [`crate::refuse`]), pick the generation (primary or canary), route, sample, give it
//! an id, forward it (see [`crate::forward`]) or answer it itself (a fixed answer, see
//! [`crate::answer`], or a redirect, see [`crate::redirect`]), compress the answer when
//! the route says so (see [`crate::compress`]), and open its access-log record.
//!
//! The generation is loaded once per request; the request is served wholly by it even
//! if a swap happens meanwhile.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use http::header::HeaderValue;
use http::{Request, Response};
use hyper::body::Incoming;
use keel_route::{RequestView, Ring, RouteId};
use tokio::time::Instant;

use crate::access_log::PendingRecord;
use crate::body::{ResponseBody, UpstreamBody};
use crate::dataplane::{Active, DataPlane};
use crate::errors::{ProxyFailure, respond};
use crate::forward::Served;
use crate::generation::Generation;
use crate::headers::{X_KEEL_GENERATION, X_REQUEST_ID, ensure_request_id};
use crate::refuse::refusal;
use crate::request::{ConnInfo, View, hash_of, prepare_upstream, route_hash_key, shape};
use crate::watchdog::Exchange;

impl DataPlane {
    /// Serves one request on `exchange`'s connection: the future hyper runs for it.
    ///
    /// A plain function returning one `async` block, not an `async fn` awaited inside
    /// another block: hyper moves a request's future whole, several times per request,
    /// and an `async fn` keeps both its argument (the 264-byte request) and the local it
    /// is taken apart into for its whole life, as a wrapping block kept the request once
    /// more. Taken apart here, the parts live once, in the block, and change in place.
    pub(crate) fn serve_request(
        self: Arc<Self>,
        request: Request<Incoming>,
        exchange: Exchange,
    ) -> impl Future<Output = Result<Response<ResponseBody>, Infallible>> + Send + 'static {
        let started = Instant::now();
        let (mut parts, body) = request.into_parts();
        async move {
            let conn = &**exchange.conn();
            let mut response = 'answer: {
                if let Some(answer) = self.acme_challenges.answer(&parts) {
                    break 'answer answer;
                }
                let refused = refusal(&parts);
                let (generation, route) = {
                    let active = self.load();
                    let Some(active) = active.as_ref() else {
                        break 'answer respond(
                            ProxyFailure::Starting,
                            "no configuration is active yet",
                            None,
                        );
                    };
                    match refused {
                        Some(_) => (active.primary.clone(), None),
                        None => choose(active, &parts, conn),
                    }
                };
                if self.sample.capacity() > 0 && refused.is_none() {
                    self.sample
                        .offer(|| crate::policy::sampled_shape(&parts, &generation, route, conn));
                }
                // Room for the request id and the three forwarding headers: one growth of the
                // map (hyper sizes it to the headers it parsed) instead of several.
                parts.headers.reserve(4);
                ensure_request_id(&mut parts.headers);
                let pending = self.access_log.as_ref().map(|log| {
                    Box::new(PendingRecord {
                        log: log.clone(),
                        arrived: jiff::Timestamp::now(),
                        started,
                        ttfb: std::time::Duration::ZERO,
                        request_id: parts
                            .headers
                            .get(&X_REQUEST_ID)
                            .cloned()
                            .unwrap_or(HeaderValue::from_static("")),
                        client: conn.peer_header.clone(),
                        user_agent: parts.headers.get(http::header::USER_AGENT).cloned(),
                        shape: shape(&parts, &generation, route, conn),
                        status: 0,
                        route: None,
                        pool: None,
                        backend: None,
                        generation: generation.id,
                        retries: 0,
                        error: None,
                        encoding: None,
                        bytes: 0,
                        complete: false,
                    })
                });
                let mut encoding = None;
                let (mut response, served) = match route {
                    None if let Some(refused) = refused => {
                        generation.stats.refused.fetch_add(1, Relaxed);
                        let served = Served {
                            error: Some(refused.failure),
                            ..Served::default()
                        };
                        (respond(refused.failure, refused.detail, None), served)
                    }
                    None => {
                        generation.stats.unrouted.fetch_add(1, Relaxed);
                        let detail = format!(
                            "no route matches {} {}{}",
                            parts.method,
                            View(&parts, None).host().unwrap_or(""),
                            parts.uri.path()
                        );
                        let served = Served {
                            error: Some(ProxyFailure::NoRoute),
                            ..Served::default()
                        };
                        (respond(ProxyFailure::NoRoute, &detail, None), served)
                    }
                    Some(route_id)
                        if let Some(refused) =
                            crate::tls::refuse_misdirected(&generation, route_id, &parts, conn) =>
                    {
                        refused
                    }
                    Some(route_id)
                        if let Some(refused) = crate::policy::refuse_by_address(
                            &generation,
                            route_id,
                            &parts,
                            conn,
                        ) =>
                    {
                        refused
                    }
                    Some(route_id)
                        if let Some(limited) =
                            crate::policy::refuse_by_rate(&generation, route_id, &parts, conn) =>
                    {
                        limited
                    }
                    Some(route_id)
                        if let Some(answered) = crate::answer::fixed(&generation, route_id) =>
                    {
                        answered
                    }
                    Some(route_id)
                        if let Some(redirected) =
                            crate::redirect::redirect(&generation, route_id, &parts, conn) =>
                    {
                        redirected
                    }
                    Some(route_id) => {
                        if let Some(bound) = generation.routes[route_id].body_idle {
                            conn.exchange_clock.route_body_idle(bound);
                        }
                        let key_hash = route_hash_key(&generation, route)
                            .and_then(|key| hash_of(key, &parts.headers, conn));
                        match crate::upgrade::asked(&parts)
                            .or_else(|| crate::upgrade::asked_by_connect(&parts))
                        {
                            // Boxed: the upgrade's state (2.6 kB) would otherwise size every
                            // request's future, which hyper moves whole on each request.
                            Some(asked) => {
                                Box::pin(self.upgrade(
                                    &generation,
                                    route_id,
                                    parts,
                                    body,
                                    asked,
                                    key_hash,
                                    conn,
                                    started,
                                ))
                                .await
                            }
                            None => {
                                let grpc = crate::grpc::is_grpc(&parts.headers);
                                let offered = &generation.routes[route_id].compress;
                                let coding = if offered.is_empty() {
                                    None
                                } else {
                                    crate::compress::choose(offered, &parts.method, &parts.headers)
                                };
                                prepare_upstream(&mut parts, conn);
                                if let Some(rewrite) = &generation.routes[route_id].rewrite {
                                    rewrite.apply(&mut parts.uri);
                                }
                                if let Some(rules) = &generation.routes[route_id].request_rules {
                                    rules.apply(&mut parts.headers);
                                }
                                let mut outgoing = Some(Request::from_parts(
                                    parts,
                                    UpstreamBody::from_client(body),
                                ));
                                let (result, served) = self
                                    .forward(
                                        &generation,
                                        route_id,
                                        &mut outgoing,
                                        key_hash,
                                        started,
                                    )
                                    .await;
                                let response = result.unwrap_or_else(|failure| {
                                    let pool = served
                                        .pool
                                        .and_then(|p| generation.pools.get(p))
                                        .map_or("", |p| &*p.name);
                                    let detail = format!(
                                        "route `{}`, pool `{}`",
                                        generation.table.route(route_id).name,
                                        pool
                                    );
                                    if grpc {
                                        crate::grpc::respond(failure, &detail)
                                    } else {
                                        respond(failure, &detail, None)
                                    }
                                });
                                let mut response = response;
                                if let Some(rules) = &generation.routes[route_id].response_rules {
                                    rules.apply(response.headers_mut());
                                }
                                if let Some(coding) = coding
                                    && crate::compress::apply(&mut response, coding)
                                {
                                    generation.stats.routes[route_id].compressed[coding.index()]
                                        .fetch_add(1, Relaxed);
                                    encoding = Some(coding.token());
                                }
                                (response, served)
                            }
                        }
                    }
                };
                // HSTS: only over TLS (RFC 6797 §7.2), as the request's generation says.
                if conn.tls.is_some()
                    && let Some(listener) = conn.listener.as_deref()
                    && let Some(hsts) = generation.tls.hsts(listener)
                {
                    response
                        .headers_mut()
                        .insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
                }
                if self.options.generation_header {
                    response
                        .headers_mut()
                        .insert(&X_KEEL_GENERATION, generation.header.clone());
                }
                if let Some(mut record) = pending {
                    record.ttfb = started.elapsed();
                    record.status = response.status().as_u16();
                    if let Some(route) = route {
                        record.route = Some(generation.table.route(route).name.clone());
                    }
                    let pool = served.pool.and_then(|p| generation.pools.get(p));
                    record.pool = pool.map(|p| p.name.clone());
                    record.backend = pool
                        .zip(served.backend)
                        .and_then(|(p, b)| p.backends.get(b))
                        .map(|b| b.addr);
                    record.retries = served.retries;
                    record.error = served.error.map(ProxyFailure::code);
                    record.encoding = encoding;
                    response.body_mut().set_record(record);
                }
                response
            };
            response.body_mut().answer(exchange);
            Ok(response)
        }
    }
}

/// The generation that serves this request (primary, or canary for its slice) and the
/// route it picks.
#[inline]
fn choose(
    active: &Active,
    parts: &http::request::Parts,
    conn: &ConnInfo,
) -> (Arc<Generation>, Option<RouteId>) {
    let view = View(parts, conn.listener.as_deref());
    let route = active.primary.table.find(&view);
    if let Some(canary) = &active.canary {
        let key_hash = route_hash_key(&active.primary, route)
            .and_then(|key| hash_of(key, &parts.headers, conn))
            .or_else(|| {
                parts
                    .headers
                    .get(&X_REQUEST_ID)
                    .map(|v| Ring::hash_key(v.as_bytes()))
            })
            .unwrap_or_else(|| fastrand::u64(..));
        if key_hash % 1000 < u64::from(canary.permille) {
            let generation = canary.generation.clone();
            let route = generation.table.find(&view);
            return (generation, route);
        }
    }
    (active.primary.clone(), route)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest the future of one request may be, in bytes. hyper moves it whole on
    /// every request, so each byte here is copied several times per request: a branch
    /// that grows it past this belongs in a `Box` (as the upgrade is). It is 1,984
    /// bytes now (about 3,600 with the upgrade inline and the request kept twice).
    const MAX_REQUEST_FUTURE_BYTES: usize = 2_304;

    fn future_size<F, Fut>(_: F) -> usize
    where
        F: FnOnce(Arc<DataPlane>, Request<Incoming>, Exchange) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn the_request_future_stays_small() {
        let size = future_size(DataPlane::serve_request);
        assert!(
            size <= MAX_REQUEST_FUTURE_BYTES,
            "a request's future is {size} bytes, over {MAX_REQUEST_FUTURE_BYTES}"
        );
        println!("request future: {size} bytes");
    }
}
