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
    /// Requests per target pool (route's target order), plus those no backend took.
    targets: Vec<u64>,
    unassigned: u64,
    latency: [u64; 14],
}

/// The previous tick of one event stream.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    previous: Option<(u64, Instant, Vec<RouteCounters>)>,
}

impl Tracker {
    /// This tick's view; rates are `null` on a stream's first tick and right after the
    /// generation changed (there is nothing to difference yet).
    pub(super) fn tick(&mut self, controller: &Controller) -> Value {
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
        let now = Instant::now();
        let counters = read(generation);
        let previous = match self.previous.take() {
            Some((id, at, old)) if id == generation.id && old.len() == counters.len() => {
                Some((now.saturating_duration_since(at).as_secs_f64(), old))
            }
            _ => None,
        };
        let (routes, routes_total, hosts, pool_rps) = match &previous {
            Some((secs, old)) if *secs > 0.0 => rates(generation, old, &counters, *secs),
            _ => (
                Vec::new(),
                counters.len(),
                bands_only(generation),
                BTreeMap::new(),
            ),
        };
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

fn host_label(generation: &Generation, route: usize) -> String {
    generation
        .config
        .routes
        .get(route)
        .and_then(|r| r.host.as_ref())
        .map_or_else(|| ANY_HOST.to_string(), |h| h.value.to_string())
}

fn pool_service(generation: &Generation, pool: usize) -> String {
    generation
        .config
        .pools
        .get_index(pool)
        .map_or_else(String::new, |(_, p)| p.service.value.clone())
}

/// Per host: requests per service in this tick.
type HostShares = BTreeMap<String, BTreeMap<String, f64>>;

fn rates(
    generation: &Generation,
    old: &[RouteCounters],
    new: &[RouteCounters],
    secs: f64,
) -> (Vec<Value>, usize, Vec<Value>, BTreeMap<String, f64>) {
    let table = generation.table.routes();
    let mut routes = Vec::with_capacity(new.len());
    let mut hosts: HostShares = BTreeMap::new();
    let mut pools: BTreeMap<String, f64> = BTreeMap::new();
    for (index, (before, after)) in old.iter().zip(new).enumerate() {
        let Some(compiled) = table.get(index) else {
            continue;
        };
        let delta: Vec<u64> = after
            .outcomes
            .iter()
            .zip(before.outcomes)
            .map(|(a, b)| a.saturating_sub(b))
            .collect();
        let requests: u64 = delta.iter().sum();
        let failures: u64 = Outcome::ALL
            .iter()
            .zip(&delta)
            .filter(|(o, _)| o.is_failure())
            .map(|(_, n)| n)
            .sum();
        let mut latency = [0u64; 14];
        for (slot, (a, b)) in latency
            .iter_mut()
            .zip(after.latency.iter().zip(before.latency))
        {
            *slot = a.saturating_sub(b);
        }
        let host = host_label(generation, index);
        let services = hosts.entry(host.clone()).or_default();
        for (arm, (pool, _)) in compiled.targets.iter().enumerate() {
            let count = |counters: &RouteCounters| counters.targets.get(arm).copied().unwrap_or(0);
            let moved = count(after).saturating_sub(count(before));
            *services.entry(pool_service(generation, *pool)).or_default() += moved as f64;
            if let Some((name, _)) = generation.config.pools.get_index(*pool) {
                *pools.entry(name.clone()).or_default() += moved as f64 / secs;
            }
        }
        let service = generation
            .config
            .services
            .get_index(compiled.service)
            .map_or_else(String::new, |(name, _)| name.clone());
        *services.entry(service.clone()).or_default() +=
            after.unassigned.saturating_sub(before.unassigned) as f64;
        routes.push((
            requests,
            json!({
                "name": &*compiled.name,
                "host": host,
                "service": service,
                "rps": requests as f64 / secs,
                "error_rate": (requests > 0).then(|| failures as f64 / requests as f64),
                "p99_ms": bucket_quantile(&latency, 0.99).map(|us| us as f64 / 1000.0),
            }),
        ));
    }
    let total = routes.len();
    routes.sort_by_key(|r| std::cmp::Reverse(r.0));
    let routes = routes
        .into_iter()
        .take(MAX_LIVE_ROUTES)
        .map(|(_, v)| v)
        .collect();
    (routes, total, host_views(generation, hosts, secs), pools)
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
                .map(|i| {
                    json!({
                        "service": i.service.value,
                        "path_prefix": i.path_prefix,
                        "min": i.min_share,
                        "max": i.max_share,
                    })
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
