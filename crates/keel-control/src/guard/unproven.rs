//! An unproven watch must not vouch. A watch that runs out of its extra time while a
//! route that had `min_requests` in the baseline's window has not carried as many under
//! the candidate ends [`keel_watch::WatchVerdict::Unproven`]: no detector fired, but
//! none could judge that route either. The generation keeps serving (nothing says it is
//! bad), and:
//!
//! * the guard logs a warning naming the routes and records an `unproven` store event
//!   (`details`: `baseline`, `waiting_for`, `watched_ms`), which `keel timeline` lists;
//! * `keel status` / `GET /status` show it while it is the active generation
//!   ([`UnprovenStatus`], `unproven` in the status);
//! * the known-good promotion refuses it (`known_good.rs`), so it is never a default
//!   rollback target, nor the yardstick of a later change while a known-good generation is
//!   kept (`Controller::yardstick`).
//!
//! Only a later watch of the same generation with the evidence vouches for it: a rollback
//! to it (`keel rollback --to N --force`) whose watch ends clean records a `proven`
//! event and lifts the refusal. A new apply of the same config is a new generation,
//! watched on its own. The store events make the refusal survive restarts: the
//! promotion reads them when memory has nothing (and puts back what it found, for the
//! status).

use keel_store::{EventQuery, GenerationId, NewEvent, kind};
use keel_watch::EvidenceWait;
use serde::{Deserialize, Serialize};

use crate::Controller;
use crate::controller::lock;

/// A generation whose last watch ended without the evidence it waited for, as `GET
/// /status` shows it (`unproven`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnprovenStatus {
    /// The generation.
    pub generation: GenerationId,
    /// The generation its watch compared it with.
    pub baseline: GenerationId,
    /// When the watch ended (RFC 3339).
    pub since: String,
    /// The routes that never carried `min_requests` under it during the watch.
    pub waiting_for: Vec<EvidenceWait>,
}

impl UnprovenStatus {
    /// One line for people: `generation 2 is unproven: its watch (against generation 1)
    /// ended without evidence from route cart (3 of 20 requests); it is not known-good`.
    pub fn text(&self) -> String {
        format!(
            "generation {} is unproven: its watch (against generation {}) ended without evidence from {}; it serves, but is not known-good until a later watch of it has the evidence",
            self.generation,
            self.baseline,
            routes_text(&self.waiting_for)
        )
    }
}

/// `route cart (3 of 20 requests), listener https presenting changed certificate shop
/// (0 of 20 full TLS handshakes)`.
pub(crate) fn routes_text(waiting: &[EvidenceWait]) -> String {
    if waiting.is_empty() {
        return "its routes".to_string();
    }
    waiting
        .iter()
        .map(EvidenceWait::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Controller {
    /// Records that the watch of `generation` against `baseline` ended unproven: logged,
    /// kept for the status and the known-good promotion, and stored as an event.
    pub(crate) async fn record_unproven(
        &self,
        generation: GenerationId,
        baseline: GenerationId,
        waiting: Vec<EvidenceWait>,
        watched_ms: u64,
    ) -> UnprovenStatus {
        let status = UnprovenStatus {
            generation,
            baseline,
            since: keel_store::rfc3339(keel_store::now_ms()),
            waiting_for: waiting,
        };
        let text = status.text();
        tracing::warn!(
            generation,
            baseline,
            routes = ?status.waiting_for,
            "guard: {text}"
        );
        lock(&self.inner.unproven).insert(generation, status.clone());
        let event = NewEvent::new(kind::UNPROVEN, text)
            .generation(generation)
            .details(serde_json::json!({
                "baseline": baseline,
                "waiting_for": status.waiting_for,
                "watched_ms": watched_ms,
            }));
        self.record_event(event).await;
        status
    }

    /// A later watch of `generation` ended clean with its evidence: if it was unproven,
    /// it no longer is (a `proven` event says so).
    pub(crate) async fn record_proven(&self, generation: GenerationId, baseline: GenerationId) {
        if !self.is_unproven(generation).await {
            return;
        }
        lock(&self.inner.unproven).remove(&generation);
        let text = format!(
            "generation {generation} is proven: a later watch of it (against generation {baseline}) saw the evidence its earlier watch lacked, without an alarm"
        );
        tracing::info!(generation, "guard: {text}");
        let event = NewEvent::new(kind::PROVEN, text)
            .generation(generation)
            .details(serde_json::json!({ "baseline": baseline }));
        self.record_event(event).await;
    }

    /// Whether `generation`'s last watch ended unproven (and no later one proved it). Memory
    /// first; else the store's newest `unproven`/`proven` event, which memory then keeps.
    /// A store that cannot be read counts as unproven: promotion can wait a tick.
    pub(crate) async fn is_unproven(&self, generation: GenerationId) -> bool {
        if lock(&self.inner.unproven).contains_key(&generation) {
            return true;
        }
        let events = self
            .with_store(move |store| {
                store.events(EventQuery {
                    kinds: vec![kind::UNPROVEN.to_string(), kind::PROVEN.to_string()],
                    generation: Some(generation),
                    ..EventQuery::default()
                })
            })
            .await;
        let Ok(events) = events else {
            return true;
        };
        let Some(last) = events.last().filter(|e| e.kind == kind::UNPROVEN) else {
            return false;
        };
        let status = UnprovenStatus {
            generation,
            baseline: last.details["baseline"].as_u64().unwrap_or(0),
            since: last.time_rfc3339(),
            waiting_for: serde_json::from_value(last.details["waiting_for"].clone())
                .unwrap_or_default(),
        };
        lock(&self.inner.unproven).insert(generation, status);
        true
    }

    /// The active generation's unproven watch, if its last one ended so (`GET /status`).
    pub(crate) fn unproven_status(&self) -> Option<UnprovenStatus> {
        let active = self.active()?.id();
        lock(&self.inner.unproven).get(&active).cloned()
    }
}
