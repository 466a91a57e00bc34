//! The `[fleet]` table: whether this node keeps its generations alone (SQLite, the default)
//! or shares them with other nodes through etcd, and which of a config's keys belong to the
//! node rather than to the fleet.
//!
//! The fleet's generation is the routing config (services, pools, routes, policies, safety,
//! tests, intents, ...). The node's own settings ([`NODE_KEYS`]: its listeners, its admin
//! API and `[fleet]` itself, plus the state directory given on the command line) come from
//! the node's own file and stay when a generation applied on another node arrives.

use std::time::Duration;

use crate::span::{Located, Span};

/// Top-level keys that belong to the node, not to the fleet: a generation from another node
/// never changes them (see `docs/fleet.md`).
pub const NODE_KEYS: &[&str] = &["listeners", "admin", "fleet"];

/// Where the generations live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FleetStoreKind {
    /// The embedded single-node store (`<state_dir>/keel.db`): no fleet.
    Sqlite,
    /// A shared etcd (v3 API): the node is a member of the fleet under `prefix`.
    Etcd,
}

/// How many nodes get a new generation after the first ones (`rollout.then`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutThen {
    /// Every remaining node at once.
    All,
    /// This many more nodes per step.
    Nodes(u32),
}

/// The node canary: `first` nodes take a new generation, are watched for `watch`, then the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollout {
    /// Nodes that take a new generation first.
    pub first: u32,
    /// Nodes per following step.
    pub then: RolloutThen,
    /// How long the first nodes' guards watch before the rest follow.
    pub watch: Duration,
}

/// The `[fleet]` table.
#[derive(Clone, Debug)]
pub struct Fleet {
    /// Where the generations live.
    pub store: FleetStoreKind,
    /// etcd client URLs (`http://host:port`).
    pub endpoints: Vec<Located<String>>,
    /// The key prefix of this fleet in etcd (several fleets may share one etcd).
    pub prefix: Located<String>,
    /// This node's name, if the file gives one (else the host name: [`Fleet::node_name`]).
    pub node: Option<Located<String>>,
    /// The node canary.
    pub rollout: Rollout,
    /// A node serving another generation than the fleet's for this long raises `fleet-drift`.
    pub drift_alert: Duration,
    /// The `[fleet]` table's span.
    pub span: Span,
}

impl Fleet {
    /// True when this node shares its generations through etcd.
    pub fn is_shared(&self) -> bool {
        self.store == FleetStoreKind::Etcd
    }

    /// The node's name: `node` when given, else the host name, else `"keel"`.
    pub fn node_name(&self) -> String {
        if let Some(node) = &self.node {
            return node.value.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "keel".to_string())
    }
}
