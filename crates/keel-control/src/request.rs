//! What callers hand the controller and what they get back: [`ApplyRequest`] /
//! [`ApplyOutcome`] and [`RollbackRequest`] / [`RollbackOutcome`].
//!
//! These are plain data with serde derives: the admin API sends them as JSON and the
//! CLI client reads them back, so the wire format is these types and nothing else.

use std::time::Duration;

use keel_store::GenerationId;
use serde::{Deserialize, Serialize};

/// Label used in check reports when the caller did not name the file (`<apply>`).
pub const UNNAMED_SOURCE: &str = "<apply>";

/// A request to make a config text the active generation.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ApplyRequest {
    /// The full config text.
    pub config_text: String,
    /// Who applies it (recorded in the audit log).
    pub author: String,
    /// Why, in the author's words.
    pub message: String,
    /// Override policy errors and the gate (never hard errors). Recorded as forced.
    #[serde(default)]
    pub force: bool,
    /// Run check and gate only: nothing is compiled, recorded or swapped.
    #[serde(default)]
    pub dry_run: bool,
    /// What triggered it: see `keel_store::origin` (`cli`, `sighup`, `startup`).
    #[serde(default)]
    pub origin: String,
    /// The name findings are reported against (the file the author applied).
    #[serde(default)]
    pub file_name: String,
    /// Guarded apply with a canary: the new generation first serves this percentage of
    /// requests (0.1 ≤ p < 100), is watched against the active one for `watch`, then is
    /// promoted through `[safety] promote_steps`; any alarm reverts it and the apply
    /// ends refused (stage `guard`). `apply` returns when the canary is decided.
    /// `None`: full swap, then a background watch (see `wait`). Needs a watcher.
    #[serde(default)]
    pub canary: Option<f64>,
    /// Watch time of the canary slice, or of the full swap; `None`: `[safety] watch`.
    #[serde(default)]
    pub watch: Option<Duration>,
    /// Skip the guard: swap at once, unwatched. Logged as a warning and recorded as a
    /// `guard-bypassed` event.
    #[serde(default)]
    pub no_guard: bool,
    /// For a full swap: return only when the watch has decided (promoted or reverted)
    /// instead of right after the swap.
    #[serde(default)]
    pub wait: bool,
}

/// How an apply ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyStatus {
    /// The config is the active generation now.
    Applied,
    /// A dry run that would have been applied.
    DryRun,
    /// Refused: see `refusals`. The active generation did not change.
    Refused,
}

/// The pipeline stage that refused or overrode something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// `keel check`: parse errors, lints, route tests, intents.
    Check,
    /// The blast-radius gate.
    Gate,
    /// Listener addresses (they cannot change on a running Keel).
    Listeners,
    /// Identity probes of the backends the change brings in, before the swap.
    Probe,
    /// Compiling the config into a generation.
    Compile,
    /// The guard: a detector fired while the new generation was watched, and it was
    /// reverted (or an operator cancelled its canary).
    Guard,
}

impl Stage {
    /// The stage as people and the JSON name it (`check`, `gate`, `probe`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Check => "check",
            Stage::Gate => "gate",
            Stage::Listeners => "listeners",
            Stage::Probe => "probe",
            Stage::Compile => "compile",
            Stage::Guard => "guard",
        }
    }
}

/// One reason an apply was refused (or, under `force`, one thing that was overridden).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// Which stage said no.
    pub stage: Stage,
    /// The lint id, for check findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// What is wrong, in one line.
    pub message: String,
}

/// Time spent in each stage of one apply, in microseconds (0 for stages not reached).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageTimings {
    /// Parse, lints, shadowing, route tests, intents.
    pub check_us: u64,
    /// The gate hook.
    pub gate_us: u64,
    /// Identity probes of the backends the change brings in.
    #[serde(default)]
    pub probe_us: u64,
    /// Building the generation (routing table, pools).
    pub compile_us: u64,
    /// The store transaction.
    pub persist_us: u64,
    /// The atomic pointer swap.
    pub swap_us: u64,
}

/// The result of an apply.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApplyOutcome {
    /// Applied, dry run, or refused.
    pub status: ApplyStatus,
    /// The new active generation; for a refusal, the id it was recorded under as rejected.
    pub generation: Option<GenerationId>,
    /// The generation that was active before.
    pub previous: Option<GenerationId>,
    /// Whether `force` overrode anything.
    pub forced: bool,
    /// The check report (schema of `keel check --format json`).
    pub report: serde_json::Value,
    /// The check report rendered for people.
    pub report_text: String,
    /// Why it was refused (empty unless refused).
    pub refusals: Vec<Refusal>,
    /// What `force` overrode.
    pub overridden: Vec<Refusal>,
    /// The gate's report, when the gate produced one.
    pub gate: Option<serde_json::Value>,
    /// Things the author should know (settings that take effect only on restart, …).
    pub notes: Vec<String>,
    /// Time per stage.
    pub timings: StageTimings,
    /// What the guard did, when the controller runs one (`None` otherwise, and for
    /// refusals before the swap and dry runs).
    #[serde(default)]
    pub guard: Option<GuardReport>,
}

/// How the new generation was brought in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuardMode {
    /// A canary slice, then promotion steps, each watched.
    Canary,
    /// A full swap, watched afterwards.
    Full,
    /// `--no-guard`: a full swap, not watched.
    Unguarded,
}

/// Where a guarded apply stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuardResult {
    /// The watch runs in the background; an alarm reverts the generation by itself.
    Watching,
    /// Every stage was watched without an alarm: the generation serves everything.
    Promoted,
    /// A detector fired and the previous generation serves again.
    RolledBack,
    /// An operator cancelled the canary (a rollback while it ran).
    Cancelled,
    /// Nothing was watched: the config disables the detectors, or there was no
    /// previous generation to compare with and to go back to.
    Unwatched,
    /// `--no-guard`.
    Bypassed,
    /// A detector fired on a rollback's known-good target, but the generation it left
    /// had alarmed too: the target keeps serving (it is the way out) and the alert stays.
    Kept,
    /// No detector fired, but the watch ran out of its extra time before every route that
    /// had traffic before carried `min_requests`: the generation serves, unjudged on those
    /// routes, and is not promoted known-good (`reason` names them).
    Unproven,
}

/// What the guard did with an applied generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardReport {
    /// How the generation was brought in.
    pub mode: GuardMode,
    /// How it ended (or `watching`).
    pub result: GuardResult,
    /// The generation it was compared with and would go back to.
    pub baseline: Option<GenerationId>,
    /// The stages planned: share of requests in thousandths (1000 = full swap) and
    /// watch time in milliseconds.
    pub stages: Vec<GuardStage>,
    /// Time from the first swap to the result, in milliseconds (0 while watching).
    pub watched_ms: u64,
    /// The alert that caused the rollback (the `GET /alerts` form).
    #[serde(default)]
    pub alert: Option<serde_json::Value>,
    /// Why it was rolled back or cancelled, in one line.
    #[serde(default)]
    pub reason: Option<String>,
    /// Time from the first swap to the alarm, in milliseconds.
    #[serde(default)]
    pub detected_after_ms: Option<u64>,
    /// Time from the first swap to the revert swap, in milliseconds.
    #[serde(default)]
    pub reverted_after_ms: Option<u64>,
    /// The canary share (thousandths) the generation had when it was reverted.
    #[serde(default)]
    pub at_permille: Option<u32>,
}

/// One stage of a guarded apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardStage {
    /// Share of requests the new generation serves, in thousandths (1000: all).
    pub permille: u32,
    /// How long the stage is watched, in milliseconds.
    pub watch_ms: u64,
}

impl ApplyOutcome {
    /// True when the config was applied (or would be, for a dry run).
    pub fn is_success(&self) -> bool {
        self.status != ApplyStatus::Refused
    }
}

/// A request to go back to an earlier generation kept compiled in memory.
///
/// A rollback is a change too: its blast radius (active table → target table on the live
/// sample) is computed and shown before the swap, and with a watcher the target is watched
/// for `[safety] watch` like an apply and reverted by the guard if it alarms. The gate never
/// refuses a rollback; a target that is not known-good needs `force`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RollbackRequest {
    /// The target; `None` for the newest known-good generation other than the active one.
    #[serde(default)]
    pub to: Option<GenerationId>,
    /// Who asks (recorded in the audit log).
    #[serde(default)]
    pub author: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// What triggered it (`cli`, `guard`, …).
    #[serde(default)]
    pub origin: String,
    /// Roll back to a target that is not known-good (reverted by an alarm, judged bad,
    /// forced, or never served long enough): recorded, and the outcome says why the target
    /// was distrusted.
    #[serde(default)]
    pub force: bool,
    /// Show the target and its blast radius only: nothing is swapped or recorded.
    #[serde(default)]
    pub dry_run: bool,
    /// Watch time of the target after the swap; `None`: the longer `[safety] watch` of
    /// the active and the target config.
    #[serde(default)]
    pub watch: Option<Duration>,
    /// Return only when the watch of the target has decided.
    #[serde(default)]
    pub wait: bool,
}

/// The result of a rollback.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RollbackOutcome {
    /// The generation that was serving.
    pub from: GenerationId,
    /// The generation serving now (for a dry run: the one that would).
    pub to: GenerationId,
    /// Time of the pointer swap, in microseconds.
    pub swap_us: u64,
    /// Whether the store recorded the rollback. When false the new generation serves
    /// anyway, but a restart would serve `from` again: see `persist_error`.
    pub persisted: bool,
    /// Why the store could not record it.
    pub persist_error: Option<String>,
    /// A dry run: nothing was swapped.
    #[serde(default)]
    pub dry_run: bool,
    /// `force` was needed: the target was not known-good (see `distrust`).
    #[serde(default)]
    pub forced: bool,
    /// Why the target is distrusted (its alerts with their times, a guard revert, a
    /// `mark-bad`, a forced apply), one line each; empty for a known-good target.
    #[serde(default)]
    pub distrust: Vec<String>,
    /// The rollback's blast radius, computed before the swap: the stored impact report
    /// envelope (`gate`, `report`, `text`), as for an apply.
    #[serde(default)]
    pub blast_radius: Option<serde_json::Value>,
    /// What the guard does with the target: `watching` (or, with `wait`, its verdict).
    #[serde(default)]
    pub guard: Option<GuardReport>,
    /// Things the operator should know.
    #[serde(default)]
    pub notes: Vec<String>,
    /// What the rollback did to the open tunnels of the generation it left (absent
    /// from older nodes' answers).
    #[serde(default)]
    pub tunnels: crate::tunnels::TunnelsLeft,
}

/// A request to judge a generation bad (`keel mark-bad N`): its known-good mark is
/// withdrawn and no rollback picks it without `force`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MarkBadRequest {
    /// The generation.
    pub id: GenerationId,
    /// Who judges.
    #[serde(default)]
    pub author: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// The result of `keel mark-bad`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarkBadOutcome {
    /// The generation judged bad.
    pub id: GenerationId,
    /// Whether it was known-good until now.
    pub withdrew_known_good: bool,
    /// Whether it serves now (marking does not roll back: `keel rollback` does).
    pub active: bool,
}
