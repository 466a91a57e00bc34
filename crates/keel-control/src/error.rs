//! `ControlError`: what can go wrong in the control plane other than a refused apply
//! (a refusal is a normal [`crate::ApplyOutcome`], not an error).

use keel_store::{GenerationId, StoreError};

/// A control-plane failure.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The store failed; nothing was swapped unless the variant's context says so.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The apply was checked and compiled but could not be recorded; the previous
    /// generation still serves.
    #[error("cannot record the apply, the previous generation still serves: {0}")]
    Persist(StoreError),
    /// The certificates of the apply could not be pinned in the state directory; nothing
    /// was recorded and the previous generation still serves.
    #[error("cannot pin the certificates, the previous generation still serves: {0}")]
    Pin(#[from] crate::pins::PinError),
    /// No generation serves yet.
    #[error("no generation is active yet")]
    NothingActive,
    /// No rollback target could be chosen.
    #[error("{message}")]
    NoRollbackTarget {
        /// Why.
        message: String,
        /// What to do instead.
        hint: String,
    },
    /// The rollback target is not known-good and the request did not say `force`.
    #[error(
        "generation {id} is not known-good, so rolling back to it needs --force:{}",
        reasons.iter().map(|r| format!("\n  - {r}")).collect::<String>()
    )]
    DistrustedTarget {
        /// The target.
        id: GenerationId,
        /// Why it is distrusted (its alerts with their times, reverts, marks), one line each.
        reasons: Vec<String>,
    },
    /// The requested rollback target is the active generation.
    #[error("generation {0} is already active")]
    AlreadyActive(GenerationId),
    /// A canary is being watched: nothing else may be applied until it is decided.
    #[error(
        "generation {generation} is on canary (watched until it is promoted or reverted); \
         wait for it, or cancel it with `keel rollback`"
    )]
    CanaryInProgress {
        /// The generation on canary.
        generation: GenerationId,
    },
    /// The request asks for something that cannot be done (e.g. a canary of 0%).
    #[error("{0}")]
    BadRequest(String),
    /// A background task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl From<tokio::task::JoinError> for ControlError {
    fn from(error: tokio::task::JoinError) -> Self {
        ControlError::Task(error.to_string())
    }
}
