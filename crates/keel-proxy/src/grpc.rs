//! gRPC through Keel: what a gRPC exchange's outcome is, how long it may take, and how
//! Keel's own errors reach a gRPC client.
//!
//! A gRPC call answers HTTP 200 whatever happened; its real outcome is the
//! `grpc-status` it ends with, in the trailers, or in the head of a "trailers-only"
//! answer (no body). That status is what the stats, and so the error detector, count: a
//! 200 with `grpc-status: 14` (UNAVAILABLE) is a server error, not a success. A status
//! in the trailers is counted when the trailers pass (see [`GrpcTally`]).
//!
//! A client's `grpc-timeout` caps the route's timeout: waiting past the client's own
//! deadline helps no one. Only a trailers-only UNAVAILABLE, the backend saying before
//! any response byte that it cannot serve, is retried (when the request can be sent
//! again), as gRPC's own transparent retry does.
//!
//! Errors Keel produces for a gRPC request are gRPC-shaped (HTTP 200, `grpc-status`,
//! `grpc-message`), so that the client's library reports them as what they are instead
//! of "protocol error: 502".

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use keel_route::RouteId;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::body::{ResponseBody, UpstreamBody};
use crate::errors::ProxyFailure;
use crate::generation::Generation;
use crate::grpc_retry::BodyCopy;
use crate::headers::KEEL_ERROR;
use crate::resend::ResendCopy;
use crate::stats::Outcome;
use crate::stats::OutcomeCounters;

/// `grpc-status`.
static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`.
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// `grpc-timeout`.
static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// gRPC status UNAVAILABLE: the only one retried.
pub(crate) const UNAVAILABLE: u32 = 14;
/// gRPC status CANCELLED.
const CANCELLED: u32 = 1;
/// gRPC status DEADLINE_EXCEEDED.
const DEADLINE_EXCEEDED: u32 = 4;
/// gRPC status RESOURCE_EXHAUSTED.
const RESOURCE_EXHAUSTED: u32 = 8;
/// gRPC status INTERNAL.
const INTERNAL: u32 = 13;
/// gRPC status UNIMPLEMENTED.
const UNIMPLEMENTED: u32 = 12;
/// gRPC status INVALID_ARGUMENT.
const INVALID_ARGUMENT: u32 = 3;
/// gRPC status PERMISSION_DENIED.
const PERMISSION_DENIED: u32 = 7;

/// Whether a request (or answer) is gRPC: its content type is `application/grpc`,
/// alone or with a `+format` suffix.
#[inline]
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// The client's deadline from `grpc-timeout` (1 to 8 digits and a unit: `H`, `M`, `S`,
/// `m`, `u`, `n`); `None` when absent or malformed.
pub(crate) fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(&GRPC_TIMEOUT)?.as_bytes();
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount.saturating_mul(3600)),
        b'M' => Duration::from_secs(amount.saturating_mul(60)),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The `grpc-status` in a head or trailers, if any.
#[inline]
pub(crate) fn status(headers: &HeaderMap) -> Option<u32> {
    std::str::from_utf8(headers.get(&GRPC_STATUS)?.as_bytes())
        .ok()?
        .parse()
        .ok()
}

/// How a gRPC status counts, by the HTTP status that gRPC's own gateways map it to:
/// OK is a success; the caller's mistakes (INVALID_ARGUMENT, NOT_FOUND, ...) are client
/// errors; UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL,
/// UNAVAILABLE and DATA_LOSS are server errors.
pub(crate) fn outcome(code: u32) -> Outcome {
    match code {
        0 => Outcome::Success,
        1 | 3 | 5 | 6 | 7 | 9 | 10 | 11 | 16 => Outcome::ClientError,
        _ => Outcome::ServerError,
    }
}

/// The deadline of a gRPC call (the route's timeout, or the client's `grpc-timeout`
/// when that is shorter), and, when the route retries, the copies that let the call be
/// sent again: its head, and its body as it streams (see [`crate::grpc_retry`]).
#[cold]
pub(crate) fn prepare(
    outgoing: &mut Option<Request<UpstreamBody>>,
    route_timeout: Duration,
    retries: u32,
    started: Instant,
) -> (Instant, Option<ResendCopy>, Option<BodyCopy>) {
    let Some(request) = outgoing.as_mut() else {
        return (started + route_timeout, None, None);
    };
    let timeout = self::timeout(request.headers()).map_or(route_timeout, |t| t.min(route_timeout));
    if retries == 0 {
        return (started + timeout, None, None);
    }
    let head = ResendCopy::of(request);
    let copy = BodyCopy::default();
    let body = std::mem::replace(request.body_mut(), UpstreamBody::Empty);
    *request.body_mut() = match body {
        UpstreamBody::Incoming(body) | UpstreamBody::Upload(body, _) => {
            UpstreamBody::Copied(Box::new(copy.wrap(body)))
        }
        other => other,
    };
    (started + timeout, head, Some(copy))
}

/// Counts a gRPC status that came in the answer's head (a trailers-only answer).
pub(crate) fn count(backend: &Arc<Backend>, counters: &OutcomeCounters, code: u32) {
    if is_backend_failure(code) {
        backend.record_failure("gRPC status");
    } else {
        backend.record_success();
    }
    counters.record(outcome(code));
}

/// Whether a backend that ended a call with `code` failed (for outlier ejection).
pub(crate) fn is_backend_failure(code: u32) -> bool {
    matches!(code, UNAVAILABLE | INTERNAL | 2 | 15)
}

/// The gRPC status Keel answers a gRPC client with for its own `failure`.
fn status_of(failure: ProxyFailure) -> u32 {
    match failure {
        ProxyFailure::Timeout | ProxyFailure::ClientTimeout => DEADLINE_EXCEEDED,
        ProxyFailure::QueueTimeout | ProxyFailure::RateLimited => RESOURCE_EXHAUSTED,
        // A host the TLS connection is not authoritative for: the client must connect
        // again for it, which gRPC's UNAVAILABLE makes it do.
        ProxyFailure::Misdirected => UNAVAILABLE,
        ProxyFailure::NoRoute => UNIMPLEMENTED,
        ProxyFailure::BadRequest => INVALID_ARGUMENT,
        ProxyFailure::ClientNotAllowed => PERMISSION_DENIED,
        ProxyFailure::NotImplemented | ProxyFailure::UpgradeNotAllowed => UNIMPLEMENTED,
        ProxyFailure::Misidentified => INTERNAL,
        ProxyFailure::NoHealthyBackend
        | ProxyFailure::ConnectFailed
        | ProxyFailure::UpstreamReset
        | ProxyFailure::Starting => UNAVAILABLE,
    }
}

/// Keel's own error, as a trailers-only gRPC answer: HTTP 200, `grpc-status`, and
/// `grpc-message` saying what `keel-error` says, percent-encoded as gRPC asks.
pub(crate) fn respond(failure: ProxyFailure, detail: &str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(GRPC_STATUS.clone(), HeaderValue::from(status_of(failure)));
    let message = percent_encode(&format!("keel: {}: {detail}", failure.code()));
    if let Ok(message) = HeaderValue::try_from(message) {
        headers.insert(GRPC_MESSAGE.clone(), message);
    }
    headers.insert(KEEL_ERROR.clone(), HeaderValue::from_static(failure.code()));
    response
}

/// gRPC's percent-encoding of `grpc-message`: printable ASCII but `%` as is, every
/// other byte as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Counts a gRPC answer whose status comes in its trailers: the outcome is recorded
/// when the trailers pass; as INTERNAL (the backend's failure) if the backend ends or
/// breaks the answer without a status; as CANCELLED (the client's doing, not the
/// backend's) if the answer is dropped before its end, when the client went away.
pub(crate) struct GrpcTally {
    generation: Arc<Generation>,
    route: RouteId,
    target: usize,
    backend: usize,
    counted: bool,
}

impl GrpcTally {
    pub(crate) fn new(
        generation: &Arc<Generation>,
        route: RouteId,
        target: usize,
        backend: usize,
    ) -> Box<Self> {
        Box::new(Self {
            generation: Arc::clone(generation),
            route,
            target,
            backend,
            counted: false,
        })
    }

    /// The trailers have come: counts their status.
    pub(crate) fn trailers(&mut self, trailers: &HeaderMap) {
        self.count(status(trailers).unwrap_or(INTERNAL));
    }

    /// The backend ended the answer, or broke it, without a status.
    pub(crate) fn ended_without_status(&mut self) {
        self.count(INTERNAL);
    }

    fn count(&mut self, code: u32) {
        if self.counted {
            return;
        }
        self.counted = true;
        let route = &self.generation.stats.routes[self.route];
        route.targets[self.target][self.backend].record(outcome(code));
        let pool = self.generation.table.route(self.route).targets[self.target].0;
        if let Some(backend) = self.generation.pools[pool].backends.get(self.backend) {
            if is_backend_failure(code) {
                backend.record_failure("gRPC status");
            } else {
                backend.record_success();
            }
        }
    }
}

impl Drop for GrpcTally {
    fn drop(&mut self) {
        // Dropped before its end: the client cancelled the call (or went away). Counted
        // as INTERNAL, a client that gives up on calls would eject healthy backends.
        self.count(CANCELLED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn grpc_timeout_units() {
        let t = |v| timeout(&with("grpc-timeout", v));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("2M"), Some(Duration::from_secs(120)));
        assert_eq!(t("3S"), Some(Duration::from_secs(3)));
        assert_eq!(t("250m"), Some(Duration::from_millis(250)));
        assert_eq!(t("7u"), Some(Duration::from_micros(7)));
        assert_eq!(t("9n"), Some(Duration::from_nanos(9)));
        assert_eq!(t("123456789S"), None, "more than 8 digits");
        assert_eq!(t("S"), None);
        assert_eq!(t("-1S"), None);
        assert_eq!(t("10x"), None);
    }

    #[test]
    fn statuses_count_as_their_http_equivalents() {
        assert_eq!(outcome(0), Outcome::Success);
        assert_eq!(outcome(UNAVAILABLE), Outcome::ServerError);
        assert_eq!(outcome(5), Outcome::ClientError, "NOT_FOUND");
        assert_eq!(outcome(99), Outcome::ServerError);
        assert_eq!(status(&with("grpc-status", "14")), Some(14));
        assert_eq!(status(&with("grpc-status", "x")), None);
    }

    #[test]
    fn keel_errors_are_trailers_only_grpc_answers() {
        let response = respond(ProxyFailure::NoHealthyBackend, "route `r`, pool `p` ü");
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "14");
        assert_eq!(
            response.headers()["grpc-message"],
            "keel: no-healthy-backend: route `r`, pool `p` %C3%BC"
        );
        assert_eq!(response.headers()["content-type"], "application/grpc");
    }
}
