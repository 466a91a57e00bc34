//! The etcd connection: a client on a small runtime of its own, so that the blocking
//! [`keel_store::Store`] methods can wait for async etcd calls from any thread (a blocking
//! thread of the controller, or a runtime worker) without nesting runtimes.
//!
//! Every call is bounded by [`ETCD_REQUEST_TIMEOUT`]; an etcd that cannot be reached makes
//! the call fail with `StoreError::Unavailable` (nothing is retried behind the caller's back).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use keel_store::StoreError;
use tokio::runtime::{Handle, Runtime};

/// Longest one etcd request (or transaction) may take before the call fails (2 seconds).
pub const ETCD_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a connection attempt to an endpoint may take (1 second).
pub const ETCD_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

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

/// A lazily connected client on its own runtime.
pub(crate) struct Etcd {
    runtime: Mutex<Option<Runtime>>,
    handle: Handle,
    endpoints: Vec<String>,
    client: Arc<tokio::sync::Mutex<Option<Client>>>,
}

impl Etcd {
    pub(crate) fn new(endpoints: Vec<String>) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("keel-fleet-etcd")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start the etcd runtime: {e}")))?;
        Ok(Etcd {
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            endpoints,
            client: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }

    /// Runs `work` with a connected client and waits for it, at most [`ETCD_REQUEST_TIMEOUT`]
    /// (plus a connection attempt).
    pub(crate) fn run<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let slot = self.client.clone();
        let endpoints = self.endpoints.clone();
        let (answer, answered) = std::sync::mpsc::channel();
        let bound = ETCD_REQUEST_TIMEOUT + ETCD_CONNECT_TIMEOUT;
        self.handle.spawn(async move {
            let result = tokio::time::timeout(bound, async move {
                let client = {
                    let mut slot = slot.lock().await;
                    match slot.as_ref() {
                        Some(client) => client.clone(),
                        None => {
                            let client = connect(&endpoints).await.map_err(unavailable)?;
                            *slot = Some(client.clone());
                            client
                        }
                    }
                };
                work(client).await
            })
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "etcd did not answer within {bound:?}"
                )))
            });
            let _ = answer.send(result);
        });
        answered
            .recv_timeout(bound + Duration::from_millis(500))
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "etcd did not answer within {bound:?}"
                )))
            })
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
