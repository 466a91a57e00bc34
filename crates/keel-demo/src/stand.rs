//! Keel in front of the shop, in this process: the store in a state directory, the
//! controller, the data plane's listener and the admin API, both on `127.0.0.1:0`.
//!
//! ```text
//! bind 127.0.0.1:0 ×2 ─▶ keel-demo.toml from the real addresses ─▶ boot::prepare ─▶ Controller::start_guarded
//!   ├─ DataPlane::serve(listener)        what shoppers connect to
//!   ├─ admin::serve(admin socket)        what `keel status --admin …` talks to
//!   └─ record_proxy_events, run_known_good   as `keel serve` runs them
//! ```
//!
//! The controller is the guarded one `keel serve` runs: the blast-radius gate refuses
//! applies that move too much traffic, and every apply is watched by the detectors and
//! reverted by itself on an alarm. The sockets are bound before the config is written so the config says where Keel
//! really listens, and the playbook's commands and `--keep`'s instructions work as printed.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keel_control::Controller;
use keel_control::admin::{self, AdminState, AdminToken, TOKEN_FILE_NAME};
use keel_control::boot;
use keel_proxy::ListenerLimits;
use keel_store::{SqliteStore, Store};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::config::{CONFIG_FILE_NAME, DemoAddrs, good_config};
use crate::error::DemoError;
use crate::shop::Shop;

/// Keel, started in this process in front of a shop.
pub struct Stand {
    /// The control plane (apply, rollback, status, the store).
    pub controller: Controller,
    /// Where everything listens.
    pub addrs: DemoAddrs,
    /// The state directory: `keel.db`, `admin.token` and the config file.
    pub state_dir: PathBuf,
    /// The generation the good config became.
    pub first_generation: u64,
    /// The admin token (never printed: the instructions point at its file).
    pub token: AdminToken,
    stop: broadcast::Sender<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Stand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stand")
            .field("addrs", &self.addrs)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl Stand {
    /// Binds Keel's two sockets, writes the good config into `state_dir` and starts Keel,
    /// guarded, on it (it becomes generation 1 of a fresh store).
    pub async fn start(shop: &Shop, state_dir: &Path) -> Result<Stand, DemoError> {
        let listener_socket = bind_loopback("Keel's listener").await?;
        let admin_socket = bind_loopback("the admin API").await?;
        let addrs = DemoAddrs::new(
            shop,
            local_addr(&listener_socket, "Keel's listener")?,
            local_addr(&admin_socket, "the admin API")?,
        );
        let config_path = state_dir.join(CONFIG_FILE_NAME);
        std::fs::write(&config_path, good_config(&addrs)).map_err(|source| DemoError::Io {
            what: format!("cannot write {}", config_path.display()),
            source,
        })?;
        let store = SqliteStore::open(state_dir)?;
        let prepared = boot::prepare(&store, Some(&config_path))?;
        let token = AdminToken::load_or_create(state_dir)?;
        let store: Arc<dyn Store> = Arc::new(store);
        let (controller, report) = Controller::start_guarded(store, prepared).await?;

        let (stop, _) = broadcast::channel::<()>(1);
        let stopped = |stop: &broadcast::Sender<()>| {
            let mut receiver = stop.subscribe();
            async move {
                let _ = receiver.recv().await;
            }
        };
        let mut tasks = Vec::new();
        let state = AdminState {
            controller: controller.clone(),
            token: token.clone(),
        };
        let admin_stopped = stopped(&stop);
        tasks.push(tokio::spawn(async move {
            if let Err(error) = admin::serve(admin_socket, state, admin_stopped).await {
                tracing::warn!(%error, "the admin API ended with an error");
            }
        }));
        let limits = controller
            .active()
            .map(|a| ListenerLimits::from_server(&a.generation.config.server))
            .ok_or_else(|| DemoError::Setup("no generation is active after startup".into()))?;
        let plane = controller.plane().clone();
        let plane_stopped = stopped(&stop);
        tasks.push(tokio::spawn(async move {
            if let Err(error) = plane.serve(listener_socket, limits, plane_stopped).await {
                tracing::warn!(%error, "the listener ended with an error");
            }
        }));
        tasks.push(tokio::spawn(keel_control::record_proxy_events(
            controller.clone(),
            stopped(&stop),
        )));
        tasks.push(tokio::spawn(keel_control::run_known_good(
            controller.clone(),
            stopped(&stop),
        )));
        Ok(Stand {
            controller,
            addrs,
            state_dir: state_dir.to_owned(),
            first_generation: report.generation,
            token,
            stop,
            tasks,
        })
    }

    /// The admin API's URL (`http://127.0.0.1:PORT`).
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.addrs.admin)
    }

    /// The admin token's file.
    pub fn token_file(&self) -> PathBuf {
        self.state_dir.join(TOKEN_FILE_NAME)
    }

    /// The generation the data plane serves (its primary) right now.
    pub fn serving(&self) -> Option<u64> {
        self.controller.plane().active().map(|a| a.primary.id)
    }

    /// Stops the listener, the admin API and the background tasks, and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn bind_loopback(what: &str) -> Result<TcpListener, DemoError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|source| DemoError::Io {
            what: format!("cannot bind {what} on 127.0.0.1"),
            source,
        })
}

fn local_addr(socket: &TcpListener, what: &str) -> Result<SocketAddr, DemoError> {
    socket.local_addr().map_err(|source| DemoError::Io {
        what: format!("cannot read the address of {what}"),
        source,
    })
}
