//! The `Store` trait: the small surface the control plane and reports use, so the embedded SQLite
//! store and a future shared (etcd) store are interchangeable.

use std::collections::BTreeSet;

use crate::{
    EventQuery, EventRecord, GenerationId, GenerationRecord, NewEvent, NewGeneration, StoreError,
};

/// Durable history of generations and events.
///
/// Every mutating method is atomic: its row changes and the event that records them are written
/// together or not at all, and a refused operation changes nothing. Methods block (SQLite does
/// file I/O and fsync); async callers wrap them in `tokio::task::spawn_blocking`.
pub trait Store: Send + Sync {
    /// Records an applied generation and its "apply" event in one transaction.
    ///
    /// With `activate`, the generation becomes active and the previously active one becomes
    /// superseded (its known-good mark, if any, stays: it remains a rollback target). Without,
    /// it is recorded as pending (a canary) and the active generation is unchanged.
    fn record_apply(&self, new: NewGeneration, activate: bool) -> Result<GenerationId, StoreError>;

    /// [`Store::record_apply`] for an apply no guard watches (`--no-guard`, or a controller
    /// without detectors): a store that rolls generations out in steps (fleet mode's node
    /// canary, which waits for the canary's guard) activates it everywhere at once. The
    /// single-node stores record it exactly as `record_apply` does.
    fn record_unguarded_apply(
        &self,
        new: NewGeneration,
        activate: bool,
    ) -> Result<GenerationId, StoreError> {
        self.record_apply(new, activate)
    }

    /// Records a generation refused by checks or the gate, state rejected, with its "reject"
    /// event, in one transaction. The active generation is unchanged.
    fn record_rejection(&self, new: NewGeneration) -> Result<GenerationId, StoreError>;

    /// Makes `id` active without judging the current one bad: a pending canary is promoted
    /// ("promote" event), or a superseded / rolled-back generation is re-activated ("activate"
    /// event). The current active generation becomes superseded. Refused for the active
    /// generation itself and for rejected ones.
    fn activate(&self, id: GenerationId, origin: &str, reason: &str) -> Result<(), StoreError>;

    /// Takes `from` out of service as bad and serves `to`, with a "rollback" event, in one
    /// transaction. `from` must be the active generation (then `to` must have served before;
    /// `from` becomes rolled-back and keeps its known-good mark: see [`Store::mark_bad`]) or a pending canary (then `to`
    /// must be the active generation, which stays active). Naming `from` makes a rollback
    /// that raced with another apply fail instead of rolling back the wrong generation.
    fn record_rollback(
        &self,
        from: GenerationId,
        to: GenerationId,
        origin: &str,
        reason: &str,
    ) -> Result<(), StoreError>;

    /// Marks a generation that has served traffic as known-good, with a "known-good" event.
    /// Marking one that already is known-good succeeds and writes nothing.
    fn mark_known_good(&self, id: GenerationId) -> Result<(), StoreError>;

    /// Judges a generation bad, with a "mark-bad" event saying who (`origin`) and why: its
    /// known-good mark, if any, is withdrawn. The state does not change. Refused for a
    /// rejected generation (it never served).
    fn mark_bad(&self, id: GenerationId, origin: &str, reason: &str) -> Result<(), StoreError>;

    /// The active generation; `None` only before the first activating apply.
    fn active(&self) -> Result<Option<GenerationRecord>, StoreError>;

    /// One generation by id.
    fn generation(&self, id: GenerationId) -> Result<Option<GenerationRecord>, StoreError>;

    /// The newest `limit` generations, in every state, newest first.
    fn generations(&self, limit: usize) -> Result<Vec<GenerationRecord>, StoreError>;

    /// The newest `limit` known-good generations (active or not), newest first: rollback targets.
    fn known_good(&self, limit: usize) -> Result<Vec<GenerationRecord>, StoreError>;

    /// Appends an event; returns its id. Refused if its kind is malformed or its generation does
    /// not exist.
    fn append_event(&self, event: NewEvent) -> Result<u64, StoreError>;

    /// Events selected by `query`, oldest first (by time, then id).
    fn events(&self, query: EventQuery) -> Result<Vec<EventRecord>, StoreError>;

    /// Every certificate digest some stored generation pins
    /// ([`GenerationRecord::certificates`]): the copies the control plane must keep.
    /// The default reads every generation; a store can answer it more cheaply.
    fn pinned_certificates(&self) -> Result<BTreeSet<String>, StoreError> {
        Ok(self
            .generations(usize::MAX)?
            .into_iter()
            .flat_map(|g| g.certificates.into_values())
            .collect())
    }
}
