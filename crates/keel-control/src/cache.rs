//! The compiled-generation cache: the active generation and the last N it replaced,
//! compiled and ready to swap back in. Rollback reads only this, so it never parses,
//! never reads a file and never waits for the store before the swap.
//!
//! Eviction keeps known-good generations longest: when more than `capacity` generations
//! wait behind the active one, the oldest that is *not* known-good goes first, and only
//! then the oldest known-good one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use keel_proxy::Generation;
use keel_store::{GenerationId, GenerationRecord};
use serde::{Deserialize, Serialize};

/// What the audit log says about a generation, kept next to its compiled form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationMeta {
    /// Its number.
    pub id: GenerationId,
    /// Who applied it.
    pub author: String,
    /// Why.
    pub message: String,
    /// What triggered it.
    pub origin: String,
    /// Whether a failing check or gate was overridden.
    pub forced: bool,
    /// SHA-256 of the config text.
    pub content_hash: String,
    /// When it was recorded (ms since the Unix epoch).
    pub created_at_ms: i64,
}

impl From<&GenerationRecord> for GenerationMeta {
    fn from(record: &GenerationRecord) -> Self {
        Self {
            id: record.id,
            author: record.author.clone(),
            message: record.message.clone(),
            origin: record.origin.clone(),
            forced: record.forced,
            content_hash: record.content_hash.clone(),
            created_at_ms: record.created_at_ms,
        }
    }
}

/// One compiled generation with its text and metadata.
#[derive(Clone, Debug)]
pub struct CachedGeneration {
    /// The compiled generation.
    pub generation: Arc<Generation>,
    /// The config text exactly as applied.
    pub config_text: Arc<str>,
    /// Audit data.
    pub meta: GenerationMeta,
    /// Whether it is a known-good rollback target.
    pub known_good: bool,
    /// When this process last made it active (known-good timing starts here).
    pub activated_at: SystemTime,
    /// How long it must serve without alarms to become known-good: the longer of its own
    /// `[safety] known_good_after` and that of the generation it replaced when applied
    /// (a change never chooses its own judge).
    pub known_good_after: Duration,
}

impl CachedGeneration {
    /// Its number.
    pub fn id(&self) -> GenerationId {
        self.generation.id
    }
}

/// The active generation and the compiled generations kept behind it.
#[derive(Debug, Default)]
pub(crate) struct GenerationCache {
    active: Option<CachedGeneration>,
    /// Most recently replaced first.
    kept: VecDeque<CachedGeneration>,
    capacity: usize,
}

impl GenerationCache {
    /// An empty cache keeping up to `capacity` generations behind the active one.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            active: None,
            kept: VecDeque::new(),
            capacity,
        }
    }

    pub(crate) fn active(&self) -> Option<&CachedGeneration> {
        self.active.as_ref()
    }

    /// Generations kept behind the active one, most recently replaced first.
    pub(crate) fn kept(&self) -> impl Iterator<Item = &CachedGeneration> {
        self.kept.iter()
    }

    pub(crate) fn get(&self, id: GenerationId) -> Option<&CachedGeneration> {
        self.active
            .iter()
            .chain(self.kept.iter())
            .find(|c| c.id() == id)
    }

    pub(crate) fn contains(&self, id: GenerationId) -> bool {
        self.get(id).is_some()
    }

    /// Changes how many generations are kept (from the active config's
    /// `[safety] keep_generations`), evicting if needed.
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        self.evict();
    }

    /// Makes `new` active; the previous active generation is kept behind it with
    /// `previous_known_good` as its mark (`None`: unchanged). Returns the previous
    /// active generation's id.
    pub(crate) fn activate(
        &mut self,
        new: CachedGeneration,
        previous_known_good: Option<bool>,
    ) -> Option<GenerationId> {
        self.kept.retain(|c| c.id() != new.id());
        let previous = self.active.replace(new);
        let previous_id = previous.as_ref().map(CachedGeneration::id);
        if let Some(mut previous) = previous {
            if let Some(mark) = previous_known_good {
                previous.known_good = mark;
            }
            self.kept.push_front(previous);
        }
        self.evict();
        previous_id
    }

    /// Keeps a generation that is not active (restored from the store at startup).
    pub(crate) fn keep(&mut self, cached: CachedGeneration) {
        if self.contains(cached.id()) {
            return;
        }
        // Restored generations are older than anything replaced since: they go last.
        self.kept.push_back(cached);
        self.evict();
    }

    /// The generation a rollback goes to: `to`, or the newest known-good one.
    pub(crate) fn rollback_target(
        &self,
        to: Option<GenerationId>,
    ) -> Result<&CachedGeneration, TargetError> {
        let active = self.active.as_ref().map(CachedGeneration::id);
        match to {
            Some(id) if Some(id) == active => Err(TargetError::IsActive(id)),
            Some(id) => self
                .kept
                .iter()
                .find(|c| c.id() == id)
                .ok_or(TargetError::NotInMemory {
                    id,
                    kept: self.kept_ids(),
                }),
            None => self
                .kept
                .iter()
                .filter(|c| c.known_good)
                .max_by_key(|c| c.id())
                .ok_or(TargetError::NoKnownGood {
                    kept: self.kept_ids(),
                }),
        }
    }

    fn kept_ids(&self) -> Vec<GenerationId> {
        self.kept.iter().map(CachedGeneration::id).collect()
    }

    pub(crate) fn mark_known_good(&mut self, id: GenerationId) {
        for cached in self.active.iter_mut().chain(self.kept.iter_mut()) {
            if cached.id() == id {
                cached.known_good = true;
            }
        }
    }

    /// Withdraws the known-good mark of `id` (judged bad).
    pub(crate) fn withdraw_known_good(&mut self, id: GenerationId) {
        for cached in self.active.iter_mut().chain(self.kept.iter_mut()) {
            if cached.id() == id {
                cached.known_good = false;
            }
        }
    }

    fn evict(&mut self) {
        while self.kept.len() > self.capacity {
            let victim = self
                .kept
                .iter()
                .rposition(|c| !c.known_good)
                .unwrap_or(self.kept.len() - 1);
            self.kept.remove(victim);
        }
    }
}

/// Why a rollback target could not be chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TargetError {
    IsActive(GenerationId),
    NotInMemory {
        id: GenerationId,
        kept: Vec<GenerationId>,
    },
    NoKnownGood {
        kept: Vec<GenerationId>,
    },
}
