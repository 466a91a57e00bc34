//! `keel serve --adopt-config`: every path into serving is the same path, as far as a
//! start can make it so.
//!
//! The adopted file is judged against the stored active generation before it serves:
//! the identity probes of every backend it brings in (against the identities of both
//! configs), and the evidence rule of the gate. A restart has no traffic sample, so
//! every host whose routes the file changes lacks evidence: without `--force` the file
//! is refused (recorded as rejected, with the reasons) and the stored generation
//! serves; with it, the file is applied and the start says what was skipped. What a
//! start cannot do yet: replay a persisted sample, and watch the adopted generation
//! with the guard (nothing served before it in this process).

use std::sync::Arc;

use keel_config::Config;
use keel_impact::evidence::unjudged_hosts;
use keel_store::{GenerationRecord, NewGeneration, origin};

use crate::Controller;
use crate::boot::{BootError, BootReport, STARTUP_AUTHOR};
use crate::identity_stage::probe_identities;
use crate::request::ApplyRequest;

/// The file `--adopt-config` offers.
pub(crate) struct Adoption {
    pub(crate) file: String,
    pub(crate) text: String,
    pub(crate) config: Arc<Config>,
    pub(crate) force: bool,
}

impl Controller {
    /// Judges `adoption` against the stored generation, then applies it or restores
    /// the stored one (see the module docs).
    pub(crate) async fn adopt(
        &self,
        record: GenerationRecord,
        stored: Arc<Config>,
        mut notes: Vec<String>,
        adoption: Adoption,
    ) -> Result<BootReport, BootError> {
        let Adoption {
            file,
            text,
            config,
            force,
        } = adoption;
        let mut reasons: Vec<String> = unjudged_hosts(&stored, &config, &[])
            .into_iter()
            .map(|u| {
                format!(
                    "no traffic sample after a restart for {} (route{} {} change{}): the \
                     blast-radius gate had no evidence",
                    u.host,
                    if u.routes.len() == 1 { "" } else { "s" },
                    u.routes.join(", "),
                    if u.routes.len() == 1 { "s" } else { "" },
                )
            })
            .collect();
        let identities = probe_identities(Some(stored.clone()), config.clone()).await;
        reasons.extend(identities.refusals.into_iter().map(|r| r.message));
        let message = format!("--adopt-config {file}");
        if !reasons.is_empty() && !force {
            let refused = NewGeneration {
                config_text: text,
                author: STARTUP_AUTHOR.to_string(),
                message,
                origin: origin::STARTUP.to_string(),
                forced: false,
                check_report: serde_json::json!({ "refusals": reasons }),
                impact_report: None,
            };
            let rejected = self
                .with_store(move |s| s.record_rejection(refused))
                .await?;
            notes.push(format!(
                "--adopt-config: {file} was refused (recorded as rejected generation {rejected}): \
                 {}; serving generation {} from the store. Adopt it with --adopt-config --force, \
                 or `keel apply` it once traffic is sampled",
                reasons.join("; "),
                record.id
            ));
            return self.restore(record, stored, notes).await;
        }
        let outcome = self
            .apply(ApplyRequest {
                config_text: text,
                author: STARTUP_AUTHOR.to_string(),
                message,
                origin: origin::STARTUP.to_string(),
                file_name: file.clone(),
                force,
                ..ApplyRequest::default()
            })
            .await?;
        let Some(generation) = outcome.generation.filter(|_| outcome.is_success()) else {
            notes.push(format!(
                "--adopt-config: {file} was refused: {}; serving generation {} from the store",
                outcome
                    .refusals
                    .iter()
                    .map(|r| r.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                record.id
            ));
            return self.restore(record, stored, notes).await;
        };
        notes.push(format!(
            "--adopt-config: {file} became generation {generation} (was {})",
            record.id
        ));
        if !reasons.is_empty() {
            notes.push(format!(
                "--adopt-config --force: adopted without: {}",
                reasons.join("; ")
            ));
        }
        notes.push(
            "--adopt-config: not watched by the guard (nothing served before it in this process)"
                .to_string(),
        );
        Ok(BootReport {
            generation,
            first_start: false,
            notes,
            first_apply: Some(outcome),
        })
    }
}
