//! Generations as the store sees them: what a caller hands in (`NewGeneration`), what it gets
//! back (`GenerationRecord`), and the content hash that identifies a config text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::GenerationState;

/// A generation's number. Assigned by the store, strictly increasing, never reused.
pub type GenerationId = u64;

/// Well-known values for `NewGeneration::origin`: what triggered the apply.
pub mod origin {
    /// `keel apply` (through the admin API).
    pub const CLI: &str = "cli";
    /// The daemon re-read its config file on SIGHUP.
    pub const SIGHUP: &str = "sighup";
    /// The config file loaded when the daemon started.
    pub const STARTUP: &str = "startup";
    /// A rollback (manual or by the guard) re-activated an earlier generation.
    pub const ROLLBACK: &str = "rollback";
    /// `keel rollback --local`: one fleet node rolled back on its own, without writing the
    /// fleet's shared store (a single-node store records it like any rollback).
    pub const LOCAL: &str = "local";
}

/// The lowercase hex SHA-256 of a config text: equal texts, equal hashes, on every node.
pub fn content_hash(config_text: &str) -> String {
    format!("{:x}", Sha256::digest(config_text.as_bytes()))
}

/// A generation to record. The store assigns its id, hash, times and state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewGeneration {
    /// The full config text exactly as applied (the audit log must be able to replay it).
    pub config_text: String,
    /// Who applied it (user name, or "keel" for automatic applies).
    pub author: String,
    /// Why, in the author's words (may be empty).
    pub message: String,
    /// What triggered it; see [`origin`] for the usual values. Must not be empty.
    pub origin: String,
    /// The author overrode a failing check or gate (`keel apply --force`).
    pub forced: bool,
    /// The `keel check` report, as JSON.
    pub check_report: serde_json::Value,
    /// The blast-radius report, when one was computed.
    pub impact_report: Option<serde_json::Value>,
    /// The certificates it serves, pinned: certificate name → digest of its chain and key
    /// bytes, whose copies the control plane keeps in the state directory (see
    /// `docs/store.md`). Empty for a generation without certificates, a refused one, or
    /// one recorded before certificates were pinned.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub certificates: BTreeMap<String, String>,
}

/// A stored generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRecord {
    /// Its number.
    pub id: GenerationId,
    /// The full config text.
    pub config_text: String,
    /// [`content_hash`] of `config_text`, computed by the store.
    pub content_hash: String,
    /// Who applied it.
    pub author: String,
    /// Why.
    pub message: String,
    /// What triggered it.
    pub origin: String,
    /// Whether a failing check or gate was overridden.
    pub forced: bool,
    /// When it was recorded (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// When it last became active; `None` if it never served traffic.
    pub activated_at_ms: Option<i64>,
    /// The `keel check` report.
    pub check_report: serde_json::Value,
    /// The blast-radius report, if any.
    pub impact_report: Option<serde_json::Value>,
    /// The certificates it serves, pinned (see [`NewGeneration::certificates`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub certificates: BTreeMap<String, String>,
    /// Its lifecycle state.
    pub state: GenerationState,
    /// It served traffic through a watch period without alerts (or an operator vouched for it):
    /// a rollback target. Independent of `state`; withdrawn only by `Store::mark_bad`.
    pub known_good: bool,
    /// When it was last marked known-good, if it currently is.
    pub known_good_at_ms: Option<i64>,
}

impl NewGeneration {
    /// Refuses a generation that could not be attributed in the audit log.
    pub fn validate(&self) -> Result<(), crate::StoreError> {
        if self.origin.trim().is_empty() {
            return Err(crate::StoreError::InvalidInput(
                "generation origin must not be empty".to_owned(),
            ));
        }
        Ok(())
    }

    /// The stored record for this generation, given what the store decided.
    pub fn into_record(
        self,
        id: GenerationId,
        state: GenerationState,
        now_ms: i64,
    ) -> GenerationRecord {
        let activated_at_ms = (state == GenerationState::Active).then_some(now_ms);
        GenerationRecord {
            id,
            content_hash: content_hash(&self.config_text),
            config_text: self.config_text,
            author: self.author,
            message: self.message,
            origin: self.origin,
            forced: self.forced,
            created_at_ms: now_ms,
            activated_at_ms,
            check_report: self.check_report,
            impact_report: self.impact_report,
            certificates: self.certificates,
            state,
            known_good: false,
            known_good_at_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_is_sha256_hex() {
        // FIPS 180-2 test vector for "abc".
        assert_eq!(
            content_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(content_hash("x"), content_hash("x"));
        assert_ne!(content_hash("x"), content_hash("x\n"));
    }
}
