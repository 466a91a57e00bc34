//! A compiled generation: one config, its routing table, its pools with their backends,
//! and its own traffic counters. Immutable once built; requests hold an `Arc` to the
//! generation that routed them, so a swap never changes a request in flight.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue};
use keel_config::{Config, HashKey};
use keel_route::{RouteTable, ServiceId};

use crate::backend::Backend;
use crate::balance::Balancer;
use crate::stats::GenerationStats;
use crate::tunnel::Tunnels;

/// A generation ready to serve.
#[derive(Debug)]
pub struct Generation {
    /// Its number; higher is newer.
    pub id: u64,
    /// The config it was compiled from.
    pub config: Arc<Config>,
    /// Its routing table.
    pub table: RouteTable,
    /// Its pools, indexed like `config.pools`.
    pub pools: Box<[PoolRuntime]>,
    /// Its traffic counters.
    pub stats: GenerationStats,
    /// Its open tunnels (upgraded connections), and their drain.
    pub tunnels: Tunnels,
    /// When it was compiled.
    pub compiled_at: SystemTime,
    /// Its TLS listeners' certificates (pinned: built from the bytes read at load).
    pub tls: crate::tls::GenerationTls,
    pub(crate) routes: Box<[RouteRuntime]>,
    pub(crate) header: HeaderValue,
    pub(crate) matched_headers: Box<[HeaderName]>,
}

/// A pool of a generation.
#[derive(Debug)]
pub struct PoolRuntime {
    /// Its name.
    pub name: Arc<str>,
    /// The service it declares.
    pub service: ServiceId,
    /// Its backends, in config order (shared with other generations when unchanged).
    pub backends: Box<[Arc<Backend>]>,
    pub(crate) balancer: Balancer,
    pub(crate) hash_key: Option<HashKey>,
    /// Identity header and value of the pool's service, if it has one.
    pub(crate) identity: Option<(HeaderName, Arc<str>)>,
}

/// What the hot path needs per route beyond the routing table.
#[derive(Debug)]
pub(crate) struct RouteRuntime {
    /// Name of the service the route expects.
    pub(crate) service: Arc<str>,
    /// Identity header and the values that may answer (the route's service first, then
    /// the services of its `also_served_by`), when the service verifies every response.
    pub(crate) verify: Option<(HeaderName, Box<[Arc<str>]>)>,
    /// The route's own `body_idle_timeout`, when it sets one (see
    /// [`crate::watchdog::ExchangeClock::route_body_idle`]).
    pub(crate) body_idle: Option<crate::body_bound::BodyIdleBound>,
    /// The `Upgrade` protocols the route passes through (see [`crate::upgrade`]).
    pub(crate) upgrades: Box<[keel_config::UpgradeProtocol]>,
    /// Time a tunnel of the route may carry nothing before it is closed.
    pub(crate) tunnel_idle_timeout: Duration,
    /// The route's client address rule (see [`crate::policy`]).
    pub(crate) access: Option<keel_config::Access>,
    /// Headers set on or removed from the forwarded request.
    pub(crate) request_rules: Option<Box<crate::policy::CompiledRules>>,
    /// Headers set on or removed from the answer.
    pub(crate) response_rules: Option<Box<crate::policy::CompiledRules>>,
    /// The route answers only requests whose TLS SNI name is their host (see
    /// [`crate::tls::refuse_misdirected`]).
    pub(crate) require_sni: bool,
    /// The answer of a fixed-answer route (see [`crate::answer`]).
    pub(crate) answer: Option<Box<crate::answer::CompiledAnswer>>,
    /// The redirect of a redirect route (see [`crate::redirect`]).
    pub(crate) redirect: Option<Box<crate::redirect::CompiledRedirect>>,
    /// The path rewrite: the prefix the route matched and what replaces it.
    pub(crate) rewrite: Option<Box<crate::policy::CompiledRewrite>>,
    /// The route's rate limit and its buckets (see [`crate::rate_limit`]).
    pub(crate) limiter: Option<Box<crate::rate_limit::Limiter>>,
    /// The codings the route compresses answers with, in its order (see
    /// [`crate::compress`]); empty: none.
    pub(crate) compress: Box<[keel_config::ContentCoding]>,
}

impl Generation {
    /// Number of routes.
    pub fn route_count(&self) -> usize {
        self.table.len()
    }

    /// Waits until every health-checked backend has its first probe verdict, or until
    /// `timeout` passes; true when all have one. A checked backend gets no traffic before
    /// its first passing probe, so activating a generation after this wait avoids
    /// answering 503 for the first probe interval.
    pub async fn first_probes(&self, timeout: Duration) -> bool {
        /// Time between two looks at the backends' states (5 ms).
        const POLL: Duration = Duration::from_millis(5);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let waiting = self
                .pools
                .iter()
                .flat_map(|p| p.backends.iter())
                .any(|b| b.awaits_first_probe());
            if !waiting {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Name of the service a pool serves.
    pub fn pool_service(&self, pool: usize) -> &str {
        self.config
            .services
            .get_index(self.pools[pool].service)
            .map_or("", |(name, _)| name.as_str())
    }
}

/// Header names any route of the config matches on: kept in traffic samples.
pub(crate) fn matched_headers(config: &Config) -> Box<[HeaderName]> {
    let mut names: Vec<HeaderName> = Vec::new();
    for route in &config.routes {
        for header in &route.headers {
            if let Ok(name) = HeaderName::from_bytes(header.value.0.as_bytes())
                && !names.contains(&name)
            {
                names.push(name);
            }
        }
    }
    names.into_boxed_slice()
}

/// Per-route runtime data.
pub(crate) fn route_runtimes(config: &Config, table: &RouteTable) -> Box<[RouteRuntime]> {
    table
        .routes()
        .iter()
        .zip(&config.routes)
        .map(|(route, configured)| {
            let service = route.service.and_then(|s| config.services.get_index(s));
            let verify = service.and_then(|(_, s)| {
                let identity = s.identity.as_ref().filter(|_| s.verify_responses)?;
                let name = HeaderName::from_bytes(identity.value.header.as_bytes()).ok()?;
                // A declared migration: those services' answers are this route's too.
                let also = configured
                    .also_served_by
                    .iter()
                    .filter_map(|other| config.services.get(other.value.as_str()))
                    .filter_map(|other| other.identity.as_ref())
                    .filter(|other| other.value.header == identity.value.header)
                    .map(|other| Arc::from(other.value.equals.as_str()));
                let accepted: Box<[Arc<str>]> =
                    std::iter::once(Arc::from(identity.value.equals.as_str()))
                        .chain(also)
                        .collect();
                Some((name, accepted))
            });
            RouteRuntime {
                service: Arc::from(service.map_or("", |(n, _)| n.as_str())),
                verify,
                body_idle: configured
                    .body_idle_timeout
                    .as_ref()
                    .map(|bound| crate::body_bound::BodyIdleBound::of(bound.value)),
                upgrades: configured
                    .upgrades
                    .as_ref()
                    .map(|u| u.value.iter().copied().collect())
                    .unwrap_or_default(),
                tunnel_idle_timeout: configured.tunnel_idle_timeout.value,
                access: configured.access.as_ref().map(|a| a.value.clone()),
                request_rules: crate::policy::CompiledRules::compile(
                    configured.request_headers.as_ref().map(|r| &r.value),
                ),
                response_rules: crate::policy::CompiledRules::compile(
                    configured.response_headers.as_ref().map(|r| &r.value),
                ),
                require_sni: configured.require_sni,
                answer: crate::answer::CompiledAnswer::compile(configured),
                redirect: crate::redirect::CompiledRedirect::compile(configured),
                rewrite: crate::policy::CompiledRewrite::compile(configured),
                limiter: crate::rate_limit::Limiter::compile(
                    configured.rate_limit.as_ref().map(|l| &l.value),
                ),
                compress: configured
                    .compress
                    .as_ref()
                    .map(|c| c.value.iter().copied().collect())
                    .unwrap_or_default(),
            }
        })
        .collect()
}
