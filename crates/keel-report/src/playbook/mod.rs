//! `Playbook`: the rollback runbook generated from the live state: what serves now, which
//! generations to roll back to and the exact command for each, how to verify a rollback
//! (`keel status`, metrics, a real request), who changed what recently, and the topology.
//!
//! Rollback targets are the newest [`KNOWN_GOOD_TARGETS`] known-good generations that are not
//! active; when none of them is the generation that served just before the active one, that one
//! is added too, marked as not known-good (it served, so the store accepts it as a target).
//! The first target, the newest known-good generation, is the recommended one. A generation a
//! manual rollback left keeps its known-good mark and is offered; one the guard reverted or an
//! operator marked bad is not known-good, and a rolled-back generation is never added as the
//! "previously served" one. Commands for targets that are not known-good carry `--force`.
//! Forced generations are marked FORCED, and the live `/status` answer's open alerts come first.
//!
//! Every rollback command is in its own fenced `sh` block whose first line is
//! [`ROLLBACK_MARKER`]` to=N`, so a script (or the end-to-end test) can extract it; the same
//! commands are returned by [`Playbook::rollback_commands`].

mod html;
mod markdown;
mod verify;

use keel_config::Config;
use keel_store::{
    EventQuery, GenerationId, GenerationRecord, GenerationState, Store, kind, now_ms, rfc3339,
};
use serde::Serialize;

pub use verify::{
    METRIC_ACTIVE_GENERATION, METRIC_BACKEND_STATE, METRIC_REQUESTS_TOTAL, VerifyStep,
};

use crate::ReportError;
use crate::certificates::{CertificateChange, CertificateSource, certificate_changes};
use crate::changes::{change_summary, check_summary, impact_summary};
use crate::live::LiveView;
use crate::text::shell_word;
use crate::topology::Topology;

/// First line of every rollback command block, followed by ` to=N`.
pub const ROLLBACK_MARKER: &str = "# keel-playbook: rollback";
/// Known-good generations offered as rollback targets (5).
pub const KNOWN_GOOD_TARGETS: usize = 5;
/// Generations listed under "who changed what recently" (10).
pub const RECENT_CHANGES: usize = 10;
/// Generations scanned for the one that served before the active one (50).
const PREVIOUS_SCAN: usize = 50;

/// A generation as the playbook shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationInfo {
    /// Its number.
    pub id: GenerationId,
    /// Its lifecycle state.
    pub state: GenerationState,
    /// Whether it is a known-good rollback target.
    pub known_good: bool,
    /// Whether it was applied with `--force` over a refusal (marked FORCED everywhere).
    pub forced: bool,
    /// When it was marked known-good, RFC 3339.
    pub known_good_at: Option<String>,
    /// Who applied it.
    pub author: String,
    /// Why.
    pub message: String,
    /// What triggered it.
    pub origin: String,
    /// When it was recorded, RFC 3339.
    pub created_at: String,
    /// When it last became active, RFC 3339.
    pub activated_at: Option<String>,
    /// The first 12 hex digits of its content hash.
    pub hash: String,
}

/// Why a generation is offered as a rollback target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetReason {
    /// It is known-good.
    KnownGood,
    /// It served just before the active generation but was never marked known-good.
    PreviouslyServed,
}

/// A generation to roll back to, and the command that does it.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackTarget {
    /// The generation.
    pub generation: GenerationInfo,
    /// Why it is offered.
    pub reason: TargetReason,
    /// `keel rollback --to N --admin URL` (`--force` when not known-good), shell-quoted
    /// where needed.
    pub command: String,
}

/// One recent generation and what it changed.
#[derive(Debug, Clone, Serialize)]
pub struct RecentChange {
    /// The fleet node that took the apply (its event's `details.node`); `None` on a single
    /// node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The generation.
    pub generation: GenerationInfo,
    /// What it changed, one line.
    pub change: String,
    /// `keel check` result.
    pub check: String,
    /// Blast-radius result.
    pub impact: String,
    /// Certificates it added, replaced or removed against the generation serving before it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateChange>,
}

impl RecentChange {
    /// How it was applied: its origin, and in a fleet the node that took it
    /// (`cli on node lb-2`).
    pub fn via(&self) -> String {
        match &self.node {
            Some(node) => format!("{} on node {node}", self.generation.origin),
            None => self.generation.origin.clone(),
        }
    }
}

/// The rollback runbook.
#[derive(Debug, Clone, Serialize)]
pub struct Playbook {
    /// When it was generated, RFC 3339.
    pub generated_at: String,
    /// The admin API the commands talk to.
    pub admin_url: String,
    /// The generation serving now; `None` before the first apply.
    pub active: Option<GenerationInfo>,
    /// Rollback targets, the recommended one first.
    pub targets: Vec<RollbackTarget>,
    /// How to check that a rollback (to the first target) took effect.
    pub verify: Vec<VerifyStep>,
    /// The newest generations, newest first.
    pub recent: Vec<RecentChange>,
    /// Live backend states, or why they are unknown.
    pub live: LiveView,
    /// The active config's topology, coloured by the live states.
    pub topology: Option<Topology>,
}

impl Playbook {
    /// Builds the playbook from the store, the active generation's config (`None` before the
    /// first apply), the live states and the admin URL the commands should use.
    pub fn build(
        store: &dyn Store,
        config: Option<&Config>,
        live: LiveView,
        admin_url: &str,
    ) -> Result<Playbook, ReportError> {
        Self::build_with(store, config, live, admin_url, None)
    }

    /// [`Playbook::build`] with the leaves of changed certificates read from `source`
    /// (the pinned copies in the state directory); without one, digests only.
    pub fn build_with(
        store: &dyn Store,
        config: Option<&Config>,
        live: LiveView,
        admin_url: &str,
        source: Option<&dyn CertificateSource>,
    ) -> Result<Playbook, ReportError> {
        let active = store.active()?;
        let targets = targets(store, active.as_ref())?
            .into_iter()
            .map(|(record, reason)| RollbackTarget {
                command: rollback_command(record.id, admin_url, reason),
                generation: info(&record),
                reason,
            })
            .collect::<Vec<_>>();
        let verify = verify::steps(
            config,
            admin_url,
            targets.first().map(|t| t.generation.id),
            active.as_ref().map(|a| a.id),
        );
        let mut recent = Vec::new();
        for record in store.generations(RECENT_CHANGES)? {
            let details = store
                .events(EventQuery {
                    kinds: vec![kind::APPLY.to_owned(), kind::REJECT.to_owned()],
                    generation: Some(record.id),
                    limit: Some(1),
                    ..EventQuery::default()
                })?
                .into_iter()
                .next()
                .map(|e| e.details)
                .unwrap_or_default();
            let before = match details.get("previous_active") {
                Some(serde_json::Value::Null) => None,
                Some(id) => match id.as_u64() {
                    Some(id) => store.generation(id)?.map(|r| r.certificates),
                    None => None,
                },
                None => None,
            };
            let certificates = match (details.get("previous_active"), &before) {
                // Nothing served before: every certificate is new.
                (Some(serde_json::Value::Null), _) => {
                    certificate_changes(None, &record.certificates, source)
                }
                (_, Some(before)) => {
                    certificate_changes(Some(before), &record.certificates, source)
                }
                _ => Vec::new(),
            };
            recent.push(RecentChange {
                node: crate::timeline::node_of(&details),
                certificates,
                change: change_summary(store, &record, &details).text,
                check: check_summary(&record.check_report),
                impact: impact_summary(record.impact_report.as_ref()),
                generation: info(&record),
            });
        }
        Ok(Playbook {
            generated_at: rfc3339(now_ms()),
            admin_url: admin_url.to_owned(),
            active: active.as_ref().map(info),
            targets,
            verify,
            recent,
            topology: config.map(|c| Topology::build(c, &live)),
            live,
        })
    }

    /// Builds the playbook for the store's active generation, parsing its stored config.
    pub fn from_store(
        store: &dyn Store,
        live: LiveView,
        admin_url: &str,
    ) -> Result<Playbook, ReportError> {
        Self::from_store_with(store, live, admin_url, None)
    }

    /// [`Playbook::from_store`] with changed certificates' leaves read from `source`.
    pub fn from_store_with(
        store: &dyn Store,
        live: LiveView,
        admin_url: &str,
        source: Option<&dyn CertificateSource>,
    ) -> Result<Playbook, ReportError> {
        let config = match store.active()? {
            Some(active) => {
                let parsed = keel_config::parse(&active.config_text);
                if let Some(error) = parsed
                    .diagnostics
                    .iter()
                    .find(|d| d.severity == keel_config::Severity::Error)
                {
                    return Err(ReportError::StoredConfig {
                        generation: active.id,
                        reason: error.message.clone(),
                    });
                }
                Some(parsed.config)
            }
            None => None,
        };
        Playbook::build_with(store, config.as_ref(), live, admin_url, source)
    }

    /// The rollback commands, recommended first, exactly as printed in the documents.
    pub fn rollback_commands(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.command.clone()).collect()
    }

    /// The Markdown runbook; `svg_link`, when given, is the path of the rendered topology SVG
    /// written next to it (an image link is added under the Mermaid diagram).
    pub fn render_markdown(&self, svg_link: Option<&str>) -> String {
        markdown::render(self, svg_link)
    }

    /// A self-contained HTML page with the topology SVG inline.
    pub fn render_html(&self) -> Result<String, ReportError> {
        html::render(self)
    }

    /// The topology as SVG; `None` when nothing is active yet.
    pub fn topology_svg(&self) -> Result<Option<String>, ReportError> {
        self.topology.as_ref().map(Topology::to_svg).transpose()
    }
}

/// `keel rollback --to N --admin URL`, with `--force` for a target that is not known-good
/// (Keel refuses those without it, saying why).
fn rollback_command(id: GenerationId, admin_url: &str, reason: TargetReason) -> String {
    let force = match reason {
        TargetReason::KnownGood => "",
        TargetReason::PreviouslyServed => " --force",
    };
    format!(
        "keel rollback --to {id}{force} --admin {}",
        shell_word(admin_url)
    )
}

fn targets(
    store: &dyn Store,
    active: Option<&GenerationRecord>,
) -> Result<Vec<(GenerationRecord, TargetReason)>, ReportError> {
    let active_id = active.map(|a| a.id);
    let mut targets: Vec<(GenerationRecord, TargetReason)> = store
        .known_good(KNOWN_GOOD_TARGETS + 1)?
        .into_iter()
        .filter(|g| Some(g.id) != active_id)
        .take(KNOWN_GOOD_TARGETS)
        .map(|g| (g, TargetReason::KnownGood))
        .collect();
    // The generation that served most recently before the active one. Rolled-back generations
    // are left out: someone judged them bad.
    let previous = store
        .generations(PREVIOUS_SCAN)?
        .into_iter()
        .filter(|g| Some(g.id) != active_id && g.activated_at_ms.is_some())
        .filter(|g| g.state == GenerationState::Superseded)
        .max_by_key(|g| (g.activated_at_ms, g.id));
    if let Some(previous) = previous
        && !targets.iter().any(|(g, _)| g.id == previous.id)
    {
        targets.push((previous, TargetReason::PreviouslyServed));
    }
    Ok(targets)
}

fn info(record: &GenerationRecord) -> GenerationInfo {
    GenerationInfo {
        id: record.id,
        state: record.state,
        known_good: record.known_good,
        forced: record.forced,
        known_good_at: record.known_good_at_ms.map(rfc3339),
        author: record.author.clone(),
        message: record.message.clone(),
        origin: record.origin.clone(),
        created_at: rfc3339(record.created_at_ms),
        activated_at: record.activated_at_ms.map(rfc3339),
        hash: record.content_hash.chars().take(12).collect(),
    }
}
