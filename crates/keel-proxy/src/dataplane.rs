//! The data plane's shared state: the active generation behind an atomic pointer, the
//! registry that lets unchanged backends survive a swap, the traffic sample, the access
//! log and the event channel.
//!
//! `activate` and `set_canary` are one `ArcSwap::store` each: a request loads the
//! pointer once and is served wholly by the generation it saw.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use keel_config::{Config, HealthCheck, Identity, Outlier};
use keel_route::{CompileError, RouteTable};
use tokio::sync::broadcast;

use crate::access_log::AccessLog;
use crate::backend::Backend;
use crate::balance::Balancer;
use crate::connection_counts::{ClientConnections, ConnectionCounts};
use crate::events::ProxyEvent;
use crate::generation::{Generation, PoolRuntime, matched_headers, route_runtimes};
use crate::health;
use crate::sample::TrafficSample;
use crate::stats::GenerationStats;
use crate::tunnel::{TunnelOwners, Tunnels};
use crate::upstream::Upstream;

/// Events buffered for slow subscribers before the oldest are dropped (1,024 events).
const EVENT_BUFFER: usize = 1024;

/// What serves requests right now.
#[derive(Debug)]
pub struct Active {
    /// The generation that serves every request not in the canary slice.
    pub primary: Arc<Generation>,
    /// A candidate generation serving a slice of requests.
    pub canary: Option<Canary>,
}

/// A canary slice.
#[derive(Clone, Debug)]
pub struct Canary {
    /// The generation on trial.
    pub generation: Arc<Generation>,
    /// Its share of requests, in thousandths.
    pub permille: u32,
}

/// Process-wide data-plane settings, fixed at startup.
#[derive(Clone, Debug)]
pub struct DataPlaneOptions {
    /// Traffic sample capacity (0 disables it).
    pub sample_size: usize,
    /// Traffic sample window.
    pub sample_window: Duration,
    /// Access log destination: `None`, `"stdout"` or a file path.
    pub access_log: Option<String>,
    /// Whether responses carry `x-keel-generation`.
    pub generation_header: bool,
}

impl DataPlaneOptions {
    /// The settings a config asks for.
    pub fn from_config(config: &Config) -> Self {
        Self {
            sample_size: config.traffic.sample_size as usize,
            sample_window: config.traffic.window,
            access_log: config.access_log.path.clone(),
            generation_header: config.server.generation_header,
        }
    }
}

/// Everything that makes two backend definitions interchangeable at runtime.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct BackendKey {
    pool: String,
    addr: SocketAddr,
    weight: u32,
    identity: Option<Identity>,
    health: Option<HealthCheck>,
    outlier: Outlier,
    connect_timeout: Duration,
    max_idle: u32,
    idle_timeout: Duration,
    max_connections: u32,
    protocol: keel_config::UpstreamProtocol,
    max_streams: u32,
    tls: Option<keel_config::backend_tls::BackendTls>,
}

/// The data plane.
pub struct DataPlane {
    active: ArcSwapOption<Active>,
    backends: Mutex<HashMap<BackendKey, Weak<Backend>>>,
    pub(crate) sample: TrafficSample,
    pub(crate) access_log: Option<Arc<AccessLog>>,
    pub(crate) events: broadcast::Sender<ProxyEvent>,
    pub(crate) options: DataPlaneOptions,
    /// Client connections cut because a response body stopped moving.
    pub(crate) stalled_responses: AtomicU64,
    /// Client connections open and parked (see [`crate::connection_counts`]).
    pub(crate) connections: Arc<ConnectionCounts>,
    /// Generations that have opened tunnels (see [`crate::tunnel`]).
    pub(crate) tunnel_owners: TunnelOwners,
    /// ACME HTTP-01 answers Keel gives itself (see [`crate::acme_challenge`]).
    pub(crate) acme_challenges: crate::acme_challenge::AcmeChallenges,
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl DataPlane {
    /// A data plane with no generation yet (requests get 503 until one is activated).
    pub fn new(options: DataPlaneOptions) -> Result<Arc<Self>, std::io::Error> {
        let access_log = options
            .access_log
            .as_deref()
            .map(AccessLog::open)
            .transpose()?
            .map(Arc::new);
        Ok(Arc::new(Self {
            active: ArcSwapOption::empty(),
            backends: Mutex::new(HashMap::new()),
            sample: TrafficSample::new(options.sample_size, options.sample_window),
            access_log,
            events: broadcast::channel(EVENT_BUFFER).0,
            options,
            stalled_responses: AtomicU64::new(0),
            connections: Arc::default(),
            tunnel_owners: TunnelOwners::default(),
            acme_challenges: crate::acme_challenge::AcmeChallenges::default(),
        }))
    }

    /// The ACME HTTP-01 challenges this data plane answers on every listener.
    pub fn acme_challenges(&self) -> &crate::acme_challenge::AcmeChallenges {
        &self.acme_challenges
    }

    /// Client connections cut so far because a response body moved no byte for its
    /// `body_idle_timeout`: a backend that stopped sending, or a client that stopped
    /// reading.
    pub fn stalled_responses(&self) -> u64 {
        self.stalled_responses.load(Relaxed)
    }

    /// Client connections open now, and how many of them wait parked with none of
    /// hyper's buffers (see [`crate::connection_counts`]).
    pub fn client_connections(&self) -> ClientConnections {
        self.connections.snapshot()
    }

    /// The generations, serving or not, that have tunnels open now, oldest first: a
    /// generation swapped away from stays alive while its tunnels are open.
    pub fn tunnel_generations(&self) -> Vec<Arc<Generation>> {
        self.tunnel_owners.with_open_tunnels()
    }

    /// Compiles a config into a generation, reusing the runtime (health state, idle
    /// connections, ejections) of every backend whose definition did not change.
    pub fn compile(&self, id: u64, config: Arc<Config>) -> Result<Arc<Generation>, CompileError> {
        let table = RouteTable::compile(&config)?;
        let mut registry = self
            .backends
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        registry.retain(|_, backend| backend.strong_count() > 0);
        // Health checks run on the caller's runtime. Without one they cannot start, and
        // a checked backend that is never probed would never get traffic: treat the
        // pool as unchecked then (and say so).
        let can_probe = tokio::runtime::Handle::try_current().is_ok();
        let mut pools = Vec::with_capacity(config.pools.len());
        for (name, pool) in &config.pools {
            let (service, identity) = match config.services.get_full(pool.service.value.as_str()) {
                Some((index, _, service)) => {
                    (index, service.identity.as_ref().map(|i| i.value.clone()))
                }
                None => {
                    return Err(CompileError::UnknownService {
                        route: format!("pool {name}"),
                        service: pool.service.value.clone(),
                    });
                }
            };
            let pool_name: Arc<str> = Arc::from(name.as_str());
            let backends: Vec<Arc<Backend>> = pool
                .backends
                .iter()
                .map(|b| {
                    let key = BackendKey {
                        pool: name.clone(),
                        addr: b.addr.value,
                        weight: b.weight,
                        identity: identity.clone(),
                        health: pool.health.clone(),
                        outlier: pool.outlier.clone(),
                        connect_timeout: pool.connect_timeout.value,
                        max_idle: pool.max_idle_per_backend,
                        idle_timeout: pool.idle_timeout.value,
                        max_connections: pool.max_connections,
                        protocol: pool.protocol.value,
                        max_streams: pool.max_streams_per_connection,
                        tls: pool.tls.clone(),
                    };
                    if let Some(existing) = registry.get(&key).and_then(Weak::upgrade) {
                        return existing;
                    }
                    let upstream = Upstream::new(
                        b.addr.value,
                        pool.max_idle_per_backend,
                        pool.max_connections,
                        pool.connect_timeout.value,
                        pool.idle_timeout.value,
                    );
                    let tls = pool.tls.as_ref().map(|tls| {
                        crate::backend_tls::BackendTlsConnector::new(
                            tls,
                            pool.protocol.value == keel_config::UpstreamProtocol::H2,
                        )
                        .map_err(|error| {
                            tracing::error!(pool = %name, %error, "backend TLS settings unusable: its backends get no connections");
                            Arc::<str>::from(error.to_string())
                        })
                    });
                    let upstream = match &tls {
                        Some(tls) => upstream.with_tls(tls.clone()),
                        None => upstream,
                    };
                    let upstream = if pool.protocol.value.is_h2() {
                        upstream.with_h2(
                            pool.max_streams_per_connection,
                            pool.protocol.value == keel_config::UpstreamProtocol::H2,
                        )
                    } else {
                        upstream
                    };
                    let backend = Arc::new(Backend::new(
                        b.addr.value,
                        pool_name.clone(),
                        b.weight,
                        pool.outlier.clone(),
                        pool.health.is_some() && can_probe,
                        upstream,
                        self.events.clone(),
                    ));
                    if let Some(check) = &pool.health {
                        health::spawn(
                            &backend,
                            check.clone(),
                            identity.clone(),
                            pool.protocol.value,
                            tls.and_then(Result::ok),
                        );
                    }
                    registry.insert(key, Arc::downgrade(&backend));
                    backend
                })
                .collect();
            let hash_key = match &pool.balance {
                keel_config::Balance::ConsistentHash(key) => Some(key.clone()),
                _ => None,
            };
            let identity_header = identity.as_ref().and_then(|i| {
                Some((
                    http::HeaderName::from_bytes(i.header.as_bytes()).ok()?,
                    Arc::from(i.equals.as_str()),
                ))
            });
            pools.push(PoolRuntime {
                name: pool_name,
                service,
                balancer: Balancer::new(&pool.balance, &backends),
                backends: backends.into_boxed_slice(),
                hash_key,
                identity: identity_header,
            });
        }
        drop(registry);
        let backends_per_pool: Vec<usize> = pools.iter().map(|p| p.backends.len()).collect();
        Ok(Arc::new(Generation {
            id,
            stats: GenerationStats::new(&table, &backends_per_pool),
            tunnels: Tunnels::new(table.len(), &backends_per_pool),
            routes: route_runtimes(&config, &table),
            matched_headers: matched_headers(&config),
            header: HeaderValue::from(id),
            table,
            pools: pools.into_boxed_slice(),
            tls: crate::tls::GenerationTls::build(&config),
            config,
            compiled_at: SystemTime::now(),
        }))
    }

    /// Makes `generation` serve every request: one atomic swap, any canary cleared.
    pub fn activate(&self, generation: Arc<Generation>) {
        tracing::info!(generation = generation.id, "generation active");
        self.active.store(Some(Arc::new(Active {
            primary: generation,
            canary: None,
        })));
    }

    /// Starts, changes or ends a canary slice on top of the current primary.
    /// Does nothing before a primary exists.
    pub fn set_canary(&self, canary: Option<Canary>) {
        if let Some(current) = self.active.load_full() {
            self.active.store(Some(Arc::new(Active {
                primary: current.primary.clone(),
                canary,
            })));
        }
    }

    /// What serves now, if anything.
    pub fn active(&self) -> Option<Arc<Active>> {
        self.active.load_full()
    }

    /// Loads the active state for one request.
    #[inline]
    pub(crate) fn load(&self) -> arc_swap::Guard<Option<Arc<Active>>> {
        self.active.load()
    }

    /// Data-plane events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ProxyEvent> {
        self.events.subscribe()
    }

    /// The live traffic sample.
    pub fn sample(&self) -> &TrafficSample {
        &self.sample
    }

    /// Requests the access log had to drop because its writer fell behind.
    pub fn access_log_dropped(&self) -> u64 {
        self.access_log.as_deref().map_or(0, AccessLog::dropped)
    }
}
