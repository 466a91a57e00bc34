//! The apply pipeline, one stage per step:
//!
//! ```text
//! check (keel-check, no lock) ─▶ [apply lock] listeners ─▶ gate ─▶ compile
//!       ─▶ persist (one store transaction: new generation active) ─▶ swap ─▶ watch
//! ```
//!
//! Any refusal (check errors, listener changes, gate, compile) is recorded in the store
//! as a rejected generation with its report, so the audit log has every attempt. `force`
//! overrides policy errors and the gate, never hard errors or listener changes. The
//! locked stages run in their own task: a caller that gives up (a dropped admin
//! connection) cannot stop an apply between its persist and its swap.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use keel_config::{Config, Severity};
use keel_proxy::Generation;
use keel_store::{GenerationId, NewGeneration, origin};

use crate::Controller;
use crate::cache::{CachedGeneration, GenerationMeta};
use crate::error::ControlError;
use crate::hooks::{Activated, GateInput};
use crate::load::load;
use crate::request::{
    ApplyOutcome, ApplyRequest, ApplyStatus, Refusal, Stage, StageTimings, UNNAMED_SOURCE,
};
use crate::settings::{listener_changes, restart_only_changes};

/// Author recorded when a request names none.
pub const UNKNOWN_AUTHOR: &str = "unknown";

impl Controller {
    /// Runs the full apply pipeline on a config text.
    ///
    /// `Ok` for applied, dry-run and refused outcomes alike (see [`ApplyOutcome::status`]);
    /// `Err` only when the control plane itself failed (then the previous generation
    /// still serves).
    pub async fn apply(&self, request: ApplyRequest) -> Result<ApplyOutcome, ControlError> {
        let controller = self.clone();
        tokio::spawn(async move { controller.run_apply(normalize(request)).await }).await?
    }

    async fn run_apply(&self, request: ApplyRequest) -> Result<ApplyOutcome, ControlError> {
        // Stage 1: check. Pure, so it runs before the lock and applies can check in parallel.
        let started = Instant::now();
        let (name, text) = (request.file_name.clone(), request.config_text.clone());
        let loaded = tokio::task::spawn_blocking(move || load(&name, &text)).await?;
        let mut outcome = ApplyOutcome {
            status: ApplyStatus::Refused,
            generation: None,
            previous: None,
            forced: false,
            report: loaded.report.to_json(),
            report_text: loaded.report.render_human(),
            refusals: Vec::new(),
            overridden: Vec::new(),
            gate: None,
            notes: Vec::new(),
            timings: StageTimings {
                check_us: micros(started),
                ..StageTimings::default()
            },
        };
        let errors: Vec<(bool, Refusal)> = loaded
            .report
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                let refusal = Refusal {
                    stage: Stage::Check,
                    code: Some(d.code.to_string()),
                    message: d.message.clone(),
                };
                (keel_check::is_hard(d.code), refusal)
            })
            .collect();
        let config = if errors.iter().any(|(hard, _)| *hard) {
            None
        } else if errors.is_empty() {
            loaded.config.clone()
        } else if request.force {
            outcome
                .overridden
                .extend(errors.iter().map(|(_, r)| r.clone()));
            loaded.config_ignoring_policy()
        } else {
            None
        };
        let Some(config) = config else {
            outcome.refusals = errors.into_iter().map(|(_, r)| r).collect();
            return self.refuse(&request, outcome, None).await;
        };

        let _serialized = self.inner.apply_lock.lock().await;
        let current = self.inner.plane.active().map(|a| a.primary.clone());
        outcome.previous = current.as_ref().map(|g| g.id);

        // Stage 2: listeners. A running Keel does not rebind them (see the crate docs).
        if let Some(current) = &current {
            let changes = listener_changes(&current.config, &config);
            if !changes.is_empty() {
                outcome.refusals = changes
                    .into_iter()
                    .map(|message| Refusal {
                        stage: Stage::Listeners,
                        code: None,
                        message,
                    })
                    .collect();
                return self.refuse(&request, outcome, None).await;
            }
            outcome
                .notes
                .extend(restart_only_changes(&current.config, &config));
        }

        // Stage 3: the gate (blast radius, next issue).
        let started = Instant::now();
        let verdict = {
            let gate = self.inner.hooks.gate.clone();
            let plane = self.inner.plane.clone();
            let (current, candidate) = (current.clone(), config.clone());
            tokio::task::spawn_blocking(move || {
                gate.evaluate(&GateInput {
                    current: current.as_deref(),
                    candidate: &candidate,
                    traffic: plane.sample(),
                })
            })
            .await?
        };
        outcome.timings.gate_us = micros(started);
        outcome.gate = verdict.report.clone();
        if !verdict.allow {
            let mut reasons: Vec<Refusal> = verdict
                .reasons
                .iter()
                .map(|reason| Refusal {
                    stage: Stage::Gate,
                    code: None,
                    message: reason.clone(),
                })
                .collect();
            if reasons.is_empty() {
                reasons.push(Refusal {
                    stage: Stage::Gate,
                    code: None,
                    message: "the gate refused this change".to_string(),
                });
            }
            if request.force {
                outcome.overridden.extend(reasons);
            } else {
                outcome.refusals = reasons;
                return self.refuse(&request, outcome, verdict.report).await;
            }
        }
        outcome.forced = !outcome.overridden.is_empty();
        if request.dry_run {
            outcome.status = ApplyStatus::DryRun;
            return Ok(outcome);
        }

        // Stage 4: compile, under the id the store will give (checked after persisting).
        let predicted = self
            .with_store(|store| store.generations(1))
            .await?
            .first()
            .map_or(1, |g| g.id + 1);
        let started = Instant::now();
        let generation = match self.compile(predicted, config.clone()).await? {
            Ok(generation) => generation,
            Err(message) => {
                outcome.refusals = vec![Refusal {
                    stage: Stage::Compile,
                    code: None,
                    message,
                }];
                return self.refuse(&request, outcome, None).await;
            }
        };
        outcome.timings.compile_us = micros(started);

        // Stage 5: persist the new generation as active, in one transaction.
        let started = Instant::now();
        let record = NewGeneration {
            config_text: request.config_text.clone(),
            author: request.author.clone(),
            message: request.message.clone(),
            origin: request.origin.clone(),
            forced: outcome.forced,
            check_report: stored_report(&outcome),
            impact_report: verdict.report,
        };
        let meta_record = record.clone();
        let id = match self.with_store(move |s| s.record_apply(record, true)).await {
            Ok(id) => id,
            Err(ControlError::Store(error)) => return Err(ControlError::Persist(error)),
            Err(other) => return Err(other),
        };
        outcome.timings.persist_us = micros(started);
        let generation = if id == predicted {
            generation
        } else {
            // Someone else wrote to the store since we looked: compile under the real id
            // (the same config compiled a moment ago, so this cannot fail in practice).
            match self.compile(id, config.clone()).await? {
                Ok(generation) => generation,
                Err(message) => {
                    let error = format!(
                        "generation {id} is recorded as active but could not be compiled: {message}"
                    );
                    self.set_store_error(Some(error.clone()));
                    return Err(ControlError::Task(error));
                }
            }
        };

        // Stage 6: swap.
        let started = Instant::now();
        self.inner.plane.activate(generation.clone());
        outcome.timings.swap_us = micros(started);
        outcome.status = ApplyStatus::Applied;
        outcome.generation = Some(id);
        self.remember(&generation, &meta_record, id, &config);
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

        // Stage 7: watch (guarded applies, next issue).
        self.inner.hooks.watch.activated(
            Activated {
                generation,
                previous: current,
                origin: request.origin.clone(),
            },
            self,
        );
        Ok(outcome)
    }

    /// Compiles on a blocking thread; the inner error is the compile error's message.
    async fn compile(
        &self,
        id: GenerationId,
        config: Arc<Config>,
    ) -> Result<Result<Arc<Generation>, String>, ControlError> {
        let plane = self.inner.plane.clone();
        let compiled = tokio::task::spawn_blocking(move || plane.compile(id, config)).await?;
        Ok(compiled.map_err(|e| e.to_string()))
    }

    fn remember(
        &self,
        generation: &Arc<Generation>,
        record: &NewGeneration,
        id: GenerationId,
        config: &Config,
    ) {
        let cached = CachedGeneration {
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
        };
        let mut cache = self.cache();
        cache.activate(cached, None);
        cache.set_capacity(config.safety.keep_generations as usize);
    }

    /// Records a refused apply as a rejected generation (not for dry runs) and returns
    /// the refusal.
    async fn refuse(
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
            };
            outcome.generation = Some(self.with_store(move |s| s.record_rejection(record)).await?);
        }
        tracing::warn!(
            rejected = ?outcome.generation,
            author = %request.author,
            reasons = ?outcome.refusals.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(),
            "apply refused"
        );
        Ok(outcome)
    }
}

/// Fills in defaults: an origin, an author and a file name.
fn normalize(mut request: ApplyRequest) -> ApplyRequest {
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
fn stored_report(outcome: &ApplyOutcome) -> serde_json::Value {
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

pub(crate) fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}
