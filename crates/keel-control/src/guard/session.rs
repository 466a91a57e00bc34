//! The guard session: the one guarded apply being watched right now (a canary walking
//! its steps, or a full swap in its watch window), and how it is cancelled.
//!
//! Every session change happens under the controller's apply lock, so a guard task
//! that wakes on an alarm, an apply that supersedes a watched generation and a
//! rollback see one order of events: whoever takes the lock first decides, and the
//! others find the session gone ([`Controller::session_is`] is false) and do nothing.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use keel_store::GenerationId;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::Controller;
use crate::controller::lock;
use crate::request::GuardMode;

/// The guarded apply in progress.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: u64,
    pub(crate) candidate: GenerationId,
    pub(crate) baseline: GenerationId,
    pub(crate) mode: GuardMode,
    /// The candidate's share now, in thousandths (1000 once it serves everything).
    pub(crate) permille: u32,
    pub(crate) started: SystemTime,
    /// When the last stage's watch ends if nothing fires.
    pub(crate) ends_by: SystemTime,
    cancel: watch::Sender<bool>,
}

/// Resolves when the session it belongs to is cancelled or replaced.
pub(crate) struct Cancellation(watch::Receiver<bool>);

impl Cancellation {
    /// Waits for the cancellation (a dropped session counts as cancelled).
    pub(crate) async fn cancelled(&mut self) {
        let _ = self.0.wait_for(|cancelled| *cancelled).await;
    }
}

/// A guarded apply being watched, as `GET /status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardStatus {
    /// The generation on trial.
    pub generation: GenerationId,
    /// The generation it is compared with and would go back to.
    pub baseline: GenerationId,
    /// `canary` or `full`.
    pub mode: GuardMode,
    /// Its share of requests now, in thousandths.
    pub permille: u32,
    /// When the watch began (RFC 3339).
    pub since: String,
    /// When it ends if no detector fires (RFC 3339). No evidence is not good evidence:
    /// past this time the watch goes on while `waiting_for` is not empty.
    pub until: String,
    /// Routes that had traffic before the change and have not yet carried
    /// `min_requests` under it: the watch does not end clean before they have (or before
    /// as long again has passed).
    #[serde(default)]
    pub waiting_for: Vec<keel_watch::EvidenceWait>,
}

impl Controller {
    /// Starts a session for `candidate` (replacing and cancelling any other): call it
    /// under the apply lock, right after the swap or canary start it watches.
    pub(crate) fn begin_session(
        &self,
        candidate: GenerationId,
        baseline: GenerationId,
        mode: GuardMode,
        permille: u32,
        total: Duration,
    ) -> (u64, Cancellation) {
        let (cancel, receiver) = watch::channel(false);
        let id = self.inner.next_session.fetch_add(1, Ordering::Relaxed) + 1;
        let started = SystemTime::now();
        let previous = lock(&self.inner.session).replace(Session {
            id,
            candidate,
            baseline,
            mode,
            permille,
            started,
            ends_by: started + total,
            cancel,
        });
        if let Some(previous) = previous {
            tracing::info!(
                generation = previous.candidate,
                "guard: the watch of generation {} ends: generation {candidate} replaces it",
                previous.candidate
            );
            let _ = previous.cancel.send(true);
        }
        (id, Cancellation(receiver))
    }

    /// Whether session `id` is still the one in progress.
    pub(crate) fn session_is(&self, id: u64) -> bool {
        lock(&self.inner.session)
            .as_ref()
            .is_some_and(|s| s.id == id)
    }

    /// Records the candidate's new share in session `id`.
    pub(crate) fn set_session_permille(&self, id: u64, permille: u32) {
        if let Some(session) = lock(&self.inner.session).as_mut().filter(|s| s.id == id) {
            session.permille = permille;
        }
    }

    /// Ends session `id` (decided by its own task); does nothing if another replaced it.
    pub(crate) fn end_session(&self, id: u64) {
        let mut session = lock(&self.inner.session);
        if session.as_ref().is_some_and(|s| s.id == id) {
            *session = None;
        }
    }

    /// Ends and cancels whatever session is in progress; returns what it was watching
    /// (candidate, baseline, mode, share).
    pub(crate) fn cancel_session(&self) -> Option<(GenerationId, GenerationId, GuardMode, u32)> {
        let session = lock(&self.inner.session).take()?;
        let _ = session.cancel.send(true);
        Some((
            session.candidate,
            session.baseline,
            session.mode,
            session.permille,
        ))
    }

    /// The generation on a canary slice (not yet serving everything), if any.
    pub(crate) fn canary_in_progress(&self) -> Option<GenerationId> {
        lock(&self.inner.session)
            .as_ref()
            .filter(|s| s.mode == GuardMode::Canary && s.permille < 1000)
            .map(|s| s.candidate)
    }

    /// The generation a session is watching, if any.
    pub(crate) fn watched_generation(&self) -> Option<GenerationId> {
        lock(&self.inner.session).as_ref().map(|s| s.candidate)
    }

    /// The watched generation and the baseline it is judged against, if a session runs.
    pub(crate) fn watched_pair(&self) -> Option<(GenerationId, GenerationId)> {
        lock(&self.inner.session)
            .as_ref()
            .map(|s| (s.candidate, s.baseline))
    }

    /// The session in progress, for `GET /status`.
    pub fn guard_status(&self) -> Option<GuardStatus> {
        let mut status = lock(&self.inner.session).as_ref().map(|s| GuardStatus {
            generation: s.candidate,
            baseline: s.baseline,
            mode: s.mode,
            permille: s.permille,
            since: keel_store::rfc3339(epoch_ms(s.started)),
            until: keel_store::rfc3339(epoch_ms(s.ends_by)),
            waiting_for: Vec::new(),
        })?;
        // Asked outside the session lock: the watcher takes its own.
        if let Some(watcher) = self.watcher() {
            status.waiting_for = watcher.awaiting_evidence(status.generation);
        }
        Some(status)
    }
}

fn epoch_ms(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
