//! `keel status`: open alerts first (alerts about a generation that serves now, raised
//! since it became active, each naming the generation it blames), then what serves,
//! since when, who applied it, what is kept for rollback, and how the backends are doing.
//!
//! Startup notes ("keel.toml became generation 1", a changed file, …) are reported while
//! the generation Keel started on still serves; once another serves they are summed up
//! in one line (the `startup` event in the store keeps them).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_proxy::BackendState;
use serde::{Deserialize, Serialize};

use crate::Controller;

/// Most open alerts `GET /status` lists (20); the rest are counted in `open_alerts_total`.
pub const MAX_STATUS_ALERTS: usize = 20;

/// The controller's state, as the admin API reports it (`GET /status`, documented once in
/// `docs/admin-api.md`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    /// Alerts about a generation that serves now (primary or canary) raised since it
    /// became active, newest first, at most [`MAX_STATUS_ALERTS`].
    #[serde(default)]
    pub open_alerts: Vec<OpenAlert>,
    /// How many such alerts there are in all.
    #[serde(default)]
    pub open_alerts_total: usize,
    /// The active generation (`None` only before the first apply).
    pub active: Option<ActiveStatus>,
    /// A canary generation and its share, if one runs.
    pub canary: Option<CanaryStatus>,
    /// The guarded apply being watched (a canary, or a full swap in its watch window).
    #[serde(default)]
    pub guard: Option<crate::guard::GuardStatus>,
    /// The active generation's last watch ran out of time without the evidence it waited
    /// for: it serves, but is not promoted known-good (`docs/detectors.md`).
    #[serde(default)]
    pub unproven: Option<crate::guard::UnprovenStatus>,
    /// Generations kept compiled for instant rollback, most recently replaced first.
    pub kept: Vec<KeptGeneration>,
    /// Backend health over the active generation's pools.
    pub health: HealthSummary,
    /// Whether the store has recorded everything that serves.
    pub store_in_sync: bool,
    /// The store's last unrecovered error.
    pub store_error: Option<String>,
    /// What startup found (file missing, broken or different), and similar notices.
    pub notes: Vec<String>,
    /// Seconds since the controller started.
    pub uptime_secs: u64,
    /// The process's descriptor limit and use (`None` where it cannot be read).
    #[serde(default)]
    pub descriptors: Option<crate::descriptors::Descriptors>,
    /// Client connections open now, and how many of them are parked (idle HTTP/1
    /// connections holding none of hyper's buffers).
    #[serde(default)]
    pub connections: keel_proxy::ClientConnections,
    /// Open tunnels (WebSockets) per generation that routed them, serving or not.
    #[serde(default)]
    pub tunnels: Vec<crate::tunnel_status::GenerationTunnels>,
}

/// The active generation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActiveStatus {
    /// Its number.
    pub id: u64,
    /// Who applied it.
    pub author: String,
    /// Why.
    pub message: String,
    /// What triggered it.
    pub origin: String,
    /// Whether it was forced over failing checks.
    pub forced: bool,
    /// Whether it is known-good.
    pub known_good: bool,
    /// When this process made it active (RFC 3339, UTC).
    pub active_since: String,
    /// Seconds it has been active.
    pub active_for_secs: u64,
    /// Requests it has served.
    pub requests: u64,
    /// Number of routes.
    pub routes: usize,
    /// Number of pools.
    pub pools: usize,
}

/// An alert about a generation that serves now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenAlert {
    /// The alert's number (as in `GET /alerts`).
    pub id: u64,
    /// When it was raised (RFC 3339, UTC).
    pub time: String,
    /// `share`, `errors`, `identity`, `latency`, `certificate` or `fleet_drift`.
    pub detector: String,
    /// `critical` or `warning`.
    pub severity: String,
    /// The generation the evidence comes from: the one it blames.
    pub generation: u64,
    /// `active` or `canary`: how the blamed generation serves now.
    pub serving: String,
    /// One sentence with the numbers.
    pub summary: String,
}

/// A canary slice.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CanaryStatus {
    /// The generation on trial.
    pub generation: u64,
    /// Its share of requests, in thousandths.
    pub permille: u32,
}

/// A generation kept for rollback.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeptGeneration {
    /// Its number.
    pub id: u64,
    /// Whether it is known-good (a default rollback target).
    pub known_good: bool,
    /// Who applied it.
    pub author: String,
    /// Why.
    pub message: String,
}

/// Backend health of the active generation.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HealthSummary {
    /// Backends in total.
    pub backends: usize,
    /// Backends that get traffic (healthy or not yet probed).
    pub serving: usize,
    /// Backends that get none (unhealthy, misidentified, ejected).
    pub out: usize,
    /// Per pool.
    pub pools: Vec<PoolHealth>,
}

/// One pool's backends.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PoolHealth {
    /// The pool.
    pub name: String,
    /// The service it serves.
    pub service: String,
    /// Its backends.
    pub backends: Vec<BackendHealth>,
}

/// One backend.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackendHealth {
    /// Its address.
    pub addr: String,
    /// `unknown`, `healthy`, `unhealthy`, `misidentified` or `ejected`.
    pub state: String,
    /// Requests in flight.
    pub in_flight: u32,
    /// Requests waiting for a slot under the pool's `max_connections` (HAProxy's
    /// `qcur`); absent from older nodes' answers.
    #[serde(default)]
    pub queued: u32,
    /// For a `misidentified` backend: the identity value it last answered with
    /// (`None`: no identity header at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_seen: Option<String>,
    /// For a `misidentified` backend: the service of this config whose identity that
    /// value is (the application it claims to be), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<String>,
}

impl Controller {
    /// The current status.
    pub fn status(&self) -> Status {
        let now = SystemTime::now();
        let active = self.active();
        let plane_active = self.plane().active();
        let health = plane_active
            .as_ref()
            .map(|a| health(&a.primary))
            .unwrap_or_default();
        let canary = plane_active.as_ref().and_then(|a| {
            a.canary.as_ref().map(|c| CanaryStatus {
                generation: c.generation.id,
                permille: c.permille,
            })
        });
        let store_error = self.store_error();
        let mut open_alerts = self.open_alerts(active.as_ref(), canary.as_ref());
        let open_alerts_total = open_alerts.len();
        open_alerts.truncate(MAX_STATUS_ALERTS);
        let notes = self.status_notes(active.as_ref().map(|a| a.id()));
        Status {
            open_alerts,
            open_alerts_total,
            active: active.map(|c| ActiveStatus {
                id: c.id(),
                author: c.meta.author.clone(),
                message: c.meta.message.clone(),
                origin: c.meta.origin.clone(),
                forced: c.meta.forced,
                known_good: c.known_good,
                active_since: keel_store::rfc3339(epoch_ms(c.activated_at)),
                active_for_secs: since(now, c.activated_at).as_secs(),
                requests: c.generation.stats.requests(),
                routes: c.generation.route_count(),
                pools: c.generation.pools.len(),
            }),
            canary,
            guard: self.guard_status(),
            unproven: self.unproven_status(),
            kept: self
                .kept()
                .iter()
                .map(|c| KeptGeneration {
                    id: c.id(),
                    known_good: c.known_good,
                    author: c.meta.author.clone(),
                    message: c.meta.message.clone(),
                })
                .collect(),
            health,
            store_in_sync: store_error.is_none(),
            store_error,
            notes,
            uptime_secs: since(now, self.inner.started_at).as_secs(),
            descriptors: crate::descriptors::descriptors(),
            connections: self.plane().client_connections(),
            tunnels: self.tunnel_status(),
        }
    }
}

impl Controller {
    /// Alerts about the serving generations since they became active, newest first.
    fn open_alerts(
        &self,
        active: Option<&crate::CachedGeneration>,
        canary: Option<&CanaryStatus>,
    ) -> Vec<OpenAlert> {
        let Some(watcher) = self.watcher() else {
            return Vec::new();
        };
        let mut serving: Vec<(u64, SystemTime, &str)> = Vec::new();
        if let Some(active) = active {
            serving.push((active.id(), active.activated_at, "active"));
        }
        if let Some(canary) = canary {
            // A canary generation is new: everything about it is about this slice.
            serving.push((canary.generation, UNIX_EPOCH, "canary"));
        }
        let mut alerts: Vec<OpenAlert> = serving
            .into_iter()
            .flat_map(|(id, since, role)| {
                watcher
                    .alerts()
                    .about(id, since)
                    .into_iter()
                    .map(move |alert| OpenAlert {
                        id: alert.id,
                        time: alert.time.clone(),
                        detector: alert.detector.as_str().to_string(),
                        severity: alert.severity.as_str().to_string(),
                        generation: alert.generation,
                        serving: role.to_string(),
                        summary: alert.summary,
                    })
            })
            .collect();
        alerts.sort_by_key(|a| std::cmp::Reverse(a.id));
        alerts
    }

    /// Startup notes while the generation Keel started on serves; one line after.
    fn status_notes(&self, active: Option<u64>) -> Vec<String> {
        let notes = self.notes();
        match self.startup_generation() {
            Some(started) if active.is_some_and(|a| a != started) && !notes.is_empty() => {
                vec![format!(
                    "Keel started on generation {started}; its {} startup note{} (`keel timeline`,                      event `startup`) no longer describe{} what serves",
                    notes.len(),
                    if notes.len() == 1 { "" } else { "s" },
                    if notes.len() == 1 { "s" } else { "" }
                )]
            }
            _ => notes,
        }
    }
}

fn health(generation: &keel_proxy::Generation) -> HealthSummary {
    let mut summary = HealthSummary::default();
    for (index, pool) in generation.pools.iter().enumerate() {
        let backends: Vec<BackendHealth> = pool
            .backends
            .iter()
            .map(|b| {
                let state = b.state();
                let identity_seen = (state == BackendState::Misidentified)
                    .then(|| b.identity_seen())
                    .flatten();
                let claims = identity_seen
                    .as_deref()
                    .and_then(|seen| claimed_service(generation, index, seen));
                summary.backends += 1;
                if matches!(state, BackendState::Unknown | BackendState::Healthy) {
                    summary.serving += 1;
                } else {
                    summary.out += 1;
                }
                BackendHealth {
                    addr: b.addr.to_string(),
                    state: state.as_str().to_string(),
                    in_flight: b.in_flight(),
                    queued: b.queued(),
                    identity_seen,
                    claims,
                }
            })
            .collect();
        summary.pools.push(PoolHealth {
            name: pool.name.to_string(),
            service: generation.pool_service(index).to_string(),
            backends,
        });
    }
    summary
}

/// The service whose identity (same header as `pool`'s service, same value) is `seen`:
/// the application a misidentified backend of `pool` claims to be.
fn claimed_service(generation: &keel_proxy::Generation, pool: usize, seen: &str) -> Option<String> {
    let services = &generation.config.services;
    let own = services.get(generation.pool_service(pool))?;
    let header = &own.identity.as_ref()?.value.header;
    services
        .values()
        .find(|service| {
            service
                .identity
                .as_ref()
                .is_some_and(|i| i.value.header == *header && i.value.equals == seen)
        })
        .map(|service| service.name.value.clone())
}

fn since(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or(Duration::ZERO)
}

fn epoch_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
