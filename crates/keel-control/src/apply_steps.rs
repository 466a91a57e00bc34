//! The apply pipeline's building blocks: the gate and compile calls (on blocking
//! threads), the cache update after a swap, recording a refusal, and the small
//! normalizations around them. The pipeline itself is `apply.rs`.

use std::sync::Arc;
use std::time::SystemTime;

use keel_config::Config;
use keel_proxy::Generation;
use keel_store::{GenerationId, NewGeneration, origin};

use crate::Controller;
use crate::apply::UNKNOWN_AUTHOR;
use crate::cache::{CachedGeneration, GenerationMeta};
use crate::error::ControlError;
use crate::hooks::{GateInput, GateVerdict};
use crate::request::{ApplyOutcome, ApplyRequest, ApplyStatus, UNNAMED_SOURCE};

impl Controller {
    pub(crate) fn log_applied(
        &self,
        request: &ApplyRequest,
        outcome: &ApplyOutcome,
        id: GenerationId,
    ) {
        if outcome.forced {
            tracing::warn!(
                generation = id,
                author = %request.author,
                overridden = ?outcome.overridden.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(),
                "FORCED APPLY: generation {id} was applied over failing checks or gate"
            );
        } else {
            tracing::info!(generation = id, author = %request.author, origin = %request.origin, "applied");
        }
    }

    /// Runs the gate hook on a blocking thread: `candidate` against `current` on the
    /// live traffic sample.
    pub(crate) async fn evaluate_gate(
        &self,
        current: Option<Arc<Generation>>,
        candidate: Arc<Config>,
    ) -> Result<GateVerdict, ControlError> {
        let gate = self.inner.hooks.gate.clone();
        let plane = self.inner.plane.clone();
        let persisted = self.persisted_shapes();
        Ok(tokio::task::spawn_blocking(move || {
            gate.evaluate(&GateInput {
                current: current.as_deref(),
                candidate: &candidate,
                traffic: plane.sample(),
                persisted: &persisted,
            })
        })
        .await?)
    }

    /// Compiles on a blocking thread; the inner error is the compile error's message.
    pub(crate) async fn compile(
        &self,
        id: GenerationId,
        config: Arc<Config>,
    ) -> Result<Result<Arc<Generation>, String>, ControlError> {
        let plane = self.inner.plane.clone();
        let wait = first_probe_wait(&config);
        let compiled = tokio::task::spawn_blocking(move || plane.compile(id, config)).await?;
        if let Ok(generation) = &compiled {
            // New backends of health-checked pools take no traffic until their first
            // probe passes; waiting here keeps a swap from answering 503 meanwhile.
            if !generation.first_probes(wait).await {
                tracing::warn!(
                    generation = id,
                    "some new backends were not probed in time; they get traffic once they pass"
                );
            }
        }
        Ok(compiled.map_err(|e| e.to_string()))
    }

    /// The certificate digests to record with an apply of `config`: with a state
    /// directory, their copies are written first (`pins.rs`), so a recorded pin always
    /// has its copy.
    pub(crate) async fn pin_certificates(
        &self,
        config: Arc<Config>,
    ) -> Result<std::collections::BTreeMap<String, String>, ControlError> {
        match self.pins() {
            None => Ok(crate::pins::certificate_digests(&config)),
            Some(pins) => Ok(tokio::task::spawn_blocking(move || pins.pin(&config)).await??),
        }
    }

    /// Makes `candidate` the cache's active generation (after its swap).
    pub(crate) fn remember(&self, candidate: CachedGeneration, config: &Config) {
        let mut cache = self.cache();
        cache.activate(candidate, None);
        cache.set_capacity(config.safety.keep_generations as usize);
    }

    /// Records a refused apply as a rejected generation (not for dry runs) and returns
    /// the refusal.
    pub(crate) async fn refuse(
        &self,
        request: &ApplyRequest,
        mut outcome: ApplyOutcome,
        impact: Option<serde_json::Value>,
    ) -> Result<ApplyOutcome, ControlError> {
        outcome.status = ApplyStatus::Refused;
        if !request.dry_run {
            let record = NewGeneration {
                config_text: request.config_text.clone(),
                author: request.author.clone(),
                message: request.message.clone(),
                origin: request.origin.clone(),
                forced: request.force,
                check_report: stored_report(&outcome),
                impact_report: impact,
                certificates: Default::default(),
            };
            outcome.generation = Some(self.with_store(move |s| s.record_rejection(record)).await?);
            if let Some(watcher) = self.watcher() {
                watcher.metrics().record_rejection();
            }
        }
        tracing::warn!(
            rejected = outcome.generation.map_or_else(|| "not recorded (dry run)".to_string(), |g| g.to_string()),
            author = %request.author,
            reasons = %outcome.refusals.iter().map(|r| r.message.as_str()).collect::<Vec<_>>().join("; "),
            "apply refused"
        );
        Ok(outcome)
    }
}

/// Fills in defaults: an origin, an author and a file name.
pub(crate) fn normalize(mut request: ApplyRequest) -> ApplyRequest {
    if request.origin.trim().is_empty() {
        request.origin = origin::CLI.to_string();
    }
    if request.author.trim().is_empty() {
        request.author = UNKNOWN_AUTHOR.to_string();
    }
    if request.file_name.trim().is_empty() {
        request.file_name = UNNAMED_SOURCE.to_string();
    }
    request
}

/// The check report as stored: the `keel check` JSON plus the refusals and overrides,
/// so the audit log says why an apply was refused or forced.
pub(crate) fn stored_report(outcome: &ApplyOutcome) -> serde_json::Value {
    let mut report = outcome.report.clone();
    if let Some(object) = report.as_object_mut() {
        object.insert(
            "refusals".into(),
            serde_json::to_value(&outcome.refusals).unwrap_or_default(),
        );
        object.insert(
            "overridden".into(),
            serde_json::to_value(&outcome.overridden).unwrap_or_default(),
        );
    }
    report
}

/// A compiled generation with its audit data, as the cache keeps it.
pub(crate) fn cached(
    generation: &Arc<Generation>,
    record: &NewGeneration,
    id: GenerationId,
) -> CachedGeneration {
    CachedGeneration {
        generation: generation.clone(),
        config_text: Arc::from(record.config_text.as_str()),
        meta: GenerationMeta {
            id,
            author: record.author.clone(),
            message: record.message.clone(),
            origin: record.origin.clone(),
            forced: record.forced,
            content_hash: keel_store::content_hash(&record.config_text),
            created_at_ms: keel_store::now_ms(),
        },
        known_good: false,
        activated_at: SystemTime::now(),
        known_good_after: generation.config.safety.known_good_after,
    }
}

/// Most time a compile waits for the first probes of new backends (5 seconds).
const MAX_FIRST_PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Time to wait for first probes: the slowest pool's probe timeout plus a little, capped.
pub(crate) fn first_probe_wait(config: &Config) -> std::time::Duration {
    let slowest = config
        .pools
        .values()
        .filter_map(|p| p.health.as_ref().map(|h| h.timeout))
        .max()
        .unwrap_or_default();
    (slowest + std::time::Duration::from_millis(200)).min(MAX_FIRST_PROBE_WAIT)
}
