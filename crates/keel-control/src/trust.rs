//! Trust in a generation: why one that is not known-good is distrusted, and judging one
//! bad.
//!
//! Known-good is earned by serving `[safety] known_good_after` without alarms
//! (`known_good.rs`) and lost only to evidence: an alarm the guard acted on, or an
//! operator's `keel mark-bad N` ([`Controller::mark_bad`]), both recorded as a `mark-bad`
//! event. A generation with a `mark-bad` event is never promoted again (re-apply its
//! config for a fresh generation). Leaving a generation by a manual rollback is not
//! evidence and keeps the mark.
//!
//! A rollback to a generation that is not known-good needs `force`; the reasons
//! [`Controller::distrust`] lists (from the store: its alerts with their times, guard
//! reverts, marks, a forced apply) are what the operator sees either way.

use keel_store::{EventQuery, EventRecord, GenerationId, kind, rfc3339};

use crate::Controller;
use crate::cache::CachedGeneration;
use crate::error::ControlError;
use crate::request::{MarkBadOutcome, MarkBadRequest};

/// Most alert lines a distrust explanation lists (the rest are counted).
pub const MAX_DISTRUST_ALERTS: usize = 10;

impl Controller {
    /// Why `target` (not known-good) is distrusted, one line each, oldest first. A store
    /// that cannot be read is said, not hidden.
    pub(crate) async fn distrust(&self, target: &CachedGeneration) -> Vec<String> {
        let id = target.id();
        let forced = target.meta.forced;
        let read = self
            .with_store(move |store| {
                let about = store.events(EventQuery {
                    kinds: vec![kind::ALERT.to_string(), kind::MARK_BAD.to_string()],
                    generation: Some(id),
                    ..EventQuery::default()
                })?;
                let rollbacks = store.events(EventQuery {
                    kinds: vec![kind::ROLLBACK.to_string()],
                    ..EventQuery::default()
                })?;
                let record = store.generation(id)?;
                Ok((about, rollbacks, record))
            })
            .await;
        let (about, rollbacks, record) = match read {
            Ok(read) => read,
            Err(error) => {
                return vec![format!(
                    "it is not known-good (the store could not say more: {error})"
                )];
            }
        };
        let mut reasons = Vec::new();
        if forced {
            let overridden: Vec<String> = record
                .as_ref()
                .and_then(|r| r.check_report["overridden"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|o| o["message"].as_str().map(str::to_string))
                .collect();
            reasons.push(if overridden.is_empty() {
                "it was applied with --force".to_string()
            } else {
                format!(
                    "it was applied with --force over: {}",
                    overridden.join("; ")
                )
            });
        }
        // Timed evidence, oldest first: guard reverts, alerts, marks.
        let mut timed: Vec<(i64, String)> = rollbacks
            .iter()
            .filter(|e| {
                e.details["from"].as_u64() == Some(id)
                    && e.details["origin"].as_str() == Some(crate::GUARD_ORIGIN)
            })
            .map(|e| {
                let why = e.details["reason"].as_str().unwrap_or(&e.summary);
                (
                    e.time_ms,
                    format!("{} reverted by the guard: {why}", e.time_rfc3339()),
                )
            })
            .collect();
        let alerts: Vec<&EventRecord> = about.iter().filter(|e| e.kind == kind::ALERT).collect();
        timed.extend(alerts.iter().take(MAX_DISTRUST_ALERTS).map(|e| {
            (
                e.time_ms,
                format!("{} alert: {}", e.time_rfc3339(), e.summary),
            )
        }));
        timed.extend(
            about
                .iter()
                .filter(|e| e.kind == kind::MARK_BAD)
                .map(|e| (e.time_ms, format!("{} {}", e.time_rfc3339(), e.summary))),
        );
        timed.sort_by_key(|(time, _)| *time);
        reasons.extend(timed.into_iter().map(|(_, line)| line));
        if alerts.len() > MAX_DISTRUST_ALERTS {
            reasons.push(format!(
                "… and {} more alerts (`keel timeline` lists them)",
                alerts.len() - MAX_DISTRUST_ALERTS
            ));
        }
        if reasons.is_empty() {
            let after = target.known_good_after;
            reasons.push(format!(
                "it never became known-good: it did not serve {} without alarms{}",
                seconds(after),
                record
                    .and_then(|r| r.activated_at_ms)
                    .map(|at| format!(" (last activated {})", rfc3339(at)))
                    .unwrap_or_default()
            ));
        }
        reasons
    }

    /// Whether the store holds a `mark-bad` event for `id` (such a generation is never
    /// promoted to known-good again). A store error counts as "judged bad": promotion
    /// can wait for the next tick.
    pub(crate) async fn judged_bad(&self, id: GenerationId) -> bool {
        self.with_store(move |store| {
            store.events(EventQuery {
                kinds: vec![kind::MARK_BAD.to_string()],
                generation: Some(id),
                limit: Some(1),
                ..EventQuery::default()
            })
        })
        .await
        .map_or(true, |events| !events.is_empty())
    }

    /// Judges generation `request.id` bad (`keel mark-bad N`, `POST /generations/N/mark-bad`):
    /// its known-good mark is withdrawn in the store and the cache, with a `mark-bad`
    /// event. It does not roll back: an active generation keeps serving.
    pub async fn mark_bad(&self, request: MarkBadRequest) -> Result<MarkBadOutcome, ControlError> {
        let _serialized = self.inner.apply_lock.lock().await;
        let author = if request.author.trim().is_empty() {
            crate::UNKNOWN_AUTHOR.to_string()
        } else {
            request.author
        };
        let reason = if request.reason.trim().is_empty() {
            format!("by {author}")
        } else {
            format!("{} (by {author})", request.reason)
        };
        self.judge_bad(request.id, keel_store::origin::CLI, &reason)
            .await
    }

    /// Records the judgement and withdraws the cache's mark (under the apply lock for
    /// operators; the guard calls it while holding the lock already).
    pub(crate) async fn judge_bad(
        &self,
        id: GenerationId,
        origin: &str,
        reason: &str,
    ) -> Result<MarkBadOutcome, ControlError> {
        let record = self
            .with_store(move |store| store.generation(id))
            .await?
            .ok_or(ControlError::Store(
                keel_store::StoreError::UnknownGeneration(id),
            ))?;
        let (origin, why) = (origin.to_string(), reason.to_string());
        self.with_store(move |store| store.mark_bad(id, &origin, &why))
            .await?;
        let active = {
            let mut cache = self.cache();
            cache.withdraw_known_good(id);
            cache.active().is_some_and(|a| a.id() == id)
        };
        tracing::warn!(generation = id, %reason, "generation judged bad");
        Ok(MarkBadOutcome {
            id,
            withdrew_known_good: record.known_good,
            active,
        })
    }
}

/// A duration for people: `30 s`, `1.5 s`, `250 ms`.
fn seconds(duration: std::time::Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}
