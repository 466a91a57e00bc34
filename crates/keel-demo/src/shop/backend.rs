//! One simulated backend: its identity, its runtime switches, and its HTTP/1.1 accept loop.
//!
//! A backend is a hyper HTTP/1.1 server with keep-alive on its own loopback port. The
//! accept loop owns every connection task (a `JoinSet`), so aborting the loop — a
//! "kill" — closes the listening socket and every open connection at once, as a crashed
//! process would.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::cart::CartStore;
use super::handlers;
use super::latency::LatencyModel;
use super::service::ServiceKind;

/// Largest request head plus buffered body a backend reads (64 KiB).
pub const MAX_REQUEST_BUFFER: usize = 64 * 1024;
/// Pause after a failed `accept` (for example, out of file descriptors) before the next (50 ms).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Everything one backend knows about itself; shared by its connections and the [`Shop`](super::Shop).
#[derive(Debug)]
pub(crate) struct BackendState {
    pub(crate) service: ServiceKind,
    pub(crate) name: String,
    /// Prebuilt identity header values: no formatting per response.
    pub(crate) service_value: HeaderValue,
    pub(crate) backend_value: HeaderValue,
    pub(crate) latency: LatencyModel,
    /// `/healthz` answers 200 while set, 503 while cleared.
    pub(crate) healthy: AtomicBool,
    /// Every request but `/healthz` answers 500 while set.
    pub(crate) failing: AtomicBool,
    /// Requests answered, `/healthz` included.
    pub(crate) served: AtomicU64,
    /// Orders taken (checkout) — makes order ids unique per backend.
    pub(crate) orders: AtomicU64,
    pub(crate) carts: CartStore,
    /// The catalog listing, serialized once.
    pub(crate) catalog_json: Bytes,
}

impl BackendState {
    pub(crate) fn new(service: ServiceKind, number: u32, latency: LatencyModel) -> BackendState {
        let name = format!("{}-{number}", service.name());
        BackendState {
            service,
            service_value: HeaderValue::from_static(service.name()),
            // Service names and numbers are ASCII: this cannot fail, but stay total anyway.
            backend_value: HeaderValue::from_str(&name)
                .unwrap_or_else(|_| HeaderValue::from_static("unnamed")),
            name,
            latency,
            healthy: AtomicBool::new(true),
            failing: AtomicBool::new(false),
            served: AtomicU64::new(0),
            orders: AtomicU64::new(0),
            carts: CartStore::default(),
            catalog_json: handlers::catalog_listing(),
        }
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(crate) fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}

/// Accept and serve connections on `listener` until this future is dropped or aborted.
pub(crate) async fn serve(listener: TcpListener, state: Arc<BackendState>) {
    let mut http = http1::Builder::new();
    http.keep_alive(true).max_buf_size(MAX_REQUEST_BUFFER);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Small request/response exchanges: do not wait to coalesce.
                    let _ = stream.set_nodelay(true);
                    let state = Arc::clone(&state);
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move {
                            Ok::<_, Infallible>(handlers::handle(&state, request).await)
                        }
                    });
                    let connection = http.serve_connection(TokioIo::new(stream), service);
                    connections.spawn(async move {
                        // A peer that resets or sends garbage ends only its own connection.
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "shop backend connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, backend = %state.name, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The response body type of every backend.
pub(crate) type Body = Full<Bytes>;
