//! Recording a new generation in the fleet: an apply, a canary's pending generation or a
//! rejection, as ONE etcd transaction that compares the id counter and, for an apply, the
//! active pointer's revision this node last saw (CAS). With the node canary (`rollout.rs`)
//! a guarded apply becomes the fleet's candidate instead of moving the pointer; while a
//! live canary runs, an apply is refused naming it.

use etcd_client::{Txn, TxnOp};
use keel_config::RolloutThen;
use keel_store::transition;
use keel_store::{
    GenerationId, GenerationRecord, GenerationState, NewGeneration, StoreError, now_ms,
};
use serde_json::json;

use crate::doubt::InDoubt;
use crate::ops::{self, apply_updates, put_json, unchanged};
use crate::rollout::{RolloutState, RolloutStep, choose_canaries};
use crate::store::{COUNTER_ATTEMPTS, FleetStore, MAX_GENERATION_BYTES};

impl FleetStore {
    /// Records `new` in `state` (active, pending or rejected); `unguarded`: no guard will
    /// watch it, so it skips the node canary.
    pub(crate) fn insert(
        &self,
        new: NewGeneration,
        state: GenerationState,
        unguarded: bool,
    ) -> Result<GenerationId, StoreError> {
        new.validate()?;
        let size = serde_json::to_vec(&new)?.len();
        if size > MAX_GENERATION_BYTES {
            return Err(StoreError::InvalidInput(format!(
                "this generation is {size} bytes as stored; fleet mode refuses generations over {MAX_GENERATION_BYTES} bytes (one etcd transaction must carry it under etcd's 1.5 MiB request limit; Keel does not chunk, so that no node can ever read half a generation)"
            )));
        }
        let activate = state == GenerationState::Active;
        let attempts = if activate { 1 } else { COUNTER_ATTEMPTS };
        // The node canary applies to guarded applies only: nothing else would watch it.
        let rollout = self.rollout.clone().filter(|_| activate && !unguarded);
        // Transactions of this insert whose answers were lost (`doubt.rs`): (id, records, moved).
        let doubt = InDoubt::<(GenerationId, Vec<GenerationRecord>, bool)>::new();
        for _ in 0..attempts {
            let keys = self.keys.clone();
            let expected = self.expected_revision();
            let node = self.node.clone();
            let new = new.clone();
            let rollout = rollout.clone();
            let attempt_doubt = doubt.clone();
            let outcome = self.etcd.run(move |mut c| {
                let (keys, node, new, rollout, doubt) = (
                    keys.clone(),
                    node.clone(),
                    new.clone(),
                    rollout.clone(),
                    attempt_doubt.clone(),
                );
                async move {
                if let Some(((id, touched, moved), revision)) = doubt.committed(&mut c).await? {
                    return Ok(Inserted::Written {
                        id,
                        revision,
                        touched,
                        moved,
                    });
                }
                let (seq, seq_rev) = ops::pointer(&mut c, &keys.seq()).await?;
                let (active_id, active_rev) = ops::pointer(&mut c, &keys.active()).await?;
                if activate
                    && let Some(expected) = expected
                    && expected != active_rev
                {
                    return Ok(Inserted::Raced);
                }
                let mut compares = vec![unchanged(&keys.seq(), seq_rev)];
                let mut puts = Vec::new();
                let id = seq.unwrap_or(0) + 1;
                let now = now_ms();
                // A node canary in progress: refused while one of its canaries lives;
                // abandoned (in this transaction) once none does.
                let mut canaries = None;
                if activate {
                    let (current, rollout_rev) = ops::rollout(&mut c, &keys.rollout()).await?;
                    let live = ops::live_nodes(&mut c, &keys.nodes()).await?;
                    if let Some(mut current) = current.filter(RolloutState::in_progress) {
                        if current.canaries.iter().any(|n| live.contains(n)) {
                            return Ok(Inserted::Blocked(current));
                        }
                        current.step = RolloutStep::Abandoned;
                        current.reason = Some(format!(
                            "its canary nodes left the fleet; generation {id} was applied over it"
                        ));
                        current.updated_ms = now;
                        puts.push(put_json(&keys.rollout(), &current)?);
                    }
                    compares.push(unchanged(&keys.rollout(), rollout_rev));
                    if let Some(rollout) = &rollout
                        && active_id.is_some()
                    {
                        canaries = choose_canaries(&node, &live, rollout.first).map(|nodes| {
                            RolloutState {
                                generation: id,
                                previous: active_id,
                                by: node.clone(),
                                canaries: nodes,
                                clean: Vec::new(),
                                step: RolloutStep::Canary,
                                started_ms: now,
                                watch_ms: u64::try_from(rollout.watch.as_millis())
                                    .unwrap_or(u64::MAX),
                                reason: None,
                                updated_ms: now,
                                batch: match rollout.then {
                                    RolloutThen::All => None,
                                    RolloutThen::Nodes(n) => Some(n),
                                },
                                step_started_ms: None,
                            }
                        });
                    }
                }
                let state = if canaries.is_some() {
                    GenerationState::Pending
                } else {
                    state
                };
                let mut record = new.into_record(id, state, now);
                if canaries.is_some() {
                    // It serves on its canary nodes from now on.
                    record.activated_at_ms = Some(now);
                }
                let mut event = if state == GenerationState::Rejected {
                    transition::reject_event(&record)
                } else {
                    transition::apply_event(&record, active_id)
                }
                .normalized()?;
                if let Some(rollout) = &canaries {
                    event.summary = format!(
                        "generation {id} applied by {} via {} to its node canary ({}); the rest of the fleet follows once it is watched clean for {} ms",
                        record.author,
                        record.origin,
                        rollout.canaries.join(", "),
                        rollout.watch_ms
                    );
                    puts.push(put_json(&keys.rollout(), rollout)?);
                }
                if let serde_json::Value::Object(map) = &mut event.details {
                    map.insert("node".into(), json!(node));
                    if let Some(rollout) = &canaries {
                        map.insert("canaries".into(), json!(rollout.canaries));
                    }
                }
                puts.push(put_json(&keys.generation(id), &record)?);
                puts.push(TxnOp::put(keys.seq(), id.to_string(), None));
                let mut touched = vec![record];
                let moves = activate && canaries.is_none();
                if moves {
                    compares.push(unchanged(&keys.active(), active_rev));
                    puts.push(TxnOp::put(keys.active(), id.to_string(), None));
                    if let Some(previous) = active_id
                        && let Some((mut old, old_rev)) =
                            ops::record(&mut c, &keys.generation(previous)).await?
                    {
                        let demotions = transition::apply_demotions(true, Some(previous));
                        apply_updates(std::slice::from_mut(&mut old), &demotions, now);
                        compares.push(unchanged(&keys.generation(previous), old_rev));
                        puts.push(put_json(&keys.generation(previous), &old)?);
                        touched.push(old);
                    }
                } else if activate {
                    // The candidate: the pointer must still be where this node saw it.
                    compares.push(unchanged(&keys.active(), active_rev));
                }
                let receipt = keys.event(now, &node);
                puts.push(put_json(&receipt, &event)?);
                let txn = Txn::new().when(compares).and_then(puts);
                let payload = (id, touched.clone(), moves);
                Ok(match doubt.commit(&mut c, txn, receipt, payload).await? {
                    Some(revision) => Inserted::Written {
                        id,
                        revision,
                        touched,
                        moved: moves,
                    },
                    None => Inserted::Raced,
                })
                }
            })?;
            // Lost a race after an attempt whose answer was lost: that attempt may be
            // what this one lost to.
            let outcome = match outcome {
                Inserted::Raced | Inserted::Blocked(_) => match self.settle(&doubt) {
                    Some(((id, touched, moved), revision)) => Inserted::Written {
                        id,
                        revision,
                        touched,
                        moved,
                    },
                    None => outcome,
                },
                written => written,
            };
            match outcome {
                Inserted::Written {
                    id,
                    revision,
                    touched,
                    moved,
                } => {
                    for record in &touched {
                        let _ = self.local.put(record);
                    }
                    if moved {
                        *self.seen() = Some((id, revision));
                    }
                    self.flush_offline();
                    return Ok(id);
                }
                Inserted::Blocked(rollout) => {
                    return Err(StoreError::Conflict(format!(
                        "generation {} is on its node canary ({}) until about {}: this apply would take the fleet from under it; nothing was recorded. Wait for it to reach the fleet or fail (`keel status --fleet`), or roll it back on its canary node",
                        rollout.generation,
                        rollout.canaries.join(", "),
                        keel_store::rfc3339(rollout.watch_ends_ms())
                    )));
                }
                Inserted::Raced => {}
            }
        }
        Err(self.conflict(if activate {
            "this apply"
        } else {
            "this record"
        }))
    }
}

/// One try of an insert.
enum Inserted {
    /// Written: the id, the etcd revision, the records written, whether the pointer moved.
    Written {
        id: GenerationId,
        revision: i64,
        touched: Vec<GenerationRecord>,
        moved: bool,
    },
    /// A node canary with a live canary node is in progress.
    Blocked(RolloutState),
    /// A compared key changed (or the pointer moved since this node last saw it).
    Raced,
}
