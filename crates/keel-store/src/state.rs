//! `GenerationState`: the lifecycle of one generation, and its stable kebab-case names (they are
//! stored in the database and shown by `keel status`, so renaming one is a schema migration).
//!
//! "Known-good" is deliberately *not* a state: it is a flag on the record
//! (`GenerationRecord::known_good`), because a generation can be known-good and active, then
//! known-good and superseded. Folding it into the lifecycle would lose one of the two facts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a generation is in its lifecycle. Transitions are listed in the crate docs and in
/// `docs/store.md`; at most one generation is ever `Active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GenerationState {
    /// Recorded but not serving all traffic yet (a canary, or an apply with `activate = false`).
    Pending,
    /// Serving traffic now. Exactly one generation is active once Keel has applied anything.
    Active,
    /// Served traffic, then was replaced by a newer or explicitly activated generation.
    Superseded,
    /// Was taken out of service by a rollback (judged bad), or a pending canary that was aborted.
    RolledBack,
    /// Failed `keel check` (or was refused by the blast-radius gate) and never served traffic.
    /// Kept so the audit log is complete.
    Rejected,
}

impl GenerationState {
    /// Every state, in lifecycle order.
    pub const ALL: [GenerationState; 5] = [
        GenerationState::Pending,
        GenerationState::Active,
        GenerationState::Superseded,
        GenerationState::RolledBack,
        GenerationState::Rejected,
    ];

    /// The stable kebab-case name stored in the database (`"rolled-back"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            GenerationState::Pending => "pending",
            GenerationState::Active => "active",
            GenerationState::Superseded => "superseded",
            GenerationState::RolledBack => "rolled-back",
            GenerationState::Rejected => "rejected",
        }
    }
}

impl fmt::Display for GenerationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no `GenerationState`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown generation state {found:?}{hint}")]
pub struct UnknownState {
    /// The text that did not parse.
    pub found: String,
    hint: &'static str,
}

impl FromStr for GenerationState {
    type Err = UnknownState;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(state) = GenerationState::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
        {
            return Ok(state);
        }
        let hint = if text == "known-good" {
            " (known-good is a flag on a generation, not a lifecycle state)"
        } else {
            " (expected pending, active, superseded, rolled-back or rejected)"
        };
        Err(UnknownState {
            found: text.to_owned(),
            hint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str_and_serde() {
        for state in GenerationState::ALL {
            assert_eq!(state.as_str().parse::<GenerationState>(), Ok(state));
            let json = serde_json::to_string(&state).ok();
            assert_eq!(json, Some(format!("\"{}\"", state.as_str())));
        }
        assert_eq!(GenerationState::RolledBack.as_str(), "rolled-back");
    }

    #[test]
    fn known_good_is_refused_with_an_explanation() {
        let err = "known-good".parse::<GenerationState>().err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("flag"), "{text}");
        assert!("Active".parse::<GenerationState>().is_err());
    }
}
