//! The apply pipeline, one stage per step:
//!
//! ```text
//! check (keel-check, no lock) ─▶ [apply lock] listeners ─▶ gate (+ drift, watch in
//!       progress) ─▶ identity probes ─▶ compile
//!       ─▶ persist (one store transaction: new generation active, or pending for a canary)
//!       ─▶ swap (all traffic, or a canary slice) ─▶ guard (see `crate::guard`)
//! ```
//!
//! With a watcher, a full swap is watched in the background and a canary apply waits
//! for its verdict (the apply lock is released while it is watched).
//!
//! The check stage also replays the live traffic sample through the candidate's rate
//! limits (lint K219, `keel_impact::rate_lint`), so `keel apply` shows a limit below the
//! observed rate at its file:line:col; it is a warning and refuses nothing by itself
//! (the gate judges what the limit newly refuses against `max_shift`).
//!
//! Any refusal (check errors, listener changes, gate, compile) is recorded in the store
//! as a rejected generation with its report, so the audit log has every attempt. `force`
//! overrides policy errors and the gate, never hard errors or listener changes. The
//! locked stages run in their own task: a caller that gives up (a dropped admin
//! connection) cannot stop an apply between its persist and its swap.

use std::time::Instant;

use keel_config::Severity;
use keel_store::NewGeneration;

use crate::Controller;
use crate::apply_steps::{cached, normalize, stored_report};
use crate::controller::lock;
use crate::error::ControlError;
use crate::guard::{self, GuardChoice, Trial, unwatched, waited};
use crate::hooks::Activated;
use crate::identity_stage::probe_identities;
use crate::load::{load, load_in};
use crate::request::{ApplyOutcome, ApplyRequest, ApplyStatus, Refusal, Stage, StageTimings};
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
        self.check_guard_flags(&request)?;
        // Stage 1: check. Pure, so it runs before the lock and applies can check in parallel.
        let started = Instant::now();
        let (name, text) = (request.file_name.clone(), request.config_text.clone());
        let config_dir = self.config_dir();
        let sample = self.inner.plane.sample().snapshot();
        let loaded = tokio::task::spawn_blocking(move || {
            let mut loaded = match config_dir {
                Some(dir) => load_in(&name, &text, &dir),
                None => load(&name, &text),
            };
            // K219: the live sample replayed through the candidate's rate limits.
            if let Some(config) = loaded.config_ignoring_policy() {
                let findings = keel_impact::rate_limit_findings(&config, &sample);
                loaded.report.extend(findings);
            }
            loaded
        })
        .await?;
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
            guard: None,
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
            // A config refused for policy still has a blast radius: the audit log keeps it.
            let impact = match loaded.config_ignoring_policy() {
                Some(config) => {
                    let current = self.inner.plane.active().map(|a| a.primary.clone());
                    let verdict = self.evaluate_gate(current, config).await?;
                    outcome.gate = verdict.report.clone();
                    verdict.report
                }
                None => None,
            };
            return self.refuse(&request, outcome, impact).await;
        };
        // Fleet mode: the node's own listeners, admin API and `[fleet]` stay (K230 says
        // which of the applied values do not travel).
        if let Some(node) = self.node_config() {
            outcome.notes.extend(
                keel_check::fleet::node_key_findings(&config, Some(&node))
                    .into_iter()
                    .map(|d| format!("{}: {}", d.code, d.message)),
            );
        }
        let config = self.with_node_keys(config);

        let serialized = self.inner.apply_lock.lock().await;
        if !request.dry_run
            && let Some(generation) = self.canary_in_progress()
        {
            return Err(ControlError::CanaryInProgress { generation });
        }
        let current = self.inner.plane.active().map(|a| a.primary.clone());
        let baseline = self
            .active()
            .filter(|c| Some(c.id()) == current.as_ref().map(|g| g.id))
            .or_else(|| {
                // Nothing serves yet: an `--adopt-config` start is judged against the
                // stored generation it replaces (`adopt.rs`).
                if current.is_none() && !request.dry_run {
                    lock(&self.inner.adopt_baseline).take()
                } else {
                    None
                }
            });
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

        // Stage 3: the gate (blast radius on the live sample).
        let started = Instant::now();
        let verdict = self.evaluate_gate(current.clone(), config.clone()).await?;
        outcome.timings.gate_us = micros(started);
        outcome.gate = verdict.report.clone();
        outcome.notes.extend(verdict.notes.iter().cloned());
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
            }
        }

        // Stage 3a: cumulative movement since the drift reference, and a watch that a
        // new apply would end (see `crate::drift`).
        let (drift, drift_notes) = self.drift_gate(current.as_ref(), config.clone()).await?;
        outcome.notes.extend(drift_notes);
        let watching = if request.dry_run {
            None
        } else {
            self.watch_in_progress(current.as_ref())
        };
        let inherited = self.inherited_baseline(current.as_ref());
        if request.force {
            outcome.overridden.extend(drift);
            outcome.overridden.extend(watching);
        } else {
            outcome.refusals.extend(drift);
            outcome.refusals.extend(watching);
        }

        // Stage 3b: identity probes of every backend the change brings in. They run
        // also when the gate refused: the refusal then carries the probes' answers.
        let started = Instant::now();
        let identities =
            probe_identities(current.as_ref().map(|g| g.config.clone()), config.clone()).await;
        outcome.timings.probe_us = micros(started);
        outcome.notes.extend(identities.notes);
        if request.force {
            outcome.overridden.extend(identities.refusals);
        } else {
            outcome.refusals.extend(identities.refusals);
        }
        if !outcome.refusals.is_empty() {
            return self.refuse(&request, outcome, verdict.report).await;
        }
        outcome.forced = !outcome.overridden.is_empty();
        if request.dry_run {
            outcome.status = ApplyStatus::DryRun;
            return Ok(outcome);
        }
        let choice = self.guard_choice(&request, current.as_deref(), &config)?;
        if matches!(choice, GuardChoice::Canary(_)) && baseline.is_none() {
            return Err(ControlError::Task(
                "the active generation is not in the cache: cannot run a canary against it".into(),
            ));
        }
        let change = guard::change_summary(current.as_deref(), &config);

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

        // Stage 5: persist, in one transaction: active, or pending for a canary. The
        // certificates' copies are written first, so the record's pins always have them.
        let canary = matches!(choice, GuardChoice::Canary(_));
        let started = Instant::now();
        let certificates = self.pin_certificates(config.clone()).await?;
        let record = NewGeneration {
            config_text: request.config_text.clone(),
            author: request.author.clone(),
            message: request.message.clone(),
            origin: request.origin.clone(),
            forced: outcome.forced,
            check_report: stored_report(&outcome),
            impact_report: verdict.report,
            certificates,
        };
        let meta_record = record.clone();
        // Nothing will watch it here: a store with a node canary must not wait for a guard.
        let unguarded = matches!(choice, GuardChoice::Off | GuardChoice::Bypassed);
        let id = match self
            .with_store(move |s| {
                if unguarded {
                    s.record_unguarded_apply(record, !canary)
                } else {
                    s.record_apply(record, !canary)
                }
            })
            .await
        {
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
                        "generation {id} is recorded as {} but could not be compiled: {message}",
                        if canary { "pending" } else { "active" }
                    );
                    self.set_store_error(Some(error.clone()));
                    return Err(ControlError::Task(error));
                }
            }
        };
        outcome.generation = Some(id);
        outcome.status = ApplyStatus::Applied;
        let mut candidate = cached(&generation, &meta_record, id);
        let replaced = current
            .as_ref()
            .or(baseline.as_ref().map(|b| &b.generation));
        if let Some(replaced) = replaced {
            candidate.known_good_after = candidate
                .known_good_after
                .max(replaced.config.safety.known_good_after);
        }
        self.log_applied(&request, &outcome, id);

        // Stage 6: swap (a canary slice, or the whole traffic) and stage 7: watch.
        match (choice, baseline) {
            (GuardChoice::Canary(plan), Some(baseline)) => {
                let mut trial = Trial {
                    session: 0,
                    candidate,
                    baseline,
                    change,
                    started: Instant::now(),
                };
                let Some((cancellation, swap_us)) = self.start_canary(&mut trial, &plan).await
                else {
                    return Err(ControlError::Task(
                        "a canary plan without a canary stage".into(),
                    ));
                };
                outcome.timings.swap_us = swap_us;
                drop(serialized);
                self.run_canary(trial, &plan, cancellation, outcome).await
            }
            (GuardChoice::Canary(_), None) => Err(ControlError::Task(
                "the active generation is not in the cache: cannot run a canary against it".into(),
            )),
            (choice, baseline) => {
                let started = Instant::now();
                self.inner.plane.activate(generation.clone());
                outcome.timings.swap_us = micros(started);
                self.remember(candidate.clone(), &config);
                self.became_primary(&generation, &mut outcome.notes);
                self.inner.hooks.watch.activated(
                    Activated {
                        generation: generation.clone(),
                        previous: current,
                        origin: request.origin.clone(),
                    },
                    self,
                );
                let task = match choice {
                    GuardChoice::Off | GuardChoice::Canary(_) => None,
                    GuardChoice::Bypassed => {
                        self.cancel_session();
                        self.bypassed(&request, &mut outcome, id, &change, baseline.as_ref())
                            .await;
                        None
                    }
                    GuardChoice::Full(plan) => {
                        self.note_applied(id, &change);
                        // Forced over a watch: judged against that watch's baseline;
                        // else against what was known good (`Controller::yardstick`).
                        match inherited.or_else(|| self.yardstick(baseline, &config)) {
                            // A change never chooses its own judge: detectors the old
                            // config enables watch it even if the new one turns them off.
                            Some(baseline)
                                if generation.config.detectors.enabled
                                    || baseline.generation.config.detectors.enabled =>
                            {
                                let trial = Trial {
                                    session: 0,
                                    candidate,
                                    baseline,
                                    change,
                                    started,
                                };
                                let (watching, task) = self.watch_full_swap(trial, &plan);
                                outcome.guard = Some(watching);
                                Some(task)
                            }
                            baseline => {
                                self.cancel_session();
                                outcome.guard = Some(unwatched(
                                    &plan,
                                    baseline.as_ref(),
                                    &generation,
                                    &mut outcome.notes,
                                ));
                                None
                            }
                        }
                    }
                };
                drop(serialized);
                match task {
                    Some(task) if request.wait => Ok(waited(outcome, task.await?)),
                    _ => Ok(outcome),
                }
            }
        }
    }
}

pub(crate) fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}
