//! The control plane: applies, rollbacks, the compiled-generation cache, known-good
//! promotion, the blast-radius gate, guarded applies, the admin API and its client.
//!
//! ```text
//! keel apply ─HTTP─▶ admin::router ─▶ Controller::apply
//!   check (keel-check) ─▶ [apply lock] listeners ─▶ Gate ─▶ compile ─▶ persist (Store) ─▶ swap ─▶ guard
//! keel rollback ─HTTP─▶ Controller::rollback: [apply lock] cache ─▶ trust ─▶ blast radius ─▶ swap ─▶ persist ─▶ guard
//! keel mark-bad ─HTTP─▶ Controller::mark_bad: known-good withdrawn, never promoted again
//! guard: canary slice / full swap ─watch (keel-watch)─▶ promote, or revert by itself on an alarm
//! timer ─▶ Controller::promote_known_good: AlarmSource says nothing for known_good_after ─▶ known-good
//! DataPlane::subscribe ─▶ record_proxy_events ─▶ Store events; Watcher::subscribe ─▶ alert events
//! ```
//!
//! In-process entry points: [`Controller::start_guarded`] (boot from a store, guarded,
//! what `keel serve` runs) and [`Controller::new_guarded`] (over a data plane you built).
//!
//! * [`Controller`] owns the [`keel_store::Store`], the [`keel_proxy::DataPlane`], the
//!   compiled-generation cache (the active generation plus the last
//!   `[safety] keep_generations` it replaced, known-good ones kept longest) and the lock
//!   that serializes applies and rollbacks. The data plane is never locked.
//! * Hooks, each with a do-nothing default: [`Gate`] (blast radius: [`BlastRadiusGate`]),
//!   [`Watch`] (told of every swap), [`AlarmSource`] (the watcher's alerts), and the
//!   [`Watcher`] that turns on guarded applies ([`guard`]). [`Hooks::guarded`] sets them all.
//! * Listener and admin addresses are bound at startup; an apply that changes them is
//!   refused (rebinding on apply is not implemented yet).
//! * [`semantic_diff`] compares two configs by routes, pools, backends and weights.
//! * [`admin`] serves the API; [`client::AdminClient`] is what the `keel` CLI uses.

pub mod acme;
pub mod admin;
mod adopt;
pub mod api;
mod apply;
mod apply_steps;
pub mod boot;
mod cache;
pub mod client;
pub mod console;
mod controller;
pub mod descriptors;
pub mod dns;
mod dns_srv;
mod drift;
/// The semantic config diff (it lives in keel-config, shared with keel-report).
pub use keel_config::diff;
mod error;
mod events;
mod follow;
mod gate;
pub mod guard;
mod hooks;
mod identity_stage;
mod known_good;
mod load;
mod persisted_sample;
pub mod pinned_load;
pub mod pins;
mod request;
mod rollback;
mod rollback_report;
mod settings;
mod status;
mod strictness;
mod trust;
pub mod tunnel_status;
pub mod tunnels;

pub use apply::UNKNOWN_AUTHOR;
pub use cache::{CachedGeneration, GenerationMeta};
pub use controller::Controller;
pub use diff::{ConfigDiff, semantic_diff};
pub use error::ControlError;
pub use events::{record_proxy_events, to_store_event};
pub use follow::Followed;
pub use gate::{BlastRadiusGate, IMPACT_SCHEMA_VERSION, impact_text};
pub use guard::{
    GUARD_AUTHOR, GUARD_BYPASSED, GUARD_ORIGIN, GuardStatus, MIN_CANARY_PERCENT, UnprovenStatus,
};
pub use hooks::{
    Activated, Alarm, AlarmSource, AllowAll, Gate, GateInput, GateVerdict, Hooks, NoAlarms,
    NoWatch, Watch,
};
pub use keel_watch::{EvidenceWait, GuardPlan, Watcher};
pub use known_good::{KNOWN_GOOD_TICK, run_known_good};
pub use persisted_sample::{
    MAX_SAMPLE_FILE_BYTES, SAMPLE_FILE_NAME, SAMPLE_SAVE_EVERY, run_sample_saver,
};
pub use request::{
    ApplyOutcome, ApplyRequest, ApplyStatus, GuardMode, GuardReport, GuardResult, GuardStage,
    MarkBadOutcome, MarkBadRequest, Refusal, RollbackOutcome, RollbackRequest, Stage, StageTimings,
    UNNAMED_SOURCE,
};
pub use status::{
    ActiveStatus, BackendHealth, CanaryStatus, HealthSummary, KeptGeneration, MAX_STATUS_ALERTS,
    OpenAlert, PoolHealth, Status,
};
pub use trust::MAX_DISTRUST_ALERTS;
