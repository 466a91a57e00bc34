//! Which earlier routes can take a route's requests at all, found through an index so
//! a 10,000-route table is not compared pairwise.
//!
//! Routes are bucketed twice. By host: exact-host routes by their host and by every
//! dot-suffix of it (so a wildcard route finds the exact hosts under it); wildcard and
//! host-less routes in one fallback bucket, as in `keel_route::RouteTable`. Within a
//! bucket, by the first path segment when the route's path fixes it (`/api/...`,
//! `/api` exactly, a regex starting with `/api/`): two routes whose paths fix different
//! first segments can match no common request.

use std::collections::HashMap;

use keel_config::Config;
use keel_route::RouteTable;

use super::pred::{HostPred, PathPred, Pred};

/// The first path segment every path of the route has, when the route fixes it.
fn segment_key<'a>(path: &'a PathPred<'_>) -> Option<&'a str> {
    let (text, whole) = match path {
        PathPred::Any => return None,
        PathPred::Exact(p) => (*p, true),
        PathPred::Prefix(p) => (*p, false),
        PathPred::Regex(r) => (r.prefix.as_str(), false),
    };
    let rest = text.strip_prefix('/')?;
    match rest.find('/') {
        Some(end) => Some(&rest[..end]),
        // `/api` exactly has first segment `api`; the prefix `/api` also matches `/apis`.
        None if whole => Some(rest),
        None => None,
    }
}

/// Route ids in file order, also split by first path segment.
#[derive(Default)]
struct Bucket<'c> {
    all: Vec<usize>,
    keyed: HashMap<&'c str, Vec<usize>>,
    unkeyed: Vec<usize>,
}

impl<'c> Bucket<'c> {
    fn push(&mut self, id: usize, key: Option<&'c str>) {
        self.all.push(id);
        match key {
            Some(key) => self.keyed.entry(key).or_default().push(id),
            None => self.unkeyed.push(id),
        }
    }

    /// Appends the ids before `before` that may share a first segment with `key`.
    fn earlier(&self, key: Option<&str>, before: usize, out: &mut Vec<usize>) {
        let take = |ids: &[usize], out: &mut Vec<usize>| {
            let end = ids.partition_point(|id| *id < before);
            out.extend_from_slice(&ids[..end]);
        };
        match key {
            Some(key) => {
                if let Some(ids) = self.keyed.get(key) {
                    take(ids, out);
                }
                take(&self.unkeyed, out);
            }
            None => take(&self.all, out),
        }
    }
}

/// The routes of one table, ready for shadow analysis.
pub(crate) struct Analyzer<'c> {
    /// Conditions of each route, by route id.
    pub(crate) preds: Vec<Pred<'c>>,
    /// The compiled table every witness is confirmed with.
    pub(crate) table: &'c RouteTable,
    by_host: HashMap<&'c str, Bucket<'c>>,
    by_suffix: HashMap<&'c str, Bucket<'c>>,
    fallback: Bucket<'c>,
    everything: Bucket<'c>,
}

impl<'c> Analyzer<'c> {
    /// Reads and indexes the routes of `config`, compiled as `table`.
    pub(crate) fn for_config(config: &'c Config, table: &'c RouteTable) -> Self {
        let preds: Vec<Pred<'c>> = config.routes.iter().map(Pred::from_route).collect();
        let mut by_host: HashMap<&'c str, Bucket<'c>> = HashMap::new();
        let mut by_suffix: HashMap<&'c str, Bucket<'c>> = HashMap::new();
        let mut fallback = Bucket::default();
        let mut everything = Bucket::default();
        for (id, (pred, route)) in preds.iter().zip(&config.routes).enumerate() {
            // Keys borrow from the config, not from `preds`, so they outlive this loop;
            // a regex's literal prefix is owned by its pred and is re-derived here.
            let key = route_key(route, pred);
            everything.push(id, key);
            match pred.host {
                HostPred::Exact(host) => {
                    by_host.entry(host).or_default().push(id, key);
                    // Every `.rest` with at least one character before it is a suffix a
                    // wildcard route could name.
                    for (at, _) in host.match_indices('.').filter(|(at, _)| *at > 0) {
                        by_suffix.entry(&host[at..]).or_default().push(id, key);
                    }
                }
                HostPred::Suffix(_) | HostPred::Any => fallback.push(id, key),
            }
        }
        Self {
            preds,
            table,
            by_host,
            by_suffix,
            fallback,
            everything,
        }
    }

    /// Routes before `before` (in file order) that may match a request `pred` matches.
    pub(crate) fn candidates(&self, pred: &Pred<'_>, before: usize) -> Vec<usize> {
        let key = segment_key(&pred.path);
        let mut ids = Vec::new();
        match pred.host {
            HostPred::Exact(host) => {
                if let Some(bucket) = self.by_host.get(host) {
                    bucket.earlier(key, before, &mut ids);
                }
                self.fallback.earlier(key, before, &mut ids);
            }
            HostPred::Suffix(suffix) => {
                if let Some(bucket) = self.by_suffix.get(suffix) {
                    bucket.earlier(key, before, &mut ids);
                }
                self.fallback.earlier(key, before, &mut ids);
            }
            HostPred::Any => self.everything.earlier(key, before, &mut ids),
        }
        ids.retain(|id| self.preds[*id].may_intersect(pred));
        ids.sort_unstable();
        ids
    }
}

impl Analyzer<'_> {
    /// The route the data plane picks for `request`, a request that route `route` (or,
    /// past the last route, a virtual one) matches, given `earlier`: every earlier route
    /// that may match it.
    ///
    /// When no route of `earlier` matches, nothing before `route` can, so `route` (or
    /// `None` past the last route) is the answer without a table lookup; that keeps
    /// configs with thousands of host-less routes fast, since the table scans those
    /// linearly. Otherwise `RouteTable::find` decides, so every shadowing witness is
    /// what the data plane does. Debug builds confirm the shortcut with `find` too.
    pub(crate) fn route_of(
        &self,
        request: &keel_route::RequestShape,
        earlier: &[usize],
        route: usize,
    ) -> Option<usize> {
        let own = (route < self.preds.len()).then_some(route);
        // A route limited to listeners is tried as a request on its first one, so that
        // the table passes over earlier routes limited to other listeners.
        let on_listener;
        let request = match self.preds.get(route).and_then(|p| p.listeners.first()) {
            Some(listener) if request.listener.is_none() => {
                on_listener = keel_route::RequestShape {
                    listener: Some((*listener).to_string()),
                    ..request.clone()
                };
                &on_listener
            }
            _ => request,
        };
        let mut buffer = [0u8; keel_route::MAX_HOST_LEN];
        let host = keel_route::RequestView::host(request)
            .and_then(|h| keel_route::normalize_host(h, &mut buffer));
        if earlier
            .iter()
            .any(|id| self.preds[*id].matches_with_host(request, host))
        {
            return self.table.find(request);
        }
        debug_assert_eq!(self.table.find(request), own, "{request}");
        own
    }
}

/// [`segment_key`] of a route, borrowed from the config.
fn route_key<'c>(route: &'c keel_config::Route, pred: &Pred<'_>) -> Option<&'c str> {
    use keel_config::PathMatch;
    let key = segment_key(&pred.path)?;
    let text: &'c str = match route.path.as_ref().map(|p| &p.value) {
        Some(PathMatch::Exact(p) | PathMatch::Prefix(p)) => p,
        // The regex source starts with its literal prefix unless the prefix came from
        // escapes or groups; then the key is not a slice of the source and is dropped,
        // which only costs pruning.
        Some(PathMatch::Regex(r)) => &r.source,
        None => return None,
    };
    let start = 1;
    text.get(start..start + key.len()).filter(|k| *k == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_keys_only_when_the_first_segment_is_fixed() {
        assert_eq!(segment_key(&PathPred::Prefix("/api/v2")), Some("api"));
        assert_eq!(segment_key(&PathPred::Prefix("/api")), None);
        assert_eq!(segment_key(&PathPred::Exact("/api")), Some("api"));
        assert_eq!(segment_key(&PathPred::Exact("/")), Some(""));
        assert_eq!(segment_key(&PathPred::Prefix("/")), None);
        assert_eq!(segment_key(&PathPred::Any), None);
    }
}
