//! Requests Keel refuses before routing: those whose target host is ambiguous, missing
//! or malformed, and the methods it cannot proxy.
//!
//! hyper has checked the framing (lengths, chunking, header syntax) by the time a
//! request gets here; what is left are rules about *which* host a request is for. A
//! request with two `Host` headers is routed by the first, while the backend may read
//! the last: a route chosen for `shop.example.com` would then deliver a request the
//! backend takes as `admin.internal`'s. So, as RFC 9112 §3.2 requires of servers
//! (and as HAProxy and nginx do), Keel answers `400` to:
//!
//! - more than one `Host` header;
//! - an HTTP/1.1 request with neither a `Host` header nor an absolute-form target;
//! - a `Host` header with bytes no host or port can hold (RFC 3986 §3.2.2–3.2.3);
//! - a target that carries userinfo (`http://user@host/`, which RFC 9110 §4.2.4 tells
//!   recipients to treat as an error).
//!
//! `CONNECT` asks for a TCP tunnel, which Keel does not open: `501` (an HTTP/2 extended
//! `CONNECT` for WebSocket, RFC 8441, is an upgrade instead). (hyper would take
//! a backend's `2xx` to it as a tunnel nobody then serves, and close the client
//! connection without an answer.)
//!
//! The checks read the head in place and allocate nothing: one lookup of `Host`, one
//! pass over its bytes.

use http::header::HOST;
use http::request::Parts;
use http::{Method, Version};

use crate::errors::ProxyFailure;

/// Why a request is answered by Keel before routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) failure: ProxyFailure,
    /// The reason, for the answer's body.
    pub(crate) detail: &'static str,
}

impl Refusal {
    const fn bad(detail: &'static str) -> Self {
        Self {
            failure: ProxyFailure::BadRequest,
            detail,
        }
    }
}

/// The refusal this request earns, if any.
#[inline]
pub(crate) fn refusal(parts: &Parts) -> Option<Refusal> {
    // An extended CONNECT (RFC 8441) whose `:protocol` Keel knows is an upgrade:
    // `crate::upgrade`.
    if parts.method == Method::CONNECT
        && parts
            .extensions
            .get::<hyper::ext::Protocol>()
            .is_none_or(|p| keel_config::UpgradeProtocol::from_token(p.as_str()).is_none())
    {
        return Some(Refusal {
            failure: ProxyFailure::NotImplemented,
            detail: "CONNECT tunnels are not supported",
        });
    }
    let authority = parts.uri.authority();
    if authority.is_some_and(|a| a.as_str().contains('@')) {
        return Some(Refusal::bad("the request target carries userinfo"));
    }
    let mut hosts = parts.headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Some(Refusal::bad("more than one Host header")),
        (None, _) if authority.is_none() && parts.version == Version::HTTP_11 => {
            Some(Refusal::bad("an HTTP/1.1 request needs a Host header"))
        }
        (Some(host), None) if !is_host(host.as_bytes()) => {
            Some(Refusal::bad("the Host header is not a host name"))
        }
        _ => None,
    }
}

/// Whether `value` is a `Host` value: a registered name, IPv4 address or IP literal,
/// with an optional port, or empty (a target without authority).
fn is_host(value: &[u8]) -> bool {
    value.iter().all(|&b| HOST_BYTES[usize::from(b)])
}

/// Bytes of `uri-host [ ":" port ]`: unreserved, sub-delims, `%` (percent-encoding),
/// `:` and the brackets of an IP literal.
const HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
                    | b':'
                    | b'['
                    | b']'
            );
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(request: http::request::Builder) -> Parts {
        request
            .body(())
            .map(Request::into_parts)
            .map(|(parts, ())| parts)
            .expect("valid request")
    }

    fn refused(request: http::request::Builder) -> Option<ProxyFailure> {
        refusal(&parts(request)).map(|r| r.failure)
    }

    #[test]
    fn ordinary_requests_pass() {
        for host in [
            "shop.example.com",
            "shop.example.com:8080",
            "127.0.0.1:80",
            "[::1]:8443",
            "",
        ] {
            let request = Request::get("/").header(HOST, host);
            assert_eq!(refused(request), None, "{host}");
        }
        // HTTP/1.0 may omit Host; an absolute-form or HTTP/2 target brings its own.
        assert_eq!(refused(Request::get("/").version(Version::HTTP_10)), None);
        assert_eq!(refused(Request::get("http://shop.example.com/")), None);
        let h2 = Request::get("http://shop.example.com/").version(Version::HTTP_2);
        assert_eq!(refused(h2), None);
    }

    #[test]
    fn ambiguous_or_missing_hosts_are_bad_requests() {
        let two = Request::get("/")
            .header(HOST, "shop.example.com")
            .header(HOST, "admin.internal");
        let none = Request::get("/");
        let spaced = Request::get("/").header(HOST, "shop.example.com, admin.internal");
        let slashed = Request::get("/").header(HOST, "shop.example.com/admin");
        let userinfo = Request::get("http://user@shop.example.com/");
        for request in [two, none, spaced, slashed, userinfo] {
            assert_eq!(refused(request), Some(ProxyFailure::BadRequest));
        }
    }

    #[test]
    fn connect_is_not_implemented() {
        let connect = Request::builder()
            .method(Method::CONNECT)
            .uri("shop.example.com:443")
            .header(HOST, "shop.example.com:443");
        assert_eq!(refused(connect), Some(ProxyFailure::NotImplemented));
    }
}
