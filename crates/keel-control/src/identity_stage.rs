//! The identity stage of an apply: every backend a change brings in is probed for its
//! identity before the swap, whether or not its pool has health checks, and judged
//! against the identities of every service in the active config and the candidate
//! (`keel_check::probe::identities`). A backend that answers as another application
//! refuses the apply (`--force` overrides it, and the override is recorded); a backend
//! that cannot be reached is a note (a health-checked pool keeps it out of traffic until
//! it passes; an unchecked one relies on response verification).
//!
//! The evidence is the candidate's: it goes into the candidate's refusal (or
//! overrides), never into alerts on the generation that is serving.

use std::sync::Arc;

use keel_check::probe::identities::probe_new_backends;
use keel_config::{Config, codes};

use crate::request::{Refusal, Stage};

/// What the identity probes of a candidate found: reasons to refuse, and notes.
#[derive(Debug, Default)]
pub(crate) struct IdentityVerdict {
    pub(crate) refusals: Vec<Refusal>,
    pub(crate) notes: Vec<String>,
}

/// Probes the backends `candidate` brings in (relative to `current`) and judges them.
pub(crate) async fn probe_identities(
    current: Option<Arc<Config>>,
    candidate: Arc<Config>,
) -> IdentityVerdict {
    let findings = probe_new_backends(current.as_deref(), &candidate).await;
    let mut verdict = IdentityVerdict::default();
    for finding in findings {
        if let Some(message) = finding.refusal {
            verdict.refusals.push(Refusal {
                stage: Stage::Probe,
                code: Some(codes::MISIDENTIFIED_BACKEND.to_string()),
                message,
            });
        }
        if let Some(note) = finding.note {
            verdict.notes.push(note);
        }
    }
    verdict
}
