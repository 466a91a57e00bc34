//! Fleet mode: many Keel nodes share one history of generations through etcd (v3 API),
//! and each keeps a local SQLite copy so that it serves, and rolls back, without etcd.
//!
//! * [`FleetStore`]: the `keel_store::Store` of a fleet node. Every change is one etcd
//!   transaction with compare-and-swap on the fleet's active revision; the loser of a
//!   race gets `StoreError::Conflict` naming the generation that won.
//! * [`Node`]: membership by lease, the node's published [`NodeStatus`], and the watch
//!   that makes a node follow the fleet (through `keel_control::Controller::follow`, so
//!   only the control plane swaps) or report drift when it must not.
//! * [`open_store`], [`prepare`], [`join`]: how `keel serve` (and a test) becomes a node.
//! * The node canary (`[fleet] rollout`): a guarded apply is the fleet's candidate on
//!   its canary nodes first ([`RolloutState`] under `P/rollout`) and reaches the rest
//!   when they watched it clean; a canary's revert records the failure and the rest never
//!   move (`rollout.rs`).
//! * [`fleet_status`]: every live node's status and the rollout, for `keel status --fleet`.
//!
//! Design, key ownership and failure table: `docs/fleet.md`; key layout: [`keys`].

mod canary;
mod doubt;
mod etcd;
mod insert;
mod join;
pub mod keys;
mod local;
mod node;
mod ops;
mod rollout;
mod store;

pub use etcd::{
    ETCD_CONNECT_TIMEOUT, ETCD_FAILOVER_PAUSE, ETCD_FAILOVER_WITHIN, ETCD_REQUEST_TIMEOUT, connect,
};
pub use join::{join, node_config, open_store, prepare};
pub use local::{LOCAL_COPY_FILE_NAME, Served};
pub use node::{
    FLEET_DRIFT_EVENT, FLEET_FOLLOW_EVENT, NODE_LEASE_TTL_SECS, NODE_RECONNECT_EVERY, NODE_TICK,
    Node, NodeStatus, fleet_rollout, fleet_status,
};
pub use rollout::{
    CleanOutcome, FLEET_ROLLOUT_EVENT, ROLLOUT_ORIGIN, RolloutState, RolloutStep, choose_canaries,
    next_batch,
};
pub use store::{FleetStore, MAX_GENERATION_BYTES};
