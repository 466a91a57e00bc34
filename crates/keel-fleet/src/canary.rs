//! The node canary on a canary node (`rollout.rs` has the records and transactions): each
//! convergence of a node that the rollout in progress names as a canary serves the
//! candidate (following it with its own guard when another node applied it), records
//! itself clean once the rollout's `watch` has passed and its guard no longer watches it,
//! and records the rollout failed when it no longer serves the candidate (its guard
//! reverted it and the revert's own record did not reach etcd).

use etcd_client::Client;
use keel_store::{GenerationId, NewEvent, StoreError, now_ms};

use crate::node::{FLEET_FOLLOW_EVENT, Node};
use crate::ops;
use crate::rollout::{CleanOutcome, RolloutState};

impl Node {
    /// The node canary's step on one of its canary nodes; `true` when it decided what this
    /// node serves (else the usual convergence goes on).
    pub(crate) async fn canary_step(
        &self,
        client: &mut Client,
        rollout: &RolloutState,
        serving: Option<GenerationId>,
        fleet: GenerationId,
        followed_revision: i64,
    ) -> Result<bool, StoreError> {
        let me = self.store.node().to_string();
        let candidate = rollout.generation;
        if serving == Some(candidate) {
            self.in_step(fleet, Some(candidate), true);
            self.state().followed_candidate = Some(candidate);
            let watching = self
                .controller
                .guard_status()
                .is_some_and(|g| g.generation == candidate);
            if now_ms() >= rollout.watch_ends_ms() && !watching && !rollout.clean.contains(&me) {
                let store = self.store.clone();
                let outcome = tokio::task::spawn_blocking(move || store.rollout_clean(candidate))
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))??;
                match outcome {
                    CleanOutcome::Promoted(id) => tracing::info!(
                        node = %me,
                        generation = id,
                        "node canary clean: generation {id} is the fleet's active generation"
                    ),
                    CleanOutcome::Counted => tracing::info!(
                        node = %me,
                        generation = candidate,
                        "node canary: this node watched generation {candidate} clean"
                    ),
                    CleanOutcome::NextBatch(nodes) => tracing::info!(
                        node = %me,
                        generation = candidate,
                        "node canary: generation {candidate} clean so far; next step: {}",
                        nodes.join(", ")
                    ),
                    CleanOutcome::NotInProgress | CleanOutcome::Raced => {}
                }
            }
            return Ok(true);
        }
        let reverted = self.state().followed_candidate == Some(candidate);
        if rollout.by != me && !reverted && !rollout.clean.contains(&me) {
            let Some((record, _)) =
                ops::record(client, &self.store.keys().generation(candidate)).await?
            else {
                return Ok(false);
            };
            return match self.controller.follow_watched(record.clone()).await {
                Ok(_) => {
                    self.store.note_local_swap(&record, followed_revision)?;
                    self.in_step(fleet, Some(candidate), true);
                    self.state().followed_candidate = Some(candidate);
                    let event = NewEvent::new(
                        FLEET_FOLLOW_EVENT,
                        format!(
                            "node {me} serves generation {candidate} as a canary of the node canary"
                        ),
                    )
                    .generation(candidate);
                    self.append(event).await;
                    Ok(true)
                }
                Err(error) => {
                    tracing::warn!(node = %me, generation = candidate, %error, "cannot serve the fleet's candidate");
                    let store = self.store.clone();
                    let reason =
                        format!("canary node {me} cannot serve generation {candidate}: {error}");
                    let _ = tokio::task::spawn_blocking(move || {
                        store.rollout_failed(candidate, &reason)
                    })
                    .await;
                    Ok(false)
                }
            };
        }
        // A canary that no longer serves the candidate after the watch (its guard reverted
        // it, and the revert's own record did not reach etcd): the rollout failed.
        if now_ms() > rollout.watch_ends_ms() || reverted {
            let store = self.store.clone();
            let reason = format!(
                "canary node {me} no longer serves generation {candidate}: the rest of the fleet stays on generation {fleet}"
            );
            let _ =
                tokio::task::spawn_blocking(move || store.rollout_failed(candidate, &reason)).await;
        }
        Ok(false)
    }
}
