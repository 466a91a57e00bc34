//! Sending one routed request to a backend, with retries.
//!
//! Retry rule: a request that never reached a backend (connect failure, or hyper hands
//! it back unsent) may go to another backend whatever its method; one that reached a
//! backend is retried only if its method is idempotent and it has no body. Each retry
//! goes to a backend this request has not tried. The route timeout bounds all
//! attempts together, up to the response head; a body that then stops moving is
//! bounded by `body_idle_timeout` (see [`crate::watchdog`]).
//!
//! A reused keep-alive connection that closes before any answer is most likely one the
//! backend closed as idle while the request was on its way (many servers close idle
//! connections after a few seconds; a pool keeps them up to its `idle_timeout`, a
//! minute by default, unless the backend announces its own). That is not the
//! backend failing: the request goes once more to the same backend, on a new
//! connection, if it can be sent again (hyper handed it back unsent, or it has a copy),
//! without counting as a retry or a failure. nginx gives a cached connection's failure
//! the same extra try.
//!
//! To resend a request that reached a backend, its head must survive the first send,
//! which consumes it: a copy (see [`crate::resend`]) is taken only for requests that
//! could be resent (idempotent, no body, route retries above zero).

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Request, Response};
use hyper::body::Incoming;
use keel_route::RouteId;
use tokio::time::Instant;

use crate::backend::BackendState;
use crate::balance::Tried;
use crate::body::{InFlight, ResponseBody, UpstreamBody};
use crate::dataplane::DataPlane;
use crate::deadline::within;
use crate::errors::ProxyFailure;
use crate::events::ProxyEvent;
use crate::generation::Generation;
use crate::headers::strip_hop_by_hop;
use crate::resend::ResendCopy;
use crate::stats::Outcome;
use crate::upstream::{PooledConn, Slot};

/// What happened to one request, for stats, the access log and the error answer.
#[derive(Debug, Default)]
pub(crate) struct Served {
    pub(crate) pool: Option<usize>,
    pub(crate) backend: Option<usize>,
    pub(crate) retries: u32,
    pub(crate) error: Option<ProxyFailure>,
}

/// How one attempt ended.
enum Attempt {
    Answered(Response<Incoming>, Box<PooledConn>, InFlight),
    /// Failed; the request is left (or put back) in the caller's slot when it may be
    /// tried elsewhere.
    Failed(ProxyFailure),
    TimedOut,
    /// The backend stayed at its `max_connections` until the deadline.
    QueueTimedOut,
    /// A reused keep-alive connection closed or broke before any answer: most likely
    /// the backend closed it as idle while the request was on its way, which is not the
    /// backend failing. The request is left (or put back) in the caller's slot when
    /// hyper did not send it.
    Stale,
}

impl DataPlane {
    /// Sends the request in `outgoing` to a backend of the route's pool, retrying where
    /// allowed.
    ///
    /// The request is passed in a slot, not by value, and taken out only when it is
    /// handed to hyper: a request head is 264 bytes, and every move of it through
    /// futures' arguments cost a copy.
    pub(crate) async fn forward(
        &self,
        generation: &Arc<Generation>,
        route_id: RouteId,
        outgoing: &mut Option<Request<UpstreamBody>>,
        key_hash: Option<u64>,
        started: Instant,
    ) -> (Result<Response<ResponseBody>, ProxyFailure>, Served) {
        let route = generation.table.route(route_id);
        let stats = &generation.stats.routes[route_id];
        let target = pick_target(&route.targets);
        let pool_id = route.targets[target].0;
        let pool = &generation.pools[pool_id];
        let grpc = outgoing
            .as_ref()
            .is_some_and(|request| crate::grpc::is_grpc(request.headers()));
        let (deadline, copy, grpc_body) = if grpc {
            // Cold for most traffic: kept out of line.
            crate::grpc::prepare(outgoing, route.timeout, route.retries, started)
        } else {
            let copy = outgoing.as_ref().and_then(|request| {
                (route.retries > 0
                    && keel_route::is_idempotent(request.method().as_str())
                    && http_body::Body::is_end_stream(request.body()))
                .then(|| ResendCopy::of(request))
                .flatten()
            });
            (started + route.timeout, copy, None)
        };
        let resend = || {
            let request = copy.as_ref().and_then(ResendCopy::request)?;
            match &grpc_body {
                None => Some(request),
                Some(body) => {
                    let replay = body.replay()?;
                    Some(request.map(|_| UpstreamBody::Replay(replay)))
                }
            }
        };
        let upload_received = outgoing
            .as_ref()
            .and_then(|request| request.body().upload_received());
        let mut tried = Tried::default();
        let mut served = Served {
            pool: Some(pool_id),
            ..Served::default()
        };
        let mut failure = ProxyFailure::NoHealthyBackend;
        for attempt in 0..=route.retries {
            let Some(request) = outgoing.as_ref() else {
                break;
            };
            let upload = !http_body::Body::is_end_stream(request.body());
            let Some(index) = pool.balancer.pick(&pool.backends, key_hash, tried) else {
                break;
            };
            tried.add(index);
            served.retries = attempt;
            served.backend = Some(index);
            let backend = &pool.backends[index];
            let counters = &stats.targets[target][index];
            let mut outcome = self.attempt(backend, outgoing, deadline, false).await;
            if let Attempt::Stale = outcome {
                // Once per backend, on a new connection to the same backend (a second
                // pooled one may be just as stale), if the request can be sent again.
                if outgoing.is_none() {
                    *outgoing = resend();
                }
                outcome = if outgoing.is_some() {
                    self.attempt(backend, outgoing, deadline, true).await
                } else {
                    backend.record_failure("exchange failed");
                    Attempt::Failed(ProxyFailure::UpstreamReset)
                };
            }
            let (response, mut conn, in_flight) = match outcome {
                Attempt::Answered(response, conn, in_flight) => (response, conn, in_flight),
                Attempt::Failed(why) => {
                    failure = why;
                    if why == ProxyFailure::BadRequest {
                        break;
                    }
                    if outgoing.is_none() {
                        *outgoing = resend();
                    }
                    continue;
                }
                Attempt::TimedOut => {
                    // A backend cannot answer a request it has not all received.
                    let stalled_upload = upload_received
                        .as_ref()
                        .is_some_and(|received| !received.load(Ordering::Acquire));
                    failure = if stalled_upload {
                        ProxyFailure::ClientTimeout
                    } else {
                        ProxyFailure::Timeout
                    };
                    break;
                }
                Attempt::QueueTimedOut => {
                    failure = ProxyFailure::QueueTimeout;
                    break;
                }
                // A new connection is never stale.
                Attempt::Stale => {
                    failure = ProxyFailure::UpstreamReset;
                    break;
                }
            };
            if let Some((header, expected)) = &generation.routes[route_id].verify {
                let seen = response.headers().get(header).and_then(|v| v.to_str().ok());
                if !expected.iter().any(|e| seen == Some(&**e)) {
                    self.identity_mismatch(generation, route_id, pool_id, index, seen);
                    counters.record(Outcome::Misidentified);
                    failure = ProxyFailure::Misidentified;
                    *outgoing = resend();
                    continue;
                }
            }
            if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                // Keel never asks for an upgrade (it strips `Upgrade`), so a backend that
                // switches protocols has left HTTP on this connection: nothing to relay.
                backend.record_failure("switched protocols unasked");
                failure = ProxyFailure::UpstreamReset;
                break;
            }
            let grpc_status = if grpc {
                crate::grpc::status(response.headers())
            } else {
                None
            };
            if grpc_status == Some(crate::grpc::UNAVAILABLE)
                && http_body::Body::is_end_stream(response.body())
                && attempt < route.retries
                && let Some(again) = resend()
            {
                // Trailers-only UNAVAILABLE: the backend served nothing of it.
                backend.record_failure("gRPC UNAVAILABLE");
                counters.record(Outcome::ServerError);
                *outgoing = Some(again);
                failure = ProxyFailure::UpstreamReset;
                continue;
            }
            let tally = match grpc_status {
                Some(code) => {
                    crate::grpc::count(backend, counters, code);
                    None
                }
                // The status comes in the trailers: counted when they pass.
                None if grpc && response.status() == http::StatusCode::OK => Some(
                    crate::grpc::GrpcTally::new(generation, route_id, target, index),
                ),
                None => {
                    let outcome = Outcome::of_status(response.status().as_u16());
                    if outcome == Outcome::ServerError {
                        backend.record_failure("5xx answer");
                    } else {
                        backend.record_success();
                    }
                    counters.record(outcome);
                    None
                }
            };
            stats.target_latency[target].observe(started.elapsed());
            let (mut parts, body) = response.into_parts();
            if let Some(announced) = strip_hop_by_hop(&mut parts.headers) {
                conn.heed_keep_alive(announced);
            }
            let conn = if http_body::Body::is_end_stream(&body) {
                // Nothing will poll an empty body: hand the connection back now.
                backend.upstream.checkin(conn, upload);
                None
            } else {
                Some(conn)
            };
            let mut body = ResponseBody::upstream(body, conn, upload, in_flight);
            if let Some(tally) = tally {
                body.count_grpc(tally);
            }
            return (Ok(Response::from_parts(parts, body)), served);
        }
        // One outcome per request, on the backend tried last (misidentified answers
        // were counted as they came).
        let outcome = match failure {
            ProxyFailure::Misidentified => None,
            ProxyFailure::BadRequest | ProxyFailure::ClientTimeout => Some(Outcome::ClientError),
            _ => Some(Outcome::ConnectFailure),
        };
        match (served.backend, outcome) {
            (Some(index), Some(outcome)) => stats.targets[target][index].record(outcome),
            (None, _) => stats.unassigned.record(Outcome::ServerError),
            (Some(_), None) => {}
        }
        served.error = Some(failure);
        (Err(failure), served)
    }

    /// One try against one backend: a slot if its pool caps requests in flight, an idle
    /// (unless `fresh`) or new connection, the request, the head of the response, all
    /// before `deadline`. The request stays in `outgoing` until it is sent, and hyper's
    /// unsent request is put back there.
    async fn attempt(
        &self,
        backend: &Arc<crate::backend::Backend>,
        outgoing: &mut Option<Request<UpstreamBody>>,
        deadline: Instant,
        fresh: bool,
    ) -> Attempt {
        let slot = match backend.upstream.slot() {
            Slot::Unlimited => None,
            Slot::Held(slot) => Some(slot),
            // Waiting is the cold path: boxed, so it does not bloat every request.
            Slot::Full(slots) => {
                let wait = Box::pin(backend.upstream.wait_for_slot(slots));
                match within(deadline, wait).await {
                    Ok(Some(slot)) => Some(slot),
                    Ok(None) | Err(_) => return Attempt::QueueTimedOut,
                }
            }
        };
        let (mut conn, reused) = loop {
            let idle = if fresh {
                None
            } else {
                backend.upstream.checkout_idle()
            };
            let (mut conn, pooled) = match idle {
                Some(conn) => (conn, true),
                None => {
                    // Connecting is the cold path: boxed, so it does not bloat every request.
                    let connect = Box::pin(backend.upstream.connect(!fresh));
                    match tokio::time::timeout_at(deadline, connect).await {
                        Ok(Ok(conn)) => (conn, false),
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "connect failed");
                            backend.record_failure("connect failed");
                            return Attempt::Failed(ProxyFailure::ConnectFailed);
                        }
                        Err(_) => return Attempt::TimedOut,
                    }
                }
            };
            // A pooled connection's task may still be finishing the previous exchange.
            let ready = poll_fn(|cx| conn.sender.poll_ready(cx));
            match within(deadline, ready).await {
                Ok(Ok(())) => break (conn, pooled),
                // Closed meanwhile: an idle one is no one's fault, try the next.
                Ok(Err(_)) if pooled => {}
                Ok(Err(error)) => {
                    tracing::debug!(%error, backend = %backend.addr, "new connection closed");
                    backend.record_failure("connection closed");
                    return Attempt::Failed(ProxyFailure::ConnectFailed);
                }
                Err(_) => return Attempt::TimedOut,
            }
        };
        conn.slot = slot;
        let Some(request) = outgoing.take() else {
            return Attempt::Failed(ProxyFailure::NoHealthyBackend);
        };
        let in_flight = InFlight::start(backend);
        let exchange = conn.sender.send(request);
        let result = within(deadline, exchange).await;
        match result {
            Ok(Ok(response)) => Attempt::Answered(response, conn, in_flight),
            Ok(Err(mut error)) => {
                *outgoing = error.take_message();
                if error.error().is_user() && outgoing.is_none() {
                    // The client's own body failed (bad chunking, client gone): not the
                    // backend's fault, and nothing can be resent.
                    tracing::debug!(error = %error.error(), "request body failed");
                    return Attempt::Failed(ProxyFailure::BadRequest);
                }
                let error = error.error();
                if crate::upstream_h2::was_refused(error) {
                    // The backend did nothing with it: another connection may take it.
                    tracing::debug!(%error, backend = %backend.addr, "stream refused");
                    return Attempt::Stale;
                }
                if reused && !error.is_parse() && !error.is_timeout() && !error.is_user() {
                    tracing::debug!(%error, backend = %backend.addr, "reused connection closed");
                    return Attempt::Stale;
                }
                tracing::debug!(%error, backend = %backend.addr, "exchange failed");
                backend.record_failure("exchange failed");
                Attempt::Failed(ProxyFailure::UpstreamReset)
            }
            Err(_) => Attempt::TimedOut,
        }
    }

    pub(crate) fn identity_mismatch(
        &self,
        generation: &Generation,
        route: RouteId,
        pool: usize,
        index: usize,
        seen: Option<&str>,
    ) {
        let runtime = &generation.pools[pool];
        let backend = &runtime.backends[index];
        backend.note_identity(seen);
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
            let event = ProxyEvent::IdentityMismatch {
                generation: generation.id,
                route: generation.table.route(route).name.to_string(),
                pool: runtime.name.to_string(),
                backend: backend.addr,
                expected: generation.routes[route].service.to_string(),
                seen: seen.map(str::to_string),
            };
            tracing::warn!("{}", event.summary());
            let _ = self.events.send(event);
        }
    }
}

/// Index of the split arm for this request (a weighted random draw).
#[inline]
pub(crate) fn pick_target(targets: &[(usize, u32)]) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

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
