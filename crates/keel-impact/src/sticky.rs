//! Sticky-session movement: for keyed requests on consistent-hash pools, does the key
//! land on the same backend under both configs?
//!
//! Each request part that goes from a hashing pool (old) to a hashing pool (new) is
//! looked up on both rings (built with [`keel_route::Ring`], the data plane's own
//! placement, assuming every backend healthy). It counts as changed when the backend
//! address differs, or when the pool hashes a different key (`cookie:cart_id` →
//! `header:x-user`: the sampled key value means nothing to the new ring, so every
//! session is reshuffled).

use std::collections::HashMap;

use keel_config::{Balance, Config};
use keel_route::{PoolId, RequestShape};

use crate::report::{Amount, StickyMovement, StickyPool, round};
use keel_route::Ring;

/// Accumulates sticky movement over a replay.
#[derive(Default)]
pub(crate) struct StickyTracker {
    old_rings: HashMap<PoolId, Ring>,
    new_rings: HashMap<PoolId, Ring>,
    /// (old pool, new pool) → (keyed requests, changed).
    pairs: HashMap<(PoolId, PoolId), (f64, f64)>,
    no_longer_sticky: f64,
    without_key: f64,
    seen: bool,
}

impl StickyTracker {
    /// Records `mass` of `request` going from `old_pool` to `new_pool`.
    pub(crate) fn record(
        &mut self,
        request: &RequestShape,
        (old, old_pool): (&Config, PoolId),
        (new, new_pool): (&Config, PoolId),
        mass: f64,
    ) {
        let Some((_, before)) = old.pools.get_index(old_pool) else {
            return;
        };
        let Balance::ConsistentHash(old_key) = &before.balance else {
            return;
        };
        let Some((_, after)) = new.pools.get_index(new_pool) else {
            return;
        };
        let Balance::ConsistentHash(new_key) = &after.balance else {
            if request.hash_key.is_some() {
                self.no_longer_sticky += mass;
                self.seen = true;
            }
            return;
        };
        self.seen = true;
        let Some(key) = &request.hash_key else {
            self.without_key += mass;
            return;
        };
        let changed = old_key != new_key || {
            let hash = Ring::hash_key(key.as_bytes());
            let old_ring = self
                .old_rings
                .entry(old_pool)
                .or_insert_with(|| Ring::of_pool(before));
            let was = old_ring
                .lookup(hash)
                .and_then(|i| before.backends.get(i))
                .map(|b| b.addr.value);
            let new_ring = self
                .new_rings
                .entry(new_pool)
                .or_insert_with(|| Ring::of_pool(after));
            let is = new_ring
                .lookup(hash)
                .and_then(|i| after.backends.get(i))
                .map(|b| b.addr.value);
            was != is
        };
        let pair = self.pairs.entry((old_pool, new_pool)).or_default();
        pair.0 += mass;
        if changed {
            pair.1 += mass;
        }
    }

    /// The summary; `None` when no sampled request hit a hashing pool in both configs.
    pub(crate) fn finish(self, old: &Config, new: &Config) -> Option<StickyMovement> {
        if !self.seen {
            return None;
        }
        let name = |config: &Config, id: PoolId| {
            config
                .pools
                .get_index(id)
                .map_or_else(String::new, |(n, _)| n.clone())
        };
        // Sorted by name before summing, so the totals do not depend on hash order.
        let mut raw: Vec<(String, String, f64, f64)> = self
            .pairs
            .iter()
            .map(|((from, to), (requests, changed))| {
                (name(old, *from), name(new, *to), *requests, *changed)
            })
            .collect();
        raw.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let requests: f64 = raw.iter().map(|r| r.2).sum();
        let changed: f64 = raw.iter().map(|r| r.3).sum();
        let mut pools: Vec<StickyPool> = raw
            .into_iter()
            .map(|(from_pool, to_pool, requests, changed)| StickyPool {
                from_pool,
                to_pool,
                requests: round(requests),
                changed: Amount::of(changed, requests),
            })
            .collect();
        pools.sort_by(|a, b| b.requests.total_cmp(&a.requests));
        Some(StickyMovement {
            requests: round(requests),
            changed: Amount::of(changed, requests),
            no_longer_sticky: round(self.no_longer_sticky),
            without_key: round(self.without_key),
            pools,
        })
    }
}
