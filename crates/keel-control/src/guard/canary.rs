//! The canary: the candidate (recorded `pending`) serves a slice of requests and is
//! watched against the primary; clean stages step it up through `[safety]
//! promote_steps` and the last one is the full swap (the store's `promote`); an alarm
//! takes the slice away at once (or, after the full swap, swaps the baseline back) and
//! records a rollback with origin `guard`. The apply waits for all of it. A last stage
//! that runs out of time without its evidence leaves the generation serving but
//! `unproven` (`unproven.rs`).
//!
//! Each step and the revert take the apply lock and first check that the session is
//! still theirs: an operator's `keel rollback` may have cancelled it meanwhile.

use std::time::{Instant, SystemTime};

use keel_proxy::Canary;
use keel_store::{NewEvent, kind};
use keel_watch::{Alert, GuardPlan, RollbackTrigger, WatchMode, WatchRequest, WatchVerdict};

use super::session::Cancellation;
use super::{GUARD_AUTHOR, GUARD_ORIGIN, Trial, alert_reason, report, report_stages};
use crate::Controller;
use crate::apply::micros;
use crate::error::ControlError;
use crate::hooks::Activated;
use crate::request::{
    ApplyOutcome, ApplyStatus, GuardMode, GuardReport, GuardResult, Refusal, Stage,
};

impl Controller {
    /// Starts the canary slice of `trial` (under the apply lock, after the pending
    /// generation was recorded); returns its session's cancellation and the time the
    /// swap took, in microseconds.
    pub(crate) async fn start_canary(
        &self,
        trial: &mut Trial,
        plan: &GuardPlan,
    ) -> Option<(Cancellation, u64)> {
        let (first, _) = *plan.stages().first()?;
        let permille = first?;
        let id = trial.candidate_id();
        let started = Instant::now();
        self.inner.plane.set_canary(Some(Canary {
            generation: trial.candidate.generation.clone(),
            permille,
        }));
        let swap_us = micros(started);
        trial.started = started;
        let (session, cancellation) = self.begin_session(
            id,
            trial.baseline.id(),
            GuardMode::Canary,
            permille,
            plan.total_watch(),
        );
        trial.session = session;
        self.note_applied(id, &trial.change);
        self.record_event(step_event(id, permille, trial.baseline.id()))
            .await;
        tracing::info!(
            generation = id,
            baseline = trial.baseline.id(),
            permille,
            "canary: generation {id} serves {}",
            percent(permille)
        );
        Some((cancellation, swap_us))
    }

    /// Walks the canary's stages (the first one already serves) until it is promoted,
    /// reverted or cancelled, and completes the apply's outcome.
    pub(crate) async fn run_canary(
        &self,
        trial: Trial,
        plan: &GuardPlan,
        mut cancellation: Cancellation,
        mut outcome: ApplyOutcome,
    ) -> Result<ApplyOutcome, ControlError> {
        let Some(watcher) = self.watcher().cloned() else {
            return Err(ControlError::Task("canary without a watcher".to_string()));
        };
        let mut guard = report(
            GuardMode::Canary,
            GuardResult::Promoted,
            Some(trial.baseline.id()),
            report_stages(plan),
        );
        for (index, (permille, duration)) in plan.stages().into_iter().enumerate() {
            if index > 0 && !self.step(&trial, permille, &mut outcome.notes).await? {
                return Ok(cancelled(outcome, guard, &trial, false));
            }
            let mode = permille.map_or(WatchMode::Promotion, |permille| WatchMode::Canary {
                permille,
            });
            let request = WatchRequest {
                baseline: trial.baseline_generation(),
                candidate: trial.candidate.generation.clone(),
                mode,
                duration,
                change: trial.change.clone(),
            };
            let verdict = tokio::select! {
                verdict = watcher.watch_apply(request) => verdict,
                () = cancellation.cancelled() => {
                    return Ok(cancelled(outcome, guard, &trial, permille.is_none()));
                }
            };
            match verdict {
                WatchVerdict::Clean => {}
                // A slice without the evidence steps on: the next, larger one sees more
                // traffic, and the last stage decides whether the generation is proven.
                WatchVerdict::Unproven { waiting } if permille.is_some() => {
                    outcome.notes.push(format!(
                        "the {} stage of generation {} ended without evidence from {}; the next stage watches a larger share",
                        percent(permille.unwrap_or(1000)),
                        trial.candidate_id(),
                        super::unproven::routes_text(&waiting)
                    ));
                }
                WatchVerdict::Unproven { waiting } => {
                    let unproven = self
                        .record_unproven(
                            trial.candidate_id(),
                            trial.baseline.id(),
                            waiting,
                            trial.elapsed_ms(),
                        )
                        .await;
                    outcome.notes.push(unproven.text());
                    guard.result = GuardResult::Unproven;
                    guard.reason = Some(unproven.text());
                }
                WatchVerdict::Disabled => {
                    if permille.is_some() && !self.step(&trial, None, &mut outcome.notes).await? {
                        return Ok(cancelled(outcome, guard, &trial, false));
                    }
                    outcome.notes.push(format!(
                        "generation {} disables the detectors ([detectors] enabled = false): it was promoted unwatched",
                        trial.candidate_id()
                    ));
                    guard.result = GuardResult::Unwatched;
                    break;
                }
                WatchVerdict::Alarm { alert, .. } => {
                    let detected_after_ms = trial.elapsed_ms();
                    if !self.revert(&trial, permille, &alert).await {
                        return Ok(cancelled(outcome, guard, &trial, permille.is_none()));
                    }
                    guard.result = GuardResult::RolledBack;
                    guard.reason = Some(alert_reason(&alert));
                    guard.alert = serde_json::to_value(&alert).ok();
                    guard.detected_after_ms = Some(detected_after_ms);
                    guard.reverted_after_ms = Some(trial.elapsed_ms());
                    guard.at_permille = Some(permille.unwrap_or(1000));
                    guard.watched_ms = trial.elapsed_ms();
                    outcome.status = ApplyStatus::Refused;
                    outcome.refusals = vec![Refusal {
                        stage: Stage::Guard,
                        code: None,
                        message: format!(
                            "rolled back by the guard at {} after {:.1} s: {}",
                            percent(permille.unwrap_or(1000)),
                            detected_after_ms as f64 / 1000.0,
                            alert_reason(&alert)
                        ),
                    }];
                    outcome.guard = Some(guard);
                    return Ok(outcome);
                }
            }
        }
        let _serialized = self.inner.apply_lock.lock().await;
        self.end_session(trial.session);
        guard.watched_ms = trial.elapsed_ms();
        tracing::info!(
            generation = trial.candidate_id(),
            "canary: generation {} promoted after {} ms without an alarm",
            trial.candidate_id(),
            guard.watched_ms
        );
        outcome.guard = Some(guard);
        Ok(outcome)
    }

    /// Moves the canary to its next share (`None`: the full swap, recorded as the
    /// store's `promote`). False when the session was cancelled meanwhile.
    async fn step(
        &self,
        trial: &Trial,
        permille: Option<u32>,
        notes: &mut Vec<String>,
    ) -> Result<bool, ControlError> {
        let _serialized = self.inner.apply_lock.lock().await;
        if !self.session_is(trial.session) {
            return Ok(false);
        }
        let id = trial.candidate_id();
        match permille {
            Some(permille) => {
                self.inner.plane.set_canary(Some(Canary {
                    generation: trial.candidate.generation.clone(),
                    permille,
                }));
                self.set_session_permille(trial.session, permille);
                tracing::info!(
                    generation = id,
                    permille,
                    "canary: step to {}",
                    percent(permille)
                );
                self.record_event(step_event(id, permille, trial.baseline.id()))
                    .await;
            }
            None => {
                let mut promoted = trial.candidate.clone();
                promoted.activated_at = SystemTime::now();
                self.inner.plane.activate(promoted.generation.clone());
                {
                    let mut cache = self.cache();
                    cache.activate(promoted.clone(), None);
                    cache.set_capacity(promoted.generation.config.safety.keep_generations as usize);
                }
                self.set_session_permille(trial.session, 1000);
                self.became_primary(&promoted.generation, notes);
                let reason = format!(
                    "canary passed every step without an alarm ({} ms)",
                    trial.elapsed_ms()
                );
                if let Err(error) = self
                    .with_store(move |s| s.activate(id, GUARD_ORIGIN, &reason))
                    .await
                {
                    let message = format!(
                        "generation {id} serves everything but its promotion is not recorded ({error}); \
                         a restart would serve generation {} again",
                        trial.baseline.id()
                    );
                    tracing::error!("{message}");
                    self.set_store_error(Some(message));
                }
                tracing::info!(
                    generation = id,
                    "canary: generation {id} serves every request"
                );
                self.inner.hooks.watch.activated(
                    Activated {
                        generation: promoted.generation.clone(),
                        previous: Some(trial.baseline_generation()),
                        origin: GUARD_ORIGIN.to_string(),
                    },
                    self,
                );
            }
        }
        Ok(true)
    }

    /// Takes the candidate out of service after `alert` and records why. False when
    /// the session was cancelled before the guard got the lock (nothing done then).
    pub(crate) async fn revert(&self, trial: &Trial, permille: Option<u32>, alert: &Alert) -> bool {
        let _serialized = self.inner.apply_lock.lock().await;
        if !self.session_is(trial.session) {
            return false;
        }
        let reason = alert_reason(alert);
        let id = trial.candidate_id();
        // Counted before the swap: it cannot fail, and a scrape right after sees it.
        if let Some(watcher) = self.watcher() {
            watcher
                .metrics()
                .record_rollback(RollbackTrigger::Automatic);
        }
        match permille {
            Some(_) => {
                let leaving = self.serving_generations();
                self.inner.plane.set_canary(None);
                if let Some(restored) = leaving.first() {
                    self.settle_rolled_back_tunnels(&leaving, restored.id, &restored.config.safety);
                }
                let (to, why) = (trial.baseline.id(), reason.clone());
                tracing::warn!(
                    generation = id,
                    baseline = to,
                    "GUARD: canary of generation {id} cancelled after {} ms: {reason}",
                    trial.elapsed_ms()
                );
                if let Err(error) = self
                    .with_store(move |s| s.record_rollback(id, to, GUARD_ORIGIN, &why))
                    .await
                {
                    let message = format!(
                        "the canary of generation {id} was reverted but not recorded ({error})"
                    );
                    tracing::error!("{message}");
                    self.set_store_error(Some(message));
                }
            }
            None => {
                let target = self
                    .cached(trial.baseline.id())
                    .unwrap_or_else(|| trial.baseline.clone());
                let swapped = self
                    .swap_back(id, target, GUARD_ORIGIN, GUARD_AUTHOR, &reason)
                    .await;
                tracing::warn!(
                    generation = id,
                    baseline = swapped.to,
                    "GUARD: generation {id} rolled back to {} after {} ms: {reason}",
                    swapped.to,
                    trial.elapsed_ms()
                );
            }
        }
        self.end_session(trial.session);
        true
    }
}

/// The outcome of a guarded apply whose session someone else ended: a rollback
/// cancelled the canary (and recorded it), or, once `promoted`, a rollback or a newer
/// apply ended the last stage's watch. Only a cancelled canary makes the apply refused.
fn cancelled(
    mut outcome: ApplyOutcome,
    mut guard: GuardReport,
    trial: &Trial,
    promoted: bool,
) -> ApplyOutcome {
    let id = trial.candidate_id();
    let reason = if promoted {
        format!(
            "generation {id} was promoted; its watch ended early after {} ms (a rollback or a newer apply)",
            trial.elapsed_ms()
        )
    } else {
        format!(
            "the canary of generation {id} was cancelled by a rollback after {} ms",
            trial.elapsed_ms()
        )
    };
    guard.result = GuardResult::Cancelled;
    guard.reason = Some(reason.clone());
    guard.watched_ms = trial.elapsed_ms();
    if promoted {
        outcome.notes.push(reason);
    } else {
        outcome.status = ApplyStatus::Refused;
        outcome.refusals = vec![Refusal {
            stage: Stage::Guard,
            code: None,
            message: reason,
        }];
    }
    outcome.guard = Some(guard);
    outcome
}

fn step_event(generation: u64, permille: u32, baseline: u64) -> NewEvent {
    NewEvent::new(
        kind::CANARY_STEP,
        format!(
            "generation {generation} serves {} of requests as a canary (baseline {baseline})",
            percent(permille)
        ),
    )
    .generation(generation)
    .details(serde_json::json!({ "permille": permille, "baseline": baseline }))
}

/// `100` thousandths → `10%`, `25` → `2.5%`.
pub(crate) fn percent(permille: u32) -> String {
    if permille.is_multiple_of(10) {
        format!("{}%", permille / 10)
    } else {
        format!("{}.{}%", permille / 10, permille % 10)
    }
}
