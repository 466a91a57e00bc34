//! One compiled route: its conditions in the cheapest order to test, and its targets.

use std::sync::Arc;
use std::time::Duration;

use keel_config::{HostMatch, PathMatch};

use crate::methods::MethodSet;
use crate::request::RequestView;

/// Index of a route in its config (file order).
pub type RouteId = usize;
/// Index of a pool in its config (`Config::pools`).
pub type PoolId = usize;
/// Index of a service in its config (`Config::services`).
pub type ServiceId = usize;

/// A route ready to match.
#[derive(Clone, Debug)]
pub struct CompiledRoute {
    /// Its name.
    pub name: Arc<str>,
    /// The service that must answer; `None` for a fixed-answer route (`respond`), which
    /// Keel answers itself.
    pub service: Option<ServiceId>,
    /// Pools with their weights; zero-weight arms are kept for reporting. Empty for a
    /// fixed-answer route.
    pub targets: Box<[(PoolId, u32)]>,
    /// Deadline for response headers, all attempts together.
    pub timeout: Duration,
    /// Extra attempts for idempotent requests.
    pub retries: u32,
    pub(crate) host: Option<HostMatch>,
    pub(crate) path: Option<PathMatch>,
    pub(crate) methods: Option<MethodSet>,
    pub(crate) headers: Box<[(String, String)]>,
    /// The listeners the route is limited to; empty: any.
    pub(crate) listeners: Box<[Box<str>]>,
    total_weight: u32,
}

impl CompiledRoute {
    pub(crate) fn new(
        route: &keel_config::Route,
        service: Option<ServiceId>,
        targets: Vec<(PoolId, u32)>,
    ) -> Self {
        let total_weight = targets.iter().map(|(_, w)| *w).sum();
        Self {
            name: Arc::from(route.name.value.as_str()),
            service,
            targets: targets.into_boxed_slice(),
            timeout: route.timeout.value,
            retries: route.retries.value,
            host: route.host.as_ref().map(|h| h.value.clone()),
            path: route.path.as_ref().map(|p| p.value.clone()),
            methods: route
                .methods
                .as_ref()
                .map(|m| MethodSet::new(m.value.iter().map(String::as_str))),
            headers: route.headers.iter().map(|h| h.value.clone()).collect(),
            listeners: route
                .listeners
                .iter()
                .map(|l| l.value.as_str().into())
                .collect(),
            total_weight,
        }
    }

    /// True when the route matches, given the already normalized host.
    #[inline]
    pub(crate) fn matches<R: RequestView + ?Sized>(&self, request: &R, host: Option<&str>) -> bool {
        if !self.listeners.is_empty()
            && let Some(listener) = request.listener()
            && !self.listeners.iter().any(|l| &**l == listener)
        {
            return false;
        }
        if let Some(condition) = &self.host {
            let Some(host) = host else { return false };
            let ok = match condition {
                HostMatch::Exact(exact) => exact == host,
                HostMatch::Suffix(suffix) => {
                    host.len() > suffix.len() && host.ends_with(suffix.as_str())
                }
            };
            if !ok {
                return false;
            }
        }
        if let Some(methods) = &self.methods
            && !methods.contains(request.method())
        {
            return false;
        }
        if let Some(path) = &self.path {
            let p = request.path();
            let ok = match path {
                PathMatch::Exact(exact) => p == exact,
                PathMatch::Prefix(prefix) => p.starts_with(prefix.as_str()),
                PathMatch::Regex(regex) => regex.is_match(p),
            };
            if !ok {
                return false;
            }
        }
        self.headers
            .iter()
            .all(|(name, value)| request.header(name) == Some(value.as_str()))
    }

    /// The listeners the route is limited to (empty: any).
    pub fn listeners(&self) -> &[Box<str>] {
        &self.listeners
    }

    /// True for a fixed-answer route: no pool, Keel writes the answer.
    pub fn answers_itself(&self) -> bool {
        self.targets.is_empty()
    }

    /// Sum of the target weights.
    pub fn total_weight(&self) -> u32 {
        self.total_weight
    }

    /// The pool for a draw `roll` uniform in `0..total_weight()`; the first pool if the
    /// weights are all zero (the checker refuses such configs). A fixed-answer route has
    /// no pool: callers check [`Self::answers_itself`] first (pool 0 comes back here).
    #[inline]
    pub fn pick_pool(&self, roll: u32) -> PoolId {
        let Some(first) = self.targets.first() else {
            return 0;
        };
        if self.targets.len() == 1 || self.total_weight == 0 {
            return first.0;
        }
        let mut left = roll % self.total_weight;
        for (pool, weight) in self.targets.iter() {
            if left < *weight {
                return *pool;
            }
            left -= weight;
        }
        first.0
    }

    /// Each pool's expected share of the route's requests (weights normalized).
    pub fn shares(&self) -> impl Iterator<Item = (PoolId, f64)> + '_ {
        let total = f64::from(self.total_weight.max(1));
        self.targets
            .iter()
            .map(move |(pool, weight)| (*pool, f64::from(*weight) / total))
    }
}
