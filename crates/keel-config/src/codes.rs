//! Lint ids: one stable code per kind of finding, documented in `docs/lints.md`.
//!
//! `K0xx` are parse and type errors, `K1xx` semantic errors, `K2xx` warnings and
//! `K3xx` notes. Codes are never reused for a different meaning.

/// The file is not valid TOML.
pub const SYNTAX: &str = "K001";
/// A key Keel does not know.
pub const UNKNOWN_KEY: &str = "K002";
/// A value of the wrong TOML type.
pub const WRONG_TYPE: &str = "K003";
/// A value of the right type that cannot be used (bad duration, address, regex, range).
pub const INVALID_VALUE: &str = "K004";
/// A required key is absent.
pub const MISSING_KEY: &str = "K005";
/// Two things share a name that must be unique.
pub const DUPLICATE_NAME: &str = "K006";
/// Keys that exclude each other were given together.
pub const CONFLICTING_KEYS: &str = "K007";

/// A reference to a pool or service that does not exist.
pub const UNKNOWN_REFERENCE: &str = "K101";
/// A route's service differs from the service of a pool it sends to.
pub const SERVICE_MISMATCH: &str = "K102";
/// A pool without backends.
pub const EMPTY_POOL: &str = "K103";
/// A split whose weights are all zero.
pub const ZERO_SPLIT: &str = "K104";
/// One backend address in pools of two different services.
pub const TWO_IDENTITIES: &str = "K105";
/// Two listeners (or a listener and the admin API) on one address.
pub const LISTENER_CONFLICT: &str = "K106";
/// A route test that does not hold.
pub const TEST_FAILED: &str = "K107";
/// A traffic-share intent the routing table breaks.
pub const INTENT_VIOLATED: &str = "K108";
/// A live probe found a backend answering as another application.
pub const MISIDENTIFIED_BACKEND: &str = "K109";
/// Two services with the same identity: a backend of one passes as the other.
pub const SHARED_IDENTITY: &str = "K110";
/// A service without an identity (and without `allow_no_identity`): nothing can prove a
/// backend is it, so a misroute to another application cannot fail. Was the warning K204,
/// which is retired (never reused).
pub const NO_IDENTITY: &str = "K111";

/// A route host on a TLS listener that none of the listener's certificates covers.
pub const CERT_NOT_COVERING: &str = "K120";
/// A certificate past its not-after date.
pub const CERT_EXPIRED: &str = "K121";
/// A private key that does not belong to its certificate.
pub const CERT_KEY_MISMATCH: &str = "K122";
/// A certificate or key file that cannot be read or parsed.
pub const CERT_UNREADABLE: &str = "K123";
/// A redirect route whose `Location` brings its own requests back to it: clients loop
/// until they give up.
pub const REDIRECT_LOOP: &str = "K125";
/// An ACME certificate proved by TLS-ALPN-01 that no TLS listener presents: the ACME
/// server's validation handshake has nowhere to land, so the certificate is never issued.
pub const ACME_TLS_ALPN_UNSERVED: &str = "K126";

/// A route no request can reach: earlier routes match everything it matches.
pub const FULLY_SHADOWED: &str = "K201";
/// Some requests a route matches are taken by an earlier route.
pub const PARTLY_SHADOWED: &str = "K202";
/// An earlier route with a regex may take requests of this route.
pub const MAY_SHADOW: &str = "K203";
/// A pool without active health checks.
pub const NO_HEALTH_CHECK: &str = "K205";
/// Retries on a route that allows non-idempotent methods.
pub const UNSAFE_RETRIES: &str = "K206";
/// A route timeout shorter than a pool's connect timeout.
pub const TIMEOUT_BELOW_CONNECT: &str = "K207";
/// No route matches every request.
pub const NO_CATCH_ALL: &str = "K208";
/// A split sending most of a route's traffic to a draining or legacy pool.
pub const SPLIT_TO_RETIRED_POOL: &str = "K209";
/// A live probe could not reach a backend, or it failed its health check.
pub const BACKEND_DOWN: &str = "K210";
/// A route that names `CONNECT`, which the data plane answers with 501 before routing.
pub const CONNECT_ROUTE: &str = "K211";
/// The admin API bound to a non-loopback address without TLS.
pub const ADMIN_EXPOSED: &str = "K212";
/// A certificate expiring within `[safety] cert_expiry_warning`.
pub const CERT_EXPIRING: &str = "K220";
/// A certificate that no listener uses.
pub const CERT_UNUSED: &str = "K221";
/// A DNS backend's name that has no address (the pool serves with its other backends).
pub const DNS_UNRESOLVED: &str = "K231";
/// A route's address rule that refuses every client of a family: a `deny` with
/// `0.0.0.0/0` or `::/0`, or an empty `allow`.
pub const ACCESS_REFUSES_ALL: &str = "K213";
/// A fixed-answer route (`respond`) that answers some requests a later forwarding route
/// would otherwise serve.
pub const FIXED_ANSWER_SHADOWS: &str = "K214";
/// A `[server] trusted_proxies` block outside loopback and private address space.
pub const PUBLIC_TRUSTED_PROXY: &str = "K215";
/// A route that lets `upgrades` through to a pool that cannot carry them (an HTTP/2
/// pool: tunnels are relayed over HTTP/1.1, plain or TLS).
pub const UPGRADES_UNSERVABLE: &str = "K216";
/// A redirect route that takes requests a later route would forward, and whose new URL
/// does not bring them back to it.
pub const REDIRECT_SHADOWS: &str = "K217";
/// A redirect to `https` for a host no certificate of a TLS listener covers.
pub const REDIRECT_TLS_UNCOVERED: &str = "K218";

/// A route's rate limit that, replayed on a traffic sample with the requests' arrival
/// times, would answer `429` to some of the route's sampled requests: a limit below the
/// rate the route is observed to serve.
pub const RATE_LIMIT_BELOW_TRAFFIC: &str = "K219";

/// A route to an HTTP/2 pool that does not match gRPC's content type: fine, but its
/// gRPC and other traffic share one route's timeout, retries and stats.
pub const GRPC_WITHOUT_HINT: &str = "K303";

/// Routes that no route test exercises.
pub const COVERAGE: &str = "K301";
/// Later checks were skipped because earlier ones found errors that make them meaningless.
pub const SKIPPED: &str = "K302";

/// A node-only key (`[listeners]`, `[admin]`, `[fleet] node`) in a config applied to a fleet:
/// each node keeps its own value, so the key does not travel with the generation.
pub const FLEET_NODE_KEY: &str = "K230";
