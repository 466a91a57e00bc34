//! What the fleet tests read back from etcd through a node's [`FleetStore`]: the fleet's
//! active generation and rollout record (and a wait for a rollout step), a generation's
//! record, and the fleet's events with the questions the tests ask of them.

use std::sync::Arc;
use std::time::Duration;

use keel_fleet::{FleetStore, RolloutState, RolloutStep};
use keel_store::{EventQuery, EventRecord, GenerationRecord, Store};

use super::TestNode;

/// The fleet's rollout record, read from etcd.
pub(crate) async fn rollout_of(store: &Arc<FleetStore>) -> Option<RolloutState> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.rollout())
        .await
        .expect("task")
        .expect("etcd answers")
}

/// The fleet's active generation, read from etcd.
pub(crate) async fn fleet_active(store: &Arc<FleetStore>) -> Option<u64> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.fleet_active())
        .await
        .expect("task")
        .expect("etcd answers")
        .map(|(id, _)| id)
}

/// Waits up to `within` for the fleet's rollout record to reach `step` (for `generation`,
/// when one is named), as read through `node`.
pub(crate) async fn rollout_reaches(
    node: &TestNode,
    within: Duration,
    generation: Option<u64>,
    step: RolloutStep,
) -> Option<RolloutState> {
    keel_testkit::eventually(within, || async {
        rollout_of(&node.store).await.filter(|r| {
            r.step == step && generation.is_none_or(|generation| r.generation == generation)
        })
    })
    .await
}

/// The generation record `id`, read from etcd through `node`.
pub(crate) async fn recorded(node: &TestNode, id: u64) -> GenerationRecord {
    let store = node.store.clone();
    tokio::task::spawn_blocking(move || store.generation(id))
        .await
        .expect("task")
        .expect("read")
        .expect("the generation")
}

/// The fleet's events of `kinds` (every kind when empty), read from etcd through `node`.
pub(crate) async fn events(node: &TestNode, kinds: &[&str]) -> Vec<EventRecord> {
    let store = node.store.clone();
    let query = EventQuery {
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        ..EventQuery::default()
    };
    tokio::task::spawn_blocking(move || store.events(query))
        .await
        .expect("task")
        .expect("etcd answers")
}

/// Whether `events` hold one of `kind` for `generation` written by `node`.
pub(crate) fn by(events: &[EventRecord], kind: &str, generation: u64, node: &str) -> bool {
    events.iter().any(|e| {
        e.kind == kind
            && e.generation == Some(generation)
            && e.details.get("node").and_then(|n| n.as_str()) == Some(node)
    })
}

/// Whether `node` recorded a rollback from `generation` (a rollback's event names the
/// generation it went to; the one it left is `details.from`).
pub(crate) fn rolled_back_by(events: &[EventRecord], generation: u64, node: &str) -> bool {
    events.iter().any(|e| {
        e.kind == "rollback"
            && e.details.get("from").and_then(serde_json::Value::as_u64) == Some(generation)
            && e.details.get("node").and_then(|n| n.as_str()) == Some(node)
    })
}
