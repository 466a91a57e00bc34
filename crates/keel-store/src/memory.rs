//! `MemoryStore`: the store rules over plain vectors behind one `Mutex`. For unit tests of other
//! crates, and the template for a shared store: it runs the same plans from `transition` as
//! `SqliteStore` and validates everything before it mutates, so a refused call changes nothing.

use std::sync::{Mutex, MutexGuard};

use crate::transition::{self, Plan, Snapshot, StateUpdate};
use crate::{
    EventQuery, EventRecord, GenerationId, GenerationRecord, GenerationState, NewEvent,
    NewGeneration, Store, StoreError, now_ms,
};

/// A non-durable [`Store`]: everything is lost on drop.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Generation `id` lives at index `id - 1`.
    generations: Vec<GenerationRecord>,
    /// Event `id` lives at index `id - 1`.
    events: Vec<EventRecord>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner.lock().map_err(|_| StoreError::Poisoned)
    }
}

impl Inner {
    fn get(&self, id: GenerationId) -> Option<&GenerationRecord> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        self.generations.get(index)
    }

    fn snapshot(&self, id: GenerationId) -> Result<Snapshot, StoreError> {
        self.get(id)
            .map(Snapshot::from)
            .ok_or(StoreError::UnknownGeneration(id))
    }

    fn active(&self) -> Option<&GenerationRecord> {
        self.generations
            .iter()
            .find(|g| g.state == GenerationState::Active)
    }

    fn next_generation_id(&self) -> GenerationId {
        GenerationId::try_from(self.generations.len()).map_or(GenerationId::MAX, |n| n + 1)
    }

    /// Applies validated updates; infallible so a plan is all-or-nothing.
    fn apply_updates(&mut self, updates: &[StateUpdate], now_ms: i64) {
        for update in updates {
            let index = update
                .id
                .checked_sub(1)
                .and_then(|i| usize::try_from(i).ok());
            let Some(record) = index.and_then(|i| self.generations.get_mut(i)) else {
                continue; // plans only name generations they were built from
            };
            record.state = update.state;
            if update.stamp_activated {
                record.activated_at_ms = Some(now_ms);
            }
            match update.known_good {
                Some(true) => {
                    record.known_good = true;
                    record.known_good_at_ms = Some(now_ms);
                }
                Some(false) => {
                    record.known_good = false;
                    record.known_good_at_ms = None;
                }
                None => {}
            }
        }
    }

    /// Appends a normalized event whose generation (if any) is known to exist.
    fn push_event(&mut self, event: NewEvent) -> u64 {
        let id = u64::try_from(self.events.len()).map_or(u64::MAX, |n| n + 1);
        self.events.push(EventRecord {
            id,
            time_ms: event.time_ms,
            kind: event.kind,
            generation: event.generation,
            summary: event.summary,
            details: event.details,
        });
        id
    }

    fn execute(&mut self, plan: Plan, now_ms: i64) -> Result<(), StoreError> {
        let event = plan.event.normalized()?;
        self.apply_updates(&plan.updates, now_ms);
        self.push_event(event);
        Ok(())
    }
}

impl Store for MemoryStore {
    fn record_apply(&self, new: NewGeneration, activate: bool) -> Result<GenerationId, StoreError> {
        new.validate()?;
        let mut inner = self.lock()?;
        let now = now_ms();
        let previous = inner.active().map(|g| g.id);
        let id = inner.next_generation_id();
        let record = new.into_record(id, transition::applied_state(activate), now);
        let event = transition::apply_event(&record, previous).normalized()?;
        inner.apply_updates(&transition::apply_demotions(activate, previous), now);
        inner.generations.push(record);
        inner.push_event(event);
        Ok(id)
    }

    fn record_rejection(&self, new: NewGeneration) -> Result<GenerationId, StoreError> {
        new.validate()?;
        let mut inner = self.lock()?;
        let id = inner.next_generation_id();
        let record = new.into_record(id, GenerationState::Rejected, now_ms());
        let event = transition::reject_event(&record).normalized()?;
        inner.generations.push(record);
        inner.push_event(event);
        Ok(id)
    }

    fn activate(&self, id: GenerationId, origin: &str, reason: &str) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let target = inner.snapshot(id)?;
        let active = inner.active().map(Snapshot::from);
        let now = now_ms();
        let plan = transition::plan_activate(target, active, origin, reason, now)?;
        inner.execute(plan, now)
    }

    fn record_rollback(
        &self,
        from: GenerationId,
        to: GenerationId,
        origin: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let (from, to) = (inner.snapshot(from)?, inner.snapshot(to)?);
        let now = now_ms();
        let plan = transition::plan_rollback(from, to, origin, reason, now)?;
        inner.execute(plan, now)
    }

    fn mark_known_good(&self, id: GenerationId) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let target = inner.snapshot(id)?;
        let now = now_ms();
        match transition::plan_known_good(target, now)? {
            Some(plan) => inner.execute(plan, now),
            None => Ok(()),
        }
    }

    fn mark_bad(&self, id: GenerationId, origin: &str, reason: &str) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let target = inner.snapshot(id)?;
        let now = now_ms();
        let plan = transition::plan_mark_bad(target, origin, reason, now)?;
        inner.execute(plan, now)
    }

    fn active(&self) -> Result<Option<GenerationRecord>, StoreError> {
        Ok(self.lock()?.active().cloned())
    }

    fn generation(&self, id: GenerationId) -> Result<Option<GenerationRecord>, StoreError> {
        Ok(self.lock()?.get(id).cloned())
    }

    fn generations(&self, limit: usize) -> Result<Vec<GenerationRecord>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .generations
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect())
    }

    fn known_good(&self, limit: usize) -> Result<Vec<GenerationRecord>, StoreError> {
        let inner = self.lock()?;
        let newest_first = inner.generations.iter().rev().filter(|g| g.known_good);
        Ok(newest_first.take(limit).cloned().collect())
    }

    fn append_event(&self, event: NewEvent) -> Result<u64, StoreError> {
        let event = event.normalized()?;
        let mut inner = self.lock()?;
        if let Some(id) = event.generation {
            inner.snapshot(id)?;
        }
        Ok(inner.push_event(event))
    }

    fn events(&self, query: EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        let inner = self.lock()?;
        let mut selected: Vec<EventRecord> = inner
            .events
            .iter()
            .filter(|e| query.matches(e))
            .cloned()
            .collect();
        selected.sort_by_key(|e| (e.time_ms, e.id));
        selected.truncate(query.limit.unwrap_or(usize::MAX));
        Ok(selected)
    }
}
