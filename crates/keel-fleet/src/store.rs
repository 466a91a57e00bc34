//! [`FleetStore`]: the [`Store`] of a fleet node. The fleet's generations, active pointer,
//! known-good marks and events live in etcd; every change is ONE etcd transaction that
//! compares what it read (the records it changes, the id counter, and, when it moves the
//! active pointer, the pointer's revision this node last served) and writes the records,
//! the pointer and the event together. A node that lost the race gets
//! [`StoreError::Conflict`] naming the generation that won, and nothing is written.
//! New generations are recorded by `insert.rs`; the node canary's own transactions are in
//! `rollout.rs`.
//!
//! The state machine is keel-store's own (`keel_store::transition`), so the fleet cannot
//! disagree with a single node on the rules. Reads fall back to the node's local copy
//! (`local.rs`) while etcd is unreachable; writes then fail with
//! [`StoreError::Unavailable`], except events, which wait in the local copy and are sent
//! on the next write that reaches etcd.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use etcd_client::{Txn, TxnOp};
use keel_store::transition::{self, Plan, Snapshot};
use keel_store::{
    EventQuery, EventRecord, GenerationId, GenerationRecord, GenerationState, NewEvent,
    NewGeneration, Store, StoreError, now_ms,
};
use serde_json::json;

use keel_config::Rollout;

use crate::doubt::InDoubt;
use crate::etcd::Etcd;
use crate::keys::Keys;
use crate::local::{LocalCopy, Served};
use crate::ops::{self, apply_updates, commit, put_json, unchanged};
use crate::rollout::{RolloutState, RolloutStep};

/// Largest generation record (config text, reports and metadata as JSON) the fleet stores:
/// 1 MiB, under etcd's default request limit of 1.5 MiB (`--max-request-bytes`), which one
/// transaction (record, pointer, previous record, event) must fit. Larger configs are
/// refused, not chunked: see `docs/fleet.md`.
pub const MAX_GENERATION_BYTES: usize = 1024 * 1024;

/// Times a write that lost only a counter race (a rejection, an event, a known-good mark)
/// is tried again before the caller sees the conflict (3 attempts).
pub(crate) const COUNTER_ATTEMPTS: u32 = 3;

/// One try of a planned transaction.
enum Attempt {
    /// Written (or nothing to write): the pointer it moved, if it did, and the records.
    Done(Option<(GenerationId, i64)>, Vec<GenerationRecord>),
    /// The fleet's active pointer is not where this node last saw it.
    Moved,
    /// A compared key changed between the read and the transaction.
    Raced,
}

/// A fleet node's store: etcd first, the local SQLite copy when etcd is gone.
pub struct FleetStore {
    pub(crate) etcd: Etcd,
    pub(crate) keys: Keys,
    pub(crate) node: String,
    pub(crate) local: LocalCopy,
    /// The fleet's active pointer as this node last saw it: (generation, mod revision).
    seen: Mutex<Option<(GenerationId, i64)>>,
    /// This node's `[fleet] rollout`: the node canary of the applies it takes.
    pub(crate) rollout: Option<Rollout>,
}

impl std::fmt::Debug for FleetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetStore")
            .field("node", &self.node)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl FleetStore {
    /// A store for node `node` of the fleet under `prefix` in the etcd at `endpoints`, with
    /// its local copy in `state_dir`. Does not need etcd to be up.
    pub fn open(
        endpoints: Vec<String>,
        prefix: &str,
        node: &str,
        state_dir: &Path,
    ) -> Result<Self, StoreError> {
        Ok(FleetStore {
            etcd: Etcd::new(endpoints)?,
            keys: Keys::new(prefix),
            node: node.to_string(),
            local: LocalCopy::open(state_dir)?,
            seen: Mutex::new(None),
            rollout: None,
        })
    }

    /// The node canary this node gives the applies it takes (`[fleet] rollout`; none: every
    /// apply moves the fleet's active pointer at once).
    #[must_use]
    pub fn with_rollout(mut self, rollout: Rollout) -> Self {
        self.rollout = Some(rollout);
        self
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The fleet's keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// What the local copy says this node serves.
    pub fn served(&self) -> Result<Option<Served>, StoreError> {
        self.local.served()
    }

    /// Notes that this node now serves `record`, taken from the fleet's active pointer at
    /// etcd revision `revision` (0: without etcd, a local rollback): the local copy keeps
    /// it, and this node's next apply or rollback compares against that revision.
    pub fn note_served(&self, record: &GenerationRecord, revision: i64) -> Result<(), StoreError> {
        self.local.put(record)?;
        self.local.set_served(Served {
            id: record.id,
            revision,
            since_ms: now_ms(),
        })?;
        if revision != 0 {
            *self.seen() = Some((record.id, revision));
        }
        Ok(())
    }

    /// Notes that this node swapped to `record` by itself (a local rollback or a guard's
    /// revert): the local copy keeps it, with the revision of the fleet's pointer the node
    /// had followed before, so that only a newer fleet change makes it follow again.
    pub fn note_local_swap(
        &self,
        record: &GenerationRecord,
        followed_revision: i64,
    ) -> Result<(), StoreError> {
        self.local.put(record)?;
        self.local.set_served(Served {
            id: record.id,
            revision: followed_revision,
            since_ms: now_ms(),
        })
    }

    /// `keel rollback --local`: the node already swapped to `to`; only the local copy learns
    /// it. The fleet's store is deliberately not written, which the caller reports as a
    /// store error: the node now drifts from the fleet (docs/fleet.md).
    fn local_rollback(&self, to: GenerationId) -> Result<(), StoreError> {
        let followed = self.local.served()?.map_or(0, |s| s.revision);
        if let Some(record) = self.local.get(to)? {
            self.note_local_swap(&record, followed)?;
        }
        Err(StoreError::Unavailable(format!(
            "local rollback to generation {to}: the fleet's store was not written; this node drifts from the fleet until an operator rolls the fleet back or the fleet's next apply"
        )))
    }

    /// The fleet's active pointer in etcd: (generation, mod revision).
    pub fn fleet_active(&self) -> Result<Option<(GenerationId, i64)>, StoreError> {
        let key = self.keys.active();
        let (id, revision) = self.etcd.run(move |mut c| {
            let key = key.clone();
            async move { ops::pointer(&mut c, &key).await }
        })?;
        Ok(id.map(|id| (id, revision)))
    }

    pub(crate) fn seen(&self) -> MutexGuard<'_, Option<(GenerationId, i64)>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The revision a pointer-moving write must find: the one this node last saw.
    pub(crate) fn expected_revision(&self) -> Option<i64> {
        self.seen().map(|(_, revision)| revision)
    }

    fn tag(&self, mut event: NewEvent) -> NewEvent {
        if let serde_json::Value::Object(map) = &mut event.details {
            map.insert("node".into(), json!(self.node));
        } else {
            event.details = json!({ "node": self.node, "details": event.details });
        }
        event
    }

    /// Sends events kept while etcd was unreachable (best effort; they stay on failure).
    pub(crate) fn flush_offline(&self) {
        let Ok(pending) = self.local.offline() else {
            return;
        };
        for (local_id, event) in pending {
            if self.put_event(event).is_ok() {
                let _ = self.local.forget_offline(local_id);
            } else {
                return;
            }
        }
    }

    fn put_event(&self, event: NewEvent) -> Result<u64, StoreError> {
        let key = self.keys.event(event.time_ms, &self.node);
        let put = put_json(&key, &event)?;
        // The key is chosen once: a put run again on another endpoint rewrites the same
        // event (its id is its create revision), it does not add a second one.
        let revision = self.etcd.run(move |mut c| {
            let put = put.clone();
            async move { commit(&mut c, Txn::new().and_then(vec![put])).await }
        })?;
        Ok(revision.and_then(|r| u64::try_from(r).ok()).unwrap_or(0))
    }

    /// The message of a lost race: which generation won.
    pub(crate) fn conflict(&self, what: &str) -> StoreError {
        let winner = self
            .fleet_active()
            .ok()
            .flatten()
            .and_then(|(id, _)| self.generation(id).ok().flatten());
        StoreError::Conflict(match winner {
            Some(winner) => format!(
                "{what} lost to another change of the fleet: generation {} (by {}, {:?}, origin {}) is the fleet's active generation now; nothing was recorded. Look at it (`keel show {}`) and try again if still wanted",
                winner.id, winner.author, winner.message, winner.origin, winner.id
            ),
            None => format!("{what} lost to another change of the fleet; nothing was recorded"),
        })
    }

    /// After a lost race: whether one of this call's earlier transactions, whose answer was
    /// lost, committed after all (then that is the call's outcome). Unreachable etcd: no.
    pub(crate) fn settle<P: Clone + Send + Sync + 'static>(
        &self,
        doubt: &InDoubt<P>,
    ) -> Option<(P, i64)> {
        if !doubt.any() {
            return None;
        }
        let doubt = doubt.clone();
        self.etcd
            .run(move |mut c| {
                let doubt = doubt.clone();
                async move { doubt.committed(&mut c).await }
            })
            .ok()
            .flatten()
    }

    /// Reads the generations `ids` and the pointer, builds a plan, and writes it in one
    /// transaction that compares everything read. `moves_pointer`: the plan may change the
    /// active generation, so the pointer must still be at the revision this node last saw.
    fn execute(
        &self,
        what: &str,
        ids: Vec<GenerationId>,
        build: impl Fn(
            &[GenerationRecord],
            Option<&GenerationRecord>,
            i64,
        ) -> Result<Option<Plan>, StoreError>
        + Send
        + Sync
        + 'static,
    ) -> Result<(), StoreError> {
        let build = std::sync::Arc::new(build);
        // Transactions of this call whose answers were lost (`doubt.rs`): the pointer they
        // move and the records they write.
        let doubt = InDoubt::<(Option<GenerationId>, Vec<GenerationRecord>)>::new();
        for _ in 0..COUNTER_ATTEMPTS {
            let keys = self.keys.clone();
            let expected = self.expected_revision();
            let ids = ids.clone();
            let node = self.node.clone();
            let build = build.clone();
            let attempt_doubt = doubt.clone();
            let outcome = self.etcd.run(move |mut c| {
                let (keys, ids, node, build, doubt) = (
                    keys.clone(),
                    ids.clone(),
                    node.clone(),
                    build.clone(),
                    attempt_doubt.clone(),
                );
                async move {
                    if let Some(((moved, touched), revision)) = doubt.committed(&mut c).await? {
                        return Ok(Attempt::Done(moved.map(|id| (id, revision)), touched));
                    }
                    let (active_id, active_rev) = ops::pointer(&mut c, &keys.active()).await?;
                    let mut records = Vec::new();
                    let mut compares = Vec::new();
                    for id in ids {
                        let key = keys.generation(id);
                        let (record, revision) = ops::record(&mut c, &key)
                            .await?
                            .ok_or(StoreError::UnknownGeneration(id))?;
                        compares.push(unchanged(&key, revision));
                        records.push(record);
                    }
                    let active = match active_id {
                        Some(id) => ops::record(&mut c, &keys.generation(id)).await?,
                        None => None,
                    };
                    let now = now_ms();
                    let Some(plan) = build(&records, active.as_ref().map(|(r, _)| r), now)? else {
                        return Ok(Attempt::Done(None, records));
                    };
                    let event = plan.event.clone().normalized()?;
                    let mut touched: Vec<GenerationRecord> = records.clone();
                    if let Some((record, revision)) = &active
                        && !touched.iter().any(|r| r.id == record.id)
                    {
                        touched.push(record.clone());
                        compares.push(unchanged(&keys.generation(record.id), *revision));
                    }
                    apply_updates(&mut touched, &plan.updates, now);
                    let new_active = touched
                        .iter()
                        .find(|r| r.state == GenerationState::Active)
                        .map(|r| r.id);
                    let mut puts = Vec::new();
                    for record in &touched {
                        if plan.updates.iter().any(|u| u.id == record.id) {
                            puts.push(put_json(&keys.generation(record.id), record)?);
                        }
                    }
                    if new_active.is_some() && new_active != active_id {
                        if let Some(expected) = expected
                            && expected != active_rev
                        {
                            return Ok(Attempt::Moved);
                        }
                        compares.push(unchanged(&keys.active(), active_rev));
                        if let Some(id) = new_active {
                            puts.push(TxnOp::put(keys.active(), id.to_string(), None));
                        }
                    }
                    // A node canary in progress ends with this change when it takes the
                    // candidate out of service (failed) or moves the fleet (abandoned).
                    let (rollout, rollout_rev) = ops::rollout(&mut c, &keys.rollout()).await?;
                    if let Some(mut rollout) = rollout.filter(RolloutState::in_progress) {
                        let failed = plan.updates.iter().any(|u| {
                            u.id == rollout.generation && u.state != GenerationState::Pending
                        });
                        let moved = new_active.is_some() && new_active != active_id;
                        if failed || moved {
                            rollout.step = if failed {
                                RolloutStep::Failed
                            } else {
                                RolloutStep::Abandoned
                            };
                            rollout.reason = Some(event.summary.clone());
                            rollout.updated_ms = now;
                            compares.push(unchanged(&keys.rollout(), rollout_rev));
                            puts.push(put_json(&keys.rollout(), &rollout)?);
                        }
                    }
                    let mut event = event;
                    if let serde_json::Value::Object(map) = &mut event.details {
                        map.insert("node".into(), json!(node));
                    }
                    let receipt = keys.event(event.time_ms, &node);
                    puts.push(put_json(&receipt, &event)?);
                    let txn = Txn::new().when(compares).and_then(puts);
                    let moved = new_active.filter(|id| Some(*id) != active_id);
                    let payload = (moved, touched.clone());
                    match doubt.commit(&mut c, txn, receipt, payload).await? {
                        Some(revision) => {
                            Ok(Attempt::Done(moved.map(|id| (id, revision)), touched))
                        }
                        None => Ok(Attempt::Raced),
                    }
                }
            })?;
            // Lost a race after an attempt whose answer was lost: that attempt may be
            // what this one lost to.
            let outcome = match outcome {
                Attempt::Moved | Attempt::Raced => match self.settle(&doubt) {
                    Some(((moved, touched), revision)) => {
                        Attempt::Done(moved.map(|id| (id, revision)), touched)
                    }
                    None => outcome,
                },
                done => done,
            };
            match outcome {
                Attempt::Done(pointer, touched) => {
                    for record in &touched {
                        let _ = self.local.put(record);
                    }
                    if let Some(pointer) = pointer {
                        *self.seen() = Some(pointer);
                    }
                    self.flush_offline();
                    return Ok(());
                }
                // The pointer moved since this node last saw it: another node won.
                Attempt::Moved => return Err(self.conflict(what)),
                // A record changed between the read and the write: read again.
                Attempt::Raced => continue,
            }
        }
        Err(self.conflict(what))
    }
}

impl Store for FleetStore {
    fn record_apply(&self, new: NewGeneration, activate: bool) -> Result<GenerationId, StoreError> {
        self.insert(new, transition::applied_state(activate), false)
    }

    fn record_unguarded_apply(
        &self,
        new: NewGeneration,
        activate: bool,
    ) -> Result<GenerationId, StoreError> {
        self.insert(new, transition::applied_state(activate), true)
    }

    fn record_rejection(&self, new: NewGeneration) -> Result<GenerationId, StoreError> {
        self.insert(new, GenerationState::Rejected, false)
    }

    fn activate(&self, id: GenerationId, origin: &str, reason: &str) -> Result<(), StoreError> {
        let (origin, reason) = (origin.to_string(), reason.to_string());
        self.execute("this activation", vec![id], move |records, active, now| {
            let target = Snapshot::from(&records[0]);
            transition::plan_activate(target, active.map(Snapshot::from), &origin, &reason, now)
                .map(Some)
        })
    }

    fn record_rollback(
        &self,
        from: GenerationId,
        to: GenerationId,
        origin: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        if origin == keel_store::origin::LOCAL {
            return self.local_rollback(to);
        }
        let (origin, reason) = (origin.to_string(), reason.to_string());
        self.execute("this rollback", vec![from, to], move |records, _, now| {
            let (from, to) = (Snapshot::from(&records[0]), Snapshot::from(&records[1]));
            transition::plan_rollback(from, to, &origin, &reason, now).map(Some)
        })
    }

    fn mark_known_good(&self, id: GenerationId) -> Result<(), StoreError> {
        self.execute("this known-good mark", vec![id], move |records, _, now| {
            transition::plan_known_good(Snapshot::from(&records[0]), now)
        })
    }

    fn mark_bad(&self, id: GenerationId, origin: &str, reason: &str) -> Result<(), StoreError> {
        let (origin, reason) = (origin.to_string(), reason.to_string());
        self.execute("this mark-bad", vec![id], move |records, _, now| {
            transition::plan_mark_bad(Snapshot::from(&records[0]), &origin, &reason, now).map(Some)
        })
    }

    fn active(&self) -> Result<Option<GenerationRecord>, StoreError> {
        let key = self.keys.active();
        let keys = self.keys.clone();
        let fleet = self.etcd.run(move |mut c| {
            let (key, keys) = (key.clone(), keys.clone());
            async move {
                let (id, revision) = ops::pointer(&mut c, &key).await?;
                match id {
                    Some(id) => Ok(ops::record(&mut c, &keys.generation(id))
                        .await?
                        .map(|(record, _)| (record, revision))),
                    None => Ok(None),
                }
            }
        });
        match fleet {
            Ok(Some((record, revision))) => {
                let _ = self.local.put(&record);
                *self.seen() = Some((record.id, revision));
                Ok(Some(record))
            }
            Ok(None) => Ok(None),
            Err(StoreError::Unavailable(why)) => {
                // Without etcd, the node's own truth: what it served last.
                let Some(served) = self.local.served()? else {
                    return Err(StoreError::Unavailable(why));
                };
                Ok(self.local.get(served.id)?.map(|mut record| {
                    record.state = GenerationState::Active;
                    record
                }))
            }
            Err(other) => Err(other),
        }
    }

    fn generation(&self, id: GenerationId) -> Result<Option<GenerationRecord>, StoreError> {
        let key = self.keys.generation(id);
        match self.etcd.run(move |mut c| {
            let key = key.clone();
            async move { ops::record(&mut c, &key).await }
        }) {
            Ok(found) => Ok(found.map(|(record, _)| record)),
            Err(StoreError::Unavailable(_)) => self.local.get(id),
            Err(other) => Err(other),
        }
    }

    fn generations(&self, limit: usize) -> Result<Vec<GenerationRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let prefix = self.keys.generations();
        match self.etcd.run(move |mut c| {
            let prefix = prefix.clone();
            async move { ops::records(&mut c, &prefix, limit).await }
        }) {
            Err(StoreError::Unavailable(_)) => self.local.newest(limit),
            other => other,
        }
    }

    fn known_good(&self, limit: usize) -> Result<Vec<GenerationRecord>, StoreError> {
        let prefix = self.keys.generations();
        let all = match self.etcd.run(move |mut c| {
            let prefix = prefix.clone();
            async move { ops::records(&mut c, &prefix, 0).await }
        }) {
            Err(StoreError::Unavailable(_)) => self.local.newest(usize::MAX)?,
            other => other?,
        };
        Ok(all
            .into_iter()
            .filter(|g| g.known_good)
            .take(limit)
            .collect())
    }

    fn append_event(&self, event: NewEvent) -> Result<u64, StoreError> {
        let event = self.tag(event.normalized()?);
        match self.put_event(event.clone()) {
            Err(StoreError::Unavailable(_)) => self.local.push_offline(&event),
            other => other,
        }
    }

    fn events(&self, query: EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        let prefix = self.keys.events();
        let all = self.etcd.run(move |mut c| {
            let prefix = prefix.clone();
            async move { ops::events(&mut c, &prefix).await }
        })?;
        let mut selected: Vec<EventRecord> = all.into_iter().filter(|e| query.matches(e)).collect();
        selected.sort_by_key(|e| (e.time_ms, e.id));
        selected.truncate(query.limit.unwrap_or(usize::MAX));
        Ok(selected)
    }
}
