//! The node canary (`[fleet] rollout = { first, then, watch }`): a guarded apply reaches
//! `first` nodes before the rest of the fleet.
//!
//! * **Apply** (`FleetStore::record_apply`, one transaction with CAS on the active pointer
//!   as always): the generation is recorded `pending` (stamped as served: it serves on
//!   the canary) and `P/rollout` names it the fleet's *candidate* with its canary nodes
//!   ([`choose_canaries`]: the applying node, then the first `first - 1` other live nodes
//!   by name). `P/active` does not move, so no other node follows yet.
//! * **Canary**: the applying node swaps and its guard watches the change as after any
//!   apply; other canary nodes follow the candidate with a guarded follow
//!   (`Controller::follow_watched`). Each canary node that still serves the candidate once
//!   `watch` has passed and its guard no longer watches it records itself clean
//!   ([`FleetStore::rollout_clean`]); the last one promotes: one transaction moves
//!   `P/active` (keel-store's `promote` plan), and every other node follows.
//! * **Failure**: a canary's guard (or an operator) rolls the candidate back; that rollback's
//!   own transaction marks the rollout `failed` (`store.rs`), so the rest never move. A
//!   pointer move by anything else during the rollout (an operator's fleet rollback)
//!   marks it `abandoned`. While a rollout runs and one of its canary nodes is alive,
//!   other applies are refused (`Conflict`); once none is alive, the next apply takes over.
//!
//! * **Steps** (`then` a number N): when every canary so far is clean, the last one does not
//!   promote while live nodes remain that never had the candidate: it adds the next N of
//!   them by name ([`next_batch`]) to the canaries and restarts the watch; they follow the
//!   candidate with their guards like any canary node. The last step's clean promotes. A
//!   revert on any of them fails the rollout, and the nodes that served the candidate go
//!   back to the fleet's active generation (`node.rs`). With `"all"` the promotion moves
//!   every other node at once.

use keel_store::transition::{self, Snapshot};
use keel_store::{GenerationId, NewEvent, StoreError, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::doubt::InDoubt;
use crate::ops::{self, apply_updates, put_json, unchanged};
use crate::store::FleetStore;

/// Event kind of a node canary's steps (started, a canary clean, promoted, failed).
pub const FLEET_ROLLOUT_EVENT: &str = "fleet-rollout";
/// Origin recorded when the node canary promotes a generation to the fleet.
pub const ROLLOUT_ORIGIN: &str = "fleet-rollout";

/// Where a rollout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStep {
    /// The canary nodes serve the candidate and watch it; the rest serve the active one.
    Canary,
    /// The canaries watched it clean: it is the fleet's active generation.
    Promoted,
    /// A canary rolled it back: the rest never moved.
    Failed,
    /// The fleet moved under it (a rollback of the fleet, or an apply after its canary
    /// nodes left).
    Abandoned,
}

impl RolloutStep {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutStep::Canary => "canary",
            RolloutStep::Promoted => "promoted",
            RolloutStep::Failed => "failed",
            RolloutStep::Abandoned => "abandoned",
        }
    }
}

/// `P/rollout`: the fleet's candidate and its canary, or the last rollout's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutState {
    /// The candidate generation.
    pub generation: GenerationId,
    /// The fleet's active generation when it was applied (what the rest keep serving).
    pub previous: Option<GenerationId>,
    /// The node that applied it.
    pub by: String,
    /// The nodes that serve it first.
    pub canaries: Vec<String>,
    /// Canary nodes whose watch ended clean.
    pub clean: Vec<String>,
    /// Where it stands.
    pub step: RolloutStep,
    /// When it was applied (ms since the Unix epoch).
    pub started_ms: i64,
    /// How long the canaries watch it before the rest follow (ms).
    pub watch_ms: u64,
    /// Why it failed or was abandoned.
    #[serde(default)]
    pub reason: Option<String>,
    /// When it last changed (ms since the Unix epoch).
    pub updated_ms: i64,
    /// `rollout.then` as a number: after the first canaries, this many more nodes per step,
    /// each step watched for `watch` (`None`: `"all"`, the rest follow the promotion at once).
    #[serde(default)]
    pub batch: Option<u32>,
    /// When the current step's watch began (ms since the Unix epoch; `None`: `started_ms`).
    #[serde(default)]
    pub step_started_ms: Option<i64>,
}

impl RolloutState {
    /// The canaries still serve and watch it.
    pub fn in_progress(&self) -> bool {
        self.step == RolloutStep::Canary
    }

    /// Whether `node` is one of its canaries.
    pub fn is_canary(&self, node: &str) -> bool {
        self.canaries.iter().any(|n| n == node)
    }

    /// When the current step's watch ends (ms since the Unix epoch).
    pub fn watch_ends_ms(&self) -> i64 {
        self.step_started_ms
            .unwrap_or(self.started_ms)
            .saturating_add(i64::try_from(self.watch_ms).unwrap_or(i64::MAX))
    }
}

/// The canary nodes of an apply on `applier`: itself, then the first `first - 1` other
/// `live` nodes by name. `None` when there is no canary step: `first` is 0, or the canary
/// would be every live node (nothing would be held back).
pub fn choose_canaries(applier: &str, live: &[String], first: u32) -> Option<Vec<String>> {
    let first = usize::try_from(first).unwrap_or(usize::MAX);
    if first == 0 {
        return None;
    }
    let mut others: Vec<&String> = live.iter().filter(|n| *n != applier).collect();
    others.sort();
    let fleet = others.len() + 1;
    if first >= fleet {
        return None;
    }
    let mut canaries = vec![applier.to_string()];
    canaries.extend(others.into_iter().take(first - 1).cloned());
    Some(canaries)
}

/// The next step of a rollout in batches: up to `batch` `live` nodes that are not yet among
/// its `canaries`, by name (empty: every live node had it; the next clean one promotes).
pub fn next_batch(canaries: &[String], live: &[String], batch: u32) -> Vec<String> {
    let mut rest: Vec<&String> = live.iter().filter(|n| !canaries.contains(n)).collect();
    rest.sort();
    rest.into_iter()
        .take(usize::try_from(batch).unwrap_or(usize::MAX))
        .cloned()
        .collect()
}

/// What [`FleetStore::rollout_clean`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CleanOutcome {
    /// This node was the last canary: the candidate is the fleet's active generation.
    Promoted(GenerationId),
    /// This node is counted clean; other canaries still watch.
    Counted,
    /// Every canary so far is clean and `rollout.then` is a number: these nodes are the
    /// next step's canaries, watched from now.
    NextBatch(Vec<String>),
    /// No rollout of that generation is in progress (any more).
    NotInProgress,
    /// Something changed between the read and the write: try again on the next tick.
    Raced,
}

impl FleetStore {
    /// The rollout record, if any (from etcd).
    pub fn rollout(&self) -> Result<Option<RolloutState>, StoreError> {
        let key = self.keys.rollout();
        let (state, _) = self.etcd.run(move |mut c| {
            let key = key.clone();
            async move { ops::rollout(&mut c, &key).await }
        })?;
        Ok(state)
    }

    /// This canary node watched `generation` clean. One transaction: it is counted, and
    /// when it is the last canary the candidate becomes the fleet's active generation
    /// (or, if the fleet moved under the rollout, the rollout is abandoned).
    pub fn rollout_clean(&self, generation: GenerationId) -> Result<CleanOutcome, StoreError> {
        let keys = self.keys.clone();
        let node = self.node.clone();
        let doubt = InDoubt::<(CleanOutcome, Vec<keel_store::GenerationRecord>)>::new();
        let outcome = self.etcd.run(move |mut c| {
            let (keys, node, doubt) = (keys.clone(), node.clone(), doubt.clone());
            async move {
            if let Some(((result, touched), revision)) = doubt.committed(&mut c).await? {
                return Ok((result, Some(revision), touched));
            }
            let (rollout, rollout_rev) = ops::rollout(&mut c, &keys.rollout()).await?;
            let Some(mut rollout) =
                rollout.filter(|r| r.in_progress() && r.generation == generation)
            else {
                return Ok((CleanOutcome::NotInProgress, None, Vec::new()));
            };
            let (active_id, active_rev) = ops::pointer(&mut c, &keys.active()).await?;
            let now = now_ms();
            if !rollout.clean.contains(&node) {
                rollout.clean.push(node.clone());
            }
            let mut compares = vec![
                unchanged(&keys.rollout(), rollout_rev),
                unchanged(&keys.active(), active_rev),
            ];
            let mut puts = Vec::new();
            let mut touched = Vec::new();
            let all_clean = rollout.canaries.iter().all(|n| rollout.clean.contains(n));
            let counted = format!(
                "node {node} watched generation {generation} clean ({} of {} canaries)",
                rollout.clean.len(),
                rollout.canaries.len()
            );
            let next = match rollout.batch {
                Some(batch) if all_clean && active_id == rollout.previous => {
                    let live = ops::live_nodes(&mut c, &keys.nodes()).await?;
                    next_batch(&rollout.canaries, &live, batch)
                }
                _ => Vec::new(),
            };
            let (event, result) = if !all_clean {
                let event = NewEvent::new(FLEET_ROLLOUT_EVENT, counted).generation(generation);
                (event, CleanOutcome::Counted)
            } else if active_id != rollout.previous {
                rollout.step = RolloutStep::Abandoned;
                let reason = format!(
                    "the fleet moved to generation {} during the canary of generation {generation}",
                    active_id.map_or_else(|| "none".to_string(), |a| a.to_string())
                );
                rollout.reason = Some(reason.clone());
                let event = NewEvent::new(FLEET_ROLLOUT_EVENT, reason).generation(generation);
                (event, CleanOutcome::NotInProgress)
            } else if !next.is_empty() {
                let reason = format!(
                    "{counted}; the next step of its rollout ({}) serves it and watches it for {} ms",
                    next.join(", "),
                    rollout.watch_ms
                );
                rollout.canaries.extend(next.iter().cloned());
                rollout.step_started_ms = Some(now);
                let event = NewEvent::new(FLEET_ROLLOUT_EVENT, reason).generation(generation);
                (event, CleanOutcome::NextBatch(next))
            } else {
                let key = keys.generation(generation);
                let (candidate, candidate_rev) = ops::record(&mut c, &key)
                    .await?
                    .ok_or(StoreError::UnknownGeneration(generation))?;
                compares.push(unchanged(&key, candidate_rev));
                let active = match active_id {
                    Some(id) => ops::record(&mut c, &keys.generation(id)).await?,
                    None => None,
                };
                if let Some((record, revision)) = &active {
                    compares.push(unchanged(&keys.generation(record.id), *revision));
                }
                let reason = format!(
                    "{counted}; its node canary ({}) ended clean, the rest of the fleet follows",
                    rollout.canaries.join(", ")
                );
                let plan = transition::plan_activate(
                    Snapshot::from(&candidate),
                    active.as_ref().map(|(r, _)| Snapshot::from(r)),
                    ROLLOUT_ORIGIN,
                    &reason,
                    now,
                )?;
                let mut records = vec![candidate];
                records.extend(active.map(|(r, _)| r));
                apply_updates(&mut records, &plan.updates, now);
                for record in &records {
                    puts.push(put_json(&keys.generation(record.id), record)?);
                }
                puts.push(etcd_client::TxnOp::put(
                    keys.active(),
                    generation.to_string(),
                    None,
                ));
                touched = records;
                rollout.step = RolloutStep::Promoted;
                (plan.event, CleanOutcome::Promoted(generation))
            };
            rollout.updated_ms = now;
            puts.push(put_json(&keys.rollout(), &rollout)?);
            let event = tagged(event.normalized()?, &node, &rollout);
            let receipt = keys.event(now, &node);
            puts.push(put_json(&receipt, &event)?);
            let txn = etcd_client::Txn::new().when(compares).and_then(puts);
            let payload = (result.clone(), touched.clone());
            match doubt.commit(&mut c, txn, receipt, payload).await? {
                Some(revision) => Ok((result, Some(revision), touched)),
                None => Ok((CleanOutcome::Raced, None, Vec::new())),
            }
            }
        })?;
        let (result, revision, touched) = outcome;
        for record in &touched {
            let _ = self.local.put(record);
        }
        if let (CleanOutcome::Promoted(id), Some(revision)) = (&result, revision) {
            *self.seen() = Some((*id, revision));
        }
        Ok(result)
    }

    /// Records that the rollout of `generation` failed (`reason`), if it is still in
    /// progress: the safety net of an applying node that no longer serves its candidate
    /// after the watch although no rollback recorded it. Returns whether it wrote.
    pub fn rollout_failed(
        &self,
        generation: GenerationId,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let keys = self.keys.clone();
        let node = self.node.clone();
        let reason = reason.to_string();
        let doubt = InDoubt::<bool>::new();
        self.etcd.run(move |mut c| {
            let (keys, node, reason, doubt) =
                (keys.clone(), node.clone(), reason.clone(), doubt.clone());
            async move {
                if doubt.committed(&mut c).await?.is_some() {
                    return Ok(true);
                }
                let (rollout, rollout_rev) = ops::rollout(&mut c, &keys.rollout()).await?;
                let Some(mut rollout) =
                    rollout.filter(|r| r.in_progress() && r.generation == generation)
                else {
                    return Ok(false);
                };
                let now = now_ms();
                rollout.step = RolloutStep::Failed;
                rollout.reason = Some(reason.clone());
                rollout.updated_ms = now;
                let event = NewEvent::new(FLEET_ROLLOUT_EVENT, reason).generation(generation);
                let event = tagged(event.normalized()?, &node, &rollout);
                let receipt = keys.event(now, &node);
                let txn = etcd_client::Txn::new()
                    .when(vec![unchanged(&keys.rollout(), rollout_rev)])
                    .and_then(vec![
                        put_json(&keys.rollout(), &rollout)?,
                        put_json(&receipt, &event)?,
                    ]);
                Ok(doubt.commit(&mut c, txn, receipt, true).await?.is_some())
            }
        })
    }
}

/// `event` with the node's name and the rollout's step in its details.
pub(crate) fn tagged(mut event: NewEvent, node: &str, rollout: &RolloutState) -> NewEvent {
    let extra = json!({
        "node": node,
        "rollout": rollout.step.as_str(),
        "canaries": rollout.canaries,
    });
    match (&mut event.details, extra) {
        (serde_json::Value::Object(map), serde_json::Value::Object(extra)) => map.extend(extra),
        (details, extra) => {
            let mut extra = extra;
            if let serde_json::Value::Object(map) = &mut extra
                && !details.is_null()
            {
                map.insert("details".into(), details.take());
            }
            *details = extra;
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_applying_node_is_the_first_canary_then_others_by_name() {
        let live = names(&["lb-3", "lb-1", "lb-2", "lb-4"]);
        assert_eq!(choose_canaries("lb-3", &live, 1), Some(names(&["lb-3"])));
        assert_eq!(
            choose_canaries("lb-3", &live, 2),
            Some(names(&["lb-3", "lb-1"]))
        );
        assert_eq!(
            choose_canaries("lb-3", &live, 3),
            Some(names(&["lb-3", "lb-1", "lb-2"]))
        );
    }

    #[test]
    fn no_canary_when_nothing_would_be_held_back() {
        let live = names(&["lb-1", "lb-2"]);
        assert_eq!(choose_canaries("lb-1", &live, 0), None, "first = 0");
        assert_eq!(choose_canaries("lb-1", &live, 2), None, "every node");
        assert_eq!(choose_canaries("lb-1", &names(&["lb-1"]), 1), None, "alone");
        // The applying node counts even when its own lease is not (yet) listed.
        assert_eq!(choose_canaries("lb-9", &live, 1), Some(names(&["lb-9"])));
    }

    #[test]
    fn steps_take_the_next_nodes_by_name_that_never_had_it() {
        let live = names(&["lb-4", "lb-1", "lb-3", "lb-2", "lb-5"]);
        let canaries = names(&["lb-3"]);
        assert_eq!(next_batch(&canaries, &live, 2), names(&["lb-1", "lb-2"]));
        let canaries = names(&["lb-3", "lb-1", "lb-2"]);
        assert_eq!(next_batch(&canaries, &live, 2), names(&["lb-4", "lb-5"]));
        assert_eq!(next_batch(&canaries, &live, 9), names(&["lb-4", "lb-5"]));
        let every = names(&["lb-1", "lb-2", "lb-3", "lb-4", "lb-5"]);
        assert!(
            next_batch(&every, &live, 2).is_empty(),
            "the last step promotes"
        );
    }

    #[test]
    fn the_watch_ends_after_the_start() {
        let state = RolloutState {
            generation: 2,
            previous: Some(1),
            by: "lb-1".into(),
            canaries: names(&["lb-1"]),
            clean: Vec::new(),
            step: RolloutStep::Canary,
            started_ms: 1_000,
            watch_ms: 2_000,
            reason: None,
            updated_ms: 1_000,
            batch: Some(1),
            step_started_ms: None,
        };
        assert_eq!(state.watch_ends_ms(), 3_000);
        let next_step = RolloutState {
            step_started_ms: Some(5_000),
            ..state.clone()
        };
        assert_eq!(next_step.watch_ends_ms(), 7_000, "each step watched anew");
        assert!(state.in_progress() && state.is_canary("lb-1") && !state.is_canary("lb-2"));
        let json = serde_json::to_value(&state).expect("json");
        assert_eq!(json["step"], "canary");
        let back: RolloutState = serde_json::from_value(json).expect("parse");
        assert_eq!(back, state);
    }
}
