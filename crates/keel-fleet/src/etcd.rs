//! The etcd connection: one client per endpoint on a small runtime of its own, so that the
//! blocking [`keel_store::Store`] methods can wait for async etcd calls from any thread (a
//! blocking thread of the controller, or a runtime worker) without nesting runtimes.
//!
//! **Failover.** etcd-client's `Client::connect` with several endpoints puts them behind one
//! load-balanced gRPC channel (tower's power-of-two-choices balancer): requests are spread
//! over the endpoints, but a request that lands on a dead member fails ("tcp connect error")
//! and is not sent again elsewhere. So the store keeps one client per endpoint and runs each
//! call on the endpoint that answered last; when it fails with `StoreError::Unavailable` the
//! call runs again, from the start, on the next endpoint, round after round (with a pause)
//! until [`ETCD_FAILOVER_WITHIN`] has passed. A call is therefore re-run whole: its reads are
//! read again, and a transaction whose answer was lost is first looked for (see
//! [`crate::doubt::InDoubt`]) before anything is written again, so an apply is written once.
//!
//! Every attempt is bounded by [`ETCD_REQUEST_TIMEOUT`] plus a connection attempt.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use keel_store::StoreError;
use tokio::runtime::{Handle, Runtime};

/// Longest one etcd request (or transaction) may take before the call fails (2 seconds).
pub const ETCD_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a connection attempt to an endpoint may take (1 second).
pub const ETCD_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a store call keeps trying the other endpoints after an endpoint failed, so that
/// it rides through one member's death and the election that follows (5 seconds; etcd's
/// default election timeout is 1 s).
pub const ETCD_FAILOVER_WITHIN: Duration = Duration::from_secs(5);
/// Pause between two rounds over every endpoint (250 milliseconds).
pub const ETCD_FAILOVER_PAUSE: Duration = Duration::from_millis(250);

/// Connects to `endpoints` with Keel's timeouts.
pub async fn connect(endpoints: &[String]) -> Result<Client, etcd_client::Error> {
    let options = ConnectOptions::new()
        .with_connect_timeout(ETCD_CONNECT_TIMEOUT)
        .with_timeout(ETCD_REQUEST_TIMEOUT);
    Client::connect(endpoints, Some(options)).await
}

/// An etcd error as the store reports it.
pub(crate) fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("etcd: {error}"))
}

/// One endpoint and its lazily connected client.
struct Endpoint {
    url: String,
    client: tokio::sync::Mutex<Option<Client>>,
}

impl Endpoint {
    async fn client(&self) -> Result<Client, StoreError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let client = connect(std::slice::from_ref(&self.url))
            .await
            .map_err(unavailable)?;
        *slot = Some(client.clone());
        Ok(client)
    }
}

/// The fleet's etcd: one client per endpoint, the one that answered last tried first.
pub(crate) struct Etcd {
    runtime: Mutex<Option<Runtime>>,
    handle: Handle,
    endpoints: Arc<Vec<Endpoint>>,
    /// Index of the endpoint a call tries first: the last one that answered.
    preferred: Arc<AtomicUsize>,
}

impl Etcd {
    pub(crate) fn new(endpoints: Vec<String>) -> Result<Self, StoreError> {
        if endpoints.is_empty() {
            return Err(StoreError::InvalidInput(
                "fleet mode needs at least one etcd endpoint ([fleet] endpoints)".into(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("keel-fleet-etcd")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start the etcd runtime: {e}")))?;
        Ok(Etcd {
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            endpoints: Arc::new(
                endpoints
                    .into_iter()
                    .map(|url| Endpoint {
                        url,
                        client: tokio::sync::Mutex::new(None),
                    })
                    .collect(),
            ),
            preferred: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Runs `work` with a connected client and waits for it. An attempt that fails with
    /// `Unavailable` (or takes longer than [`ETCD_REQUEST_TIMEOUT`] plus a connection) is run
    /// again on the next endpoint until [`ETCD_FAILOVER_WITHIN`] has passed; the last error
    /// is returned then. `work` must be safe to run again: reads are, and a transaction
    /// guards itself with [`crate::doubt::InDoubt`].
    pub(crate) fn run<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(Client) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let endpoints = self.endpoints.clone();
        let preferred = self.preferred.clone();
        let (answer, answered) = std::sync::mpsc::channel();
        let attempt_bound = ETCD_REQUEST_TIMEOUT + ETCD_CONNECT_TIMEOUT;
        self.handle.spawn(async move {
            let result = with_failover(&endpoints, &preferred, attempt_bound, &work).await;
            let _ = answer.send(result);
        });
        let bound = ETCD_FAILOVER_WITHIN + attempt_bound;
        answered
            .recv_timeout(bound + Duration::from_millis(500))
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "etcd did not answer within {bound:?}"
                )))
            })
    }
}

/// The failover loop of [`Etcd::run`].
async fn with_failover<T, F, Fut>(
    endpoints: &[Endpoint],
    preferred: &AtomicUsize,
    attempt_bound: Duration,
    work: &F,
) -> Result<T, StoreError>
where
    F: Fn(Client) -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let started = Instant::now();
    let count = endpoints.len();
    let mut tried = 0usize;
    loop {
        let index = preferred.load(Ordering::Relaxed) % count;
        let endpoint = &endpoints[index];
        let attempt = async {
            let client = endpoint.client().await?;
            work(client).await
        };
        let error = match tokio::time::timeout(attempt_bound, attempt).await {
            Ok(Err(StoreError::Unavailable(why))) => why,
            Ok(other) => return other,
            Err(_) => format!(
                "etcd at {} did not answer within {attempt_bound:?}",
                endpoint.url
            ),
        };
        tried += 1;
        // The next call (and the next attempt of this one) starts at the next endpoint.
        let _ = preferred.compare_exchange(
            index,
            (index + 1) % count,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        let elapsed = started.elapsed();
        // One endpoint: no other to fail over to; several: until the failover window ends.
        if count == 1 || elapsed >= ETCD_FAILOVER_WITHIN {
            return Err(StoreError::Unavailable(if tried > 1 {
                format!(
                    "{error} (after {tried} attempts over {count} etcd endpoints in {elapsed:?})"
                )
            } else {
                error
            }));
        }
        tracing::debug!(endpoint = %endpoint.url, %error, "etcd call failed; trying the next endpoint");
        if tried.is_multiple_of(count) {
            tokio::time::sleep(ETCD_FAILOVER_PAUSE).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // The store may be dropped on an async thread, where a runtime must not block.
        if let Some(runtime) = self
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            runtime.shutdown_background();
        }
    }
}
