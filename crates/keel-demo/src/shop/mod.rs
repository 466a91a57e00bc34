//! The simulated shop: every backend of every service, started on loopback, addressable
//! by service and number, and switchable at runtime (unhealthy, failing, killed).
//!
//! ```text
//! Shop::start(ShopConfig)          binds 127.0.0.1:0 once per backend
//!   web-1..3  catalog-1..2  cart-1..3  checkout-1..2  legacy-web-1..3
//! shop.addrs(ServiceKind::Cart)    → where Keel's pools point
//! shop.set_healthy / set_failing / kill   → what the scenes do to it
//! ```
//!
//! Backends are numbered from 1, as in their names (`cart-1`); every method that takes a
//! backend number uses that numbering. Dropping the shop aborts every backend.

mod backend;
mod cart;
mod catalog;
mod config;
mod handlers;
mod latency;
mod service;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use backend::BackendState;

pub use backend::MAX_REQUEST_BUFFER;
pub use cart::{CartLine, MAX_CART_ID_LEN, MAX_CARTS_PER_BACKEND, MAX_LINES_PER_CART, MAX_QTY};
pub use catalog::{CATALOG_SIZE, Item, all_items, is_known_sku, item, sku_for};
pub use config::*;
pub use handlers::MAX_BODY_BYTES;
pub use latency::{DEFAULT_SIGMA, DEFAULT_TAIL_CAP, FLOOR_FRACTION, LatencyModel};
pub use service::{
    BACKEND_HEADER, CART_COOKIE, HEALTH_PATH, SERVICE_HEADER, SHOP_HOST, ServiceKind,
};

/// Why the shop could not start or could not find a backend.
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    /// A backend's loopback port could not be bound.
    #[error("could not bind a loopback port for {backend}: {source}")]
    Bind {
        /// The backend's name (`cart-2`).
        backend: String,
        /// The bind error.
        source: std::io::Error,
    },
    /// A fleet asked for zero backends or more than [`MAX_BACKENDS_PER_SERVICE`].
    #[error(
        "service {service} asks for {backends} backends; allowed: 1 to {MAX_BACKENDS_PER_SERVICE}"
    )]
    FleetSize {
        /// The service.
        service: ServiceKind,
        /// The number asked for.
        backends: u32,
    },
    /// A service was listed twice in [`ShopConfig::fleets`].
    #[error("service {0} is listed twice")]
    DuplicateFleet(ServiceKind),
    /// No backend `<service>-<number>` in this shop.
    #[error("no backend {service}-{number} in this shop")]
    NoSuchBackend {
        /// The service asked for.
        service: ServiceKind,
        /// The number asked for (1-based).
        number: u32,
    },
}

/// Where one backend listens and who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    /// Its service.
    pub service: ServiceKind,
    /// Its number within the service, from 1.
    pub number: u32,
    /// Its name, as sent in `x-backend` (`cart-2`).
    pub name: String,
    /// Its loopback address.
    pub addr: SocketAddr,
}

struct Backend {
    number: u32,
    addr: SocketAddr,
    state: Arc<BackendState>,
    /// The accept loop; `None` once killed.
    task: Mutex<Option<JoinHandle<()>>>,
}

/// The running shop. See the module documentation.
pub struct Shop {
    backends: Vec<Backend>,
}

impl Shop {
    /// Bind and start every backend of `config`. Must run inside a Tokio runtime.
    pub async fn start(config: ShopConfig) -> Result<Shop, ShopError> {
        let mut seen = Vec::new();
        for fleet in &config.fleets {
            if seen.contains(&fleet.service) {
                return Err(ShopError::DuplicateFleet(fleet.service));
            }
            seen.push(fleet.service);
            if !(1..=MAX_BACKENDS_PER_SERVICE).contains(&fleet.backends) {
                return Err(ShopError::FleetSize {
                    service: fleet.service,
                    backends: fleet.backends,
                });
            }
        }
        let mut shop = Shop {
            backends: Vec::new(),
        };
        for fleet in &config.fleets {
            for number in 1..=fleet.backends {
                let state = Arc::new(BackendState::new(fleet.service, number, fleet.latency));
                let bind = |source| ShopError::Bind {
                    backend: state.name.clone(),
                    source,
                };
                // On error `shop` drops here and aborts the backends already started.
                let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .await
                    .map_err(bind)?;
                let addr = listener.local_addr().map_err(bind)?;
                let task = tokio::spawn(backend::serve(listener, Arc::clone(&state)));
                tracing::debug!(backend = %state.name, %addr, "shop backend started");
                shop.backends.push(Backend {
                    number,
                    addr,
                    state,
                    task: Mutex::new(Some(task)),
                });
            }
        }
        Ok(shop)
    }

    /// Every backend, in start order.
    pub fn backends(&self) -> Vec<BackendInfo> {
        self.backends.iter().map(Backend::info).collect()
    }

    /// The addresses of `service`'s backends, by number (empty if the shop has none).
    pub fn addrs(&self, service: ServiceKind) -> Vec<SocketAddr> {
        self.backends
            .iter()
            .filter(|b| b.state.service == service)
            .map(|b| b.addr)
            .collect()
    }

    /// The address of backend `<service>-<number>`.
    pub fn addr(&self, service: ServiceKind, number: u32) -> Result<SocketAddr, ShopError> {
        Ok(self.find(service, number)?.addr)
    }

    /// Make `/healthz` of `<service>-<number>` answer 200 (`true`) or 503 (`false`).
    /// Its other answers do not change: a failing health check alone does not stop traffic.
    pub fn set_healthy(
        &self,
        service: ServiceKind,
        number: u32,
        healthy: bool,
    ) -> Result<(), ShopError> {
        let backend = self.find(service, number)?;
        backend.state.healthy.store(healthy, Ordering::Relaxed);
        Ok(())
    }

    /// Make every answer of `<service>-<number>` but `/healthz` a 500 (`true`) or normal again.
    pub fn set_failing(
        &self,
        service: ServiceKind,
        number: u32,
        failing: bool,
    ) -> Result<(), ShopError> {
        let backend = self.find(service, number)?;
        backend.state.failing.store(failing, Ordering::Relaxed);
        Ok(())
    }

    /// Stop `<service>-<number>` as a crash would: its port and every open connection to it
    /// are closed when this returns. Killing a dead backend does nothing.
    pub async fn kill(&self, service: ServiceKind, number: u32) -> Result<(), ShopError> {
        let backend = self.find(service, number)?;
        let task = backend
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
            // Cancelled is the expected outcome; awaiting makes sure the listener is gone.
            let _ = task.await;
            tracing::debug!(backend = %backend.state.name, "shop backend killed");
        }
        Ok(())
    }

    /// Whether `<service>-<number>` is still running (not killed).
    pub fn is_running(&self, service: ServiceKind, number: u32) -> Result<bool, ShopError> {
        let backend = self.find(service, number)?;
        let task = backend.task.lock().unwrap_or_else(|p| p.into_inner());
        Ok(task.as_ref().is_some_and(|t| !t.is_finished()))
    }

    /// Requests `<service>-<number>` has answered so far, `/healthz` included.
    pub fn served(&self, service: ServiceKind, number: u32) -> Result<u64, ShopError> {
        Ok(self
            .find(service, number)?
            .state
            .served
            .load(Ordering::Relaxed))
    }

    /// Carts `cart-<number>` holds in memory (0 for other services).
    pub fn carts_held(&self, service: ServiceKind, number: u32) -> Result<usize, ShopError> {
        Ok(self.find(service, number)?.state.carts.len())
    }

    /// Kill every backend and wait until all their ports are closed.
    pub async fn shutdown(self) {
        for backend in &self.backends {
            let _ = self.kill(backend.state.service, backend.number).await;
        }
    }

    fn find(&self, service: ServiceKind, number: u32) -> Result<&Backend, ShopError> {
        self.backends
            .iter()
            .find(|b| b.state.service == service && b.number == number)
            .ok_or(ShopError::NoSuchBackend { service, number })
    }
}

impl Backend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            service: self.state.service,
            number: self.number,
            name: self.state.name.clone(),
            addr: self.addr,
        }
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        for backend in &self.backends {
            if let Some(task) = backend
                .task
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                task.abort();
            }
        }
    }
}

impl std::fmt::Debug for Shop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.backends.iter().map(Backend::info))
            .finish()
    }
}
