//! How a process becomes a fleet node: open the [`FleetStore`] its `[fleet]` table names,
//! decide what to serve first (the fleet's active generation with this node's own keys,
//! or, without etcd, the last generation the local copy holds), and after the controller
//! started, start the [`Node`] loop. `keel serve` and the in-process tests share this.

use std::path::Path;
use std::sync::Arc;

use keel_config::Config;
use keel_control::Controller;
use keel_control::boot::{self, BootError, Prepared};
use keel_store::{Store, StoreError};

use crate::node::Node;
use crate::store::FleetStore;

/// The node's own config, when its file's `[fleet]` table makes it a fleet node.
pub fn node_config(config_file: &Path) -> Option<Arc<Config>> {
    let text = std::fs::read_to_string(config_file).ok()?;
    let config = keel_config::parse(&text).config;
    config
        .fleet
        .as_ref()
        .is_some_and(keel_config::Fleet::is_shared)
        .then(|| Arc::new(config))
}

/// Opens the fleet store `node`'s `[fleet]` table names, with its local copy in `state_dir`.
pub fn open_store(node: &Config, state_dir: &Path) -> Result<Arc<FleetStore>, StoreError> {
    let Some(fleet) = node.fleet.as_ref().filter(|f| f.is_shared()) else {
        return Err(StoreError::InvalidInput(
            "the config has no `[fleet] store = \"etcd\"` table".into(),
        ));
    };
    let endpoints = fleet.endpoints.iter().map(|e| e.value.clone()).collect();
    Ok(Arc::new(
        FleetStore::open(
            endpoints,
            &fleet.prefix.value,
            &fleet.node_name(),
            state_dir,
        )?
        .with_rollout(fleet.rollout.clone()),
    ))
}

/// `boot::prepare_in` for a fleet node: the generation to serve first gets the node's own
/// listeners, admin API and `[fleet]` table, and its certificates come from the node's
/// pinned copies in `state_dir` (or from its files when they hold the pinned bytes).
pub fn prepare(
    store: &FleetStore,
    config_file: &Path,
    node: &Config,
    state_dir: &Path,
) -> Result<Prepared, BootError> {
    let store: &dyn Store = store;
    Ok(
        match boot::prepare_in(store, Some(config_file), Some(state_dir))? {
            Prepared::Restore {
                record,
                config,
                notes,
            } => Prepared::Restore {
                record,
                config: Arc::new(keel_check::fleet::with_node_keys(&config, node)),
                notes,
            },
            other => other,
        },
    )
}

/// After `Controller::start*`: the controller keeps this node's keys, the local copy
/// notes what it serves, and the node loop runs until `shutdown`.
pub fn join(
    controller: &Controller,
    store: Arc<FleetStore>,
    node: Arc<Config>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let Some(fleet) = node.fleet.clone() else {
        return tokio::spawn(async {});
    };
    controller.set_node_config(node);
    if let Some(active) = controller.active() {
        let store = store.clone();
        let id = active.id();
        // The revision of the fleet's pointer when it names what this node serves; else
        // 0 (a local copy served without etcd: the node follows any fleet change).
        let _ = std::thread::spawn(move || {
            let revision = match store.fleet_active() {
                Ok(Some((fleet_id, revision))) if fleet_id == id => revision,
                _ => 0,
            };
            if let Ok(Some(record)) = store.generation(id) {
                let _ = store.note_served(&record, revision);
            }
        })
        .join();
    }
    let endpoints = fleet.endpoints.iter().map(|e| e.value.clone()).collect();
    let node = Node::new(store, controller.clone(), endpoints, fleet.drift_alert);
    tokio::spawn(node.run(shutdown))
}
