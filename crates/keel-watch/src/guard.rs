//! The guarded apply, as the data plane sees it: canary slice, watch, promotion steps,
//! and the automatic revert — an atomic pointer swap back to the baseline the moment a
//! detector fires. The controller calls [`guarded_apply`] after it compiled (and
//! stored) the candidate, and records the outcome (generation states, events, exit code).
//!
//! ```text
//! --canary P:  set_canary(P) ─watch─▶ for s in promote_steps: set_canary(s) / activate ─watch─▶ promoted
//! no canary:   activate(candidate) ─watch (safety.watch)─▶ promoted
//! any alarm:   set_canary(None) or activate(baseline) at once ─▶ rolled back, with the alert
//! ```

use std::sync::Arc;
use std::time::Duration;

use keel_config::Safety;
use keel_proxy::{Canary, Generation};
use tokio::time::Instant;

use crate::alerts::Alert;
use crate::metrics::RollbackTrigger;
use crate::watcher::{WatchMode, WatchRequest, WatchVerdict, Watcher};

/// Shortest watch of one promotion step (1 second).
pub const MIN_STEP_WATCH: Duration = Duration::from_secs(1);

/// How an apply is guarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardPlan {
    /// The first canary slice in thousandths; `None` swaps fully at once.
    pub canary_permille: Option<u32>,
    /// Watch time of the first canary slice, or of the full swap.
    pub watch: Duration,
    /// Promotion steps in percent after the canary (ending at 100).
    pub promote_steps: Vec<u32>,
    /// Watch time of each promotion step.
    pub step_watch: Duration,
}

impl GuardPlan {
    /// The plan for `keel apply [--canary P%] [--watch D]` under a config's `[safety]`:
    /// each promotion step is watched `watch / steps` (at least [`MIN_STEP_WATCH`]).
    pub fn new(safety: &Safety, canary_percent: Option<f64>, watch: Option<Duration>) -> Self {
        let watch = watch.unwrap_or(safety.watch);
        let steps = safety.promote_steps.len().max(1) as u32;
        Self {
            canary_permille: canary_percent.map(|p| (p.clamp(0.0, 100.0) * 10.0).round() as u32),
            watch,
            promote_steps: safety.promote_steps.clone(),
            step_watch: (watch / steps).max(MIN_STEP_WATCH),
        }
    }

    /// The stages of the plan, in order: the share each serves the candidate to (in
    /// thousandths; `None` is the full swap) and how long it is watched. A plan without a
    /// canary (or with a canary of 100%) is one full-swap stage; a canary plan walks its
    /// slice, then every larger promotion step, and always ends with the full swap.
    pub fn stages(&self) -> Vec<(Option<u32>, Duration)> {
        let mut stages: Vec<(Option<u32>, Duration)> = Vec::new();
        match self.canary_permille {
            Some(permille) if permille < 1000 => {
                stages.push((Some(permille), self.watch));
                for step in &self.promote_steps {
                    let step = step.saturating_mul(10);
                    if step <= permille {
                        continue;
                    }
                    stages.push(((step < 1000).then_some(step), self.step_watch));
                }
                if stages.last().is_some_and(|(p, _)| p.is_some()) {
                    stages.push((None, self.step_watch));
                }
            }
            _ => stages.push((None, self.watch)),
        }
        stages
    }

    /// The longest a guarded apply under this plan can take: every stage watched to its end.
    pub fn total_watch(&self) -> Duration {
        self.stages().iter().map(|(_, watch)| *watch).sum()
    }
}

/// How a guarded apply ended.
#[derive(Clone, Debug, PartialEq)]
pub enum GuardOutcome {
    /// The candidate serves everything; no detector fired.
    Promoted {
        /// Total time watched.
        watched: Duration,
    },
    /// A detector fired; the baseline serves everything again.
    RolledBack {
        /// The alert that caused it.
        alert: Alert,
        /// Time from the apply to the alarm.
        detected_after: Duration,
        /// Time from the apply to the revert swap.
        reverted_after: Duration,
        /// The canary share (thousandths) when it fired; `None` after a full swap.
        at_permille: Option<u32>,
    },
    /// The candidate serves everything, unwatched: its config disables the detectors.
    Unwatched,
}

/// Runs a guarded apply of `candidate` over `baseline` (the current primary).
pub async fn guarded_apply(
    watcher: &Watcher,
    baseline: Arc<Generation>,
    candidate: Arc<Generation>,
    plan: &GuardPlan,
    change: &str,
) -> GuardOutcome {
    let plane = watcher.plane().clone();
    let started = Instant::now();
    let stages = plan.stages();
    for (permille, duration) in stages {
        let mode = match permille {
            Some(permille) => {
                plane.set_canary(Some(Canary {
                    generation: candidate.clone(),
                    permille,
                }));
                WatchMode::Canary { permille }
            }
            None => {
                plane.activate(candidate.clone());
                WatchMode::Full
            }
        };
        tracing::info!(generation = candidate.id, ?mode, watch = ?duration, "guarded apply: watching");
        let verdict = watcher
            .watch_apply(WatchRequest {
                baseline: baseline.clone(),
                candidate: candidate.clone(),
                mode,
                duration,
                change: change.to_string(),
            })
            .await;
        match verdict {
            WatchVerdict::Clean => {}
            WatchVerdict::Disabled => {
                plane.activate(candidate.clone());
                return GuardOutcome::Unwatched;
            }
            WatchVerdict::Alarm { alert, .. } => {
                let detected_after = started.elapsed();
                match permille {
                    Some(_) => plane.set_canary(None),
                    None => plane.activate(baseline.clone()),
                }
                let reverted_after = started.elapsed();
                watcher
                    .metrics()
                    .record_rollback(RollbackTrigger::Automatic);
                tracing::warn!(
                    generation = candidate.id,
                    baseline = baseline.id,
                    ?detected_after,
                    ?reverted_after,
                    "guarded apply rolled back: {}",
                    alert.summary
                );
                return GuardOutcome::RolledBack {
                    alert,
                    detected_after,
                    reverted_after,
                    at_permille: permille,
                };
            }
        }
    }
    GuardOutcome::Promoted {
        watched: started.elapsed(),
    }
}

/// `keel apply --no-guard`: swaps at once, unwatched, and says so loudly (the log
/// line, and the change noted for background alerts, name the bypass).
pub fn unguarded_apply(watcher: &Watcher, candidate: Arc<Generation>, change: &str) {
    tracing::warn!(
        generation = candidate.id,
        "GUARD BYPASSED (--no-guard): generation {} serves every request without a canary or a watch; only the background watch will alert",
        candidate.id
    );
    watcher.note_change(candidate.id, &format!("{change} (applied with --no-guard)"));
    watcher.plane().activate(candidate);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safety() -> Safety {
        Safety {
            max_shift: 0.25,
            watch: Duration::from_secs(30),
            known_good_after: Duration::from_secs(30),
            keep_generations: 10,
            promote_steps: vec![25, 50, 100],
            cert_expiry_warning: keel_config::defaults::CERT_EXPIRY_WARNING,
        }
    }

    #[test]
    fn plans_follow_the_flags_and_the_safety_section() {
        let plan = GuardPlan::new(&safety(), Some(10.0), None);
        assert_eq!(plan.canary_permille, Some(100));
        assert_eq!(plan.watch, Duration::from_secs(30));
        assert_eq!(plan.step_watch, Duration::from_secs(10));
        let plan = GuardPlan::new(&safety(), None, Some(Duration::from_secs(2)));
        assert_eq!(plan.canary_permille, None);
        assert_eq!(plan.step_watch, MIN_STEP_WATCH);
        assert_eq!(plan.stages(), vec![(None, Duration::from_secs(2))]);
    }

    #[test]
    fn canary_stages_walk_the_promotion_steps_and_end_with_the_full_swap() {
        let plan = GuardPlan::new(&safety(), Some(10.0), Some(Duration::from_secs(30)));
        let step = Duration::from_secs(10);
        assert_eq!(
            plan.stages(),
            vec![
                (Some(100), Duration::from_secs(30)),
                (Some(250), step),
                (Some(500), step),
                (None, step)
            ]
        );
        assert_eq!(plan.total_watch(), Duration::from_secs(60));
        let mut partial = safety();
        partial.promote_steps = vec![5, 50];
        let plan = GuardPlan::new(&partial, Some(10.0), Some(Duration::from_secs(4)));
        assert_eq!(
            plan.stages().iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            vec![Some(100), Some(500), None]
        );
    }
}
