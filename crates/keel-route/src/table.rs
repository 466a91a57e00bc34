//! The routing table of one generation: routes in file order, indexed by host so a
//! lookup only tests routes that can match.
//!
//! Exact-host routes sit in a hash map keyed by host; wildcard and host-less routes in
//! one ordered fallback list. A lookup scans the request host's exact list and the
//! fallback list and keeps the earlier match: first match in file order wins, as the
//! config promises, without testing every route.

use std::collections::HashMap;

use keel_config::{Config, HostMatch};
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use crate::request::{MAX_HOST_LEN, RequestView, normalize_host};
use crate::route::{CompiledRoute, PoolId, RouteId};

/// Why a config could not be compiled into a routing table.
///
/// The checker reports these (with positions) before compile is ever reached; compile
/// still refuses rather than panics if handed an unchecked config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// A route names a pool that does not exist.
    #[error("route `{route}` sends to unknown pool `{pool}`")]
    UnknownPool {
        /// The route.
        route: String,
        /// The missing pool.
        pool: String,
    },
    /// A route names a service that does not exist.
    #[error("route `{route}` names unknown service `{service}`")]
    UnknownService {
        /// The route.
        route: String,
        /// The missing service.
        service: String,
    },
}

/// A compiled routing table.
#[derive(Clone, Debug)]
pub struct RouteTable {
    routes: Vec<CompiledRoute>,
    /// Routes by exact host. The hasher is unkeyed (xxh3): the map is built from the
    /// config and only looked up with client input, never grown by it, so there is no
    /// flooding to defend against, and SipHash cost more than the rest of a lookup.
    by_host: HashMap<Box<str>, Box<[u32]>, Xxh3DefaultBuilder>,
    fallback: Box<[u32]>,
    /// Some route looks at the host: without one, lookups skip reading and folding it.
    needs_host: bool,
}

impl RouteTable {
    /// Compiles the routes of a config.
    pub fn compile(config: &Config) -> Result<Self, CompileError> {
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut by_host: HashMap<Box<str>, Vec<u32>> = HashMap::new();
        let mut fallback = Vec::new();
        for (index, route) in config.routes.iter().enumerate() {
            let service = match route.service() {
                None => None,
                Some(service) => Some(
                    config
                        .services
                        .get_index_of(service.value.as_str())
                        .ok_or_else(|| CompileError::UnknownService {
                            route: route.name.value.clone(),
                            service: service.value.clone(),
                        })?,
                ),
            };
            let mut targets = Vec::new();
            for (pool, weight) in route.target_pools() {
                let id = config
                    .pools
                    .get_index_of(pool.value.as_str())
                    .ok_or_else(|| CompileError::UnknownPool {
                        route: route.name.value.clone(),
                        pool: pool.value.clone(),
                    })?;
                targets.push((id, weight));
            }
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            match route.host.as_ref().map(|h| &h.value) {
                Some(HostMatch::Exact(host)) => {
                    by_host.entry(host.as_str().into()).or_default().push(index)
                }
                _ => fallback.push(index),
            }
            routes.push(CompiledRoute::new(route, service, targets));
        }
        let needs_host = routes.iter().any(|r: &CompiledRoute| r.host.is_some());
        Ok(Self {
            routes,
            needs_host,
            by_host: by_host
                .into_iter()
                .map(|(k, v)| (k, v.into_boxed_slice()))
                .collect(),
            fallback: fallback.into_boxed_slice(),
        })
    }

    /// The first route, in file order, that matches the request.
    #[inline]
    pub fn find<R: RequestView + ?Sized>(&self, request: &R) -> Option<RouteId> {
        if !self.needs_host {
            return self
                .first_match(&self.fallback, u32::MAX, request, None)
                .map(|i| i as RouteId);
        }
        let mut buffer = [0u8; MAX_HOST_LEN];
        let host = request.host().and_then(|h| normalize_host(h, &mut buffer));
        let exact = host
            .and_then(|h| self.by_host.get(h))
            .and_then(|candidates| self.first_match(candidates, u32::MAX, request, host));
        let limit = exact.unwrap_or(u32::MAX);
        let fallback = self.first_match(&self.fallback, limit, request, host);
        fallback.or(exact).map(|i| i as RouteId)
    }

    fn first_match<R: RequestView + ?Sized>(
        &self,
        candidates: &[u32],
        before: u32,
        request: &R,
        host: Option<&str>,
    ) -> Option<u32> {
        candidates
            .iter()
            .take_while(|i| **i < before)
            .find(|i| self.routes[**i as usize].matches(request, host))
            .copied()
    }

    /// The route with this id.
    pub fn route(&self, id: RouteId) -> &CompiledRoute {
        &self.routes[id]
    }

    /// All routes in file order.
    pub fn routes(&self) -> &[CompiledRoute] {
        &self.routes
    }

    /// The route named `name`.
    pub fn route_id(&self, name: &str) -> Option<RouteId> {
        self.routes.iter().position(|r| &*r.name == name)
    }

    /// Whether a route's target includes the pool.
    pub fn route_uses_pool(&self, id: RouteId, pool: PoolId) -> bool {
        self.routes[id].targets.iter().any(|(p, _)| *p == pool)
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}
