//! What a generation's counters mean: route names, the host key each route's traffic
//! is counted under, and for every target arm the pool, the service that pool really
//! serves, and its backends. Computed once per generation, so detectors never touch
//! the config on a tick.
//!
//! The host key is an approximation the detectors document: the data plane counts per
//! route, not per request host, so a route with an exact host counts under that host,
//! a wildcard route under its pattern (`*.example.com`), and a route without a host
//! condition under `*`.

use std::net::SocketAddr;
use std::sync::Arc;

use keel_config::{HostMatch, PathMatch};
use keel_proxy::Generation;

/// Host key of routes without a host condition.
pub const ANY_HOST: &str = "*";

/// The meaning of one generation's counters.
#[derive(Debug)]
pub struct Shape {
    /// Per route, in file order (like the counters).
    pub routes: Box<[RouteShape]>,
}

/// One route.
#[derive(Debug)]
pub struct RouteShape {
    /// Its name.
    pub name: Arc<str>,
    /// The host key its traffic is counted under.
    pub host: String,
    /// Its path condition when it is a literal prefix or exact path.
    pub path: Option<String>,
    /// The service the route expects.
    pub service: String,
    /// Its target arms, in order.
    pub arms: Box<[ArmShape]>,
}

/// One target arm of a route.
#[derive(Debug)]
pub struct ArmShape {
    /// The pool.
    pub pool: Arc<str>,
    /// The service the pool declares: where the traffic really lands.
    pub service: String,
    /// Its configured weight.
    pub weight: u32,
    /// The pool's backends, in order.
    pub backends: Box<[SocketAddr]>,
}

impl Shape {
    /// The shape of a generation.
    pub fn of(generation: &Generation) -> Self {
        let config = &generation.config;
        let routes = generation
            .table
            .routes()
            .iter()
            .enumerate()
            .map(|(id, route)| {
                let source = config.routes.get(id);
                let host = match source.and_then(|r| r.host.as_ref()).map(|h| &h.value) {
                    Some(HostMatch::Exact(host)) => host.clone(),
                    Some(HostMatch::Suffix(suffix)) => format!("*{suffix}"),
                    None => ANY_HOST.to_string(),
                };
                let path = match source.and_then(|r| r.path.as_ref()).map(|p| &p.value) {
                    Some(PathMatch::Prefix(p) | PathMatch::Exact(p)) => Some(p.clone()),
                    _ => None,
                };
                let arms = route
                    .targets
                    .iter()
                    .map(|(pool, weight)| {
                        let runtime = generation.pools.get(*pool);
                        ArmShape {
                            pool: runtime.map_or_else(|| Arc::from("?"), |p| p.name.clone()),
                            service: if runtime.is_some() {
                                generation.pool_service(*pool).to_string()
                            } else {
                                String::new()
                            },
                            weight: *weight,
                            backends: runtime
                                .map(|p| p.backends.iter().map(|b| b.addr).collect())
                                .unwrap_or_default(),
                        }
                    })
                    .collect();
                RouteShape {
                    name: route.name.clone(),
                    host,
                    path,
                    service: config
                        .services
                        .get_index(route.service.unwrap_or(usize::MAX))
                        .map_or_else(String::new, |(name, _)| name.clone()),
                    arms,
                }
            })
            .collect();
        Self { routes }
    }

    /// Index of the route named `name`.
    pub fn route_id(&self, name: &str) -> Option<usize> {
        self.routes.iter().position(|r| &*r.name == name)
    }
}
