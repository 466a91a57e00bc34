//! The request-facing checks that read untrusted bytes before routing, exposed for the
//! fuzz targets in `fuzz/` and compiled only with the `fuzzing` cargo feature: Keel's
//! own builds never have it. Each entry point calls the real function unchanged.

use std::time::Duration;

use http::HeaderMap;
use http::request::Parts;

use crate::ProxyFailure;

/// What `refuse.rs` answers a request before routing: the failure (its status) and the
/// detail sent with it, or `None` for a request that goes on to routing.
pub fn refusal(parts: &Parts) -> Option<(ProxyFailure, &'static str)> {
    crate::refuse::refusal(parts).map(|refusal| (refusal.failure, refusal.detail))
}

/// `headers.rs`'s hop-by-hop removal on a backend's answer, with the `Keep-Alive:
/// timeout=N` it announced.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) -> Option<Duration> {
    crate::headers::strip_hop_by_hop(headers)
}

/// Whether `headers.rs` keeps a header that `Connection` names (`host`, framing,
/// `x-request-id`, `x-forwarded-*`): Keel relies on those whatever the sender says.
pub fn kept_whatever_connection_says(token: &str) -> bool {
    crate::headers::is_kept_whatever_connection_says(token)
}
