//! The scrape-time view of the data plane: a prometheus-client [`Collector`] that reads
//! the counters of the live generations when Prometheus asks, and only then.
//!
//! Nothing here runs per request: the data plane bumps the atomics it always bumps,
//! and a scrape walks primary, canary and recently superseded generations that are
//! still alive (held by the controller's cache or by in-flight requests). Counters
//! that are still zero are not exposed, so a 10,000-route config does not produce
//! 10,000 × backends × 7 empty series.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

use keel_proxy::stats::{GenerationStats, LATENCY_BUCKETS_MICROS, Outcome};
use keel_proxy::{BackendState, DataPlane, Generation};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::names;

/// Superseded generations still exported while alive (8 generations).
const RETAINED_GENERATIONS: usize = 8;

/// Backend states exposed as gauges, in order.
const STATES: [BackendState; 5] = [
    BackendState::Unknown,
    BackendState::Healthy,
    BackendState::Unhealthy,
    BackendState::Misidentified,
    BackendState::Ejected,
];

/// What one scrape exports.
struct Exported {
    generations: Vec<Arc<Generation>>,
    /// Canary id and permille.
    canary: Option<(u64, u32)>,
    primary: Option<u64>,
    /// The data plane's count of connections cut for a stalled response body.
    stalled_responses: u64,
}

/// Reads the data plane at scrape time.
#[derive(Debug)]
pub struct PlaneCollector {
    plane: Weak<DataPlane>,
    retained: Mutex<Vec<Weak<Generation>>>,
}

impl PlaneCollector {
    /// A collector for a data plane (held weakly: it never keeps the plane alive).
    pub fn new(plane: &Arc<DataPlane>) -> Self {
        Self {
            plane: Arc::downgrade(plane),
            retained: Mutex::new(Vec::new()),
        }
    }

    /// Keeps exporting a generation after it stops serving, while it is alive.
    pub fn retain(&self, generation: &Arc<Generation>) {
        let mut retained = self.retained.lock().unwrap_or_else(|p| p.into_inner());
        retained
            .retain(|g| g.strong_count() > 0 && !std::ptr::eq(g.as_ptr(), Arc::as_ptr(generation)));
        retained.push(Arc::downgrade(generation));
        if retained.len() > RETAINED_GENERATIONS {
            retained.remove(0);
        }
    }

    /// Primary, canary, then retained generations that are alive, without duplicates;
    /// and the data plane's own counters.
    fn generations(&self) -> Exported {
        let mut out: Vec<Arc<Generation>> = Vec::new();
        let mut canary = None;
        let mut primary = None;
        let plane = self.plane.upgrade();
        if let Some(active) = plane.as_ref().and_then(|p| p.active()) {
            primary = Some(active.primary.id);
            out.push(active.primary.clone());
            if let Some(c) = &active.canary {
                canary = Some((c.generation.id, c.permille));
                out.push(c.generation.clone());
            }
        }
        let retained = self.retained.lock().unwrap_or_else(|p| p.into_inner());
        for generation in retained.iter().rev().filter_map(Weak::upgrade) {
            if !out.iter().any(|g| Arc::ptr_eq(g, &generation)) {
                out.push(generation);
            }
        }
        Exported {
            generations: out,
            canary,
            primary,
            stalled_responses: plane.map_or(0, |p| p.stalled_responses()),
        }
    }
}

impl Collector for PlaneCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Exported {
            generations,
            canary,
            primary,
            stalled_responses,
        } = self.generations();
        encode_requests(&mut encoder, &generations)?;
        encode_unrouted(&mut encoder, &generations)?;
        encode_latency(&mut encoder, &generations)?;
        encode_backend_states(&mut encoder, &generations)?;
        crate::tunnel_metrics::encode_tunnels(&mut encoder, &generations)?;
        crate::policy_metrics::encode_policy_refusals(&mut encoder, &generations)?;
        crate::policy_metrics::encode_redirects(&mut encoder, &generations)?;
        crate::policy_metrics::encode_compressed(&mut encoder, &generations)?;
        let mut stalled = encoder.encode_descriptor(
            names::STALLED_RESPONSES,
            "Client connections cut because a response body moved no byte for its body_idle_timeout: a backend that stopped sending, or a client that stopped reading.",
            None,
            MetricType::Counter,
        )?;
        stalled.encode_counter::<NoLabelSet, u64, u64>(&stalled_responses, None)?;
        crate::tls_metrics::encode(&mut encoder, self.plane.upgrade().as_deref(), &generations)?;
        // One small file read per scrape, and only where the kernel offers it.
        if let Some(overflows) = keel_proxy::listen::listen_overflows() {
            let mut metric = encoder.encode_descriptor(
                names::LISTEN_OVERFLOWS,
                "Connections the kernel dropped because a listen queue was full (TcpExt ListenOverflows, every listener of the network namespace, since boot).",
                None,
                MetricType::Counter,
            )?;
            metric.encode_counter::<NoLabelSet, u64, u64>(&overflows, None)?;
        }
        if let Some(plane) = self.plane.upgrade() {
            let connections = plane.client_connections();
            for (name, help, value) in [
                (
                    names::CLIENT_CONNECTIONS,
                    "Client connections open now (all listeners, plain and TLS, tunnels included).",
                    connections.open,
                ),
                (
                    names::PARKED_CONNECTIONS,
                    "HTTP/1 client connections waiting for a request head with none of hyper's buffers (parked between requests, or new).",
                    connections.parked,
                ),
            ] {
                let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                metric.encode_gauge(&i64::try_from(value).unwrap_or(i64::MAX))?;
            }
        }
        for (name, help, value) in [
            (
                names::ACTIVE_GENERATION,
                "Id of the generation serving every request outside the canary slice.",
                primary.unwrap_or(0),
            ),
            (
                names::CANARY_GENERATION,
                "Id of the canary generation; 0 without a canary.",
                canary.map_or(0, |c| c.0),
            ),
            (
                names::CANARY_PERMILLE,
                "Canary share of requests in thousandths; 0 without a canary.",
                canary.map_or(0, |c| u64::from(c.1)),
            ),
        ] {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            metric.encode_gauge(&i64::try_from(value).unwrap_or(i64::MAX))?;
        }
        Ok(())
    }
}

fn encode_requests(
    encoder: &mut DescriptorEncoder,
    generations: &[Arc<Generation>],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        names::REQUESTS,
        "Requests served, by generation, route, pool, backend and outcome class.",
        None,
        MetricType::Counter,
    )?;
    for generation in generations {
        let id = generation.id.to_string();
        for (route_id, route) in generation.stats.routes.iter().enumerate() {
            let compiled = generation.table.route(route_id);
            for (arm, backends) in route.targets.iter().enumerate() {
                let Some(pool) = compiled
                    .targets
                    .get(arm)
                    .and_then(|(p, _)| generation.pools.get(*p))
                else {
                    continue;
                };
                for (counters, backend) in backends.iter().zip(pool.backends.iter()) {
                    let addr = backend.addr.to_string();
                    for outcome in Outcome::ALL {
                        let count = counters.get(outcome);
                        if count == 0 {
                            continue;
                        }
                        let labels = [
                            ("generation", id.as_str()),
                            ("route", &*compiled.name),
                            ("pool", &*pool.name),
                            ("backend", addr.as_str()),
                            ("class", outcome.label()),
                        ];
                        metric
                            .encode_family(&labels)?
                            .encode_counter::<NoLabelSet, u64, u64>(&count, None)?;
                    }
                }
            }
            for outcome in Outcome::ALL {
                let count = route.unassigned.get(outcome);
                if count == 0 {
                    continue;
                }
                let labels = [
                    ("generation", id.as_str()),
                    ("route", &*compiled.name),
                    ("pool", ""),
                    ("backend", ""),
                    ("class", outcome.label()),
                ];
                metric
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&count, None)?;
            }
        }
    }
    Ok(())
}

/// Reads one counter of a generation's stats.
type CounterOf = fn(&GenerationStats) -> &AtomicU64;

/// The per-generation counters of requests that reached no route: unrouted (404) and
/// refused before routing (400, 501).
fn encode_unrouted(
    encoder: &mut DescriptorEncoder,
    generations: &[Arc<Generation>],
) -> Result<(), std::fmt::Error> {
    let counters: [(&str, &str, CounterOf); 2] = [
        (
            names::UNROUTED,
            "Requests no route matched (answered 404), by generation.",
            |stats| &stats.unrouted,
        ),
        (
            names::REFUSED,
            "Requests refused before routing: ambiguous, missing or malformed host, or CONNECT (answered 400 or 501), by generation.",
            |stats| &stats.refused,
        ),
    ];
    for (name, help, counter) in counters {
        let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for generation in generations {
            let id = generation.id.to_string();
            let count = counter(&generation.stats).load(Relaxed);
            metric
                .encode_family(&[("generation", id.as_str())])?
                .encode_counter::<NoLabelSet, u64, u64>(&count, None)?;
        }
    }
    Ok(())
}

fn encode_latency(
    encoder: &mut DescriptorEncoder,
    generations: &[Arc<Generation>],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        names::REQUEST_DURATION,
        "Time from request to response headers, by generation, route and target pool.",
        None,
        MetricType::Histogram,
    )?;
    for generation in generations {
        let id = generation.id.to_string();
        for (route_id, route) in generation.stats.routes.iter().enumerate() {
            let compiled = generation.table.route(route_id);
            for ((pool_id, _), histogram) in
                compiled.targets.iter().zip(route.target_latency.iter())
            {
                let counts = histogram.buckets();
                let count: u64 = counts.iter().sum();
                if count == 0 {
                    continue;
                }
                let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_MICROS
                    .iter()
                    .zip(counts.iter())
                    .map(|(bound, n)| {
                        let le = if *bound == u64::MAX {
                            f64::INFINITY
                        } else {
                            *bound as f64 / 1e6
                        };
                        (le, *n)
                    })
                    .collect();
                let sum = histogram.sum_micros() as f64 / 1e6;
                let pool = generation.pools.get(*pool_id).map_or("", |p| &*p.name);
                metric
                    .encode_family(&[
                        ("generation", id.as_str()),
                        ("route", &*compiled.name),
                        ("pool", pool),
                    ])?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
    }
    Ok(())
}

fn encode_backend_states(
    encoder: &mut DescriptorEncoder,
    generations: &[Arc<Generation>],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        names::BACKEND_STATE,
        "Backend state: 1 for the current state, 0 for the others.",
        None,
        MetricType::Gauge,
    )?;
    let mut seen: HashSet<*const keel_proxy::Backend> = HashSet::new();
    for generation in generations {
        for pool in generation.pools.iter() {
            for backend in pool.backends.iter() {
                if !seen.insert(Arc::as_ptr(backend)) {
                    continue;
                }
                let addr = backend.addr.to_string();
                let current = backend.state();
                for state in STATES {
                    metric
                        .encode_family(&[
                            ("pool", &*pool.name),
                            ("backend", addr.as_str()),
                            ("state", state.as_str()),
                        ])?
                        .encode_gauge(&i64::from(state == current))?;
                }
            }
        }
    }
    Ok(())
}
