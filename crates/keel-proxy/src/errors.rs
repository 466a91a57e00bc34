//! Answers Keel gives itself: where a request failed, the status that follows, and the
//! `keel-error` reason. Whether another backend is tried after a failure is the retry
//! rule of [`crate::forward`], which also knows whether the request reached a backend
//! and can be sent again.

use http::{HeaderValue, Response, StatusCode, header};

use crate::body::ResponseBody;
use crate::headers::KEEL_ERROR;

/// Why Keel answered instead of a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyFailure {
    /// No route matched (404).
    NoRoute,
    /// The route's pool has no backend that may take traffic (503).
    NoHealthyBackend,
    /// No connection could be opened to the chosen backends (502).
    ConnectFailed,
    /// The backend closed or broke the exchange (502).
    UpstreamReset,
    /// The backend answered as another application (502).
    Misidentified,
    /// No response headers before the route's timeout (504).
    Timeout,
    /// The route's timeout passed while the client was still sending its request body
    /// (408): a stalled upload is the client's doing, so it is not counted against the
    /// backend (no 5xx class, no failure towards ejection or the error detector).
    ClientTimeout,
    /// The backend stayed at its pool's `max_connections` until the route's timeout
    /// (503): the request never left Keel.
    QueueTimeout,
    /// The client sent a request Keel will not forward (400).
    BadRequest,
    /// The client asked for something Keel does not do, such as a `CONNECT` tunnel
    /// (501).
    NotImplemented,
    /// No generation is active yet (503).
    Starting,
    /// The client asked to switch protocols (`Upgrade: websocket`) on a route that does
    /// not list the protocol in `upgrades` (400).
    UpgradeNotAllowed,
    /// The route's `allow` or `deny` list refuses the client's address (403).
    ClientNotAllowed,
    /// A request on a TLS connection for a host that connection is not authoritative
    /// for (421, RFC 9110 §15.5.20): see `crate::tls::misdirected`.
    Misdirected,
    /// The route's rate limit has no token left for the request's key (429).
    RateLimited,
}

impl ProxyFailure {
    /// The status the client gets.
    pub fn status(self) -> StatusCode {
        match self {
            ProxyFailure::NoRoute => StatusCode::NOT_FOUND,
            ProxyFailure::NoHealthyBackend
            | ProxyFailure::Starting
            | ProxyFailure::QueueTimeout => StatusCode::SERVICE_UNAVAILABLE,
            ProxyFailure::ConnectFailed
            | ProxyFailure::UpstreamReset
            | ProxyFailure::Misidentified => StatusCode::BAD_GATEWAY,
            ProxyFailure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyFailure::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyFailure::BadRequest | ProxyFailure::UpgradeNotAllowed => StatusCode::BAD_REQUEST,
            ProxyFailure::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ProxyFailure::ClientNotAllowed => StatusCode::FORBIDDEN,
            ProxyFailure::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            ProxyFailure::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The `keel-error` value and access-log reason.
    pub fn code(self) -> &'static str {
        match self {
            ProxyFailure::NoRoute => "no-route",
            ProxyFailure::NoHealthyBackend => "no-healthy-backend",
            ProxyFailure::ConnectFailed => "upstream-connect-failed",
            ProxyFailure::UpstreamReset => "upstream-reset",
            ProxyFailure::Misidentified => "misidentified-backend",
            ProxyFailure::Timeout => "upstream-timeout",
            ProxyFailure::ClientTimeout => "client-timeout",
            ProxyFailure::QueueTimeout => "backend-queue-timeout",
            ProxyFailure::BadRequest => "bad-request",
            ProxyFailure::NotImplemented => "not-implemented",
            ProxyFailure::Starting => "no-active-generation",
            ProxyFailure::UpgradeNotAllowed => "upgrade-not-allowed",
            ProxyFailure::ClientNotAllowed => "client-not-allowed",
            ProxyFailure::Misdirected => "misdirected-request",
            ProxyFailure::RateLimited => "rate-limited",
        }
    }
}

/// A short plain-text answer naming the route and the reason.
pub(crate) fn respond(
    failure: ProxyFailure,
    detail: &str,
    generation: Option<&HeaderValue>,
) -> Response<ResponseBody> {
    let status = failure.status();
    let body = format!("keel: {} {}: {detail}\n", status.as_u16(), failure.code());
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(KEEL_ERROR.clone(), HeaderValue::from_static(failure.code()));
    if failure == ProxyFailure::ClientTimeout {
        // The rest of the request body never came: the connection cannot carry another.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(generation) = generation {
        headers.insert(
            crate::headers::X_KEEL_GENERATION.clone(),
            generation.clone(),
        );
    }
    response
}
