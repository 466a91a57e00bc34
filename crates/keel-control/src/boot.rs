//! Startup: what the process serves first.
//!
//! * The store has an active generation: serve it, whatever the config file says now
//!   (missing, broken or changed files are reported as notes, never applied silently),
//!   and recompile the known-good generations kept for rollback. Both serve the
//!   certificates they pinned in the state directory ([`prepare_in`],
//!   `crate::pinned_load`), not what the certificate files hold now.
//! * The store is empty: the config file goes through the normal apply pipeline and
//!   becomes generation 1 (a refused file is recorded as rejected and startup fails).
//! * `keel serve --adopt-config` ([`prepare_adopting`]): a config file that differs from
//!   the stored active generation goes through the apply pipeline at start and becomes
//!   the next generation. This is how listener addresses change: a running Keel does
//!   not rebind, so a changed `[listeners]` table is adopted by a restart. A file that
//!   check refuses is recorded as rejected and the stored generation serves instead.
//!   The start has no traffic sample, so a file that changes where requests go (a
//!   route, its pools, an identity) is refused without `--force`, and so is one whose
//!   new backends answer as another service (see `crate::adopt`).
//!
//! [`prepare`] is synchronous (it only reads the store and the file), so the binary can
//! size its runtime from the config before starting it; [`Controller::start`] compiles
//! and activates.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use keel_config::Config;
use keel_proxy::{DataPlane, DataPlaneOptions};
use keel_store::{GenerationRecord, NewEvent, NewGeneration, Store, StoreError, kind, origin};
use keel_watch::Watcher;

use crate::Controller;
use crate::adopt::Adoption;
use crate::cache::{CachedGeneration, GenerationMeta};
use crate::hooks::Hooks;
use crate::load::load;
use crate::pinned_load::load_record;
use crate::pins::CertificatePins;
use crate::request::{ApplyOutcome, ApplyRequest};
use crate::settings::listener_changes;

/// Author recorded for the generation a first start applies.
pub const STARTUP_AUTHOR: &str = "keel";

/// Why Keel cannot start serving.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The store is empty and no config file was given.
    #[error("the state directory has no generation yet: give the first config with --config FILE")]
    NoConfig,
    /// The first config file cannot be read.
    #[error("cannot read {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The first config file was refused; the report says why.
    #[error("{file} was refused (recorded as rejected generation {rejected}):\n{report}")]
    FirstConfigRefused {
        /// The file.
        file: String,
        /// The rejected generation's id.
        rejected: u64,
        /// The rendered check report.
        report: String,
    },
    /// The stored active generation no longer loads (e.g. written by a newer Keel).
    #[error("stored generation {id} cannot be served: {reason}")]
    StoredConfigUnusable {
        /// The generation.
        id: u64,
        /// Why.
        reason: String,
    },
    /// Compiling or applying failed.
    #[error("{0}")]
    Control(#[from] crate::ControlError),
}

/// What startup will serve, decided before the runtime starts.
#[derive(Debug)]
pub enum Prepared {
    /// Serve the store's active generation.
    Restore {
        /// Its record.
        record: Box<GenerationRecord>,
        /// Its config, loaded.
        config: Arc<Config>,
        /// What was noticed about the config file.
        notes: Vec<String>,
    },
    /// `--adopt-config` with a file that differs from the stored active generation: it is
    /// judged against that generation (evidence, identity probes) and applied as the next
    /// generation, or refused and the stored one restored.
    Adopt {
        /// The stored active generation.
        record: Box<GenerationRecord>,
        /// Its config, loaded.
        stored: Arc<Config>,
        /// What was noticed about the config file.
        notes: Vec<String>,
        /// The file's name, for reports.
        file: String,
        /// Its text.
        text: String,
        /// Its config, checked.
        config: Arc<Config>,
        /// `keel serve --adopt-config --force`: adopt without the evidence it lacks.
        force: bool,
    },
    /// The store is empty: apply this file as the first generation.
    FirstStart {
        /// The file's name, for reports.
        file: String,
        /// Its text.
        text: String,
        /// Its config, checked.
        config: Arc<Config>,
    },
}

/// Like [`prepare`], but a config file that differs from the stored active generation
/// is applied at start instead of being only reported (`keel serve --adopt-config`).
pub fn prepare_adopting(store: &dyn Store, config_file: &Path) -> Result<Prepared, BootError> {
    prepare_adopting_forced(store, config_file, false)
}

/// [`prepare_adopting`]; with `force` (`--adopt-config --force`) a file is adopted even
/// where the start has no evidence to judge it by (the traffic sample is empty after a
/// restart), and says what it skipped.
pub fn prepare_adopting_forced(
    store: &dyn Store,
    config_file: &Path,
    force: bool,
) -> Result<Prepared, BootError> {
    prepare_adopting_in(store, config_file, force, None)
}

/// [`prepare_adopting_forced`] for `keel serve --state-dir`: a stored generation is
/// restored with the certificates it pinned there ([`prepare_in`]).
pub fn prepare_adopting_in(
    store: &dyn Store,
    config_file: &Path,
    force: bool,
    state_dir: Option<&Path>,
) -> Result<Prepared, BootError> {
    let prepared = prepare_in(store, Some(config_file), state_dir)?;
    let Prepared::Restore {
        record,
        config,
        mut notes,
    } = prepared
    else {
        return Ok(prepared);
    };
    let file = config_file.display().to_string();
    let Ok(text) = std::fs::read_to_string(config_file) else {
        return Ok(Prepared::Restore {
            record,
            config,
            notes,
        });
    };
    if keel_store::content_hash(&text) == record.content_hash {
        return Ok(Prepared::Restore {
            record,
            config,
            notes,
        });
    }
    let loaded = load(&file, &text);
    match loaded.config {
        Some(adopted) => Ok(Prepared::Adopt {
            record,
            stored: config,
            notes,
            file,
            text,
            config: adopted,
            force,
        }),
        None => {
            let rejected = store.record_rejection(NewGeneration {
                config_text: text,
                author: STARTUP_AUTHOR.to_string(),
                message: format!("--adopt-config {file}"),
                origin: origin::STARTUP.to_string(),
                forced: false,
                check_report: loaded.report.to_json(),
                impact_report: None,
                certificates: Default::default(),
            })?;
            notes.push(format!(
                "--adopt-config: {file} was refused (recorded as rejected generation {rejected}); \
                 serving generation {} from the store. `keel check {file}` explains",
                record.id
            ));
            Ok(Prepared::Restore {
                record,
                config,
                notes,
            })
        }
    }
}

impl Prepared {
    /// The config that will serve first (sizes the runtime and the data plane).
    pub fn config(&self) -> &Arc<Config> {
        match self {
            Prepared::Restore { config, .. }
            | Prepared::FirstStart { config, .. }
            | Prepared::Adopt { config, .. } => config,
        }
    }
}

/// Decides what to serve: the store's active generation, or `config_file` on a first start.
pub fn prepare(store: &dyn Store, config_file: Option<&Path>) -> Result<Prepared, BootError> {
    prepare_in(store, config_file, None)
}

/// [`prepare`] for `keel serve --state-dir`: the stored active generation serves the
/// certificates it pinned in `state_dir` (`crate::pins`), not what the files hold now.
/// Without a state directory a pinned certificate is served from its files only if they
/// still hold the pinned bytes.
pub fn prepare_in(
    store: &dyn Store,
    config_file: Option<&Path>,
    state_dir: Option<&Path>,
) -> Result<Prepared, BootError> {
    if let Some(record) = store.active()? {
        // Relative certificate paths of the stored config start beside the config file
        // this start names (else the working directory), as they did when it was applied.
        let config_dir = config_file.map_or_else(
            || std::path::PathBuf::from("."),
            |file| keel_config::config_dir(&file.to_string_lossy()),
        );
        let pins = state_dir.map(CertificatePins::in_state_dir);
        let restored = load_record(&record, &config_dir, pins.as_ref()).map_err(|error| {
            BootError::StoredConfigUnusable {
                id: record.id,
                reason: error.to_string(),
            }
        })?;
        let Some(config) = restored.loaded.config_ignoring_policy() else {
            return Err(BootError::StoredConfigUnusable {
                id: record.id,
                reason: restored.loaded.report.summary_line(),
            });
        };
        let mut notes: Vec<String> = config_file
            .map(|file| file_note(file, &record))
            .into_iter()
            .collect();
        notes.extend(restored.notes);
        return Ok(Prepared::Restore {
            record: Box::new(record),
            config,
            notes,
        });
    }
    let path = config_file.ok_or(BootError::NoConfig)?;
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| BootError::ReadConfig {
        path: path.to_owned(),
        source,
    })?;
    let loaded = load(&file, &text);
    match loaded.config {
        Some(config) => Ok(Prepared::FirstStart { file, text, config }),
        None => {
            let rejected = store.record_rejection(NewGeneration {
                config_text: text,
                author: STARTUP_AUTHOR.to_string(),
                message: format!("first start from {file}"),
                origin: origin::STARTUP.to_string(),
                forced: false,
                check_report: loaded.report.to_json(),
                impact_report: None,
                certificates: Default::default(),
            })?;
            Err(BootError::FirstConfigRefused {
                file,
                rejected,
                report: loaded.report.render_human(),
            })
        }
    }
}

/// What the config file on disk is, compared with the generation being restored.
fn file_note(file: &Path, record: &GenerationRecord) -> String {
    let name = file.display();
    let id = record.id;
    match std::fs::read_to_string(file) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            format!("config file {name} does not exist; serving generation {id} from the store")
        }
        Err(error) => format!(
            "config file {name} cannot be read ({error}); serving generation {id} from the store"
        ),
        Ok(text) if keel_store::content_hash(&text) == record.content_hash => {
            format!("serving generation {id} from the store (config file {name} is the same)")
        }
        Ok(text) => {
            let loaded = load(&name.to_string(), &text);
            if loaded.report.has_errors() {
                format!(
                    "config file {name} is broken ({}); serving generation {id} from the store. \
                     `keel check {name}` explains",
                    loaded.report.summary_line()
                )
            } else {
                format!(
                    "config file {name} differs from generation {id}; serving generation {id} from \
                     the store. Apply the file with `keel apply {name}` or SIGHUP"
                )
            }
        }
    }
}

/// What [`Controller::start`] did.
#[derive(Debug)]
pub struct BootReport {
    /// The generation serving now.
    pub generation: u64,
    /// True when the config file became the first generation.
    pub first_start: bool,
    /// The first apply's outcome, on a first start.
    pub first_apply: Option<ApplyOutcome>,
    /// What was noticed (file state, generations that could not be restored).
    pub notes: Vec<String>,
}

impl Controller {
    /// Builds the data plane for `prepared`, then serves it: restores the active and the
    /// known-good generations from the store, or applies the first config.
    pub async fn start(
        store: Arc<dyn Store>,
        prepared: Prepared,
        hooks: Hooks,
    ) -> Result<(Controller, BootReport), BootError> {
        let plane = plane_for(&prepared)?;
        Self::boot(Controller::new(store, plane, hooks), prepared).await
    }

    /// Like [`Controller::start`], guarded as `keel serve` runs: a [`Watcher`] on the
    /// new data plane (with the first config's webhooks), the blast-radius gate, guarded
    /// applies that revert by themselves, alerts persisted as events, known-good only
    /// without alerts ([`Hooks::guarded`]). Webhook URLs the watcher cannot use are
    /// returned as notes. The watcher is [`Controller::watcher`].
    pub async fn start_guarded(
        store: Arc<dyn Store>,
        prepared: Prepared,
    ) -> Result<(Controller, BootReport), BootError> {
        Self::start_guarded_with(store, prepared, None, None).await
    }

    /// [`Controller::start_guarded`] with a state dir, as `keel serve` runs: the traffic
    /// sample persisted there (`traffic-sample.jsonl`) is read first, so the gate of the
    /// start (`--adopt-config`) and of every apply has the evidence of before the restart;
    /// [`crate::run_sample_saver`] keeps it current.
    pub async fn start_guarded_in(
        store: Arc<dyn Store>,
        prepared: Prepared,
        state_dir: &Path,
    ) -> Result<(Controller, BootReport), BootError> {
        Self::start_guarded_with(store, prepared, Some(state_dir), None).await
    }

    /// [`Controller::start_guarded_in`] as `keel serve --config FILE` runs: relative
    /// paths of stored generations start at `config_file`'s directory
    /// ([`Controller::set_config_dir`]), certificates are pinned in the state directory
    /// ([`Controller::pin_certificates_in`]), and copies no stored generation pins any
    /// more are removed once the start is done.
    pub async fn start_guarded_at(
        store: Arc<dyn Store>,
        prepared: Prepared,
        state_dir: &Path,
        config_file: Option<&Path>,
    ) -> Result<(Controller, BootReport), BootError> {
        Self::start_guarded_with(store, prepared, Some(state_dir), config_file).await
    }

    async fn start_guarded_with(
        store: Arc<dyn Store>,
        prepared: Prepared,
        state_dir: Option<&Path>,
        config_file: Option<&Path>,
    ) -> Result<(Controller, BootReport), BootError> {
        let plane = plane_for(&prepared)?;
        let (watcher, errors) = Watcher::start(plane.clone(), &prepared.config().alerts.webhooks);
        let controller = Controller::new(store, plane, Hooks::guarded(watcher));
        for error in errors {
            controller.add_note(format!("alert webhook not used: {error}"));
        }
        if let Some(file) = config_file {
            controller.set_config_dir(keel_config::config_dir(&file.to_string_lossy()));
        }
        if let Some(dir) = state_dir {
            controller.pin_certificates_in(dir);
            let file = dir.join(crate::persisted_sample::SAMPLE_FILE_NAME);
            if let Some(note) = controller.use_sample_file(file) {
                controller.add_note(note);
            }
        }
        let (controller, mut report) = Self::boot(controller, prepared).await?;
        if let Some(note) = controller.sweep_pinned_certificates().await {
            report.notes.push(note);
        }
        Ok((controller, report))
    }

    async fn boot(
        controller: Controller,
        prepared: Prepared,
    ) -> Result<(Controller, BootReport), BootError> {
        let report = match prepared {
            Prepared::Restore {
                record,
                config,
                notes,
            } => controller.restore(*record, config, notes).await?,
            Prepared::Adopt {
                record,
                stored,
                notes,
                file,
                text,
                config,
                force,
            } => {
                let adoption = Adoption {
                    file,
                    text,
                    config,
                    force,
                };
                controller.adopt(*record, stored, notes, adoption).await?
            }
            Prepared::FirstStart { file, text, .. } => {
                let outcome = controller
                    .apply(ApplyRequest {
                        config_text: text,
                        author: STARTUP_AUTHOR.to_string(),
                        message: format!("first start from {file}"),
                        origin: origin::STARTUP.to_string(),
                        file_name: file.clone(),
                        ..ApplyRequest::default()
                    })
                    .await?;
                let Some(generation) = outcome.generation.filter(|_| outcome.is_success()) else {
                    return Err(BootError::FirstConfigRefused {
                        file,
                        rejected: outcome.generation.unwrap_or(0),
                        report: outcome
                            .refusals
                            .iter()
                            .map(|r| r.message.as_str())
                            .collect::<Vec<_>>()
                            .join("\n"),
                    });
                };
                BootReport {
                    generation,
                    first_start: true,
                    notes: vec![format!("{file} became generation {generation}")],
                    first_apply: Some(outcome),
                }
            }
        };
        controller.set_startup_generation(report.generation);
        for note in &report.notes {
            controller.add_note(note.clone());
        }
        let summary = report.notes.join("; ");
        let event = NewEvent::new(kind::STARTUP, format!("keel started: {summary}"))
            .generation(report.generation);
        controller
            .with_store(move |s| s.append_event(event))
            .await?;
        Ok((controller, report))
    }

    pub(crate) async fn restore(
        &self,
        record: GenerationRecord,
        config: Arc<Config>,
        mut notes: Vec<String>,
    ) -> Result<BootReport, BootError> {
        let id = record.id;
        let keep = config.safety.keep_generations as usize;
        // The restored generation's certificates were checked against its pins; keep
        // copies of them here (a fleet node restored with another node's generation, a
        // copy lost and found again in unchanged files), so that later restores and
        // rollbacks do not depend on the files.
        if let Some(pins) = self.pins() {
            let pinned = config.clone();
            match tokio::task::spawn_blocking(move || pins.pin(&pinned)).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => notes.push(format!(
                    "the restored generation's certificates are served, but not copied: {error}"
                )),
                Err(error) => notes.push(format!(
                    "the restored generation's certificates are served, but not copied: {error}"
                )),
            }
        }
        let generation = self.inner.plane.compile(id, config.clone()).map_err(|e| {
            BootError::StoredConfigUnusable {
                id,
                reason: e.to_string(),
            }
        })?;
        let _ = generation
            .first_probes(crate::apply_steps::first_probe_wait(&config))
            .await;
        self.inner.plane.activate(generation.clone());
        self.became_primary(&generation, &mut notes);
        {
            let mut cache = self.cache();
            cache.set_capacity(keep);
            cache.activate(cached(generation, &record), None);
        }
        let known_good = self.with_store(move |s| s.known_good(keep + 1)).await?;
        // Relative paths start where the served config file is (the working directory
        // without one); pinned certificates come from their copies.
        let config_dir = self.config_dir().unwrap_or_else(|| PathBuf::from("."));
        let pins = self.pins();
        for old in known_good.into_iter().filter(|g| g.id != id) {
            let restored = match load_record(&old, &config_dir, pins.as_ref()) {
                Ok(restored) => restored,
                Err(error) => {
                    notes.push(format!(
                        "known-good generation {} cannot be kept for rollback: {error}",
                        old.id
                    ));
                    continue;
                }
            };
            notes.extend(restored.notes);
            let compiled = restored
                .loaded
                .config_ignoring_policy()
                .filter(|c| listener_changes(&config, c).is_empty())
                .and_then(|c| self.inner.plane.compile(old.id, c).ok());
            match compiled {
                Some(generation) => self.cache().keep(cached(generation, &old)),
                None => notes.push(format!(
                    "known-good generation {} cannot be kept for rollback (it no longer loads, or its listeners differ)",
                    old.id
                )),
            }
        }
        Ok(BootReport {
            generation: id,
            first_start: false,
            first_apply: None,
            notes,
        })
    }
}

/// The data plane a prepared start serves with (sample, access log, header settings).
fn plane_for(prepared: &Prepared) -> Result<Arc<DataPlane>, BootError> {
    let options = DataPlaneOptions::from_config(prepared.config());
    DataPlane::new(options).map_err(|error| {
        BootError::Control(crate::ControlError::Task(format!(
            "cannot open the access log: {error}"
        )))
    })
}

pub(crate) fn cached(
    generation: Arc<keel_proxy::Generation>,
    record: &GenerationRecord,
) -> CachedGeneration {
    CachedGeneration {
        known_good_after: generation.config.safety.known_good_after,
        generation,
        config_text: Arc::from(record.config_text.as_str()),
        meta: GenerationMeta::from(record),
        known_good: record.known_good,
        activated_at: SystemTime::now(),
    }
}
