//! The fleet's key layout in etcd, all under the fleet's `prefix`:
//!
//! | key | value | written by |
//! |---|---|---|
//! | `P/active` | the active generation's id (decimal) | every transaction that changes it |
//! | `P/seq` | the last generation id handed out (decimal) | every apply or rejection |
//! | `P/generations/<id, 20 digits>` | `GenerationRecord` as JSON (state, known-good mark, text) | apply, transitions |
//! | `P/events/<ms, 16 digits>-<node>-<nonce>` | `EventRecord` as JSON; its id is etcd's create revision | every transaction, `append_event` |
//! | `P/nodes/<node>` | `NodeStatus` as JSON, attached to the node's lease | each node, every status tick |
//! | `P/rollout` | `RolloutState` as JSON: the node canary in progress or the last one | an apply with a node canary, its promotion, its failure |
//!
//! Fixed-width numbers keep etcd's byte order equal to numeric order, so "newest first"
//! is a descending range read.

use keel_store::GenerationId;

/// Keys of one fleet.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (validated by keel-config: starts with `/`, no trailing `/`).
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    /// The active pointer.
    pub fn active(&self) -> String {
        format!("{}/active", self.prefix)
    }

    /// The node canary: the last rollout and its step.
    pub fn rollout(&self) -> String {
        format!("{}/rollout", self.prefix)
    }

    /// The generation id counter.
    pub fn seq(&self) -> String {
        format!("{}/seq", self.prefix)
    }

    /// One generation's record.
    pub fn generation(&self, id: GenerationId) -> String {
        format!("{}/generations/{id:020}", self.prefix)
    }

    /// The prefix of every generation record.
    pub fn generations(&self) -> String {
        format!("{}/generations/", self.prefix)
    }

    /// A new event's key.
    pub fn event(&self, time_ms: i64, node: &str) -> String {
        format!(
            "{}/events/{:016}-{node}-{:08x}",
            self.prefix,
            time_ms.max(0),
            nonce()
        )
    }

    /// The prefix of every event.
    pub fn events(&self) -> String {
        format!("{}/events/", self.prefix)
    }

    /// One node's membership and status key.
    pub fn node(&self, node: &str) -> String {
        format!("{}/nodes/{node}", self.prefix)
    }

    /// The prefix of every node's key.
    pub fn nodes(&self) -> String {
        format!("{}/nodes/", self.prefix)
    }
}

/// A per-process counter mixed with the time: two events of one node in one millisecond
/// get different keys.
fn nonce() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_keys_sort_like_their_ids() {
        let keys = Keys::new("/keel/shop");
        assert!(keys.generation(9) < keys.generation(10));
        assert!(keys.generation(10).starts_with(&keys.generations()));
        assert_ne!(keys.event(1, "a"), keys.event(1, "a"));
    }
}
