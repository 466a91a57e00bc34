//! HTTP/1.1 `Upgrade` through the proxy (WebSocket): which requests ask for one, the
//! route's permission, the upgrade request sent to a backend on a connection of its
//! own, the backend's `101` checked and relayed, and the tunnel started (see
//! [`crate::tunnel`]).
//!
//! Only protocols Keel knows ([`UpgradeProtocol`]) are upgrade requests here. A route
//! that does not list the protocol in `upgrades` refuses the request with
//! `400 upgrade-not-allowed`, before any backend sees it. Any other `Upgrade` token
//! (`h2c` from `curl --http2`, say) is treated as before: the header is dropped as
//! hop-by-hop and the request is served as plain HTTP/1.1, which RFC 9110 §7.8 allows.
//!
//! The upgrade request never uses a pooled connection (it opens its own, over TLS when
//! the pool sets `tls`), and its connection never goes back to the pool: after a `101`
//! it carries the tunnel, and after any other answer it is closed once that answer has
//! been read. Attempts follow the route's retry rule
//! only where the request cannot have reached a backend (the connect failed); the
//! route's `timeout` bounds the wait for the backend's answer. A `101` goes through
//! the same identity check as any answer (`verify_responses`): from the wrong service
//! it is a `502 misidentified-backend` and no tunnel opens. A `101` that switches to
//! another protocol than the one asked for is a `502` too.
//!
//! WebSocket over HTTP/2 (RFC 8441): the listeners' HTTP/2 announces
//! `SETTINGS_ENABLE_CONNECT_PROTOCOL`, and an extended `CONNECT` with
//! `:protocol = websocket` is an upgrade request like the HTTP/1.1 one. It is sent to
//! the backend as an HTTP/1.1 `GET` with `Upgrade: websocket` (and a fresh
//! `Sec-WebSocket-Key`, which RFC 8441 clients do not send), as Envoy does. The
//! backend's `101` must carry the `Sec-WebSocket-Accept` that answers that key (see
//! [`crate::websocket_key`]), else it is a `502 upstream-reset` and no tunnel opens; a
//! right one becomes the `200` that opens the client's stream (without the accept,
//! which answers a key the client never sent), and the tunnel carries that stream's
//! DATA frames both ways.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use keel_config::UpgradeProtocol;
use keel_route::RouteId;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::balance::Tried;
use crate::body::{InFlight, ResponseBody, UpstreamBody};
use crate::dataplane::DataPlane;
use crate::deadline::within;
use crate::errors::{ProxyFailure, respond};
use crate::forward::{Served, pick_target};
use crate::generation::Generation;
use crate::headers::strip_hop_by_hop;
use crate::request::{ConnInfo, prepare_upstream};
use crate::stats::Outcome;
use crate::tunnel::{TunnelTicket, relay};
use crate::upstream::ConnectError;
use crate::websocket_key::WebSocketKey;

/// An upgrade a client asked for: the protocol and the `Upgrade` value it sent.
pub(crate) struct Asked {
    pub(crate) protocol: UpgradeProtocol,
    value: HeaderValue,
    /// Asked with an HTTP/2 extended `CONNECT` (RFC 8441), not an HTTP/1.1 `Upgrade`.
    extended_connect: bool,
}

/// The upgrade an HTTP/2 extended `CONNECT` (RFC 8441) asks for, if its `:protocol`
/// names a protocol Keel knows.
pub(crate) fn asked_by_connect(parts: &Parts) -> Option<Asked> {
    if parts.method != http::Method::CONNECT || parts.version != Version::HTTP_2 {
        return None;
    }
    let token = parts.extensions.get::<hyper::ext::Protocol>()?.as_str();
    let protocol = UpgradeProtocol::from_token(token)?;
    Some(Asked {
        protocol,
        value: HeaderValue::from_static(protocol.name()),
        extended_connect: true,
    })
}

/// The upgrade an HTTP/1.1 request asks for, if it names a protocol Keel knows and
/// lists `upgrade` in `Connection`.
pub(crate) fn asked(parts: &Parts) -> Option<Asked> {
    if parts.version != Version::HTTP_11 {
        return None;
    }
    let connection_upgrade = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return None;
    }
    let value = parts.headers.get(header::UPGRADE)?;
    let protocol = value
        .to_str()
        .ok()?
        .split(',')
        // `websocket/13` names a version; the token is the part before the slash.
        .find_map(|token| UpgradeProtocol::from_token(token.split('/').next().unwrap_or("")))?;
    Some(Asked {
        protocol,
        value: value.clone(),
        extended_connect: false,
    })
}

impl DataPlane {
    /// Serves an upgrade request routed to `route_id`: refused unless the route allows
    /// the protocol, else sent to a backend; a `101` opens a tunnel.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn upgrade(
        &self,
        generation: &Arc<Generation>,
        route_id: RouteId,
        mut parts: Parts,
        body: Incoming,
        asked: Asked,
        key_hash: Option<u64>,
        conn: &ConnInfo,
        started: Instant,
    ) -> (Response<ResponseBody>, Served) {
        let route = generation.table.route(route_id);
        let runtime = &generation.routes[route_id];
        if !runtime.upgrades.contains(&asked.protocol) {
            let detail = format!(
                "route `{}` does not allow `Upgrade: {}` (it would need upgrades = [\"{}\"])",
                route.name,
                asked.protocol.name(),
                asked.protocol.name()
            );
            generation.stats.routes[route_id]
                .unassigned
                .record(Outcome::ClientError);
            let served = Served {
                error: Some(ProxyFailure::UpgradeNotAllowed),
                ..Served::default()
            };
            return (
                respond(ProxyFailure::UpgradeNotAllowed, &detail, None),
                served,
            );
        }
        let client_upgrade = parts.extensions.remove::<OnUpgrade>();
        prepare_upstream(&mut parts, conn);
        // RFC 8441 §5: the HTTP/1.1 handshake the backend expects, with a key of Keel's
        // whose accept is checked below.
        let sent_key = asked.extended_connect.then(WebSocketKey::new);
        if let Some(key) = &sent_key {
            parts.method = http::Method::GET;
            parts
                .headers
                .insert(header::SEC_WEBSOCKET_KEY, key.header());
        }
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, asked.value.clone());
        let target = pick_target(&route.targets);
        let pool_id = route.targets[target].0;
        let pool = &generation.pools[pool_id];
        let stats = &generation.stats.routes[route_id];
        let deadline = started + route.timeout;
        let mut served = Served {
            pool: Some(pool_id),
            ..Served::default()
        };
        let failed = |served: &mut Served, failure: ProxyFailure| {
            served.error = Some(failure);
            let detail = format!("route `{}`, pool `{}`", route.name, pool.name);
            respond(failure, &detail, None)
        };
        let mut tried = Tried::default();
        let mut request = Some(Request::from_parts(parts, UpstreamBody::from_client(body)));
        let mut failure = ProxyFailure::NoHealthyBackend;
        let mut answered = None;
        for attempt in 0..=route.retries {
            let Some(index) = pool.balancer.pick(&pool.backends, key_hash, tried) else {
                break;
            };
            tried.add(index);
            served.retries = attempt;
            served.backend = Some(index);
            let backend = &pool.backends[index];
            let counters = &stats.targets[target][index];
            let Some(outgoing) = request.take() else {
                break;
            };
            match exchange(backend, outgoing, deadline).await {
                Exchanged::Answered(response, sender, in_flight) => {
                    answered = Some((index, response, sender, in_flight));
                    break;
                }
                Exchanged::NotSent(outgoing, why) => {
                    failure = why;
                    request = Some(outgoing);
                }
                Exchanged::Failed(why) => {
                    counters.record(Outcome::ConnectFailure);
                    return (failed(&mut served, why), served);
                }
            }
        }
        let Some((index, response, sender, in_flight)) = answered else {
            match served.backend {
                Some(index) => stats.targets[target][index].record(Outcome::ConnectFailure),
                None => stats.unassigned.record(Outcome::ServerError),
            }
            return (failed(&mut served, failure), served);
        };
        let backend = &pool.backends[index];
        let counters = &stats.targets[target][index];
        if let Some((header, expected)) = &runtime.verify {
            let seen = response.headers().get(header).and_then(|v| v.to_str().ok());
            if !expected.iter().any(|e| seen == Some(&**e)) {
                self.identity_mismatch(generation, route_id, pool_id, index, seen);
                counters.record(Outcome::Misidentified);
                return (failed(&mut served, ProxyFailure::Misidentified), served);
            }
        }
        stats.target_latency[target].observe(started.elapsed());
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            // The backend declined (a 400 or 403, say): its answer goes to the client as
            // any other, and the connection closes once the answer is read.
            let outcome = Outcome::of_status(response.status().as_u16());
            if outcome == Outcome::ServerError {
                backend.record_failure("5xx answer");
            } else {
                backend.record_success();
            }
            counters.record(outcome);
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let body = ResponseBody::upstream(body, None, false, in_flight);
            return (Response::from_parts(parts, body), served);
        }
        let switched_to = response
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| UpgradeProtocol::from_token(v.split('/').next().unwrap_or("")));
        if switched_to != Some(asked.protocol) {
            backend.record_failure("switched to another protocol than asked");
            counters.record(Outcome::ConnectFailure);
            return (failed(&mut served, ProxyFailure::UpstreamReset), served);
        }
        if let Some(key) = &sent_key
            && !key.accepts(response.headers().get(header::SEC_WEBSOCKET_ACCEPT))
        {
            // The backend did not complete the handshake Keel started (RFC 6455 §4.1:
            // a client fails the connection then): no tunnel opens.
            backend.record_failure("Sec-WebSocket-Accept does not answer the key sent");
            counters.record(Outcome::ConnectFailure);
            served.error = Some(ProxyFailure::UpstreamReset);
            let detail = format!(
                "route `{}`, pool `{}`: the backend's 101 has a Sec-WebSocket-Accept that does not answer the Sec-WebSocket-Key Keel sent (RFC 6455 §4.2.2)",
                route.name, pool.name
            );
            return (respond(ProxyFailure::UpstreamReset, &detail, None), served);
        }
        let Some(client_upgrade) = client_upgrade else {
            // hyper gives every HTTP/1.1 request with `Upgrade` its upgrade handle; one
            // without it cannot be switched.
            counters.record(Outcome::ConnectFailure);
            return (failed(&mut served, ProxyFailure::NotImplemented), served);
        };
        backend.record_success();
        counters.record(Outcome::Informational);
        let (mut parts, _) = response.into_parts();
        let backend_upgrade = parts.extensions.remove::<OnUpgrade>();
        strip_hop_by_hop(&mut parts.headers);
        if asked.extended_connect {
            // The stream opens with a 2xx. The backend's accept answers the key Keel made up
            // (checked above), which the client never sent: it is not passed on.
            parts.status = StatusCode::OK;
            parts.headers.remove(header::SEC_WEBSOCKET_ACCEPT);
        } else {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, asked.value);
        }
        self.tunnel_owners.note(generation);
        let ticket = TunnelTicket::open(generation.clone(), route_id, pool_id, index);
        let idle_timeout = runtime.tunnel_idle_timeout;
        tokio::spawn(async move {
            // Counted as a request in flight to the backend until the tunnel closes (for
            // balancing), but not as one awaiting an answer (for the idle spin).
            let _in_flight = in_flight;
            let _not_awaiting = crate::idle_spin::TunnelNotAwaiting::new();
            let Some(backend_upgrade) = backend_upgrade else {
                return;
            };
            let switched = tokio::join!(client_upgrade, backend_upgrade);
            // The sender is kept until the backend's connection has switched, and not
            // a moment longer: it holds hyper's request channel (a block of request
            // slots), which an open tunnel never uses again.
            drop(sender);
            let (client, backend) = match switched {
                (Ok(client), Ok(backend)) => (client, backend),
                (Err(error), _) | (_, Err(error)) => {
                    tracing::debug!(%error, "upgrade failed before the tunnel opened");
                    return;
                }
            };
            relay(
                TokioIo::new(client),
                TokioIo::new(backend),
                idle_timeout,
                ticket,
            )
            .await;
        });
        // From the `101` on, what the client sends is the tunnel's, not requests (an
        // HTTP/2 connection goes on carrying other streams).
        if !asked.extended_connect {
            conn.upgraded.store(true, Relaxed);
        }
        (Response::from_parts(parts, ResponseBody::empty()), served)
    }
}

/// How one attempt of an upgrade request ended.
enum Exchanged {
    /// The answer's head, with the connection's sender (dropped when the exchange is
    /// over) and the backend's in-flight count.
    Answered(Response<Incoming>, SendRequest<UpstreamBody>, InFlight),
    /// The request never left: another backend may take it.
    NotSent(Request<UpstreamBody>, ProxyFailure),
    /// It may have reached the backend: no other try.
    Failed(ProxyFailure),
}

/// Sends an upgrade request to `backend` on a new connection that can switch
/// protocols, and waits for the answer's head until `deadline`.
async fn exchange(
    backend: &Arc<Backend>,
    request: Request<UpstreamBody>,
    deadline: Instant,
) -> Exchanged {
    // TCP, or TLS to a pool with `tls`: the tunnel then runs over the TLS session.
    let stream = match within(deadline, backend.upstream.connect_for_upgrade()).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%error, backend = %backend.addr, "connect failed");
            backend.record_failure(match error {
                ConnectError::Timeout { .. } => "connect timed out",
                ConnectError::Tls { .. } => "TLS handshake failed",
                _ => "connect failed",
            });
            return Exchanged::NotSent(request, ProxyFailure::ConnectFailed);
        }
        Err(_) => return Exchanged::Failed(ProxyFailure::Timeout),
    };
    let handshake = hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream));
    let (mut sender, connection) = match handshake.await {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, backend = %backend.addr, "handshake failed");
            return Exchanged::NotSent(request, ProxyFailure::ConnectFailed);
        }
    };
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "upgrade connection ended with an error");
        }
    });
    let in_flight = InFlight::start(backend);
    match within(deadline, sender.send_request(request)).await {
        Ok(Ok(response)) => Exchanged::Answered(response, sender, in_flight),
        Ok(Err(error)) => {
            tracing::debug!(%error, backend = %backend.addr, "upgrade exchange failed");
            backend.record_failure("exchange failed");
            Exchanged::Failed(ProxyFailure::UpstreamReset)
        }
        Err(_) => Exchanged::Failed(ProxyFailure::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(version: Version, headers: &[(&str, &str)]) -> Parts {
        let mut request = Request::builder().uri("/live").version(version);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|_| {
                panic!("a valid test request");
            })
    }

    #[test]
    fn a_websocket_upgrade_needs_both_headers_on_http_1_1() {
        let websocket = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ];
        assert_eq!(
            asked(&parts(Version::HTTP_11, &websocket)).map(|a| a.protocol),
            Some(UpgradeProtocol::WebSocket)
        );
        assert!(asked(&parts(Version::HTTP_10, &websocket)).is_none());
        assert!(asked(&parts(Version::HTTP_11, &[("upgrade", "websocket")])).is_none());
        let h2c = [("connection", "upgrade"), ("upgrade", "h2c")];
        assert!(asked(&parts(Version::HTTP_11, &h2c)).is_none());
    }
}
