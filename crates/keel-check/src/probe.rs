//! Live probes for `keel check --probe`: connect to every backend of every pool, run the
//! pool's health check, and verify the service identity the backend answers with.
//!
//! One probe is the data plane's own health probe (`keel_proxy::probe`): one `GET` of
//! the health path (`/` when the pool has no health check), or a
//! `grpc.health.v1.Health/Check` call when the pool's check is `kind = "grpc"`, on a
//! fresh connection in the pool's protocol, bounded by the pool's health timeout (or
//! [`DEFAULT_PROBE_TIMEOUT`]).
//! Verdicts:
//! - **misidentified**: the answer carries the identity header with another value, or a
//!   `2xx` answer lacks it — the backend is some other application;
//! - **down**: no TCP connection, no HTTP answer in time, or (with a health check) an
//!   answer that is not `2xx` (for a gRPC check: not `SERVING`);
//! - **ok** otherwise.
//!
//! [`report`] turns rows into diagnostics (K109, K210), a table and JSON, without I/O.

pub mod identities;
pub mod report;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keel_config::{Config, HealthCheck, Identity, Span};
use keel_proxy::probe::ProbeVerdict;
use tokio::sync::Semaphore;

pub use report::{probe_diagnostics, render_table, rows_json};

/// Time one probe may take when its pool has no health check (2 seconds).
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Probes in flight at once, so a large config does not exhaust file descriptors (64).
pub const MAX_CONCURRENT_PROBES: usize = 64;

/// What a probe concluded about a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Reachable, healthy, and (if the service has an identity) it.
    Ok,
    /// Unreachable, silent, or failing its health check.
    Down,
    /// Answering as another application.
    Misidentified,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "ok",
            Verdict::Down => "down",
            Verdict::Misidentified => "misidentified",
        })
    }
}

/// The result of probing one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// A TCP connection was made.
    pub reachable: bool,
    /// The HTTP status of the answer, if one came.
    pub status: Option<u16>,
    /// The value of the identity header in the answer, if the service has an identity
    /// and the header was present.
    pub identity_seen: Option<String>,
    /// The conclusion.
    pub verdict: Verdict,
    /// Why, in a few words (`connection refused`, `answered 503`, …).
    pub detail: String,
}

/// One backend of one pool, probed.
#[derive(Clone, Debug)]
pub struct ProbeRow {
    /// The pool.
    pub pool: String,
    /// The service the pool serves.
    pub service: String,
    /// The backend address.
    pub backend: SocketAddr,
    /// Where the backend is written in the config.
    pub span: Span,
    /// The identity the service declares, if any.
    pub expected_identity: Option<Identity>,
    /// What the probe found.
    pub outcome: ProbeOutcome,
}

fn down(reachable: bool, status: Option<u16>, detail: String) -> ProbeOutcome {
    ProbeOutcome {
        reachable,
        status,
        identity_seen: None,
        verdict: Verdict::Down,
        detail,
    }
}

/// Probes one backend with the data plane's own probe (`keel_proxy::probe`), so a
/// backend that passes `keel check --probe` passes the health checks of `keel serve`.
///
/// Without a health check the probe asks `/` and only the identity matters: any status
/// of a backend that proves who it is counts as ok.
pub async fn probe_backend(
    addr: SocketAddr,
    health: Option<&HealthCheck>,
    identity: Option<&Identity>,
    timeout: Duration,
) -> ProbeOutcome {
    probe_backend_over(&Transport::default(), addr, health, identity, timeout).await
}

/// How a pool's backends are spoken to: its `protocol`, and its `tls` (a client made
/// from its settings, or why none could be).
#[derive(Clone, Debug, Default)]
pub struct Transport {
    /// The pool's `protocol`.
    pub protocol: keel_config::UpstreamProtocol,
    /// The pool's TLS client, when it sets `tls`.
    pub tls: Option<Result<keel_proxy::backend_tls::BackendTlsConnector, String>>,
}

impl Transport {
    /// The transport of `pool`, as `keel serve` would build it.
    pub fn of(pool: &keel_config::Pool) -> Self {
        Self::of_parts(pool.protocol.value, pool.tls.as_ref())
    }

    /// The transport of a pool with this `protocol` and `tls`.
    pub fn of_parts(
        protocol: keel_config::UpstreamProtocol,
        tls: Option<&keel_config::backend_tls::BackendTls>,
    ) -> Self {
        Self {
            protocol,
            tls: tls.map(|tls| {
                keel_proxy::backend_tls::BackendTlsConnector::new(
                    tls,
                    protocol == keel_config::UpstreamProtocol::H2,
                )
                .map_err(|e| e.to_string())
            }),
        }
    }
}

/// [`probe_backend`] in a pool's protocol and through its TLS, as its health checks
/// probe it (an h2c pool whose backend does not speak HTTP/2 fails here).
pub async fn probe_backend_over(
    transport: &Transport,
    addr: SocketAddr,
    health: Option<&HealthCheck>,
    identity: Option<&Identity>,
    timeout: Duration,
) -> ProbeOutcome {
    let tls = match &transport.tls {
        Some(Ok(tls)) => Some(tls),
        Some(Err(reason)) => return down(false, None, format!("TLS settings unusable: {reason}")),
        None => None,
    };
    let seen = keel_proxy::probe::probe_backend_over(
        transport.protocol,
        tls,
        addr,
        keel_proxy::probe::ProbeTarget::of(health, "/"),
        identity,
        timeout,
    )
    .await;
    let identity_proven = match identity {
        Some(id) => seen.identity_seen.as_deref() == Some(id.equals.as_str()),
        None => true,
    };
    let verdict = match seen.verdict {
        ProbeVerdict::Ok => Verdict::Ok,
        ProbeVerdict::Misidentified => Verdict::Misidentified,
        ProbeVerdict::Down if health.is_none() && seen.status.is_some() && identity_proven => {
            Verdict::Ok
        }
        ProbeVerdict::Down => Verdict::Down,
    };
    ProbeOutcome {
        reachable: seen.reachable,
        status: seen.status,
        identity_seen: seen.identity_seen,
        verdict,
        detail: seen.detail,
    }
}

/// Probes every backend of every pool, at most [`MAX_CONCURRENT_PROBES`] at once.
/// Rows come in config order (pools, then backends).
pub async fn probe_config(config: &Config) -> Vec<ProbeRow> {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES));
    let mut tasks = tokio::task::JoinSet::new();
    let mut rows = Vec::new();
    for pool in config.pools.values() {
        let identity = config
            .services
            .get(pool.service.value.as_str())
            .and_then(|s| s.identity.as_ref())
            .map(|i| i.value.clone());
        let timeout = pool
            .health
            .as_ref()
            .map_or(DEFAULT_PROBE_TIMEOUT, |h| h.timeout);
        for backend in &pool.backends {
            let index = rows.len();
            rows.push(ProbeRow {
                pool: pool.name.value.clone(),
                service: pool.service.value.clone(),
                backend: backend.addr.value,
                span: backend.addr.span,
                expected_identity: identity.clone(),
                outcome: down(false, None, "not probed".into()),
            });
            let (health, identity, addr) =
                (pool.health.clone(), identity.clone(), backend.addr.value);
            let transport = Transport::of(pool);
            let permits = Arc::clone(&permits);
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let outcome = probe_backend_over(
                    &transport,
                    addr,
                    health.as_ref(),
                    identity.as_ref(),
                    timeout,
                )
                .await;
                (index, outcome)
            });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, outcome)) = joined
            && let Some(row) = rows.get_mut(index)
        {
            row.outcome = outcome;
        }
    }
    rows
}
