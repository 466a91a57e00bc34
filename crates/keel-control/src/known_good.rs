//! Known-good promotion: a generation that has served for `[safety] known_good_after` (the
//! longer of its own and that of the generation it replaced) with no alarm from the [`crate::AlarmSource`] (with a watcher: no alert about it since
//! it became active), that the guard is no longer watching, whose last watch did not end
//! without its evidence (`guard/unproven.rs`: an unproven watch must not vouch) and that
//! was never judged bad (no `mark-bad` event: see `trust.rs`), becomes a rollback target. Only evidence takes
//! the mark away again; a manual rollback away from it does not.
//!
//! [`Controller::promote_known_good`] does one check; [`run_known_good`] calls it on a
//! timer until shutdown.

use std::future::Future;
use std::time::{Duration, SystemTime};

use keel_store::GenerationId;

use crate::Controller;
use crate::error::ControlError;

/// How often the known-good timer looks at the active generation (1 second).
pub const KNOWN_GOOD_TICK: Duration = Duration::from_secs(1);

impl Controller {
    /// Marks the active generation known-good if it has served long enough without
    /// alarms. Returns the id it marked, if any.
    pub async fn promote_known_good(&self) -> Result<Option<GenerationId>, ControlError> {
        let _serialized = self.inner.apply_lock.lock().await;
        let Some(active) = self.active() else {
            return Ok(None);
        };
        // A generation the guard still watches is not vouched for yet.
        if active.known_good || self.watched_generation() == Some(active.id()) {
            return Ok(None);
        }
        let served = SystemTime::now()
            .duration_since(active.activated_at)
            .unwrap_or(Duration::ZERO);
        if served < active.known_good_after {
            return Ok(None);
        }
        let alarms = self
            .inner
            .hooks
            .alarms
            .alarms(&active.generation, active.activated_at);
        if !alarms.is_empty() {
            tracing::debug!(generation = active.id(), ?alarms, "not known-good: alarms");
            return Ok(None);
        }
        let id = active.id();
        if self.judged_bad(id).await {
            return Ok(None);
        }
        if self.is_unproven(id).await {
            tracing::debug!(generation = id, "not known-good: its watch was unproven");
            return Ok(None);
        }
        match self
            .with_store(move |store| store.mark_known_good(id))
            .await
        {
            Ok(()) => {
                self.cache().mark_known_good(id);
                tracing::info!(generation = id, "generation is known-good");
                Ok(Some(id))
            }
            Err(error) => {
                self.set_store_error(Some(format!(
                    "cannot record generation {id} as known-good: {error}"
                )));
                Err(error)
            }
        }
    }
}

/// Checks for known-good promotion every [`KNOWN_GOOD_TICK`] until `shutdown` completes.
pub async fn run_known_good(controller: Controller, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(KNOWN_GOOD_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {
                if let Err(error) = controller.promote_known_good().await {
                    tracing::warn!(%error, "known-good check failed");
                }
            }
        }
    }
}
