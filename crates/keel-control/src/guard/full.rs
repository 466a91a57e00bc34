//! The watch after a full swap: every guarded apply without `--canary` is watched for
//! `[safety] watch` (or `--watch`) against the frozen last window of its yardstick, in a
//! background task: the generation it replaced, or the newest known-good one when the
//! replaced generation was never vouched for (`Controller::yardstick`). An alarm swaps
//! the yardstick back (one pointer swap), records the rollback with origin `guard` and
//! counts it; the apply call has long returned unless it asked to `wait`.
//!
//! A newer apply or a rollback ends the watch (the session is replaced or cancelled):
//! the generation it would protect no longer serves. A watch that runs out of time
//! without its evidence ends `unproven` (`unproven.rs`): no revert, no known-good.

use keel_watch::{GuardPlan, WatchMode, WatchRequest, WatchVerdict};

use super::session::Cancellation;
use super::{Trial, alert_reason, report, report_stages};
use crate::Controller;
use crate::request::{GuardMode, GuardReport, GuardResult};

impl Controller {
    /// Starts watching `trial` after its full swap (under the apply lock). Returns the
    /// report the apply answers with now (`watching`) and the task that will decide.
    pub(crate) fn watch_full_swap(
        &self,
        mut trial: Trial,
        plan: &GuardPlan,
    ) -> (GuardReport, tokio::task::JoinHandle<GuardReport>) {
        let duration = plan.watch;
        let (session, cancellation) = self.begin_session(
            trial.candidate_id(),
            trial.baseline.id(),
            GuardMode::Full,
            1000,
            duration,
        );
        trial.session = session;
        let watching = report(
            GuardMode::Full,
            GuardResult::Watching,
            Some(trial.baseline.id()),
            report_stages(plan),
        );
        tracing::info!(
            generation = trial.candidate_id(),
            baseline = trial.baseline.id(),
            watch = ?duration,
            "guard: watching generation {} for {duration:?}; an alarm swaps generation {} back",
            trial.candidate_id(),
            trial.baseline.id()
        );
        let controller = self.clone();
        let task = tokio::spawn({
            let watching = watching.clone();
            async move {
                controller
                    .run_full_watch(trial, duration, cancellation, watching)
                    .await
            }
        });
        (watching, task)
    }

    async fn run_full_watch(
        &self,
        trial: Trial,
        duration: std::time::Duration,
        mut cancellation: Cancellation,
        mut guard: GuardReport,
    ) -> GuardReport {
        let Some(watcher) = self.watcher().cloned() else {
            guard.result = GuardResult::Unwatched;
            return guard;
        };
        let request = WatchRequest {
            baseline: trial.baseline_generation(),
            candidate: trial.candidate.generation.clone(),
            mode: WatchMode::Full,
            duration,
            change: trial.change.clone(),
        };
        let verdict = tokio::select! {
            verdict = watcher.watch_apply(request) => verdict,
            () = cancellation.cancelled() => {
                guard.result = GuardResult::Cancelled;
                guard.reason = Some(format!(
                    "the watch of generation {} ended early: a newer apply or a rollback replaced it",
                    trial.candidate_id()
                ));
                guard.watched_ms = trial.elapsed_ms();
                return guard;
            }
        };
        match verdict {
            WatchVerdict::Clean | WatchVerdict::Disabled => {
                let _serialized = self.inner.apply_lock.lock().await;
                self.end_session(trial.session);
                guard.result = if verdict == WatchVerdict::Clean {
                    GuardResult::Promoted
                } else {
                    GuardResult::Unwatched
                };
                guard.watched_ms = trial.elapsed_ms();
                tracing::info!(
                    generation = trial.candidate_id(),
                    "guard: generation {} watched {} ms without an alarm",
                    trial.candidate_id(),
                    guard.watched_ms
                );
            }
            WatchVerdict::Unproven { waiting } => {
                let _serialized = self.inner.apply_lock.lock().await;
                if !self.session_is(trial.session) {
                    guard.result = GuardResult::Cancelled;
                    guard.watched_ms = trial.elapsed_ms();
                    return guard;
                }
                self.end_session(trial.session);
                guard.watched_ms = trial.elapsed_ms();
                let unproven = self
                    .record_unproven(
                        trial.candidate_id(),
                        trial.baseline.id(),
                        waiting,
                        guard.watched_ms,
                    )
                    .await;
                guard.result = GuardResult::Unproven;
                guard.reason = Some(unproven.text());
            }
            WatchVerdict::Alarm { alert, .. } => {
                let detected_after_ms = trial.elapsed_ms();
                if self.revert(&trial, None, &alert).await {
                    guard.result = GuardResult::RolledBack;
                    guard.reason = Some(alert_reason(&alert));
                    guard.alert = serde_json::to_value(&alert).ok();
                    guard.detected_after_ms = Some(detected_after_ms);
                    guard.reverted_after_ms = Some(trial.elapsed_ms());
                    guard.at_permille = Some(1000);
                } else {
                    guard.result = GuardResult::Cancelled;
                    guard.reason = Some(format!(
                        "a detector fired ({}), but a newer apply or a rollback had already replaced generation {}",
                        alert.summary,
                        trial.candidate_id()
                    ));
                }
                guard.watched_ms = trial.elapsed_ms();
            }
        }
        guard
    }
}
