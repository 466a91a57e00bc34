//! Every default of the config, as a named constant with its unit.
//!
//! `docs/config.md` documents each one; a test there keeps the two in step.

use std::time::Duration;

/// Admin API listen address: loopback only unless configured otherwise.
pub const ADMIN_ADDR: &str = "127.0.0.1:9901";
/// Whether `GET /metrics` needs the admin token (no: Prometheus scrapes without one).
pub const METRICS_REQUIRE_TOKEN: bool = false;

/// Connections a listener's kernel queue holds before they are accepted (4,096
/// connections; nginx uses 511 and HAProxy 4,096 here). The kernel caps it at
/// `net.core.somaxconn`. A burst of connects beyond the queue is dropped and retried
/// by clients a second later.
pub const LISTEN_BACKLOG: u32 = 4096;
/// Whether a listener expects a PROXY protocol header on every connection (no).
pub const PROXY_PROTOCOL: bool = false;
/// Largest `backlog` accepted (65,535 connections, Linux's ceiling for somaxconn).
pub const MAX_LISTEN_BACKLOG: u32 = 65_535;

/// Deadline for a backend's response headers, across all attempts of one request (15 seconds).
pub const ROUTE_TIMEOUT: Duration = Duration::from_secs(15);
/// Time a tunnel (an upgraded connection, such as a WebSocket) may carry no byte either
/// way before both sides are closed (5 minutes).
pub const TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// `content-type` of a fixed answer (`respond = { .. }`) that names none.
pub const FIXED_ANSWER_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
/// Largest body of a fixed answer (64 KiB): it is held in memory by every generation.
pub const MAX_FIXED_ANSWER_BODY: usize = 64 * 1024;
/// Status of a redirect route (`redirect = { .. }`) that names none (308 Permanent
/// Redirect: the client keeps the method and body, and may cache it).
pub const REDIRECT_STATUS: u16 = 308;
/// A rate limit's refill period when it names none (1 second).
pub const RATE_LIMIT_PER: Duration = Duration::from_secs(1);
/// Longest rate limit period (1 day).
pub const MAX_RATE_LIMIT_PER: Duration = Duration::from_secs(86_400);
/// Largest `requests` or `burst` of a rate limit (10,000,000).
pub const MAX_RATE_LIMIT_REQUESTS: u32 = 10_000_000;
/// Token buckets one route's rate limit keeps on one node (16,384 buckets, 24 bytes
/// each: 384 KiB per limited route). Past it, a new key takes the bucket of the key
/// least recently seen among the 8 it may share a set with.
pub const RATE_LIMIT_BUCKETS: usize = 16_384;
/// Extra attempts after the first, for idempotent requests, each to another backend (2).
pub const ROUTE_RETRIES: u32 = 2;
/// Most extra attempts a route may ask for (5).
pub const MAX_ROUTE_RETRIES: u32 = 5;

/// Time between two resolutions of a DNS backend's name (30 seconds).
pub const DNS_RESOLVE_INTERVAL: Duration = Duration::from_secs(30);
/// Shortest time between two resolutions of a DNS backend's name (1 second).
pub const MIN_DNS_RESOLVE_INTERVAL: Duration = Duration::from_secs(1);
/// Longest one resolution may take before it counts as failed (5 seconds).
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);
/// Backend weight when none is given (1).
pub const BACKEND_WEIGHT: u32 = 1;
/// Largest backend or split weight (10,000).
pub const MAX_WEIGHT: u32 = 10_000;
/// Time allowed to open a TCP connection to a backend (1 second).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Idle keep-alive connections kept per backend (256 connections).
pub const MAX_IDLE_PER_BACKEND: u32 = 256;
/// Requests in flight to one backend at once, at most (0 connections: no limit). Each
/// holds one HTTP/1.1 connection, so this also caps the busy connections per backend.
pub const MAX_CONNECTIONS: u32 = 0;
/// Largest `max_connections` (1,000,000 connections).
pub const MAX_CONNECTIONS_LIMIT: u32 = 1_000_000;
/// Requests one HTTP/2 backend connection carries at once, at most (100 streams, the
/// least that RFC 9113 asks a server to allow, and what most gRPC servers advertise);
/// a backend that advertises fewer is heeded.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 100;
/// Largest `max_streams_per_connection` (10,000 streams).
pub const MAX_STREAMS_PER_CONNECTION_LIMIT: u32 = 10_000;
/// The CA bundle a pool's `tls` verifies its backends against when it names no `ca`
/// (`/etc/ssl/certs/ca-certificates.crt`, Debian's and Ubuntu's system bundle).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// An idle backend connection older than this is closed instead of reused (60 seconds);
/// `[pools.NAME] idle_timeout` sets it per pool.
pub const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether a service with an identity checks it on every proxied response, not only on
/// probes (yes): a response from another application is never passed on.
pub const VERIFY_RESPONSES: bool = true;
/// Probe path of a new backend in a pool without health checks (`/healthz`, as
/// [`HEALTH_PATH`]): its identity is checked before an apply swaps.
pub const IDENTITY_PROBE_PATH: &str = HEALTH_PATH;
/// Time one identity probe of a new backend may take in a pool without health checks
/// (1 second, as [`HEALTH_TIMEOUT`]).
pub const IDENTITY_PROBE_TIMEOUT: Duration = HEALTH_TIMEOUT;

/// Health check request path (`/healthz`).
pub const HEALTH_PATH: &str = "/healthz";
/// Time between two probes of one backend (2 seconds).
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// Time a probe may take before it counts as failed (1 second).
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Consecutive passing probes before an unhealthy backend gets traffic again (2 probes).
pub const HEALTHY_AFTER: u32 = 2;
/// Consecutive failing probes before a backend stops getting traffic (3 probes).
pub const UNHEALTHY_AFTER: u32 = 3;

/// Consecutive connect failures or 5xx answers that eject a backend (5 responses).
pub const OUTLIER_CONSECUTIVE_FAILURES: u32 = 5;
/// First ejection time; each further ejection doubles it (10 seconds).
pub const OUTLIER_BASE_EJECTION: Duration = Duration::from_secs(10);
/// Longest ejection (5 minutes).
pub const OUTLIER_MAX_EJECTION: Duration = Duration::from_secs(300);

/// Runtime worker threads; 0 means one per CPU the process may use (0).
pub const WORKER_THREADS: u32 = 0;
/// Time in-flight requests get to finish after SIGTERM (30 seconds).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head (request line and headers) a client may send (64 KiB).
pub const MAX_HEADER_BYTES: u32 = 64 * 1024;
/// Most request headers a client may send (100 headers).
pub const MAX_HEADERS: u32 = 100;
/// Time a client has to send a complete request head (10 seconds).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a response body may go without a byte moving towards the client, because the
/// backend sends nothing or the client reads nothing, before Keel closes both
/// connections (60 seconds, nginx's `proxy_read_timeout` and `send_timeout`; 0 never).
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a serving thread that has run out of work keeps the CPU, handing it to
/// anything else runnable, before it sleeps in the kernel for more events (20
/// microseconds; 0 sleeps at once). Only a thread alone on its CPU with at least 16
/// requests awaiting backends spins. Why: keel-proxy's `idle_spin` module.
pub const IDLE_SPIN: Duration = Duration::from_micros(20);
/// Whether responses carry `x-keel-generation` (yes).
pub const GENERATION_HEADER: bool = true;

/// Request shapes kept in the live traffic sample (10,000 requests).
pub const TRAFFIC_SAMPLE_SIZE: u32 = 10_000;
/// Window the traffic sample is drawn from; older shapes are replaced (5 minutes).
pub const TRAFFIC_SAMPLE_WINDOW: Duration = Duration::from_secs(300);

/// Largest share of a host's traffic an apply may move to another service unguarded (0.25 = 25 %).
pub const MAX_SHIFT: f64 = 0.25;
/// Time every apply is watched after its swap, reverting on alarm (30 seconds).
pub const WATCH: Duration = Duration::from_secs(30);
/// Time a generation must serve without alarms to become known-good (30 seconds).
pub const KNOWN_GOOD_AFTER: Duration = Duration::from_secs(30);
/// The gate also measures a change against the newest known-good generation older than
/// this, so small applies in a row add up (1 hour).
pub const DRIFT_WINDOW: Duration = Duration::from_secs(3600);
/// Known-good generations kept compiled in memory for instant rollback (10 generations).
pub const KEEP_GENERATIONS: u32 = 10;
/// A certificate expiring within this time is a `keel check` warning (21 days).
pub const CERT_EXPIRY_WARNING: Duration = Duration::from_secs(21 * 24 * 3600);
/// The lowest TLS version a TLS listener accepts when `min_version` is not given ("1.2").
pub const TLS_MIN_VERSION: &str = "1.2";
/// How long browsers keep a TLS listener's HSTS rule when `hsts.max_age` is not given
/// (365 days, the least the browsers' preload lists accept).
pub const HSTS_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 3600);
/// Canary promotion steps, in percent of requests (25 %, 50 %, 100 %).
pub const PROMOTE_STEPS: [u32; 3] = [25, 50, 100];
/// Whether the open tunnels of a rolled-back generation are drained (yes: `"drain"`).
pub const ROLLED_BACK_TUNNELS_DRAIN: bool = true;
/// Time drained tunnels get before they are closed (30 seconds).
pub const TUNNEL_DRAIN: Duration = Duration::from_secs(30);

/// Whether the detectors run (yes).
pub const DETECTORS_ENABLED: bool = true;
/// Sliding window the detectors look at (10 seconds).
pub const DETECTOR_WINDOW: Duration = Duration::from_secs(10);
/// Fewest requests in a window before a detector may fire (20 requests).
pub const DETECTOR_MIN_REQUESTS: u32 = 20;
/// Change of a service's share of a host's traffic that counts as a shift (0.20 = 20 points).
pub const SHARE_SHIFT: f64 = 0.20;
/// Error rate the error detector treats as a jump (0.05 = 5 % of requests).
pub const ERROR_RATE: f64 = 0.05;
/// p99 latency over baseline that counts as a regression (3.0 times).
pub const LATENCY_FACTOR: f64 = 3.0;

/// Webhook delivery timeout per attempt (2 seconds).
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(2);
/// Webhook delivery attempts before an alert is dropped for that hook (5 attempts).
pub const WEBHOOK_ATTEMPTS: u32 = 5;

/// The etcd key prefix of a fleet when `[fleet] prefix` is not given ("/keel").
pub const FLEET_PREFIX: &str = "/keel";
/// Nodes that take a new generation first in a fleet (1 node).
pub const FLEET_ROLLOUT_FIRST: u32 = 1;
/// How long the first nodes are watched before the rest of the fleet follows (30 seconds).
pub const FLEET_ROLLOUT_WATCH: Duration = Duration::from_secs(30);
/// A node serving another generation than the fleet's for this long raises `fleet-drift` (30 seconds).
pub const FLEET_DRIFT_ALERT: Duration = Duration::from_secs(30);
