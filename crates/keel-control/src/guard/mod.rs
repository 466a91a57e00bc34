//! Guarded applies: the controller drives the canary steps and the watch, and stays the
//! one owner of swaps, the store and the compiled-generation cache. The detectors are
//! `keel-watch`'s: each stage awaits [`keel_watch::Watcher::watch_apply`].
//!
//! ```text
//! --canary P: persist pending ─▶ set_canary(P) ─watch─▶ [lock] step: set_canary / promote ─watch─▶ … promoted
//! default:    persist active ─▶ activate ─▶ (apply returns; --wait waits) ─watch [safety] watch─▶ done
//! alarm:      [lock] set_canary(None) / activate(baseline) ─▶ store rollback (origin guard) ─▶ counted
//! --no-guard: persist active ─▶ activate ─▶ `guard-bypassed` event + warning, not watched
//! ```
//!
//! * A canary generation is recorded `pending`; each slice writes a `canary-step` event;
//!   the full swap is the store's `promote`; an alarm is `record_rollback(candidate,
//!   active, "guard", reason)`. After a full swap an alarm rolls back to the replaced
//!   generation (`rolled-back` / `active` in the store, the cache follows).
//! * One guarded apply is watched at a time ([`session`]): another apply is refused
//!   while a canary runs, and supersedes a full swap's watch; `keel rollback` cancels a
//!   canary, or ends a watch before it rolls back.
//! * A rollback is watched the same way ([`rollback_watch`]): its target against the
//!   generation it replaced; an alarm reverts it and judges it bad.
//! * A watch that runs out of time without the evidence it waited for vouches for
//!   nothing ([`unproven`]): the generation serves on, but is not promoted known-good.
//! * Every alert the watcher raises is persisted as an `alert` event
//!   ([`record_alerts`]), and every apply tells the watcher its diff summary, so alerts
//!   name the change that preceded them.

mod canary;
mod full;
mod outcome;
mod record;
mod rollback_watch;
mod session;
mod unproven;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_config::Config;
use keel_proxy::Generation;
use keel_store::{GenerationId, NewEvent};
use keel_watch::GuardPlan;

pub(crate) use outcome::{unwatched, waited};
pub(crate) use record::record_alerts;
pub use session::GuardStatus;
pub(crate) use session::Session;
pub use unproven::UnprovenStatus;

use crate::Controller;
use crate::apply::micros;
use crate::cache::CachedGeneration;
use crate::controller::lock;
use crate::error::ControlError;
use crate::request::{ApplyRequest, GuardMode, GuardReport, GuardResult, GuardStage};

/// Origin recorded for what the guard does on its own (rollbacks, promotions): `guard`.
pub const GUARD_ORIGIN: &str = "guard";
/// Author of the guard's own rollbacks: `keel`.
pub const GUARD_AUTHOR: &str = "keel";
/// Smallest canary share, in percent (0.1%: one request in a thousand, the data plane's
/// resolution).
pub const MIN_CANARY_PERCENT: f64 = 0.1;
/// Event kind of an apply made with `--no-guard`.
pub const GUARD_BYPASSED: &str = "guard-bypassed";

/// A webhook as far as the watcher's dispatcher cares (url, timeout, attempts).
pub(crate) type WebhookKey = (String, Duration, u32);

/// How an apply that passed the gate will be guarded.
#[derive(Debug)]
pub(crate) enum GuardChoice {
    /// No watcher: swap and tell the [`crate::Watch`] hook, as before guards existed.
    Off,
    /// `--no-guard`.
    Bypassed,
    /// A full swap, watched by a background task.
    Full(GuardPlan),
    /// A canary slice and promotion steps, watched while the apply waits.
    Canary(GuardPlan),
}

impl Controller {
    /// Validates the guard flags of a request before any work is done.
    pub(crate) fn check_guard_flags(&self, request: &ApplyRequest) -> Result<(), ControlError> {
        let Some(percent) = request.canary else {
            return Ok(());
        };
        if !(MIN_CANARY_PERCENT..100.0).contains(&percent) {
            return Err(ControlError::BadRequest(format!(
                "--canary {percent}%: a canary serves at least {MIN_CANARY_PERCENT}% and less than \
                 100% of requests; leave it out for a full swap"
            )));
        }
        if request.no_guard {
            return Err(ControlError::BadRequest(
                "--canary and --no-guard contradict each other: a canary is a guarded apply"
                    .to_string(),
            ));
        }
        if self.watcher().is_none() {
            return Err(ControlError::BadRequest(
                "this controller runs no detectors, so it cannot watch a canary (keel serve runs them)"
                    .to_string(),
            ));
        }
        Ok(())
    }

    /// Decides how a checked, gated apply is guarded (under the apply lock).
    pub(crate) fn guard_choice(
        &self,
        request: &ApplyRequest,
        current: Option<&Generation>,
        candidate: &Config,
    ) -> Result<GuardChoice, ControlError> {
        if self.watcher().is_none() {
            return Ok(GuardChoice::Off);
        }
        if request.no_guard {
            return Ok(GuardChoice::Bypassed);
        }
        // The stricter of the two configs' [safety]: a change cannot shorten its own
        // watch or skip the promotion steps the config it replaces stops at.
        let safety = current.map_or_else(
            || candidate.safety.clone(),
            |c| crate::strictness::stricter_safety(&c.config.safety, &candidate.safety),
        );
        let watch = self.fleet_watch(request.watch.unwrap_or(safety.watch));
        let plan = GuardPlan::new(&safety, request.canary, Some(watch));
        match request.canary {
            Some(_) if current.is_none() => Err(ControlError::BadRequest(
                "nothing serves yet, so there is nothing to run a canary against: apply without --canary"
                    .to_string(),
            )),
            Some(_) => Ok(GuardChoice::Canary(plan)),
            None => Ok(GuardChoice::Full(plan)),
        }
    }

    /// `watch`, or on a fleet node with a node canary (`[fleet] rollout`, `first` > 0) at
    /// least its `rollout.watch`: a canary node's guard watches the candidate for as long
    /// as the rest of the fleet waits for it, so no alarm within that time goes unacted.
    pub(crate) fn fleet_watch(&self, watch: Duration) -> Duration {
        match self.node_config().and_then(|node| node.fleet.clone()) {
            Some(fleet) if fleet.is_shared() && fleet.rollout.first > 0 => {
                watch.max(fleet.rollout.watch)
            }
            _ => watch,
        }
    }

    /// Bookkeeping for a generation that just became the primary: counted, its change
    /// summary told to the watcher, the watcher's webhooks following `[alerts]`.
    pub(crate) fn became_primary(&self, generation: &Generation, notes: &mut Vec<String>) {
        let Some(watcher) = self.watcher() else {
            return;
        };
        let wanted: Vec<WebhookKey> = generation
            .config
            .alerts
            .webhooks
            .iter()
            .map(|w| (w.url.value.clone(), w.timeout, w.attempts))
            .collect();
        let mut current = lock(&self.inner.webhooks);
        if current.as_ref() != Some(&wanted) {
            for error in watcher.set_webhooks(&generation.config.alerts.webhooks) {
                tracing::warn!(%error, "alert webhook not used");
                notes.push(format!("alert webhook not used: {error}"));
            }
            *current = Some(wanted);
        }
    }

    /// Tells the watcher which change produced `generation`, and counts the apply.
    pub(crate) fn note_applied(&self, generation: GenerationId, change: &str) {
        if let Some(watcher) = self.watcher() {
            watcher.note_change(generation, change);
            watcher.metrics().record_apply();
        }
    }

    /// Appends an event; a failure is logged, not returned (the swap already happened).
    pub(crate) async fn record_event(&self, event: NewEvent) {
        if let Err(error) = self.with_store(move |s| s.append_event(event)).await {
            tracing::warn!(%error, "cannot record an event");
        }
    }
}

impl Controller {
    /// What a full swap is judged against and reverts to: the replaced generation when
    /// it is known-good; else the newest known-good generation kept in memory whose
    /// observed window the watcher still holds (at least `min_requests`) and whose
    /// listeners are the candidate's; else the replaced generation. So a change that
    /// was never vouched for (applied `--no-guard`, or at a quiet time) is not the
    /// yardstick of the next one, and the guard never reverts to it.
    pub(crate) fn yardstick(
        &self,
        replaced: Option<CachedGeneration>,
        candidate: &Config,
    ) -> Option<CachedGeneration> {
        let replaced = replaced?;
        if replaced.known_good {
            return Some(replaced);
        }
        let Some(watcher) = self.watcher() else {
            return Some(replaced);
        };
        let needed = u64::from(candidate.detectors.min_requests.max(1));
        let known_good = self
            .cache()
            .kept()
            .find(|c| c.known_good)
            .filter(|c| {
                crate::settings::listener_changes(&c.generation.config, candidate).is_empty()
                    && watcher.observed_requests(&c.generation) >= needed
            })
            .cloned();
        match known_good {
            Some(known_good) => {
                tracing::info!(
                    generation = known_good.id(),
                    replaced = replaced.id(),
                    "guard: generation {} is not known-good; the change is judged against known-good generation {}",
                    replaced.id(),
                    known_good.id()
                );
                Some(known_good)
            }
            None => Some(replaced),
        }
    }
}

/// The one-line change summary the watcher carries into alerts.
pub(crate) fn change_summary(current: Option<&Generation>, candidate: &Config) -> String {
    match current {
        None => "first generation".to_string(),
        Some(current) => crate::semantic_diff(&current.config, candidate).summary_line(),
    }
}

/// The stages of a plan as reported to the caller.
pub(crate) fn report_stages(plan: &GuardPlan) -> Vec<GuardStage> {
    plan.stages()
        .iter()
        .map(|(permille, watch)| GuardStage {
            permille: permille.unwrap_or(1000),
            watch_ms: u64::try_from(watch.as_millis()).unwrap_or(u64::MAX),
        })
        .collect()
}

/// A guard report with no result details yet.
pub(crate) fn report(
    mode: GuardMode,
    result: GuardResult,
    baseline: Option<GenerationId>,
    stages: Vec<GuardStage>,
) -> GuardReport {
    GuardReport {
        mode,
        result,
        baseline,
        stages,
        watched_ms: 0,
        alert: None,
        reason: None,
        detected_after_ms: None,
        reverted_after_ms: None,
        at_permille: None,
    }
}

/// What one guarded generation and its baseline are, for the tasks that watch them.
#[derive(Clone, Debug)]
pub(crate) struct Trial {
    pub(crate) session: u64,
    pub(crate) candidate: CachedGeneration,
    pub(crate) baseline: CachedGeneration,
    pub(crate) change: String,
    /// When the candidate first served.
    pub(crate) started: Instant,
}

impl Trial {
    pub(crate) fn candidate_id(&self) -> GenerationId {
        self.candidate.id()
    }

    pub(crate) fn baseline_generation(&self) -> Arc<Generation> {
        self.baseline.generation.clone()
    }

    pub(crate) fn elapsed_ms(&self) -> u64 {
        micros(self.started) / 1000
    }
}

/// The rollback reason for an alert: detector and summary, on one line.
pub(crate) fn alert_reason(alert: &keel_watch::Alert) -> String {
    format!(
        "{} detector fired on generation {}: {}",
        alert.detector.as_str(),
        alert.generation,
        alert.summary
    )
}
