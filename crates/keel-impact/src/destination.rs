//! Where a request ends up under one config: a [`Destination`] (route, pool, service)
//! or a failure, and the expected-share distribution over destinations for a route.
//!
//! The service of a destination is the **pool's** service, not the route's declared
//! service: it is where the traffic actually lands. On March 15 the route still said
//! "web" while its pool was the legacy fleet; a report keyed on the route's service
//! would have shown no movement at all.

use std::collections::HashMap;

use keel_config::Config;
use keel_route::{PoolId, RouteId, RouteTable};
use serde::Serialize;

/// Route name of requests that no route matches.
pub const NO_ROUTE: &str = "<no route>";
/// Pool or service name when there is none.
pub const NONE: &str = "<none>";
/// Pool name of requests a fixed-answer route (`respond`) answers: Keel itself.
pub const FIXED_ANSWER: &str = "<fixed answer>";

/// Why a destination cannot serve a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// No route matches: the proxy answers 404.
    NoRoute,
    /// The pool has no backends, or every weight is 0: nothing can answer.
    EmptyPool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Failure::NoRoute => "no route",
            Failure::EmptyPool => "empty pool",
        })
    }
}

/// Where a request goes: names, so two configs compare by meaning, not by index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Destination {
    /// The matched route, or [`NO_ROUTE`].
    pub route: String,
    /// The chosen pool, or [`NONE`].
    pub pool: String,
    /// The pool's service (where the traffic lands), or [`NONE`].
    pub service: String,
    /// Set when requests sent here fail.
    pub failure: Option<Failure>,
}

impl Destination {
    /// The service that answers, `None` when requests sent here fail.
    pub fn landing_service(&self) -> Option<&str> {
        self.failure.is_none().then_some(self.service.as_str())
    }

    /// The destination without its route: where the traffic lands.
    pub fn landing(&self) -> Landing {
        Landing {
            pool: self.pool.clone(),
            service: self.service.clone(),
            failure: self.failure,
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.failure {
            Some(Failure::NoRoute) => f.write_str("<no route> (404)"),
            Some(Failure::EmptyPool) => write!(
                f,
                "{} / {} / {} (empty pool: fails)",
                self.route, self.pool, self.service
            ),
            None => write!(f, "{} / {} / {}", self.route, self.pool, self.service),
        }
    }
}

/// Where traffic lands, without the route that sent it: a pool and its service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Landing {
    /// The pool, or [`NONE`].
    pub pool: String,
    /// The pool's service, or [`NONE`].
    pub service: String,
    /// Set when requests landing here fail.
    pub failure: Option<Failure>,
}

impl std::fmt::Display for Landing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.failure {
            Some(Failure::NoRoute) => f.write_str("nowhere (no route matches: 404)"),
            Some(Failure::EmptyPool) => write!(
                f,
                "{} (pool {}, which has no backend with weight: requests fail)",
                self.service, self.pool
            ),
            None => write!(f, "{} (pool {})", self.service, self.pool),
        }
    }
}

/// Index of an interned [`Destination`], shared by both configs of a replay.
pub(crate) type DestId = u32;

/// A request's expected shares over destinations (they sum to 1).
pub(crate) type Distribution = Box<[(DestId, f64)]>;

/// Interns destinations and the grouping keys the movement math needs.
#[derive(Default)]
pub(crate) struct Destinations {
    pub(crate) list: Vec<Destination>,
    index: HashMap<Destination, DestId>,
    /// Per destination: interned (pool, failure) — "the same pool".
    pub(crate) pool_key: Vec<u32>,
    /// Per destination: interned landing service (`None` for failures).
    pub(crate) service_key: Vec<u32>,
    pools: HashMap<(String, Option<Failure>), u32>,
    pub(crate) services: Vec<Option<String>>,
    service_index: HashMap<Option<String>, u32>,
}

impl Destinations {
    pub(crate) fn intern(&mut self, destination: Destination) -> DestId {
        if let Some(id) = self.index.get(&destination) {
            return *id;
        }
        let id = DestId::try_from(self.list.len()).unwrap_or(DestId::MAX);
        let pool_key = (destination.pool.clone(), destination.failure);
        let next = u32::try_from(self.pools.len()).unwrap_or(u32::MAX);
        self.pool_key
            .push(*self.pools.entry(pool_key).or_insert(next));
        let service = self.service_id(destination.landing_service());
        self.service_key.push(service);
        self.index.insert(destination.clone(), id);
        self.list.push(destination);
        id
    }

    /// The interned id of a landing service (`None`: failing).
    pub(crate) fn service_id(&mut self, service: Option<&str>) -> u32 {
        let key = service.map(str::to_string);
        if let Some(id) = self.service_index.get(&key) {
            return *id;
        }
        let id = u32::try_from(self.services.len()).unwrap_or(u32::MAX);
        self.services.push(key.clone());
        self.service_index.insert(key, id);
        id
    }
}

/// One config with its compiled routing table, as the replay sees it.
#[derive(Clone, Copy, Debug)]
pub struct Compiled<'a> {
    /// The config.
    pub config: &'a Config,
    /// Its routing table, compiled from exactly that config.
    pub table: &'a RouteTable,
}

/// Resolves route matches of one config into destination distributions, once per route.
pub(crate) struct Resolver<'a> {
    pub(crate) side: Compiled<'a>,
    /// Per route id (and one last slot for "no route"): its distribution, once computed.
    cache: Vec<Option<Distribution>>,
    /// Per destination id: the pool id in this config, if the destination has a pool here.
    pub(crate) pool_of: HashMap<DestId, PoolId>,
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(side: Compiled<'a>) -> Self {
        Self {
            side,
            cache: vec![None; side.table.len() + 1],
            pool_of: HashMap::new(),
        }
    }

    /// The expected-share distribution of a request that matched `route`.
    pub(crate) fn distribution(
        &mut self,
        route: Option<RouteId>,
        destinations: &mut Destinations,
    ) -> &[(DestId, f64)] {
        let slot = route
            .unwrap_or(self.side.table.len())
            .min(self.side.table.len());
        if self.cache[slot].is_none() {
            let computed = self.compute(route, destinations);
            self.cache[slot] = Some(computed);
        }
        self.cache[slot].as_deref().unwrap_or(&[])
    }

    fn compute(&mut self, route: Option<RouteId>, destinations: &mut Destinations) -> Distribution {
        let Some(id) = route.filter(|id| *id < self.side.table.len()) else {
            let dest = Destination {
                route: NO_ROUTE.into(),
                pool: NONE.into(),
                service: NONE.into(),
                failure: Some(Failure::NoRoute),
            };
            return Box::new([(destinations.intern(dest), 1.0)]);
        };
        let route = self.side.table.route(id);
        if route.answers_itself() {
            // Keel answers: a landing of its own, so that a fixed answer or a redirect
            // taking over a service's traffic moves that traffic away from the service.
            let configured = self.side.config.routes.get(id);
            let service = match configured.and_then(|r| r.redirect()) {
                Some(redirect) => format!("keel (redirect {})", redirect.value.describe()),
                None => format!(
                    "keel (fixed answer {})",
                    configured
                        .and_then(|r| r.respond())
                        .map_or(0, |a| a.value.status.value)
                ),
            };
            let dest = Destination {
                route: route.name.to_string(),
                pool: FIXED_ANSWER.into(),
                service,
                failure: None,
            };
            return Box::new([(destinations.intern(dest), 1.0)]);
        }
        // Mirror `pick_pool`: all-zero weights send everything to the first arm.
        let arms: Vec<(PoolId, f64)> = if route.total_weight() == 0 {
            route
                .targets
                .first()
                .map(|(p, _)| (*p, 1.0))
                .into_iter()
                .collect()
        } else {
            route.shares().filter(|(_, share)| *share > 0.0).collect()
        };
        let mut out: Vec<(DestId, f64)> = Vec::with_capacity(arms.len().max(1));
        if arms.is_empty() {
            let dest = Destination {
                route: route.name.to_string(),
                pool: NONE.into(),
                service: NONE.into(),
                failure: Some(Failure::EmptyPool),
            };
            out.push((destinations.intern(dest), 1.0));
        }
        for (pool_id, share) in arms {
            let dest = match self.side.config.pools.get_index(pool_id) {
                Some((name, pool)) => Destination {
                    route: route.name.to_string(),
                    pool: name.clone(),
                    service: pool.service.value.clone(),
                    failure: pool
                        .backends
                        .iter()
                        .all(|b| b.weight == 0)
                        .then_some(Failure::EmptyPool),
                },
                None => Destination {
                    route: route.name.to_string(),
                    pool: NONE.into(),
                    service: NONE.into(),
                    failure: Some(Failure::EmptyPool),
                },
            };
            let has_pool = dest.pool != NONE;
            let dest_id = destinations.intern(dest);
            if has_pool {
                self.pool_of.insert(dest_id, pool_id);
            }
            match out.iter_mut().find(|(d, _)| *d == dest_id) {
                Some((_, existing)) => *existing += share,
                None => out.push((dest_id, share)),
            }
        }
        out.into_boxed_slice()
    }
}
