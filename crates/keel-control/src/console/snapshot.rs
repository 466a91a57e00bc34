//! What the Now page shows, as one JSON value per tick: the serving generation, open
//! alerts (from the same [`Status`](crate::Status) as `GET /status`), per-route rates,
//! the traffic share per service per host with the intents' bands, and for the Topology
//! page the pools' backends with their states and each pool's requests/s.
//!
//! Rates are differences of the data plane's cumulative counters between two ticks of
//! one stream ([`Tracker`]): reading them is a handful of relaxed atomic loads per route
//! and backend, nothing the request path waits on. A page lists the busiest
//! [`MAX_LIVE_ROUTES`] routes and [`MAX_LIVE_HOSTS`] hosts and says how many there are
//! in all, so 10,000 routes cost one bounded event.

use std::collections::BTreeMap;
use std::time::Instant;

use keel_proxy::Generation;
use keel_proxy::stats::{Outcome, bucket_quantile};
use serde_json::{Value, json};

use crate::Controller;

/// Most routes one event lists, busiest first (50).
pub const MAX_LIVE_ROUTES: usize = 50;
/// Most hosts one event lists, busiest first (20).
pub const MAX_LIVE_HOSTS: usize = 20;
/// Label of a route without a host condition.
const ANY_HOST: &str = "(any host)";

/// One route's counters at the previous tick.
#[derive(Clone, Debug, Default)]
struct RouteCounters {
    outcomes: [u64; 7],
    /// Requests per target pool (route's target order).
    targets: Vec<u64>,
    /// Requests no backend took.
    unassigned: u64,
    latency: [u64; 14],
}

/// Names of one generation, computed once per generation rather than per event.
#[derive(Debug)]
struct Labels {
    generation: u64,
    /// Distinct host labels, and each route's index into them.
    hosts: Vec<String>,
    route_host: Vec<usize>,
    /// Service names (config order), each pool's and each route's index into them.
    services: Vec<String>,
    pool_service: Vec<usize>,
    route_service: Vec<usize>,
    pool_names: Vec<String>,
}

impl Labels {
    fn of(generation: &Generation) -> Self {
        let config = &generation.config;
        let services: Vec<String> = config.services.keys().cloned().collect();
        let service_index = |name: &str| {
            services
                .iter()
                .position(|s| s == name)
                .unwrap_or(usize::MAX)
        };
        let pool_service = config
            .pools
            .values()
            .map(|p| service_index(&p.service.value))
            .collect();
        let mut hosts: Vec<String> = Vec::new();
        let mut by_label: std::collections::HashMap<String, usize> = Default::default();
        let route_host = config
            .routes
            .iter()
            .map(|route| {
                let label = route
                    .host
                    .as_ref()
                    .map_or_else(|| ANY_HOST.to_string(), |h| h.value.to_string());
                *by_label.entry(label.clone()).or_insert_with(|| {
                    hosts.push(label);
                    hosts.len() - 1
                })
            })
            .collect();
        Self {
            generation: generation.id,
            hosts,
            route_host,
            pool_service,
            route_service: generation
                .table
                .routes()
                .iter()
                .map(|r| r.service.unwrap_or(usize::MAX))
                .collect(),
            pool_names: config.pools.keys().cloned().collect(),
            services,
        }
    }

    fn host(&self, route: usize) -> &str {
        self.route_host
            .get(route)
            .and_then(|h| self.hosts.get(*h))
            .map_or(ANY_HOST, String::as_str)
    }

    fn service(&self, index: usize) -> &str {
        self.services.get(index).map_or("", String::as_str)
    }
}

/// The previous tick of one event stream (public for `bench/console_tick.rs`).
#[derive(Debug, Default)]
pub struct Tracker {
    previous: Option<(u64, Instant, Vec<RouteCounters>)>,
    labels: Option<Labels>,
}

impl Tracker {
    /// This tick's view; rates are `null` on a stream's first tick and right after the
    /// generation changed (there is nothing to difference yet).
    pub fn tick(&mut self, controller: &Controller) -> Value {
        let status = controller.status();
        let Some(active) = controller.plane().active() else {
            self.previous = None;
            return json!({
                "generation": status.active, "canary": null, "guard": null,
                "alerts": status.open_alerts, "alerts_total": status.open_alerts_total,
                "measured": false, "routes": [], "routes_total": 0, "hosts": [],
            });
        };
        let generation = &active.primary;
        if self
            .labels
            .as_ref()
            .is_none_or(|l| l.generation != generation.id)
        {
            self.labels = Some(Labels::of(generation));
        }
        let labels = self.labels.get_or_insert_with(|| Labels::of(generation));
        let now = Instant::now();
        let counters = read(generation);
        let previous = match self.previous.take() {
            Some((id, at, old)) if id == generation.id && old.len() == counters.len() => {
                Some((now.saturating_duration_since(at).as_secs_f64(), old))
            }
            _ => None,
        };
        let (routes, hosts, pool_rps) = match &previous {
            Some((secs, old)) if *secs > 0.0 => rates(generation, labels, old, &counters, *secs),
            _ => (Vec::new(), bands_only(generation), BTreeMap::new()),
        };
        let routes_total = counters.len();
        self.previous = Some((generation.id, now, counters));
        json!({
            "generation": status.active,
            "canary": status.canary,
            "guard": status.guard,
            "alerts": status.open_alerts,
            "alerts_total": status.open_alerts_total,
            "health": { "backends": status.health.backends, "serving": status.health.serving, "out": status.health.out },
            "measured": previous.is_some(),
            "routes": routes,
            "routes_total": routes_total,
            "hosts": hosts,
            "pools": status.health.pools,
            "pool_rps": pool_rps,
        })
    }
}

fn read(generation: &Generation) -> Vec<RouteCounters> {
    generation
        .stats
        .routes
        .iter()
        .map(|route| RouteCounters {
            outcomes: route.totals(),
            targets: route
                .targets
                .iter()
                .map(|backends| backends.iter().map(|c| c.total()).sum())
                .collect(),
            unassigned: route.unassigned.total(),
            latency: route.latency_buckets(),
        })
        .collect()
}

/// Per host: requests per service in this tick.
type HostShares = BTreeMap<String, BTreeMap<String, f64>>;

/// A route that had requests in this tick.
struct Busy {
    index: usize,
    requests: u64,
    failures: u64,
    latency: [u64; 14],
}

/// Rates between two ticks: the busiest routes (JSON for at most [`MAX_LIVE_ROUTES`]),
/// the share per service per host, and requests/s per pool. Routes without requests in
/// the tick cost one comparison of counters.
fn rates(
    generation: &Generation,
    labels: &Labels,
    old: &[RouteCounters],
    new: &[RouteCounters],
    secs: f64,
) -> (Vec<Value>, Vec<Value>, BTreeMap<String, f64>) {
    let table = generation.table.routes();
    let mut busy: Vec<Busy> = Vec::new();
    let mut host_service: std::collections::HashMap<(usize, usize), f64> = Default::default();
    let mut pool_requests = vec![0u64; labels.pool_names.len()];
    for (index, (before, after)) in old.iter().zip(new).enumerate() {
        if before.outcomes == after.outcomes && before.unassigned == after.unassigned {
            continue;
        }
        let Some(compiled) = table.get(index) else {
            continue;
        };
        let (mut requests, mut failures) = (0, 0);
        for (outcome, (a, b)) in Outcome::ALL
            .iter()
            .zip(after.outcomes.iter().zip(before.outcomes))
        {
            let n = a.saturating_sub(b);
            requests += n;
            if outcome.is_failure() {
                failures += n;
            }
        }
        let mut latency = [0u64; 14];
        for (slot, (a, b)) in latency
            .iter_mut()
            .zip(after.latency.iter().zip(before.latency))
        {
            *slot = a.saturating_sub(b);
        }
        let host = labels.route_host.get(index).copied().unwrap_or(usize::MAX);
        for (arm, (pool, _)) in compiled.targets.iter().enumerate() {
            let count = |counters: &RouteCounters| counters.targets.get(arm).copied().unwrap_or(0);
            let moved = count(after).saturating_sub(count(before));
            if moved == 0 {
                continue;
            }
            let service = labels
                .pool_service
                .get(*pool)
                .copied()
                .unwrap_or(usize::MAX);
            *host_service.entry((host, service)).or_default() += moved as f64;
            if let Some(n) = pool_requests.get_mut(*pool) {
                *n += moved;
            }
        }
        let unassigned = after.unassigned.saturating_sub(before.unassigned);
        if unassigned > 0 {
            let service = labels
                .route_service
                .get(index)
                .copied()
                .unwrap_or(usize::MAX);
            *host_service.entry((host, service)).or_default() += unassigned as f64;
        }
        busy.push(Busy {
            index,
            requests,
            failures,
            latency,
        });
    }
    busy.sort_unstable_by_key(|b| (std::cmp::Reverse(b.requests), b.index));
    busy.truncate(MAX_LIVE_ROUTES);
    let routes = busy
        .iter()
        .map(|b| {
            let service = labels.service(
                labels
                    .route_service
                    .get(b.index)
                    .copied()
                    .unwrap_or(usize::MAX),
            );
            json!({
                "name": table.get(b.index).map_or("", |r| &*r.name),
                "host": labels.host(b.index),
                "service": service,
                "rps": b.requests as f64 / secs,
                "error_rate": (b.requests > 0).then(|| b.failures as f64 / b.requests as f64),
                "p99_ms": bucket_quantile(&b.latency, 0.99).map(|us| us as f64 / 1000.0),
            })
        })
        .collect();
    let mut hosts: HostShares = BTreeMap::new();
    for ((host, service), n) in host_service {
        let host = labels.hosts.get(host).map_or(ANY_HOST, String::as_str);
        *hosts
            .entry(host.to_string())
            .or_default()
            .entry(labels.service(service).to_string())
            .or_default() += n;
    }
    let pools = labels
        .pool_names
        .iter()
        .zip(pool_requests)
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| (name.clone(), n as f64 / secs))
        .collect();
    (routes, host_views(generation, hosts, secs), pools)
}

/// Hosts that have intents, with no traffic measured yet.
fn bands_only(generation: &Generation) -> Vec<Value> {
    host_views(generation, BTreeMap::new(), 0.0)
}

fn host_views(generation: &Generation, mut hosts: HostShares, secs: f64) -> Vec<Value> {
    for intent in &generation.config.intents {
        hosts.entry(intent.host.clone()).or_default();
    }
    let mut views: Vec<(f64, Value)> = hosts
        .into_iter()
        .map(|(host, services)| {
            let total: f64 = services.values().sum();
            let shares: Vec<Value> = services
                .iter()
                .filter(|(_, n)| **n > 0.0)
                .map(|(service, n)| json!({ "service": service, "share": n / total }))
                .collect();
            let bands: Vec<Value> = generation
                .config
                .intents
                .iter()
                .filter(|i| i.host == host)
                .filter_map(|i| {
                    // Share bands only: a refusal bound (`max_refused`) has no service.
                    Some(json!({
                        "service": i.service.as_ref()?.value,
                        "path_prefix": i.path_prefix,
                        "min": i.min_share,
                        "max": i.max_share,
                    }))
                })
                .collect();
            let rps = if secs > 0.0 { total / secs } else { 0.0 };
            (
                total,
                json!({ "host": host, "rps": rps, "shares": shares, "intents": bands }),
            )
        })
        .collect();
    views.sort_by(|a, b| b.0.total_cmp(&a.0));
    views
        .into_iter()
        .take(MAX_LIVE_HOSTS)
        .map(|(_, v)| v)
        .collect()
}
