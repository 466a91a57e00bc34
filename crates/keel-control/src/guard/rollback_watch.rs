//! The watch after a rollback: the target is watched like an applied generation (the
//! same session, the same `watch_apply`, compared with the generation it replaced), for
//! the longer `[safety] watch` of the two configs (or the request's `watch`).
//!
//! If the target alarms, the guard reverts it, choosing where to go:
//!
//! * back to where the rollback came from, when that generation raised no alarm while it
//!   served (the usual case: a forced rollback to a generation that was bad);
//! * otherwise, the newest known-good generation kept in memory other than the target;
//! * except when the target itself is known-good: a rollback away from an alarming
//!   generation to a known-good one is the way out, and moving traffic back is exactly
//!   what it must do, so it is not reverted: the alert stays, and the outcome says so.
//!
//! A revert judges the target bad (`mark-bad` event, known-good withdrawn) and is recorded
//! as a rollback with origin `guard`. A clean watch with its evidence proves a target
//! whose own watch ended unproven; one without it makes a target that is not known-good
//! unproven (`unproven.rs`).

use std::time::Duration;

use keel_watch::{Alert, RollbackTrigger, WatchMode, WatchRequest, WatchVerdict};

use super::session::Cancellation;
use super::{GUARD_AUTHOR, GUARD_ORIGIN, alert_reason, report};
use crate::Controller;
use crate::apply::micros;
use crate::cache::CachedGeneration;
use crate::request::{GuardMode, GuardReport, GuardResult, GuardStage, RollbackRequest};

/// What the rollback's watch compares and where it may go back to.
struct RollbackTrial {
    session: u64,
    target: CachedGeneration,
    from: CachedGeneration,
    started: std::time::Instant,
}

impl Controller {
    /// Starts watching `target` after a rollback from `from` (under the apply lock, right
    /// after the swap). `None` (with a note) when nothing can watch it.
    pub(crate) fn watch_rollback(
        &self,
        request: &RollbackRequest,
        from: CachedGeneration,
        target: CachedGeneration,
        notes: &mut Vec<String>,
    ) -> Option<(GuardReport, tokio::task::JoinHandle<GuardReport>)> {
        let watcher = self.watcher()?.clone();
        if !target.generation.config.detectors.enabled {
            notes.push(format!(
                "generation {} disables the detectors ([detectors] enabled = false): the rollback is not watched",
                target.id()
            ));
            return None;
        }
        let duration = request.watch.unwrap_or_else(|| {
            from.generation
                .config
                .safety
                .watch
                .max(target.generation.config.safety.watch)
        });
        let (session, cancellation) =
            self.begin_session(target.id(), from.id(), GuardMode::Full, 1000, duration);
        let stages = vec![GuardStage {
            permille: 1000,
            watch_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        }];
        let watching = report(
            GuardMode::Full,
            GuardResult::Watching,
            Some(from.id()),
            stages,
        );
        notes.push(format!(
            "the guard watches generation {} for {} ms; if it alarms, it is reverted",
            target.id(),
            duration.as_millis()
        ));
        let trial = RollbackTrial {
            session,
            target,
            from,
            started: std::time::Instant::now(),
        };
        let controller = self.clone();
        let task = tokio::spawn({
            let watching = watching.clone();
            async move {
                controller
                    .run_rollback_watch(watcher, trial, duration, cancellation, watching)
                    .await
            }
        });
        Some((watching, task))
    }

    async fn run_rollback_watch(
        &self,
        watcher: std::sync::Arc<keel_watch::Watcher>,
        trial: RollbackTrial,
        duration: Duration,
        mut cancellation: Cancellation,
        mut guard: GuardReport,
    ) -> GuardReport {
        let (to, from) = (trial.target.id(), trial.from.id());
        let request = WatchRequest {
            baseline: trial.from.generation.clone(),
            candidate: trial.target.generation.clone(),
            mode: WatchMode::Full,
            duration,
            change: format!("rollback from generation {from} to {to}"),
        };
        let elapsed_ms = || micros(trial.started) / 1000;
        let verdict = tokio::select! {
            verdict = watcher.watch_apply(request) => verdict,
            () = cancellation.cancelled() => {
                guard.result = GuardResult::Cancelled;
                guard.reason = Some(format!(
                    "the watch of generation {to} ended early: a newer apply or a rollback replaced it"
                ));
                guard.watched_ms = elapsed_ms();
                return guard;
            }
        };
        let alert = match verdict {
            WatchVerdict::Clean | WatchVerdict::Disabled => {
                let _serialized = self.inner.apply_lock.lock().await;
                self.end_session(trial.session);
                guard.result = if verdict == WatchVerdict::Clean {
                    GuardResult::Promoted
                } else {
                    GuardResult::Unwatched
                };
                guard.watched_ms = elapsed_ms();
                // A clean watch on real traffic vouches for a target whose own watch had
                // none (a clean one whose baseline was quiet waited for nothing).
                let needed =
                    u64::from(trial.target.generation.config.detectors.min_requests.max(1));
                if verdict == WatchVerdict::Clean
                    && watcher.observed_requests(&trial.target.generation) >= needed
                {
                    self.record_proven(to, from).await;
                }
                return guard;
            }
            WatchVerdict::Unproven { waiting } => {
                let _serialized = self.inner.apply_lock.lock().await;
                if !self.session_is(trial.session) {
                    guard.result = GuardResult::Cancelled;
                    guard.watched_ms = elapsed_ms();
                    return guard;
                }
                self.end_session(trial.session);
                guard.watched_ms = elapsed_ms();
                guard.result = GuardResult::Unproven;
                if trial.target.known_good {
                    // Known-good was earned on evidence before; only evidence takes it away.
                    guard.reason = Some(format!(
                        "the watch of generation {to} ended without evidence from {}; it stays known-good",
                        super::unproven::routes_text(&waiting)
                    ));
                } else {
                    let unproven = self
                        .record_unproven(to, from, waiting, guard.watched_ms)
                        .await;
                    guard.reason = Some(unproven.text());
                }
                return guard;
            }
            WatchVerdict::Alarm { alert, .. } => *alert,
        };
        let detected_after_ms = elapsed_ms();
        guard.detected_after_ms = Some(detected_after_ms);
        guard.alert = serde_json::to_value(&alert).ok();
        let _serialized = self.inner.apply_lock.lock().await;
        if !self.session_is(trial.session) {
            guard.result = GuardResult::Cancelled;
            guard.reason = Some(format!(
                "a detector fired ({}), but a newer apply or a rollback had already replaced generation {to}",
                alert.summary
            ));
            guard.watched_ms = elapsed_ms();
            return guard;
        }
        self.end_session(trial.session);
        guard.watched_ms = elapsed_ms();
        let Some(back_to) = self.rollback_revert_target(&trial) else {
            tracing::warn!(
                generation = to,
                "GUARD: rollback target {to} alarmed ({}); not reverted: it is known-good and \
                 generation {from} alarmed too",
                alert.summary
            );
            guard.result = GuardResult::Kept;
            guard.reason = Some(format!(
                "generation {to} alarmed after {detected_after_ms} ms ({}), but it is known-good and \
                 generation {from} alarmed while it served: it stays, the alert stays open",
                alert_reason(&alert)
            ));
            return guard;
        };
        self.revert_rollback(&trial, back_to, &alert).await;
        guard.result = GuardResult::RolledBack;
        guard.reason = Some(format!(
            "{}; generation {} serves again",
            alert_reason(&alert),
            self.active().map_or(from, |a| a.id())
        ));
        guard.reverted_after_ms = Some(elapsed_ms());
        guard.at_permille = Some(1000);
        guard
    }

    /// Where a rollback target that alarmed goes back to (see the module docs); `None`:
    /// it stays.
    fn rollback_revert_target(&self, trial: &RollbackTrial) -> Option<CachedGeneration> {
        let from = self
            .cached(trial.from.id())
            .unwrap_or_else(|| trial.from.clone());
        let from_alarmed = !self
            .inner
            .hooks
            .alarms
            .alarms(&trial.from.generation, trial.from.activated_at)
            .is_empty();
        if !from_alarmed {
            return Some(from);
        }
        if trial.target.known_good {
            return None;
        }
        let newest_good = self.cache().rollback_target(None).ok().cloned();
        Some(newest_good.unwrap_or(from))
    }

    /// Swaps `back_to` in, judges the target bad and counts the automatic rollback
    /// (under the apply lock).
    async fn revert_rollback(
        &self,
        trial: &RollbackTrial,
        back_to: CachedGeneration,
        alert: &Alert,
    ) {
        let reason = alert_reason(alert);
        let id = trial.target.id();
        if let Some(watcher) = self.watcher() {
            watcher
                .metrics()
                .record_rollback(RollbackTrigger::Automatic);
        }
        let swapped = self
            .swap_back(id, back_to, GUARD_ORIGIN, GUARD_AUTHOR, &reason)
            .await;
        tracing::warn!(
            generation = id,
            to = swapped.to,
            "GUARD: rollback target {id} reverted to generation {} after {} ms: {reason}",
            swapped.to,
            micros(trial.started) / 1000
        );
        if let Err(error) = self.judge_bad(id, GUARD_ORIGIN, &reason).await {
            tracing::error!(%error, generation = id, "cannot record generation {id} as judged bad");
            self.set_store_error(Some(format!(
                "generation {id} was reverted by the guard but could not be recorded as bad: {error}"
            )));
        }
    }
}
