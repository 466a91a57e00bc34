//! Which earlier routes can take a route's requests at all, found through a host index
//! so a 10,000-route table is not compared pairwise.
//!
//! Exact-host routes are bucketed by host and by every dot-suffix of their host (so a
//! wildcard route finds the exact hosts under it); wildcard and host-less routes sit in
//! one ordered fallback list, as in `keel_route::RouteTable`.

use std::collections::HashMap;

use keel_route::RouteTable;

use super::pred::{HostPred, Pred};

/// The routes of one table, ready for shadow analysis.
pub(crate) struct Analyzer<'c> {
    /// Conditions of each route, by route id.
    pub(crate) preds: Vec<Pred<'c>>,
    /// The compiled table every verdict is confirmed with.
    pub(crate) table: &'c RouteTable,
    by_host: HashMap<&'c str, Vec<usize>>,
    by_suffix: HashMap<&'c str, Vec<usize>>,
    fallback: Vec<usize>,
}

impl<'c> Analyzer<'c> {
    /// Indexes the routes.
    pub(crate) fn new(preds: Vec<Pred<'c>>, table: &'c RouteTable) -> Self {
        let mut by_host: HashMap<&'c str, Vec<usize>> = HashMap::new();
        let mut by_suffix: HashMap<&'c str, Vec<usize>> = HashMap::new();
        let mut fallback = Vec::new();
        for (id, pred) in preds.iter().enumerate() {
            match pred.host {
                HostPred::Exact(host) => {
                    by_host.entry(host).or_default().push(id);
                    // Every `.rest` with at least one character before it is a suffix a
                    // wildcard route could name.
                    for (at, _) in host.match_indices('.').filter(|(at, _)| *at > 0) {
                        by_suffix.entry(&host[at..]).or_default().push(id);
                    }
                }
                HostPred::Suffix(_) | HostPred::Any => fallback.push(id),
            }
        }
        Self {
            preds,
            table,
            by_host,
            by_suffix,
            fallback,
        }
    }

    /// Routes before `before` (in file order) that may match a request `pred` matches.
    pub(crate) fn candidates(&self, pred: &Pred<'_>, before: usize) -> Vec<usize> {
        let earlier = |ids: &[usize]| -> Vec<usize> {
            let end = ids.partition_point(|id| *id < before);
            ids[..end].to_vec()
        };
        let mut ids = match pred.host {
            HostPred::Exact(host) => {
                let mut ids = self.by_host.get(host).map_or_else(Vec::new, |v| earlier(v));
                ids.extend(earlier(&self.fallback));
                ids
            }
            HostPred::Suffix(suffix) => {
                let mut ids = self
                    .by_suffix
                    .get(suffix)
                    .map_or_else(Vec::new, |v| earlier(v));
                ids.extend(earlier(&self.fallback));
                ids
            }
            HostPred::Any => (0..before.min(self.preds.len())).collect(),
        };
        ids.retain(|id| self.preds[*id].may_intersect(pred));
        ids.sort_unstable();
        ids
    }
}
