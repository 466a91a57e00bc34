//! `keel serve --adopt-config`: every path into serving is the same path, as far as a
//! start can make it so.
//!
//! The adopted file is judged against the stored active generation before it serves:
//! the identity probes of every backend it brings in (against the identities of both
//! configs), the blast-radius gate on the traffic sample persisted in the state dir
//! before the restart (`persisted_sample.rs`), and the evidence rule of the gate. A host
//! whose routes the file changes and that the persisted sample has no request of lacks
//! evidence: without `--force` the file is refused (recorded as rejected, with the reasons) and the stored generation
//! serves; with it, the file is applied and the start says what was skipped. The
//! adopted generation is then watched by the guard like any apply, against the stored
//! generation it replaced (compiled for this, though it never served in this process):
//! an alarm reverts to it. Its baseline window is empty, so what judges the adopted
//! generation is the identity detector, the error detector against its fixed `p0` and
//! the intents; the share and latency detectors need a baseline. An adoption that
//! changes listeners is not watched (a revert could not rebind them), and says so.

use std::sync::Arc;

use keel_config::Config;
use keel_impact::evidence::unjudged_hosts;
use keel_impact::gate_change;
use keel_store::{GenerationRecord, NewGeneration, origin};

use crate::Controller;
use crate::boot::{BootError, BootReport, STARTUP_AUTHOR, cached};
use crate::controller::lock;
use crate::identity_stage::probe_identities;
use crate::request::{ApplyRequest, GuardResult};
use crate::settings::listener_changes;

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
        // The sample persisted before the restart is the evidence a start has: the
        // blast-radius gate judges the file on it, and hosts it lacks are unjudged.
        let persisted = self.persisted_shapes();
        let mut reasons: Vec<String> = unjudged_hosts(&stored, &config, &persisted)
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
        if !persisted.is_empty() {
            match keel_impact::blast_radius(&stored, &config, &persisted) {
                Ok(report) => reasons.extend(
                    gate_change(&report, &stored, &config)
                        .reasons
                        .iter()
                        .map(|r| {
                            format!("on the traffic sample persisted before the restart: {r}")
                        }),
                ),
                Err(error) => reasons.push(format!(
                    "the blast radius on the persisted traffic sample was not computed: {error}"
                )),
            }
        }
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
                certificates: Default::default(),
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
        let watched_against = self.prepare_adopt_baseline(&record, &stored, &config);
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
            .await;
        // Unused when the apply was refused before its guard stage.
        lock(&self.inner.adopt_baseline).take();
        let outcome = outcome?;
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
        let watching = outcome
            .guard
            .as_ref()
            .is_some_and(|g| g.result == GuardResult::Watching);
        notes.push(match (watching, watched_against) {
            (true, _) => format!(
                "--adopt-config: generation {generation} is watched by the guard against \
                 generation {} (an alarm reverts to it)",
                record.id
            ),
            (false, Err(why)) => format!("--adopt-config: not watched by the guard: {why}"),
            (false, Ok(())) => "--adopt-config: not watched by the guard (no detectors run, \
                 or both configs disable them)"
                .to_string(),
        });
        Ok(BootReport {
            generation,
            first_start: false,
            notes,
            first_apply: Some(outcome),
        })
    }
}

impl Controller {
    /// Compiles the stored generation as the baseline the adopting apply is watched
    /// against (and reverts to). Says why not when it cannot be.
    fn prepare_adopt_baseline(
        &self,
        record: &GenerationRecord,
        stored: &Arc<Config>,
        adopted: &Config,
    ) -> Result<(), String> {
        if self.watcher().is_none() {
            return Err("this controller runs no detectors".to_string());
        }
        if !listener_changes(stored, adopted).is_empty() {
            return Err(format!(
                "its listeners differ from generation {}'s, and a revert could not rebind them",
                record.id
            ));
        }
        let generation = self
            .inner
            .plane
            .compile(record.id, stored.clone())
            .map_err(|e| format!("generation {} no longer compiles: {e}", record.id))?;
        *lock(&self.inner.adopt_baseline) = Some(cached(generation, record));
        Ok(())
    }
}
