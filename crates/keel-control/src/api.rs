//! The admin API's JSON bodies that are not controller types: generation listings,
//! one generation in full, the active config, request bodies and errors. Shared by the
//! server (`admin`) and the client (`client`), so the two cannot drift apart.

use keel_store::{GenerationRecord, GenerationState};
use serde::{Deserialize, Serialize};

/// Largest `POST /apply` body (16 MiB): a 10,000-route config is about 1.5 MiB.
pub const MAX_APPLY_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Largest body of the other POST routes (64 KiB).
pub const MAX_SMALL_BODY_BYTES: usize = 64 * 1024;
/// Alerts `GET /alerts` lists when no `limit` is given (50).
pub const DEFAULT_ALERTS_LIMIT: usize = 50;
/// Generations `GET /generations` lists when no `limit` is given (50).
pub const DEFAULT_HISTORY_LIMIT: usize = 50;
/// Most generations one `GET /generations` lists (1,000).
pub const MAX_HISTORY_LIMIT: usize = 1000;

/// `POST /apply` body. An unknown field is refused, not ignored: a misspelled
/// `dryrun` must not turn a dry run into a real apply.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// The full config text.
    pub config: String,
    /// Who applies it.
    #[serde(default)]
    pub author: String,
    /// Why.
    #[serde(default)]
    pub message: String,
    /// Override policy errors and the gate.
    #[serde(default)]
    pub force: bool,
    /// Check and gate only.
    #[serde(default)]
    pub dry_run: bool,
    /// File name for the report (`keel.toml`).
    #[serde(default)]
    pub file_name: String,
    /// Canary share in percent (0.1 ≤ p < 100): the answer comes when the canary is
    /// promoted or reverted, which takes the watch time and the promotion steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<f64>,
    /// Watch time in milliseconds (default `[safety] watch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_ms: Option<u64>,
    /// Apply without the guard (no canary, no watch, no automatic revert).
    #[serde(default)]
    pub no_guard: bool,
    /// After a full swap, answer only when the watch has decided.
    #[serde(default)]
    pub wait: bool,
}

/// `POST /rollback` body (every field optional; an empty body is fine too; an unknown
/// field is refused).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// Target generation; default: the newest known-good one kept in memory.
    #[serde(default)]
    pub to: Option<u64>,
    /// Who asks.
    #[serde(default)]
    pub author: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// Roll back to a target that is not known-good (the answer says why it was distrusted).
    #[serde(default)]
    pub force: bool,
    /// Show the target and the blast radius only.
    #[serde(default)]
    pub dry_run: bool,
    /// Watch time of the target in milliseconds (default: the longer `[safety] watch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_ms: Option<u64>,
    /// Answer only when the watch of the target has decided.
    #[serde(default)]
    pub wait: bool,
    /// Fleet mode: roll back this node only, without writing the fleet's store (`keel
    /// rollback --local`, for when etcd is unreachable); recorded with origin `local`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
}

/// `POST /generations/{id}/mark-bad` body (every field optional).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MarkBadBody {
    /// Who judges.
    #[serde(default)]
    pub author: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// A generation in a listing (no config text).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenerationSummary {
    /// Its number.
    pub id: u64,
    /// Lifecycle state: pending, active, superseded, rolled-back, rejected.
    pub state: GenerationState,
    /// Known-good rollback target.
    pub known_good: bool,
    /// Kept compiled in this process (instant rollback target).
    pub in_memory: bool,
    /// Who applied it.
    pub author: String,
    /// Why.
    pub message: String,
    /// What triggered it.
    pub origin: String,
    /// Forced over failing checks or gate.
    pub forced: bool,
    /// When it was recorded (RFC 3339).
    pub created_at: String,
    /// When it last became active (RFC 3339).
    pub activated_at: Option<String>,
    /// Errors in its check report.
    pub errors: u64,
    /// Warnings in its check report.
    pub warnings: u64,
    /// SHA-256 of its config text.
    pub content_hash: String,
}

/// One generation in full.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenerationDetail {
    /// Summary fields.
    #[serde(flatten)]
    pub summary: GenerationSummary,
    /// The config text exactly as applied.
    pub config: String,
    /// Its check report (plus refusals and overrides).
    pub check_report: serde_json::Value,
    /// Its blast-radius report, if any.
    pub impact_report: Option<serde_json::Value>,
    /// Its certificates: names, leaf facts and pinned digests (never key bytes).
    #[serde(default)]
    pub certificates: Vec<CertificateView>,
}

/// One certificate of a generation, as `GET /generations/{id}` lists it. Nothing of
/// the private key but the digest that names its pinned copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateView {
    /// `[certificates.NAME]`.
    pub name: String,
    /// The digest of the chain and key bytes the generation pinned (the name of their
    /// copy in the state directory); `None` for a generation
    /// recorded before certificates were pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
    /// What the leaf says, when its bytes are at hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<LeafFacts>,
    /// Why there are no facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// A leaf certificate's facts (`keel_config::CertificateFacts` on the wire).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafFacts {
    /// Subject (RFC 4514).
    pub subject: String,
    /// Subject alternative names (DNS), lower case.
    pub dns_names: Vec<String>,
    /// Issuer (RFC 4514).
    pub issuer: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// `ECDSA P-256`, `RSA 2048`, ...
    pub key_type: String,
    /// SHA-256 fingerprint of the leaf (DER), lower-case hex.
    pub sha256: String,
}

impl From<&keel_config::CertificateFacts> for LeafFacts {
    fn from(facts: &keel_config::CertificateFacts) -> Self {
        Self {
            subject: facts.subject.clone(),
            dns_names: facts.dns_names.clone(),
            issuer: facts.issuer.clone(),
            not_after: facts.not_after.clone(),
            key_type: facts.key_type.clone(),
            sha256: facts.sha256.clone(),
        }
    }
}

impl From<&LeafFacts> for keel_config::CertificateFacts {
    fn from(facts: &LeafFacts) -> Self {
        Self {
            subject: facts.subject.clone(),
            dns_names: facts.dns_names.clone(),
            issuer: facts.issuer.clone(),
            not_after: facts.not_after.clone(),
            key_type: facts.key_type.clone(),
            sha256: facts.sha256.clone(),
        }
    }
}

/// `GET /config`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActiveConfig {
    /// The active generation.
    pub generation: u64,
    /// Its config text.
    pub config: String,
}

/// Every error body: `{"error": "...", "hint": "..."}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong.
    pub error: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl GenerationSummary {
    /// The summary of a stored record.
    pub fn from_record(record: &GenerationRecord, in_memory: bool) -> Self {
        let count = |key: &str| record.check_report.get(key).and_then(|v| v.as_u64());
        Self {
            id: record.id,
            state: record.state,
            known_good: record.known_good,
            in_memory,
            author: record.author.clone(),
            message: record.message.clone(),
            origin: record.origin.clone(),
            forced: record.forced,
            created_at: keel_store::rfc3339(record.created_at_ms),
            activated_at: record.activated_at_ms.map(keel_store::rfc3339),
            errors: count("errors").unwrap_or(0),
            warnings: count("warnings").unwrap_or(0),
            content_hash: record.content_hash.clone(),
        }
    }
}

impl GenerationDetail {
    /// The full view of a stored record.
    pub fn from_record(record: GenerationRecord, in_memory: bool) -> Self {
        Self {
            summary: GenerationSummary::from_record(&record, in_memory),
            config: record.config_text,
            check_report: record.check_report,
            impact_report: record.impact_report,
            certificates: Vec::new(),
        }
    }
}
