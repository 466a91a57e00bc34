//! `ReportError`: what can stop a timeline or a playbook from being built.

use keel_store::{GenerationId, StoreError};

/// Why a report could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store could not be read.
    #[error("cannot read the Keel store: {0}")]
    Store(#[from] StoreError),
    /// A stored generation's config text no longer parses (it did when it was applied, so the
    /// parser changed or the row was edited by hand).
    #[error("generation {generation}'s stored config does not parse: {reason}")]
    StoredConfig {
        /// The generation.
        generation: GenerationId,
        /// The first parse error.
        reason: String,
    },
    /// The admin API's `/status` answer was not in the expected shape.
    #[error("unexpected /status answer from the admin API: {0}")]
    StatusShape(String),
    /// The graph layout library failed on the topology (a bug in it or here, never bad input
    /// that we could have refused earlier).
    #[error("could not lay out the topology diagram: {0}")]
    Layout(String),
    /// A `since` later than `until`.
    #[error("the time range is empty: --since {since} is not before --until {until}")]
    EmptyRange {
        /// The start, RFC 3339.
        since: String,
        /// The end, RFC 3339.
        until: String,
    },
}
