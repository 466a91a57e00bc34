//! Fleet mode's two hooks into the controller: serving a generation another node applied
//! ([`Controller::follow`]) and keeping this node's own keys ([`Controller::set_node_config`]).
//!
//! A fleet generation is already recorded (in etcd, by the node that applied it), so
//! following it writes nothing: it is loaded and checked like any stored generation, the
//! node's listeners, admin API and `[fleet]` table replace the applying node's
//! (`keel_check::fleet::with_node_keys`), and it is compiled (first probes included) and
//! swapped here, in the control plane, under the apply lock like an apply or a rollback.
//! The applying node's guard watches the change; this node's detectors keep running.
//!
//! Certificates: a fleet generation records the digest of every certificate's chain and
//! key the applying node checked (`pins.rs`); etcd holds no certificate bytes and no key.
//! A follower serves a generation only with those exact bytes: its own pinned copy, or
//! its own files (relative to its config file) when they hash to the pinned digest, and
//! then it writes its own 0600 copies so that a later restart or rollback here does not
//! depend on its files again. Files holding other bytes are an error naming the
//! certificate and both digests: the node keeps serving what it served (and reports
//! drift), rather than a certificate nobody checked. See `docs/fleet.md`.
//!
//! A node that takes a generation as one of the fleet's canary nodes follows it with
//! [`Controller::follow_watched`]: its own guard watches it as after an apply here, and
//! an alarm reverts it (the revert's store rollback is what fails the node canary).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use keel_check::Loaded;
use keel_config::Config;
use keel_store::GenerationRecord;

use crate::Controller;
use crate::cache::{CachedGeneration, GenerationMeta};
use crate::controller::lock;
use crate::error::ControlError;
use crate::guard::{self, Trial};
use crate::pinned_load::load_followed;
use crate::pins::CERTIFICATES_DIR;

/// What [`Controller::follow`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// The generation was already serving here.
    AlreadyServing,
    /// It was compiled (or taken from the cache) and swapped in.
    Swapped,
}

impl Controller {
    /// Remembers this node's own config: its listeners, admin API and `[fleet]` table stay
    /// when a generation from another node is followed or applied here.
    pub fn set_node_config(&self, config: Arc<Config>) {
        *lock(&self.inner.node_config) = Some(config);
    }

    /// The node's own config, in fleet mode.
    pub fn node_config(&self) -> Option<Arc<Config>> {
        lock(&self.inner.node_config).clone()
    }

    /// `config` with this node's own keys, when it is a fleet node; unchanged otherwise.
    pub fn with_node_keys(&self, config: Arc<Config>) -> Arc<Config> {
        match self.node_config() {
            Some(node) => Arc::new(keel_check::fleet::with_node_keys(&config, &node)),
            None => config,
        }
    }

    /// Serves `record`, a generation the fleet's store already holds, without recording
    /// anything: the swap of a node following its fleet. `Err` when it does not load or
    /// compile here (the node keeps serving what it served).
    pub async fn follow(&self, record: GenerationRecord) -> Result<Followed, ControlError> {
        let controller = self.clone();
        tokio::spawn(async move { controller.run_follow(record, false).await }).await?
    }

    /// [`Controller::follow`], then watched by this node's guard for the stricter `[safety]
    /// watch` of the two configs (at least `[fleet] rollout.watch`), as after a full swap
    /// applied here: a canary node of the
    /// fleet's node canary. Without a watcher, or with nothing to judge it against, it is
    /// not watched (as an apply would not be).
    pub async fn follow_watched(&self, record: GenerationRecord) -> Result<Followed, ControlError> {
        let controller = self.clone();
        tokio::spawn(async move { controller.run_follow(record, true).await }).await?
    }

    async fn run_follow(
        &self,
        record: GenerationRecord,
        watched: bool,
    ) -> Result<Followed, ControlError> {
        let _serialized = self.inner.apply_lock.lock().await;
        let previous = self.active();
        let serving = self.inner.plane.active().map(|a| a.primary.id);
        if serving == Some(record.id) {
            return Ok(Followed::AlreadyServing);
        }
        let candidate = match self.cached(record.id) {
            Some(cached) => cached,
            None => {
                let loaded = self.load_for_follow(&record).await?;
                let config = loaded.config_ignoring_policy().ok_or_else(|| {
                    ControlError::Task(format!(
                        "fleet generation {} does not load here: {}",
                        record.id,
                        loaded.report.summary_line()
                    ))
                })?;
                let config = self.with_node_keys(config);
                let generation = self.compile(record.id, config).await?.map_err(|message| {
                    ControlError::Task(format!(
                        "fleet generation {} does not compile here: {message}",
                        record.id
                    ))
                })?;
                let generation_known_good_after = generation.config.safety.known_good_after;
                CachedGeneration {
                    generation,
                    config_text: Arc::from(record.config_text.as_str()),
                    meta: GenerationMeta::from(&record),
                    known_good: record.known_good,
                    activated_at: SystemTime::now(),
                    known_good_after: generation_known_good_after,
                }
            }
        };
        let generation = candidate.generation.clone();
        let current = self.inner.plane.active().map(|a| a.primary.clone());
        self.inner.plane.activate(generation.clone());
        let config = generation.config.clone();
        self.remember(candidate.clone(), &config);
        let mut notes = Vec::new();
        self.became_primary(&generation, &mut notes);
        tracing::info!(generation = record.id, "following the fleet");
        if watched {
            self.watch_followed(candidate, current.as_deref(), previous);
        }
        Ok(Followed::Swapped)
    }

    /// Loads a fleet generation with the certificates it pinned (see the module doc) and
    /// pins them here too.
    async fn load_for_follow(&self, record: &GenerationRecord) -> Result<Loaded, ControlError> {
        let config_dir = self.config_dir().unwrap_or_else(|| PathBuf::from("."));
        let pins = self.pins();
        let record = record.clone();
        tokio::task::spawn_blocking(move || {
            let restored = load_followed(&record, &config_dir, pins.as_ref()).map_err(|error| {
                ControlError::Task(format!(
                    "fleet generation {} cannot serve here: {error}. A fleet node serves a \
                     certificate only with the bytes the applying node pinned: install the \
                     same chain and key at its `cert`/`key` paths on this node, or copy \
                     <digest>.pem and <digest>.key from the applying node's \
                     <state-dir>/{CERTIFICATES_DIR}/ into this node's",
                    record.id
                ))
            })?;
            if let (Some(pins), Some(config)) = (pins, restored.loaded.config_ignoring_policy()) {
                pins.pin(&config).map_err(|error| {
                    ControlError::Task(format!(
                        "fleet generation {} is not served here: {error}",
                        record.id
                    ))
                })?;
            }
            Ok(restored.loaded)
        })
        .await?
    }

    /// Starts the guard's watch of a followed generation (under the apply lock).
    fn watch_followed(
        &self,
        candidate: CachedGeneration,
        current: Option<&keel_proxy::Generation>,
        previous: Option<CachedGeneration>,
    ) {
        if self.watcher().is_none() {
            return;
        }
        let config = candidate.generation.config.clone();
        let Some(baseline) = self.yardstick(previous, &config) else {
            return;
        };
        if !config.detectors.enabled && !baseline.generation.config.detectors.enabled {
            return;
        }
        let safety =
            crate::strictness::stricter_safety(&baseline.generation.config.safety, &config.safety);
        let plan = keel_watch::GuardPlan::new(&safety, None, Some(self.fleet_watch(safety.watch)));
        let change = guard::change_summary(current, &config);
        if let Some(watcher) = self.watcher() {
            watcher.note_change(candidate.id(), &change);
        }
        let trial = Trial {
            session: 0,
            candidate,
            baseline,
            change,
            started: Instant::now(),
        };
        let _watching = self.watch_full_swap(trial, &plan);
    }
}
