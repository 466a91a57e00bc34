//! What a guarded apply tells its author beyond the swap: `--no-guard` (recorded and
//! loud), a full swap with nothing to watch, and the verdict `--wait` waited for.

use keel_proxy::Generation;
use keel_store::{GenerationId, NewEvent};
use keel_watch::GuardPlan;

use super::{GUARD_BYPASSED, report, report_stages};
use crate::Controller;
use crate::cache::CachedGeneration;
use crate::request::{
    ApplyOutcome, ApplyRequest, ApplyStatus, GuardMode, GuardReport, GuardResult, Refusal, Stage,
};

impl Controller {
    /// `--no-guard`: recorded as an event, logged as a warning, told to the author.
    pub(crate) async fn bypassed(
        &self,
        request: &ApplyRequest,
        outcome: &mut ApplyOutcome,
        id: GenerationId,
        change: &str,
        baseline: Option<&CachedGeneration>,
    ) {
        let summary = format!(
            "generation {id} applied with --no-guard by {}: no canary, no watch, no automatic revert",
            request.author
        );
        tracing::warn!(generation = id, author = %request.author, "GUARD BYPASSED: {summary}");
        self.note_applied(id, &format!("{change} (applied with --no-guard)"));
        let event = NewEvent::new(GUARD_BYPASSED, summary.clone())
            .generation(id)
            .details(serde_json::json!({
                "author": request.author,
                "message": request.message,
                "change": change,
            }));
        self.record_event(event).await;
        outcome.notes.push(format!(
            "GUARD BYPASSED: {summary}; only the background watch will alert"
        ));
        outcome.guard = Some(report(
            GuardMode::Unguarded,
            GuardResult::Bypassed,
            baseline.map(CachedGeneration::id),
            Vec::new(),
        ));
    }
}

/// The guard report of a full swap that is not watched: no generation to compare with
/// (the first one), or detectors disabled.
pub(crate) fn unwatched(
    plan: &GuardPlan,
    baseline: Option<&CachedGeneration>,
    generation: &Generation,
    notes: &mut Vec<String>,
) -> GuardReport {
    notes.push(if baseline.is_none() {
        format!(
            "generation {} is the first: there is nothing to watch it against or revert to",
            generation.id
        )
    } else {
        format!(
            "generation {} disables the detectors ([detectors] enabled = false): it is not watched",
            generation.id
        )
    });
    report(
        GuardMode::Full,
        GuardResult::Unwatched,
        baseline.map(CachedGeneration::id),
        report_stages(plan),
    )
}

/// The outcome of `--wait`: the watch's verdict; a revert makes the apply refused.
pub(crate) fn waited(mut outcome: ApplyOutcome, guard: GuardReport) -> ApplyOutcome {
    if guard.result == GuardResult::RolledBack {
        outcome.status = ApplyStatus::Refused;
        outcome.refusals = vec![Refusal {
            stage: Stage::Guard,
            code: None,
            message: format!(
                "rolled back by the guard, detected after {} ms: {}",
                guard.detected_after_ms.unwrap_or(0),
                guard.reason.as_deref().unwrap_or("a detector fired")
            ),
        }];
    }
    outcome.guard = Some(guard);
    outcome
}
