//! Compare with what was known good, not only with the last change.
//!
//! Each apply is gated against the generation serving now; four applies in a row that
//! each move 12 % pass one by one and end with half the shop elsewhere (salami). So the
//! gate also replays the live sample from a *reference*, the newest known-good
//! generation older than `[safety] drift_window` (the longer of the old and the new
//! config's; without one that old, the oldest known-good generation the store keeps),
//! to the candidate, and judges that cumulative movement by the same rules
//! (`keel_impact::gate_change`). Its reasons say which generation they measure from.
//!
//! And a change is not applied over another change that is still being watched: the
//! watch's baseline would be lost. Such an apply is refused unless forced; forced, its
//! own watch inherits that baseline ([`Controller::inherited_baseline`]). The exception is
//! the watch of a rollback to a known-good generation: a fix applied right after the way
//! out is judged against that known-good generation, as any apply after one.

use std::sync::Arc;
use std::time::Duration;

use keel_config::Config;
use keel_impact::{Compiled, blast_radius_compiled, gate_change};
use keel_proxy::Generation;
use keel_route::RouteTable;
use keel_store::GenerationRecord;

use crate::Controller;
use crate::error::ControlError;
use crate::request::{Refusal, Stage};

/// Known-good generations looked at for the drift reference (100 generations).
const DRIFT_CANDIDATES: usize = 100;

impl Controller {
    /// Reasons to refuse `candidate` for its cumulative movement since the drift
    /// reference (see the module docs), and notes on what could not be judged.
    pub(crate) async fn drift_gate(
        &self,
        current: Option<&Arc<Generation>>,
        candidate: Arc<Config>,
    ) -> Result<(Vec<Refusal>, Vec<String>), ControlError> {
        let Some(current) = current else {
            return Ok((Vec::new(), Vec::new()));
        };
        let window = current
            .config
            .safety
            .drift_window
            .max(candidate.safety.drift_window);
        let records = self
            .with_store(|store| store.known_good(DRIFT_CANDIDATES))
            .await?;
        let Some(reference) = reference(&records, window, keel_store::now_ms()) else {
            return Ok((Vec::new(), Vec::new()));
        };
        if reference.id == current.id {
            return Ok((Vec::new(), Vec::new()));
        }
        let plane = self.inner.plane.clone();
        let reference = reference.clone();
        Ok(tokio::task::spawn_blocking(move || {
            let sample = plane.sample().snapshot();
            if sample.is_empty() {
                return (Vec::new(), Vec::new());
            }
            let old = keel_config::parse(&reference.config_text).config;
            let (Ok(old_table), Ok(new_table)) =
                (RouteTable::compile(&old), RouteTable::compile(&candidate))
            else {
                let note = format!(
                    "cumulative movement since generation {} not measured: a table does not compile",
                    reference.id
                );
                return (Vec::new(), vec![note]);
            };
            let report = blast_radius_compiled(
                Compiled {
                    config: &old,
                    table: &old_table,
                },
                Compiled {
                    config: &candidate,
                    table: &new_table,
                },
                &sample,
            );
            let verdict = gate_change(&report, &old, &candidate);
            let refusals = verdict
                .reasons
                .iter()
                .map(|reason| Refusal {
                    stage: Stage::Gate,
                    code: None,
                    message: format!(
                        "cumulative since generation {} (known good; [safety] drift_window = {}): {reason}",
                        reference.id,
                        keel_config::format_duration(window)
                    ),
                })
                .collect();
            (refusals, Vec::new())
        })
        .await?)
    }

    /// A refusal when another change is still being watched (see the module docs).
    pub(crate) fn watch_in_progress(&self, current: Option<&Arc<Generation>>) -> Option<Refusal> {
        let watched = self.watched_generation()?;
        if self.watching_known_good(watched) {
            return None;
        }
        (current.map(|g| g.id) == Some(watched)).then(|| Refusal {
            stage: Stage::Guard,
            code: None,
            message: format!(
                "generation {watched} is still being watched: a new apply now would end that watch \
                 and lose its baseline; wait for its verdict (keel status), or --force"
            ),
        })
    }
}

impl Controller {
    /// When `current` is still being watched against an older generation, that
    /// generation (from the cache): a change forced over the watch is judged against
    /// it too, so the generation under suspicion never becomes the yardstick.
    pub(crate) fn inherited_baseline(
        &self,
        current: Option<&Arc<Generation>>,
    ) -> Option<crate::cache::CachedGeneration> {
        let (watched, baseline) = self.watched_pair()?;
        if current.map(|g| g.id) != Some(watched) || self.watching_known_good(watched) {
            return None;
        }
        self.cache().get(baseline).cloned()
    }

    /// Whether the watched generation is known-good: a rollback to it is being watched.
    /// A change applied over that watch is judged against it, as after any known-good
    /// generation, and never against the generation the rollback left: that one is the
    /// suspect, not the yardstick.
    fn watching_known_good(&self, watched: keel_store::GenerationId) -> bool {
        self.cache().get(watched).is_some_and(|c| c.known_good)
    }
}

/// The newest record created at least `window` before `now_ms`, or else the oldest.
fn reference(
    records: &[GenerationRecord],
    window: Duration,
    now_ms: i64,
) -> Option<&GenerationRecord> {
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    records
        .iter()
        .find(|r| now_ms.saturating_sub(r.created_at_ms) >= window_ms)
        .or_else(|| records.last())
}
