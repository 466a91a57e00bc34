//! Live probes for `keel check --probe`: connect to every backend of every pool, run the
//! pool's health check, and verify the service identity the backend answers with.
//!
//! One probe is one HTTP/1.1 `GET` of the health path (`/` when the pool has no health
//! check) on a fresh connection, with `Host: <backend address>`, bounded by the pool's
//! health timeout (or [`DEFAULT_PROBE_TIMEOUT`]) for connect and answer together.
//! Verdicts, in order:
//! - **down**: no TCP connection, no HTTP answer in time, or (with a health check) an
//!   answer that is not `2xx`;
//! - **misidentified**: the service has an identity and the answer lacks the identity
//!   header or carries another value — the backend is some other application;
//! - **ok** otherwise.
//!
//! A misidentified backend outranks a failing health check: an answer from the wrong
//! application is the more dangerous finding. [`report`] turns rows into diagnostics
//! (K109, K210), a table and JSON, without I/O.

pub mod report;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use keel_config::{Config, HealthCheck, Identity, Span};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};

pub use report::{probe_diagnostics, render_table, rows_json};

/// Time one probe may take when its pool has no health check (2 seconds).
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Probes in flight at once, so a large config does not exhaust file descriptors (64).
pub const MAX_CONCURRENT_PROBES: usize = 64;
/// User agent of probe requests, so backends can tell probes from traffic.
const USER_AGENT: &str = "keel-check-probe";
/// Longest identity value kept from an answer (256 bytes).
const MAX_IDENTITY_LEN: usize = 256;

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

/// Probes one backend: connect, `GET` the health path, check status and identity, all
/// within `timeout`.
pub async fn probe_backend(
    addr: SocketAddr,
    health: Option<&HealthCheck>,
    identity: Option<&Identity>,
    timeout: Duration,
) -> ProbeOutcome {
    let deadline = Instant::now() + timeout;
    let stream = match timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return down(false, None, format!("cannot connect: {error}")),
        Err(_) => {
            return down(false, None, format!("no connection within {timeout:?}"));
        }
    };
    let path = health.map_or("/", |h| h.path.as_str());
    let answer = match timeout_at(deadline, exchange(stream, addr, path)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => return down(true, None, format!("no HTTP answer: {error}")),
        Err(_) => return down(true, None, format!("no answer within {timeout:?}")),
    };
    let status = answer.status.as_u16();
    let identity_seen = identity.and_then(|id| {
        answer.headers.get(id.header.as_str()).map(|value| {
            let text = String::from_utf8_lossy(value.as_bytes());
            text.chars().take(MAX_IDENTITY_LEN).collect()
        })
    });
    if let Some(id) = identity
        && identity_seen.as_deref() != Some(id.equals.as_str())
    {
        let detail = match &identity_seen {
            Some(seen) => format!("`{}: {seen}` instead of `{}`", id.header, id.equals),
            None => format!("no `{}` header (expected `{}`)", id.header, id.equals),
        };
        return ProbeOutcome {
            reachable: true,
            status: Some(status),
            identity_seen,
            verdict: Verdict::Misidentified,
            detail,
        };
    }
    if health.is_some() && !answer.status.is_success() {
        return ProbeOutcome {
            identity_seen,
            ..down(
                true,
                Some(status),
                format!("health check {path} answered {status}"),
            )
        };
    }
    ProbeOutcome {
        reachable: true,
        status: Some(status),
        identity_seen,
        verdict: Verdict::Ok,
        detail: format!("answered {status}"),
    }
}

/// Sends one `GET` on an open connection and returns the answer's head.
async fn exchange(
    stream: TcpStream,
    addr: SocketAddr,
    path: &str,
) -> Result<http::response::Parts, Box<dyn std::error::Error + Send + Sync>> {
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await?;
    // The connection task ends when the answer is read and `sender` dropped, or when the
    // caller's deadline drops this future and the handle aborts it.
    let driver = AbortOnDrop(tokio::spawn(connection));
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::USER_AGENT, USER_AGENT)
        .body(Empty::new())?;
    let response = sender.send_request(request).await?;
    drop(driver);
    Ok(response.into_parts().0)
}

struct AbortOnDrop(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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
            let permits = Arc::clone(&permits);
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let outcome =
                    probe_backend(addr, health.as_ref(), identity.as_ref(), timeout).await;
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
