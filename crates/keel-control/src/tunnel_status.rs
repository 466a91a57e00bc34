//! The `tunnels` part of `/status`: per generation that has tunnels open (serving or
//! rolled back and kept or draining), how many, on which routes and backends.

use keel_proxy::Generation;
use serde::{Deserialize, Serialize};

use crate::Controller;

/// The open tunnels of one generation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenerationTunnels {
    /// The generation that routed them.
    pub generation: u64,
    /// Whether that generation still serves new requests (primary or canary).
    pub serving: bool,
    /// Tunnels open now.
    pub open: u64,
    /// Open tunnels per route (routes with none left out).
    pub routes: Vec<RouteTunnels>,
    /// Open tunnels per backend (backends with none left out).
    pub backends: Vec<BackendTunnels>,
    /// Tunnels closed because they were idle for their route's `tunnel_idle_timeout`.
    pub idle_closed: u64,
    /// Tunnels closed by a drain after a rollback.
    pub drained: u64,
}

/// Open tunnels on one route.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RouteTunnels {
    /// The route's name.
    pub route: String,
    /// Tunnels open now.
    pub open: u64,
}

/// Open tunnels to one backend.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackendTunnels {
    /// The backend's pool.
    pub pool: String,
    /// The backend's address.
    pub backend: String,
    /// Tunnels open now.
    pub open: u64,
}

impl Controller {
    /// Every generation with tunnels open, oldest first.
    pub(crate) fn tunnel_status(&self) -> Vec<GenerationTunnels> {
        let serving: Vec<u64> = self
            .plane()
            .active()
            .map(|active| {
                std::iter::once(active.primary.id)
                    .chain(active.canary.as_ref().map(|c| c.generation.id))
                    .collect()
            })
            .unwrap_or_default();
        self.plane()
            .tunnel_generations()
            .iter()
            .map(|generation| of(generation, serving.contains(&generation.id)))
            .collect()
    }
}

fn of(generation: &Generation, serving: bool) -> GenerationTunnels {
    let tunnels = &generation.tunnels;
    let routes = (0..generation.route_count())
        .filter_map(|route| {
            let open = tunnels.route(route)?.open();
            (open > 0).then(|| RouteTunnels {
                route: generation.table.route(route).name.to_string(),
                open,
            })
        })
        .collect();
    let backends = generation
        .pools
        .iter()
        .enumerate()
        .flat_map(|(pool_id, pool)| {
            pool.backends
                .iter()
                .enumerate()
                .filter_map(move |(index, backend)| {
                    let open = tunnels.backend(pool_id, index)?.open();
                    (open > 0).then(|| BackendTunnels {
                        pool: pool.name.to_string(),
                        backend: backend.addr.to_string(),
                        open,
                    })
                })
        })
        .collect();
    GenerationTunnels {
        generation: generation.id,
        serving,
        open: tunnels.total().open(),
        routes,
        backends,
        idle_closed: tunnels.idle_closed(),
        drained: tunnels.drained(),
    }
}
