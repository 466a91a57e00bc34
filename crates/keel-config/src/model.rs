//! The validated config: concrete types (`Duration`, `SocketAddr`, compiled regexes)
//! with the source span of everything a finding may point at.
//!
//! Built only by [`crate::parse`]; every field holds its default when the file was silent.

use std::net::SocketAddr;
use std::time::Duration;

use indexmap::IndexMap;

use crate::span::{Located, Span};
use crate::tls::{Certificate, ListenerTls};

/// A whole Keel config.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where clients connect, by name, in file order.
    pub listeners: IndexMap<String, Listener>,
    /// Certificates and their keys, by name, in file order (`[certificates.NAME]`).
    pub certificates: IndexMap<String, Certificate>,
    /// The admin API.
    pub admin: Admin,
    /// Applications a backend may be, by name.
    pub services: IndexMap<String, Service>,
    /// Groups of backends serving one service, by name.
    pub pools: IndexMap<String, Pool>,
    /// Routes in file order; the first that matches wins.
    pub routes: Vec<Route>,
    /// Route tests: request → expected destination.
    pub tests: Vec<RouteTest>,
    /// Declared traffic-share bounds.
    pub intents: Vec<Intent>,
    /// Gate and guard settings.
    pub safety: Safety,
    /// Detector thresholds.
    pub detectors: Detectors,
    /// Where alerts go.
    pub alerts: Alerts,
    /// The structured access log.
    pub access_log: AccessLog,
    /// Process-wide server settings.
    pub server: Server,
    /// The live traffic sample used for blast-radius reports.
    pub traffic: Traffic,
    /// `[fleet]`: shared generations through etcd; `None` (or `store = "sqlite"`) for one node.
    pub fleet: Option<crate::fleet::Fleet>,
}

impl Config {
    /// The route named `name`.
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name.value == name)
    }
}

/// A client-facing listener.
#[derive(Clone, Debug)]
pub struct Listener {
    /// Its name (`[listeners.NAME]`).
    pub name: Located<String>,
    /// The address to bind.
    pub addr: Located<SocketAddr>,
    /// Connections the kernel queues for accepting (`listen(2)` backlog), before the
    /// cap of `net.core.somaxconn`.
    pub backlog: u32,
    /// TLS termination, when the listener has a `tls` table.
    pub tls: Option<ListenerTls>,
    /// Every connection starts with a PROXY protocol header (v1 or v2) naming the
    /// client; one without is closed.
    pub proxy_protocol: bool,
}

/// The admin API listener.
#[derive(Clone, Debug)]
pub struct Admin {
    /// Address to bind; loopback by default.
    pub addr: Located<SocketAddr>,
    /// Whether `GET /metrics` needs the token.
    pub metrics_require_token: bool,
    /// A second token whose console sessions may view but not act (wall dashboards).
    /// It is part of the config text (readable with the admin token), so keep the file private.
    pub read_token: Option<Located<String>>,
}

/// An application identity.
#[derive(Clone, Debug)]
pub struct Service {
    /// Its name (`[services.NAME]`).
    pub name: Located<String>,
    /// How a backend proves it is this application.
    pub identity: Option<Located<Identity>>,
    /// Check the identity header on every proxied response, not just on probes.
    pub verify_responses: bool,
    /// The operator accepts that nothing proves a backend is this service
    /// (`allow_no_identity = true`): no K111 error for it.
    pub allow_no_identity: bool,
}

/// "A backend of this service answers with header `header` equal to `equals`."
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// Lower-case header name.
    pub header: String,
    /// Exact expected value.
    pub equals: String,
}

/// A pool of backends.
#[derive(Clone, Debug)]
pub struct Pool {
    /// Its name (`[pools.NAME]`).
    pub name: Located<String>,
    /// The span of the whole pool table.
    pub span: Span,
    /// The service every backend of the pool must be.
    pub service: Located<String>,
    /// How a backend is chosen.
    pub balance: Balance,
    /// The backends (those of `dns_backends` added by the loader, one per address).
    pub backends: Vec<Backend>,
    /// Backends given by DNS name (see [`crate::dns`]).
    pub dns_backends: Vec<crate::dns::DnsBackend>,
    /// Active health checks, if configured.
    pub health: Option<HealthCheck>,
    /// Passive ejection on consecutive failures.
    pub outlier: Outlier,
    /// Time to open a connection to a backend.
    pub connect_timeout: Located<Duration>,
    /// Idle keep-alive connections kept per backend.
    pub max_idle_per_backend: u32,
    /// An idle keep-alive connection older than this is closed instead of reused.
    pub idle_timeout: Located<Duration>,
    /// Requests in flight to each backend at once, at most (0: no limit); more wait
    /// their turn.
    pub max_connections: u32,
    /// The HTTP version spoken to its backends.
    pub protocol: Located<UpstreamProtocol>,
    /// Requests one HTTP/2 connection carries at once, at most (`h2c` and `h2` only);
    /// more open another connection.
    pub max_streams_per_connection: u32,
    /// HTTPS to the backends (`tls = { ... }`), when set.
    pub tls: Option<crate::backend_tls::BackendTls>,
    /// Marked as being drained: it should not get new traffic.
    pub draining: bool,
    /// Marked as legacy: it should not get most of a route's traffic.
    pub legacy: bool,
}

/// The HTTP version a pool speaks to its backends (`[pools.NAME] protocol`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UpstreamProtocol {
    /// HTTP/1.1, one request at a time per connection (`"http1"`).
    #[default]
    Http1,
    /// HTTP/2 over plain TCP, with prior knowledge (`"h2c"`): many requests share a
    /// connection, as gRPC expects.
    H2c,
    /// HTTP/2 over TLS, negotiated by ALPN (`"h2"`).
    H2,
}

impl UpstreamProtocol {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http1 => "http1",
            Self::H2c => "h2c",
            Self::H2 => "h2",
        }
    }

    /// Whether requests are multiplexed as HTTP/2 streams.
    pub fn is_h2(self) -> bool {
        !matches!(self, Self::Http1)
    }
}

impl std::fmt::Display for UpstreamProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The balancing algorithm of a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round robin.
    RoundRobin,
    /// Least outstanding requests, power of two random choices.
    LeastRequest,
    /// A consistent-hash ring over a request key.
    ConsistentHash(HashKey),
}

/// What a consistent-hash pool hashes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HashKey {
    /// A request header (lower-case name).
    Header(String),
    /// A cookie.
    Cookie(String),
    /// The client's IP address.
    ClientIp,
}

impl std::fmt::Display for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashKey::Header(name) => write!(f, "header:{name}"),
            HashKey::Cookie(name) => write!(f, "cookie:{name}"),
            HashKey::ClientIp => write!(f, "client_ip"),
        }
    }
}

/// One backend server.
#[derive(Clone, Debug)]
pub struct Backend {
    /// Its address.
    pub addr: Located<SocketAddr>,
    /// Its relative weight (0 takes no traffic).
    pub weight: u32,
}

/// An active health check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HealthCheck {
    /// Request path of the probe.
    pub path: String,
    /// Time between probes.
    pub interval: Duration,
    /// Time a probe may take.
    pub timeout: Duration,
    /// Passing probes before a backend is healthy again.
    pub healthy_after: u32,
    /// Failing probes before a backend is unhealthy.
    pub unhealthy_after: u32,
}

/// Passive outlier ejection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Outlier {
    /// Consecutive connect failures or 5xx that eject.
    pub consecutive_failures: u32,
    /// First ejection time; doubled at each further ejection.
    pub base_ejection: Duration,
    /// Longest ejection time.
    pub max_ejection: Duration,
}

/// A route: a match, the service that must answer, and where to send it.
#[derive(Clone, Debug)]
pub struct Route {
    /// Its unique name.
    pub name: Located<String>,
    /// The span of the whole `[[routes]]` table.
    pub span: Span,
    /// Host condition; `None` matches any host.
    pub host: Option<Located<HostMatch>>,
    /// Path condition; `None` matches any path.
    pub path: Option<Located<PathMatch>>,
    /// Allowed methods (upper case); `None` allows any.
    pub methods: Option<Located<Vec<String>>>,
    /// Required headers: lower-case name and exact value.
    pub headers: Vec<Located<(String, String)>>,
    /// What the route does with a request: forward it to a service's pools, or answer
    /// it itself (a fixed answer or a redirect). Read it through [`Route::service`],
    /// [`Route::target`], [`Route::respond`] and [`Route::redirect`].
    pub action: RouteAction,
    /// Deadline for the backend's response headers, all attempts together.
    pub timeout: Located<Duration>,
    /// Extra attempts for idempotent requests.
    pub retries: Located<u32>,
    /// This route's own `body_idle_timeout` (zero: never), instead of the `[server]` one.
    pub body_idle_timeout: Option<Located<Duration>>,
    /// Other services that may answer this route (a declared migration): their pools
    /// may be targets and their identities pass response verification.
    pub also_served_by: Vec<Located<String>>,
    /// HTTP/1.1 `Upgrade` protocols this route passes through (`upgrades = ["websocket"]`);
    /// `None`: none, an upgrade request is refused.
    pub upgrades: Option<Located<Vec<UpgradeProtocol>>>,
    /// Time a tunnel (an upgraded connection) may carry no byte either way before both
    /// of its sides are closed.
    pub tunnel_idle_timeout: Located<Duration>,
    /// The route's client address rule (`allow` or `deny`), if any.
    pub access: Option<Located<crate::policy::Access>>,
    /// Headers set on or removed from the request Keel forwards.
    pub request_headers: Option<Located<crate::policy::HeaderRules>>,
    /// Headers set on or removed from the answer the client gets.
    pub response_headers: Option<Located<crate::policy::HeaderRules>>,
    /// The listeners whose requests this route may match (`listener = "NAME"` or a
    /// list); empty: every listener.
    pub listeners: Vec<Located<String>>,
    /// `require_sni = true`: a request must have come over TLS with an SNI name equal
    /// to its host, or it gets `421 Misdirected Request`.
    pub require_sni: bool,
    /// The path rewrite applied before forwarding, if any.
    pub rewrite: Option<Located<crate::policy::Rewrite>>,
    /// The route's rate limit, if any.
    pub rate_limit: Option<Located<crate::policy::RateLimit>>,
    /// The codings the route may compress a backend's answer with, in the route's order
    /// of preference (`compress = ["gzip", "br"]`); `None`: answers pass as they come.
    pub compress: Option<Located<Vec<crate::policy::ContentCoding>>>,
}

/// What a route does with the requests it matches.
#[derive(Clone, Debug)]
pub enum RouteAction {
    /// Forward to the target's pools; `service` must answer.
    Forward {
        /// The service that must answer.
        service: Located<String>,
        /// Where matching requests go.
        target: Located<Target>,
    },
    /// Answer with a fixed response; no pool, no service (`respond = { .. }`).
    Respond(Located<crate::policy::FixedAnswer>),
    /// Answer with a redirect; no pool, no service (`redirect = { .. }`).
    Redirect(Located<crate::redirect::Redirect>),
}

impl Route {
    /// The service that must answer, or `None` for a route Keel answers itself.
    pub fn service(&self) -> Option<&Located<String>> {
        match &self.action {
            RouteAction::Forward { service, .. } => Some(service),
            RouteAction::Respond(_) | RouteAction::Redirect(_) => None,
        }
    }

    /// Where matching requests go, or `None` for a route Keel answers itself.
    pub fn target(&self) -> Option<&Located<Target>> {
        match &self.action {
            RouteAction::Forward { target, .. } => Some(target),
            RouteAction::Respond(_) | RouteAction::Redirect(_) => None,
        }
    }

    /// The fixed answer of a `respond` route.
    pub fn respond(&self) -> Option<&Located<crate::policy::FixedAnswer>> {
        match &self.action {
            RouteAction::Respond(answer) => Some(answer),
            RouteAction::Forward { .. } | RouteAction::Redirect(_) => None,
        }
    }

    /// The redirect rule of a `redirect` route.
    pub fn redirect(&self) -> Option<&Located<crate::redirect::Redirect>> {
        match &self.action {
            RouteAction::Redirect(redirect) => Some(redirect),
            RouteAction::Forward { .. } | RouteAction::Respond(_) => None,
        }
    }

    /// True when Keel answers the route's requests itself (`respond` or `redirect`):
    /// no service, no pool.
    pub fn answers_itself(&self) -> bool {
        !matches!(self.action, RouteAction::Forward { .. })
    }

    /// The pools the route may send to, with weights; none for a fixed answer.
    pub fn target_pools(&self) -> Vec<(&Located<String>, u32)> {
        self.target().map(|t| t.value.pools()).unwrap_or_default()
    }
}

/// A protocol a route lets clients switch to with HTTP/1.1 `Upgrade`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpgradeProtocol {
    /// WebSocket (RFC 6455), `Upgrade: websocket`.
    WebSocket,
}

impl UpgradeProtocol {
    /// Every protocol a route may list, by its config name.
    pub const ALL: [UpgradeProtocol; 1] = [UpgradeProtocol::WebSocket];

    /// The name used in the config and as the `Upgrade` token (compared without case).
    pub fn name(self) -> &'static str {
        match self {
            UpgradeProtocol::WebSocket => "websocket",
        }
    }

    /// The protocol a config name or `Upgrade` token names, without regard to case.
    pub fn from_token(token: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| token.trim().eq_ignore_ascii_case(p.name()))
    }
}

/// A host condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostMatch {
    /// Exactly this host (lower case, without port).
    Exact(String),
    /// Any host ending in this suffix (such as `.example.com`) with at least one
    /// character before it: written `*.example.com`.
    Suffix(String),
}

impl std::fmt::Display for HostMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostMatch::Exact(host) => f.write_str(host),
            HostMatch::Suffix(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// A path condition. Matched against the path without its query string.
#[derive(Clone, Debug)]
pub enum PathMatch {
    /// The path equals this.
    Exact(String),
    /// The path starts with this (plain string prefix, as in Envoy).
    Prefix(String),
    /// The whole path matches this regex.
    Regex(PathRegex),
}

impl std::fmt::Display for PathMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathMatch::Exact(path) => write!(f, "path = {path:?}"),
            PathMatch::Prefix(prefix) => write!(f, "path_prefix = {prefix:?}"),
            PathMatch::Regex(regex) => write!(f, "path_regex = {:?}", regex.source),
        }
    }
}

/// A compiled, fully anchored path regex and the text it was written as.
#[derive(Clone, Debug)]
pub struct PathRegex {
    /// The regex as written in the config.
    pub source: String,
    /// Compiled as `^(?:source)$`.
    pub regex: regex::Regex,
}

impl PathRegex {
    /// True when the whole path matches.
    pub fn is_match(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }
}

/// Where a route sends requests.
#[derive(Clone, Debug)]
pub enum Target {
    /// All to one pool.
    Pool(Located<String>),
    /// Shared between pools by weight.
    Split(Vec<SplitEntry>),
}

impl Target {
    /// The pools this target may send to, with their weights (a single pool has weight 1).
    pub fn pools(&self) -> Vec<(&Located<String>, u32)> {
        match self {
            Target::Pool(pool) => vec![(pool, 1)],
            Target::Split(entries) => entries.iter().map(|e| (&e.pool, e.weight.value)).collect(),
        }
    }
}

/// One arm of a weighted split.
#[derive(Clone, Debug)]
pub struct SplitEntry {
    /// The pool.
    pub pool: Located<String>,
    /// Its weight.
    pub weight: Located<u32>,
}

/// A route test: a request and where it must go.
#[derive(Clone, Debug)]
pub struct RouteTest {
    /// The span of the `[[tests]]` table.
    pub span: Span,
    /// The request method (upper case).
    pub method: String,
    /// Host of the request URL, lower case, without port.
    pub host: String,
    /// Path of the request URL, without query.
    pub path: String,
    /// The URL's scheme: picks the listener the request is routed as coming in on
    /// (see `keel_check::route_tests`), and a redirect's `Location` starts from it.
    pub scheme: crate::redirect::RedirectScheme,
    /// The URL's port, if it names one.
    pub port: Option<u16>,
    /// The URL's query (without `?`), if any: a redirect keeps it.
    pub query: Option<String>,
    /// Extra request headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The client address the request comes from (`client = "203.0.113.9"`), for the
    /// route's `allow`/`deny` rule; `None`: the rule is not judged.
    pub client: Option<std::net::IpAddr>,
    /// What is expected.
    pub expect: Expect,
}

/// The expected outcome of a route test; every given field must hold.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// Name of the route that must match.
    pub route: Option<String>,
    /// Pool that must be chosen (for a split: any arm with weight).
    pub pool: Option<String>,
    /// Service that must answer.
    pub service: Option<String>,
    /// Status: 404 when no route may match, 403 when the route's address rule refuses
    /// the test's `client`, 429 when the route has a rate limit, a fixed answer's or a
    /// redirect's status.
    pub status: Option<u16>,
    /// The path the backend sees, after the route's `rewrite` (the path as sent when the
    /// route has none).
    pub rewritten_path: Option<String>,
    /// The `Location` of a redirect route's answer.
    pub location: Option<String>,
}

/// A declared bound on the share of some traffic that reaches a service.
#[derive(Clone, Debug)]
pub struct Intent {
    /// The span of the `[[intents]]` table.
    pub span: Span,
    /// Host the intent is about (exact, lower case).
    pub host: String,
    /// Only requests under this path prefix.
    pub path_prefix: Option<String>,
    /// The service whose share is bounded; `None` only for an intent that bounds
    /// refusals alone (`max_refused`, no `min_share`/`max_share`).
    pub service: Option<Located<String>>,
    /// Smallest allowed share (0..=1).
    pub min_share: Option<f64>,
    /// Largest allowed share (0..=1).
    pub max_share: Option<f64>,
    /// Largest allowed share (0..=1) of the requests in scope that the config's
    /// policies refuse (`403` by an address rule, `429` by a rate limit).
    pub max_refused: Option<f64>,
}

/// Gate and guard settings (`[safety]`).
#[derive(Clone, Debug)]
pub struct Safety {
    /// Largest share of any host's traffic an apply may move to another service.
    pub max_shift: f64,
    /// Watch time after every apply.
    pub watch: Duration,
    /// Alarm-free serving time before a generation is known-good.
    pub known_good_after: Duration,
    /// Known-good generations kept compiled in memory.
    pub keep_generations: u32,
    /// Canary promotion steps in percent, ending at 100.
    pub promote_steps: Vec<u32>,
    /// The gate's cumulative check compares with the newest known-good generation
    /// older than this.
    pub drift_window: Duration,
    /// What happens to the open tunnels of a generation a rollback swapped away from.
    pub rolled_back_tunnels: RolledBackTunnels,
    /// Time drained tunnels get before they are closed.
    pub tunnel_drain: Duration,
    /// A certificate that expires within this time is a `keel check` warning.
    pub cert_expiry_warning: Duration,
}

/// What happens to the open tunnels of a generation that was rolled back
/// (`[safety] rolled_back_tunnels`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolledBackTunnels {
    /// They stay open, on the backends the rolled-back generation chose.
    Keep,
    /// They are closed after `tunnel_drain`, so clients reconnect through the restored
    /// generation.
    Drain,
}

impl RolledBackTunnels {
    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            RolledBackTunnels::Keep => "keep",
            RolledBackTunnels::Drain => "drain",
        }
    }
}

/// Detector thresholds (`[detectors]`).
#[derive(Clone, Debug)]
pub struct Detectors {
    /// Whether detectors run at all.
    pub enabled: bool,
    /// Sliding window length.
    pub window: Duration,
    /// Fewest requests before a detector may fire.
    pub min_requests: u32,
    /// Share movement that counts as a shift.
    pub share_shift: f64,
    /// Error rate that counts as a jump.
    pub error_rate: f64,
    /// p99 over baseline that counts as a regression.
    pub latency_factor: f64,
}

/// Where alerts go (`[alerts]`).
#[derive(Clone, Debug, Default)]
pub struct Alerts {
    /// Webhooks that receive every alert as JSON.
    pub webhooks: Vec<Webhook>,
}

/// One alert webhook.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// `http://host:port/path` (plain HTTP for now).
    pub url: Located<String>,
    /// Timeout per attempt.
    pub timeout: Duration,
    /// Attempts before giving up on one alert.
    pub attempts: u32,
}

/// The access log (`[access_log]`).
#[derive(Clone, Debug, Default)]
pub struct AccessLog {
    /// `None` when off; `"stdout"` or a file path.
    pub path: Option<String>,
}

/// Process-wide server settings (`[server]`).
#[derive(Clone, Debug)]
pub struct Server {
    /// Runtime worker threads; 0 for one per CPU.
    pub worker_threads: u32,
    /// Drain deadline on shutdown.
    pub drain_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: u32,
    /// Most request headers.
    pub max_headers: u32,
    /// Time to send a complete request head.
    pub header_read_timeout: Duration,
    /// Time a response body may stall before both connections close; zero for never.
    pub body_idle_timeout: Duration,
    /// Longest a serving thread out of work spins before it sleeps.
    pub idle_spin: Duration,
    /// Whether responses carry `x-keel-generation`.
    pub generation_header: bool,
    /// Peers whose `x-forwarded-for` Keel believes when judging a client's address.
    pub trusted_proxies: Vec<Located<crate::policy::Cidr>>,
    /// DNS servers asked for DNS backends' names; empty: the system's (`/etc/resolv.conf`).
    pub resolvers: Vec<std::net::SocketAddr>,
}

/// The live traffic sample (`[traffic]`).
#[derive(Clone, Debug)]
pub struct Traffic {
    /// Request shapes kept.
    pub sample_size: u32,
    /// Window the sample is drawn from.
    pub window: Duration,
}
