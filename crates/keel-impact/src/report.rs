//! The blast-radius report: what a config change does to the sampled traffic.
//!
//! Every count is an *expected* number of requests (weighted splits contribute
//! fractions), rounded to 9 decimals; every share is that count over the sample size,
//! or over the host's requests for per-host numbers. [`ImpactReport::to_json`] is the
//! stable machine form (schema version [`SCHEMA_VERSION`], documented in
//! `docs/blast-radius.md`); [`ImpactReport::render_human`] is for people.

use keel_route::RequestShape;
use serde::Serialize;

use crate::destination::{Destination, Failure, Landing};

/// Version of the JSON form of reports and verdicts. Fields are only ever added within
/// one version; renaming or removing one bumps it.
pub const SCHEMA_VERSION: u32 = 1;
/// Most example requests kept for each movement (3 requests).
pub const MAX_EXAMPLES: usize = 3;

/// An expected number of requests and its share of the whole (or of a host).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Amount {
    /// Expected requests.
    pub requests: f64,
    /// `requests` over the sample size (or over the host's requests).
    pub share: f64,
}

impl Amount {
    pub(crate) fn of(requests: f64, total: f64) -> Self {
        let share = if total > 0.0 { requests / total } else { 0.0 };
        Self {
            requests: round(requests),
            share: round(share),
        }
    }
}

/// What kind of change a movement is, from least to most serious.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Another route sends the request to the same pool.
    Route,
    /// Another pool of the same service.
    Pool,
    /// Another service answers.
    Service,
    /// The request served before and fails now.
    Fails,
    /// The request failed before and is served now.
    Recovers,
}

impl Change {
    pub(crate) fn between(from: &Destination, to: &Destination) -> Self {
        match (from.failure, to.failure) {
            (None, Some(_)) => Change::Fails,
            (Some(_), None) => Change::Recovers,
            _ if from.landing_service() != to.landing_service() => Change::Service,
            _ if from.pool != to.pool || from.failure != to.failure => Change::Pool,
            _ => Change::Route,
        }
    }

    /// True when the request lands on another service (failing counts as one).
    pub fn crosses_service(self) -> bool {
        matches!(self, Change::Service | Change::Fails | Change::Recovers)
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::Route => "route",
            Change::Pool => "pool",
            Change::Service => "service",
            Change::Fails => "FAILS",
            Change::Recovers => "recovers",
        })
    }
}

/// One cell of the movement matrix: traffic that goes from one destination to another.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Movement {
    /// Where it went under the old config.
    pub from: Destination,
    /// Where it goes under the new config.
    pub to: Destination,
    /// What kind of change this is.
    pub change: Change,
    /// Expected requests moved, and their share of the sample.
    #[serde(flatten)]
    pub amount: Amount,
    /// Up to [`MAX_EXAMPLES`] distinct sampled requests that move this way, in sample order.
    pub examples: Vec<RequestShape>,
}

/// Traffic of one host that lands on another service.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostFlow {
    /// Where it landed.
    pub from: Landing,
    /// Where it lands now.
    pub to: Landing,
    /// Expected requests, and their share of the host's requests.
    #[serde(flatten)]
    pub amount: Amount,
}

/// How much of one host's sampled traffic changes service.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostShift {
    /// The host (lower case, no port), or `<no host>`.
    pub host: String,
    /// Sampled requests to this host.
    pub requests: usize,
    /// Expected requests that land on another service (or start or stop failing), and
    /// their share of this host's requests. This is what the gate's `max_shift` bounds.
    pub changes_service: Amount,
    /// The flows between pools and services behind that number, largest first.
    pub flows: Vec<HostFlow>,
}

/// Requests by failure reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct FailCount {
    /// Expected requests, and their share of the sample.
    #[serde(flatten)]
    pub amount: Amount,
    /// Of those, requests no route matches.
    pub no_route: f64,
    /// Of those, requests sent to an empty pool.
    pub empty_pool: f64,
}

/// Requests that fail under either config.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FailingSummary {
    /// Served before, failing now (by the new failure).
    pub starting: FailCount,
    /// Failing under both configs (by the new failure).
    pub still: FailCount,
    /// Failing before, served now (by the old failure).
    pub recovering: FailCount,
    /// Up to [`MAX_EXAMPLES`] distinct requests that start failing.
    pub examples: Vec<RequestShape>,
}

/// A landing's (pool's or service's) share of the traffic before and after.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LandingShare {
    /// The pool and service, or the failure (flattened into this object in JSON).
    #[serde(flatten)]
    pub landing: Landing,
    /// Under the old config.
    pub old: Amount,
    /// Under the new config.
    pub new: Amount,
}

/// A service's share of the traffic before and after.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceShare {
    /// The service traffic lands on, or `<none>` for traffic that fails.
    pub service: String,
    /// Under the old config.
    pub old: Amount,
    /// Under the new config.
    pub new: Amount,
}

/// Sticky sessions between two consistent-hash pools.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StickyPool {
    /// The pool under the old config.
    pub from_pool: String,
    /// The pool under the new config.
    pub to_pool: String,
    /// Keyed requests hashed by these pools in both configs.
    pub requests: f64,
    /// Those whose backend changes, and their share of `requests`.
    pub changed: Amount,
}

/// Movement of sticky (consistent-hash) sessions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StickyMovement {
    /// Keyed requests whose pool hashes in both configs.
    pub requests: f64,
    /// Those whose backend changes (other ring, other hash key, other pool), and their
    /// share of `requests`.
    pub changed: Amount,
    /// Keyed requests that hashed before and land on a pool that does not hash now.
    pub no_longer_sticky: f64,
    /// Requests on hashing pools in both configs that carry no `hash_key` (not counted).
    pub without_key: f64,
    /// Per pool pair, largest first.
    pub pools: Vec<StickyPool>,
}

/// The blast radius of a config change on a traffic sample.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImpactReport {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Sampled requests replayed.
    pub total: usize,
    /// Traffic whose destination (route, pool or service) changes.
    pub moved: Amount,
    /// Traffic that lands on another service, failing counted as a service.
    pub changes_service: Amount,
    /// The movement matrix without its diagonal, largest first.
    pub movements: Vec<Movement>,
    /// Every sampled host, the most shifted first.
    pub hosts: Vec<HostShift>,
    /// Requests that start, keep or stop failing.
    pub failing: FailingSummary,
    /// Each service's share before and after; failing traffic is service `<none>`.
    pub services: Vec<ServiceShare>,
    /// Each pool's share before and after.
    pub pools: Vec<LandingShare>,
    /// Sticky sessions, when some sampled request hits a hashing pool in both configs.
    pub sticky: Option<StickyMovement>,
    /// Sampled TLS requests whose SNI name would get another certificate, or one that
    /// does not cover it.
    pub certificates: crate::certificates::CertificateImpact,
    /// Per host, sampled requests the new config's address rules and rate limits
    /// refuse that the old one served (see [`crate::refusals`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<crate::refusals::HostRefusals>,
    /// Per scope of a `max_refused` intent (of either config), the sampled requests
    /// each config's policies refuse (see [`crate::refusals::ScopeRefusals`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intent_refusals: Vec<crate::refusals::ScopeRefusals>,
    /// What the gate needs to evaluate intents: per request, host, path and the
    /// landing-service distribution under each config.
    #[serde(skip)]
    pub(crate) outcomes: Vec<Outcome>,
    #[serde(skip)]
    pub(crate) service_names: Vec<Option<String>>,
    /// Expected sampled requests each route served under the old config (routes that
    /// served none are absent): what the gate's worst-case rules divide by.
    #[serde(skip)]
    pub(crate) route_mass: Vec<(String, f64)>,
}

/// One replayed request, as the gate sees it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Outcome {
    pub(crate) host: Box<str>,
    pub(crate) path: Box<str>,
    /// (interned landing service, share), under the old and new config.
    pub(crate) old: Box<[(u32, f64)]>,
    pub(crate) new: Box<[(u32, f64)]>,
}

impl ImpactReport {
    /// The largest share of any host's traffic that lands on another service.
    pub fn max_host_shift(&self) -> f64 {
        self.hosts
            .iter()
            .map(|h| h.changes_service.share)
            .fold(0.0, f64::max)
    }

    /// True when no sampled request changes destination or sticky backend.
    pub fn is_unchanged(&self) -> bool {
        self.movements.is_empty()
            && self
                .sticky
                .as_ref()
                .is_none_or(|s| s.changed.requests == 0.0 && s.no_longer_sticky == 0.0)
    }

    /// The stable JSON form (schema version [`SCHEMA_VERSION`]).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Share of the requests matching `host` (and `path_prefix`) that land on `service`
    /// under the new config (`old == false`) or the old one, and how many matched;
    /// `None` when none matches.
    pub(crate) fn service_share(
        &self,
        host: &str,
        path_prefix: Option<&str>,
        service: &str,
        old: bool,
    ) -> Option<(f64, usize)> {
        let service_id = self
            .service_names
            .iter()
            .position(|s| s.as_deref() == Some(service))
            .and_then(|i| u32::try_from(i).ok());
        let mut matched = 0usize;
        let mut reached = 0.0;
        for outcome in &self.outcomes {
            if &*outcome.host != host || path_prefix.is_some_and(|p| !outcome.path.starts_with(p)) {
                continue;
            }
            matched += 1;
            let shares = if old { &outcome.old } else { &outcome.new };
            reached += shares
                .iter()
                .filter(|(s, _)| Some(*s) == service_id)
                .map(|(_, m)| m)
                .sum::<f64>();
        }
        (matched > 0).then(|| (round(reached / matched as f64), matched))
    }
}

/// Rounds to 9 decimals, so sums of fractions print as the numbers they mean.
pub(crate) fn round(value: f64) -> f64 {
    // `+ 0.0` turns the -0.0 of an empty float sum into 0.0.
    (value * 1e9).round() / 1e9 + 0.0
}

impl Failure {
    pub(crate) fn add_to(self, count: &mut FailCount, mass: f64) {
        count.amount.requests += mass;
        match self {
            Failure::NoRoute => count.no_route += mass,
            Failure::EmptyPool => count.empty_pool += mass,
        }
    }
}
