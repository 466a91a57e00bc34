//! Rollback: swap to a generation already compiled in memory, then tell the store.
//!
//! A rollback is a change too, so it runs the same loop as an apply, minus what would
//! slow down the way out:
//!
//! ```text
//! [apply lock] pick the target from the cache ─▶ trust (not known-good: needs force, and
//!   says why: crate::trust) ─▶ blast radius (active → target on the live sample; shown,
//!   never refusing) ─▶ swap ─▶ persist ─▶ watch the target like an apply (guard/rollback_watch)
//! ```
//!
//! The swap cannot fail: no parsing, no file, no database. Persisting comes second; if
//! the store refuses or fails, the rolled-back-to generation keeps serving and the
//! outcome (and `keel status`) says the store is behind.
//!
//! The guard's automatic reverts use the same [`Controller::swap_back`]; a rollback
//! during a canary cancels the canary (see [`Controller::rollback`]). Leaving a
//! generation by a rollback keeps its known-good mark: only an alarm or `keel mark-bad`
//! takes it away.

use std::time::{Instant, SystemTime};

use keel_store::{GenerationId, origin};
use keel_watch::RollbackTrigger;

use crate::Controller;
use crate::apply::{UNKNOWN_AUTHOR, micros};
use crate::cache::{CachedGeneration, TargetError};
use crate::error::ControlError;
use crate::request::{RollbackOutcome, RollbackRequest};
use crate::rollback_report::{rollback_blast_radius, traffic_event};

impl Controller {
    /// Rolls back to `request.to`, or to the newest known-good generation kept in memory.
    ///
    /// While a canary runs, a rollback cancels the canary first (the newest change) and,
    /// unless `to` names another generation than the active one, stops there. A target
    /// that is not known-good is refused ([`ControlError::DistrustedTarget`]) unless
    /// `force`.
    pub async fn rollback(
        &self,
        request: RollbackRequest,
    ) -> Result<RollbackOutcome, ControlError> {
        let controller = self.clone();
        tokio::spawn(async move { controller.run_rollback(request).await }).await?
    }

    async fn run_rollback(
        &self,
        mut request: RollbackRequest,
    ) -> Result<RollbackOutcome, ControlError> {
        if request.origin.trim().is_empty() {
            request.origin = origin::CLI.to_string();
        }
        if request.author.trim().is_empty() {
            request.author = UNKNOWN_AUTHOR.to_string();
        }
        let reason = if request.reason.is_empty() {
            format!("by {}", request.author)
        } else {
            format!("{} (by {})", request.reason, request.author)
        };
        let serialized = self.inner.apply_lock.lock().await;
        if !request.dry_run
            && self.canary_in_progress().is_some()
            && let Some((canary, active, _, _)) = self.cancel_session()
        {
            let aborted = self
                .abort_canary(canary, active, &request.origin, &reason)
                .await;
            if request.to.is_none_or(|to| to == active) {
                return Ok(aborted);
            }
        }
        let (from, target) = {
            let cache = self.cache();
            let from = cache.active().cloned().ok_or(ControlError::NothingActive)?;
            let target = cache
                .rollback_target(request.to)
                .map_err(|e| explain(e, from.id()))?
                .clone();
            (from, target)
        };
        let distrust = if target.known_good {
            Vec::new()
        } else {
            self.distrust(&target).await
        };
        if !target.known_good && !request.force {
            return Err(ControlError::DistrustedTarget {
                id: target.id(),
                reasons: distrust,
            });
        }
        let (blast_radius, mut notes) =
            rollback_blast_radius(self, &from.generation, &target.generation).await?;
        let mut outcome = RollbackOutcome {
            from: from.id(),
            to: target.id(),
            swap_us: 0,
            persisted: false,
            persist_error: None,
            dry_run: request.dry_run,
            forced: !target.known_good,
            distrust,
            blast_radius,
            guard: None,
            notes: Vec::new(),
            tunnels: crate::tunnels::TunnelsLeft::default(),
        };
        if request.dry_run {
            notes.push(format!(
                "dry run: generation {} still serves; nothing was swapped or recorded",
                from.id()
            ));
            outcome.notes = notes;
            return Ok(outcome);
        }
        if outcome.forced {
            tracing::warn!(
                from = from.id(),
                to = target.id(),
                author = %request.author,
                distrust = %outcome.distrust.join("; "),
                "FORCED ROLLBACK: generation {} is not known-good",
                target.id()
            );
        }
        // A watch of the generation being rolled back has nothing left to protect.
        self.cancel_session();
        let swapped = self
            .swap_back(
                from.id(),
                target.clone(),
                &request.origin,
                &request.author,
                &reason,
            )
            .await;
        if let Some(watcher) = self.watcher() {
            watcher.metrics().record_rollback(RollbackTrigger::Manual);
        }
        outcome.swap_us = swapped.swap_us;
        outcome.persisted = swapped.persisted;
        outcome.persist_error = swapped.persist_error;
        outcome.tunnels = swapped.tunnels;
        let task = match self.watch_rollback(&request, from, target, &mut notes) {
            Some((watching, task)) => {
                outcome.guard = Some(watching);
                Some(task)
            }
            None => None,
        };
        outcome.notes = notes;
        drop(serialized);
        if let Some(task) = task
            && request.wait
        {
            let verdict = task.await?;
            if let Some(reason) = &verdict.reason {
                outcome.notes.push(reason.clone());
            }
            outcome.guard = Some(verdict);
        }
        Ok(outcome)
    }

    /// Makes `target` (kept compiled) serve everything instead of `from`, then records
    /// the rollback; a store failure is reported in the outcome, not undone. Call under
    /// the apply lock.
    pub(crate) async fn swap_back(
        &self,
        from: GenerationId,
        mut target: CachedGeneration,
        origin: &str,
        author: &str,
        reason: &str,
    ) -> RollbackOutcome {
        let (swap_us, tunnels) = {
            let mut cache = self.cache();
            target.activated_at = SystemTime::now();
            let leaving = self.serving_generations();
            let started = Instant::now();
            self.inner.plane.activate(target.generation.clone());
            let swap_us = micros(started);
            let safety = &target.generation.config.safety;
            let tunnels = self.settle_rolled_back_tunnels(&leaving, target.id(), safety);
            cache.activate(target.clone(), None);
            (swap_us, tunnels)
        };
        let to = target.id();
        let served = self.cached(from).map(|g| traffic_event(&g.generation, to));
        tracing::warn!(from, to, %author, %reason, %origin, "rolled back");
        let mut notes = Vec::new();
        self.became_primary(&target.generation, &mut notes);
        let (origin, reason) = (origin.to_string(), reason.to_string());
        let persisted = self
            .with_store(move |store| store.record_rollback(from, to, &origin, &reason))
            .await;
        if persisted.is_ok()
            && let Some(event) = served
        {
            self.record_event(event).await;
        }
        RollbackOutcome {
            tunnels,
            ..self.rollback_recorded(from, to, swap_us, persisted)
        }
    }

    /// Takes a canary slice away (the active generation keeps serving) and records it.
    async fn abort_canary(
        &self,
        canary: GenerationId,
        active: GenerationId,
        origin: &str,
        reason: &str,
    ) -> RollbackOutcome {
        let leaving = self.serving_generations();
        let started = Instant::now();
        self.inner.plane.set_canary(None);
        let swap_us = micros(started);
        let tunnels = leaving.first().map(|restored| {
            self.settle_rolled_back_tunnels(&leaving, restored.id, &restored.config.safety)
        });
        tracing::warn!(canary, active, %reason, "canary cancelled");
        let (origin, reason) = (origin.to_string(), reason.to_string());
        let persisted = self
            .with_store(move |store| store.record_rollback(canary, active, &origin, &reason))
            .await;
        RollbackOutcome {
            tunnels: tunnels.unwrap_or_default(),
            ..self.rollback_recorded(canary, active, swap_us, persisted)
        }
    }

    fn rollback_recorded(
        &self,
        from: GenerationId,
        to: GenerationId,
        swap_us: u64,
        persisted: Result<(), ControlError>,
    ) -> RollbackOutcome {
        let persist_error = match persisted {
            Ok(()) => {
                self.set_store_error(None);
                None
            }
            Err(error) => {
                let message = format!(
                    "rollback from {from} to {to} is serving but not recorded ({error}); \
                     a restart would serve generation {from} again"
                );
                tracing::error!("{message}");
                self.set_store_error(Some(message.clone()));
                Some(message)
            }
        };
        RollbackOutcome {
            from,
            to,
            swap_us,
            persisted: persist_error.is_none(),
            persist_error,
            dry_run: false,
            forced: false,
            distrust: Vec::new(),
            blast_radius: None,
            guard: None,
            notes: Vec::new(),
            tunnels: crate::tunnels::TunnelsLeft::default(),
        }
    }
}

fn explain(error: TargetError, active: u64) -> ControlError {
    match error {
        TargetError::IsActive(id) => ControlError::AlreadyActive(id),
        TargetError::NotInMemory { id, kept } => ControlError::NoRollbackTarget {
            message: format!(
                "generation {id} is not kept compiled in memory (kept: {}), so it cannot be rolled back to instantly",
                list(&kept)
            ),
            hint: format!(
                "re-apply its config through the full check: `keel show {id} --config > gen{id}.toml && keel apply gen{id}.toml -m \"back to {id}\"`"
            ),
        },
        TargetError::NoKnownGood { kept } => ControlError::NoRollbackTarget {
            message: format!(
                "no known-good generation other than the active one ({active}) is kept in memory (kept: {})",
                list(&kept)
            ),
            hint: if kept.is_empty() {
                "apply a fixed config with `keel apply`, or re-apply an old one from `keel history` / `keel show N --config`".to_string()
            } else {
                format!(
                    "name a generation explicitly with --force, e.g. `keel rollback --to {} --force` (it is not known-good)",
                    kept[0]
                )
            },
        },
    }
}

fn list(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "none".to_string();
    }
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
