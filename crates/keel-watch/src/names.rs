//! Every metric name Keel exposes, in one place. `docs/metrics.md` documents each one
//! (type, labels, meaning); a test keeps that file and this list in step.
//!
//! Counter names are given without `_total`: prometheus-client appends it, so
//! [`REQUESTS`] is scraped as `keel_requests_total`.

/// Requests served, by `generation`, `route`, `pool`, `backend` and `class` (counter).
pub const REQUESTS: &str = "keel_requests";
/// Requests no route matched (answered 404), by `generation` (counter).
pub const UNROUTED: &str = "keel_unrouted_requests";
/// Requests refused before routing (answered 400 or 501), by `generation` (counter).
pub const REFUSED: &str = "keel_refused_requests";
/// Requests a route's policies refused, by `generation`, `route` and `policy`
/// (`address`, `rate_limit`) (counter).
pub const POLICY_REFUSALS: &str = "keel_policy_refusals";
/// Requests a redirect route answered with its redirect, by `generation` and `route`
/// (counter).
pub const REDIRECTS: &str = "keel_redirects";
/// Answers a route's `compress` compressed, by `generation`, `route` and `encoding`
/// (`gzip`, `br`) (counter).
pub const COMPRESSED_RESPONSES: &str = "keel_compressed_responses";
/// Client connections cut because a response body stopped moving (counter).
pub const STALLED_RESPONSES: &str = "keel_stalled_responses";
/// Connections the kernel dropped because a listen queue was full, from
/// `/proc/net/netstat` (`TcpExt ListenOverflows`; counter, Linux only).
pub const LISTEN_OVERFLOWS: &str = "keel_listen_overflows";
/// Client connections open now, all listeners (gauge).
pub const CLIENT_CONNECTIONS: &str = "keel_client_connections";
/// HTTP/1 client connections waiting for a request head with none of hyper's buffers
/// (gauge).
pub const PARKED_CONNECTIONS: &str = "keel_parked_connections";
/// TLS handshakes completed, by `generation`, `listener`, `version` (`1.2`, `1.3`) and
/// `alpn` (`h2`, `http/1.1` for anything else) (counter).
pub const TLS_HANDSHAKES: &str = "keel_tls_handshakes";
/// TLS handshakes that resumed a session, by `generation` and `listener` (counter).
pub const TLS_RESUMPTIONS: &str = "keel_tls_resumptions";
/// TLS handshakes that failed, by `generation`, `listener` and `reason` (counter).
pub const TLS_HANDSHAKE_FAILURES: &str = "keel_tls_handshake_failures";
/// When each certificate of the primary generation expires, in seconds since the Unix
/// epoch, by `certificate` (gauge).
pub const CERTIFICATE_EXPIRY: &str = "keel_certificate_expiry_seconds";
/// Time to response headers, by `generation` and `route` (histogram, seconds).
pub const REQUEST_DURATION: &str = "keel_request_duration_seconds";
/// Backend state as one 0/1 gauge per state, by `pool`, `backend` and `state`.
pub const BACKEND_STATE: &str = "keel_backend_state";
/// The primary generation's id (gauge).
pub const ACTIVE_GENERATION: &str = "keel_active_generation";
/// The canary generation's id, 0 without a canary (gauge).
pub const CANARY_GENERATION: &str = "keel_canary_generation";
/// The canary's share of requests in thousandths, 0 without a canary (gauge).
pub const CANARY_PERMILLE: &str = "keel_canary_permille";
/// Generations applied (counter).
pub const APPLIES: &str = "keel_applies";
/// Rollbacks, by `trigger` (`manual` or `automatic`) (counter).
pub const ROLLBACKS: &str = "keel_rollbacks";
/// Configs refused by the checker or the gate (counter).
pub const REJECTIONS: &str = "keel_rejections";
/// Alerts raised, by `detector` and `severity` (counter).
pub const ALERTS: &str = "keel_alerts";
/// Webhook deliveries, by `result` (`delivered`, `retried`, `failed`, `dropped`) (counter).
pub const WEBHOOK_DELIVERIES: &str = "keel_webhook_deliveries";
/// 1 while a detector has fired within its window, else 0, by `detector` (gauge).
pub const DETECTOR_FIRING: &str = "keel_detector_firing";
/// 1 when the detectors of the active config are enabled, else 0 (gauge).
pub const DETECTORS_ENABLED: &str = "keel_detectors_enabled";
/// Tunnels (upgraded connections) open now, by `generation` and `route` (gauge).
pub const OPEN_TUNNELS: &str = "keel_open_tunnels";
/// Tunnels open now, by `generation`, `pool` and `backend` (gauge).
pub const OPEN_BACKEND_TUNNELS: &str = "keel_open_backend_tunnels";
/// Tunnels opened, by `generation` and `route` (counter).
pub const TUNNELS: &str = "keel_tunnels";
/// Tunnels Keel closed, by `generation` and `reason` (`idle` or `drained`) (counter).
pub const TUNNELS_CLOSED: &str = "keel_tunnels_closed";

/// Every name, for documentation checks.
pub const ALL: [&str; 28] = [
    REQUESTS,
    POLICY_REFUSALS,
    REDIRECTS,
    COMPRESSED_RESPONSES,
    UNROUTED,
    REFUSED,
    STALLED_RESPONSES,
    LISTEN_OVERFLOWS,
    REQUEST_DURATION,
    BACKEND_STATE,
    ACTIVE_GENERATION,
    CANARY_GENERATION,
    CANARY_PERMILLE,
    APPLIES,
    ROLLBACKS,
    REJECTIONS,
    ALERTS,
    WEBHOOK_DELIVERIES,
    DETECTOR_FIRING,
    DETECTORS_ENABLED,
    OPEN_TUNNELS,
    OPEN_BACKEND_TUNNELS,
    TUNNELS,
    TUNNELS_CLOSED,
    TLS_HANDSHAKES,
    TLS_RESUMPTIONS,
    TLS_HANDSHAKE_FAILURES,
    CERTIFICATE_EXPIRY,
];
