//! What the data plane reads from a client request: the routing view (borrowed, no
//! copies), the consistent-hash key, the owned shape kept by the traffic sample and the
//! access log, and the request sent upstream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Uri, Version};
use keel_config::HashKey;
use keel_route::{RequestShape, RequestView, Ring};

use crate::generation::Generation;
use crate::headers::{set_forwarding, strip_hop_by_hop};
use crate::parking::Parking;
use crate::watchdog::ExchangeClock;

/// Per-connection facts every request of the connection shares.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    /// The client's IP address, rendered once for `x-forwarded-for` and `client_ip` keys.
    pub(crate) peer_header: HeaderValue,
    /// The listener address the client connected to: the authority of a request that
    /// names none (rendered only then, see [`prepare_upstream`]).
    pub(crate) local_addr: Option<SocketAddr>,
    /// The times of its exchanges, for its watchdog (see [`crate::watchdog`]).
    pub(crate) exchange_clock: ExchangeClock,
    /// Whether its hyper connection is between messages (see [`crate::parking`]).
    pub(crate) parking: Parking,
    /// A `101` has been handed to hyper: the connection's bytes are a tunnel's from
    /// now on, no longer requests (see [`crate::progress`]).
    pub(crate) upgraded: AtomicBool,
    /// The listener's name, when it was served by name (`keel serve` always does): the
    /// routes limited to listeners match on it.
    pub(crate) listener: Option<Arc<str>>,
    /// What the TLS handshake settled, on a TLS connection (boxed: plain connections,
    /// parked ones included, pay one pointer for it).
    pub(crate) tls: Option<Box<crate::tls::ConnTls>>,
    /// Counts the connection open while it lives (see [`crate::connection_counts`]).
    pub(crate) open: crate::connection_counts::OpenConnection,
}

/// The request as routing sees it, borrowed from the request head, with the name of
/// the listener it came in on.
pub(crate) struct View<'a>(pub(crate) &'a Parts, pub(crate) Option<&'a str>);

impl RequestView for View<'_> {
    #[inline]
    fn method(&self) -> &str {
        self.0.method.as_str()
    }
    #[inline]
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
    #[inline]
    fn path(&self) -> &str {
        self.0.uri.path()
    }
    #[inline]
    fn header(&self, name: &str) -> Option<&str> {
        self.0.headers.get(name).and_then(|v| v.to_str().ok())
    }
    #[inline]
    fn listener(&self) -> Option<&str> {
        self.1
    }
}

/// Hashes the request's value for a hash key; `None` when the request has none.
#[inline]
pub(crate) fn hash_of(key: &HashKey, headers: &HeaderMap, conn: &ConnInfo) -> Option<u64> {
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

/// The hash-key configuration of the first pool of a route, if that pool hashes.
pub(crate) fn route_hash_key(generation: &Generation, route: Option<usize>) -> Option<&HashKey> {
    let pool = generation.table.route(route?).targets.first()?.0;
    generation.pools.get(pool)?.hash_key.as_ref()
}

/// The request's owned shape, for the traffic sample and the access log.
pub(crate) fn shape(
    parts: &Parts,
    generation: &Generation,
    route: Option<usize>,
    conn: &ConnInfo,
) -> RequestShape {
    let view = View(parts, None);
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
    let hash_key = route_hash_key(generation, route).and_then(|key| {
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
        listener: conn.listener.as_deref().map(str::to_string),
        tls: conn.tls.as_ref().map(|tls| tls.shape()),
        client: None,
        at_ms: None,
    }
}

/// Turns the client's request head into the one sent upstream, in place: HTTP/1.1 in
/// origin form, hop-by-hop headers removed, `Host` kept (or made from an HTTP/2
/// `:authority`), forwarding headers set.
///
/// A request that names no host at all (HTTP/1.0 allows it; an HTTP/1.1 one is refused
/// before routing) is sent with the listener's address as its `Host`: it went out as
/// HTTP/1.1, which must carry one (RFC 9112 §3.2), and nginx does the same. Such a
/// request matched a route without a host condition, so no route host applies.
#[inline]
pub(crate) fn prepare_upstream(parts: &mut Parts, conn: &ConnInfo) {
    let authority_host = parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    strip_hop_by_hop(&mut parts.headers);
    let https = conn.tls.is_some();
    match authority_host {
        Some(host) => {
            set_forwarding(&mut parts.headers, &conn.peer_header, Some(&host), https);
            parts.headers.insert(header::HOST, host);
        }
        None => {
            let host = match parts.headers.get(header::HOST) {
                Some(host) => Some(host.clone()),
                None => {
                    let listener = conn
                        .local_addr
                        .and_then(|addr| HeaderValue::from_str(&addr.to_string()).ok());
                    if let Some(listener) = &listener {
                        parts.headers.insert(header::HOST, listener.clone());
                    }
                    listener
                }
            };
            set_forwarding(&mut parts.headers, &conn.peer_header, host.as_ref(), https);
        }
    }
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        parts.uri = parts
            .uri
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
    }
    parts.version = Version::HTTP_11;
    parts.extensions.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

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
    fn h2_requests_go_upstream_as_h1_origin_form_with_a_host() {
        let (mut parts, ()) = Request::get("http://shop.example.com:8080/cart?x=1")
            .version(Version::HTTP_2)
            .header("te", "trailers")
            .body(())
            .map(Request::into_parts)
            .expect("valid request");
        let conn = ConnInfo {
            peer_header: HeaderValue::from_static("10.1.2.3"),
            local_addr: None,
            exchange_clock: ExchangeClock::new(),
            parking: Parking::new(),
            upgraded: AtomicBool::new(false),
            listener: None,
            tls: None,
            open: Arc::new(crate::connection_counts::ConnectionCounts::default()).opened(),
        };
        prepare_upstream(&mut parts, &conn);
        let request = Request::from_parts(parts, ());
        assert_eq!(request.version(), Version::HTTP_11);
        assert_eq!(request.uri(), "/cart?x=1");
        assert_eq!(request.headers()["host"], "shop.example.com:8080");
        assert_eq!(
            request.headers()["x-forwarded-host"],
            "shop.example.com:8080"
        );
        assert_eq!(request.headers()["x-forwarded-for"], "10.1.2.3");
        assert!(!request.headers().contains_key("te"));
    }
}
