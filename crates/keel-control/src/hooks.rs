//! The seams later issues plug into, each with a do-nothing default:
//!
//! * [`Gate`]: after check, before compile: may refuse an apply (blast radius, `keel-impact`).
//! * [`Watch`]: after the swap: may watch the new generation and roll it back (guarded applies).
//! * [`AlarmSource`]: consulted before a generation is marked known-good (detectors, `keel-watch`).
//!
//! [`Hooks::guarded`] is what `keel serve` runs with: the blast-radius gate
//! ([`crate::BlastRadiusGate`]), the watcher's alert log as the alarm source, and the
//! watcher itself, which turns on guarded applies (canary, watch, automatic revert).

use std::sync::Arc;
use std::time::SystemTime;

use keel_config::Config;
use keel_proxy::{Generation, TrafficSample};
use keel_watch::Watcher;
use serde::{Deserialize, Serialize};

use crate::Controller;

/// What the gate sees: what serves now, what would serve, and real recent traffic.
#[derive(Debug)]
pub struct GateInput<'a> {
    /// The active generation (`None` on first start).
    pub current: Option<&'a Generation>,
    /// The checked candidate config.
    pub candidate: &'a Config,
    /// The data plane's live traffic sample.
    pub traffic: &'a TrafficSample,
    /// The sample persisted in the state dir before this start (empty without one): the
    /// gate judges the hosts the live sample has no request of on it.
    pub persisted: &'a [keel_route::RequestShape],
}

/// The gate's decision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GateVerdict {
    /// Whether the apply may go on. `force` overrides a refusal.
    pub allow: bool,
    /// One line per reason to refuse.
    pub reasons: Vec<String>,
    /// The full report, stored with the generation as its impact report.
    pub report: Option<serde_json::Value>,
    /// What the gate could not judge (empty sample, first generation), for the author.
    #[serde(default)]
    pub notes: Vec<String>,
}

impl GateVerdict {
    /// Lets the apply go on with no report.
    pub fn allow() -> Self {
        Self {
            allow: true,
            reasons: Vec::new(),
            report: None,
            notes: Vec::new(),
        }
    }
}

/// Decides whether a checked config may be applied. Runs on a blocking thread, under the
/// apply lock, so it sees the generation it would replace.
pub trait Gate: Send + Sync {
    /// Judges the candidate.
    fn evaluate(&self, input: &GateInput<'_>) -> GateVerdict;
}

/// The default gate: allows everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Gate for AllowAll {
    fn evaluate(&self, _input: &GateInput<'_>) -> GateVerdict {
        GateVerdict::allow()
    }
}

/// A generation that was just swapped in.
#[derive(Clone, Debug)]
pub struct Activated {
    /// The new active generation.
    pub generation: Arc<Generation>,
    /// The generation it replaced.
    pub previous: Option<Arc<Generation>>,
    /// What triggered the apply.
    pub origin: String,
}

/// Told about every applied generation right after its swap. Must not block: a watch
/// that needs time spawns a task, and may call [`Controller::rollback`] from it.
pub trait Watch: Send + Sync {
    /// A generation was activated by an apply.
    fn activated(&self, activated: Activated, controller: &Controller);
}

/// The default watch: does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoWatch;

impl Watch for NoWatch {
    fn activated(&self, _activated: Activated, _controller: &Controller) {}
}

/// An alarm raised about a generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    /// What raised it (a detector name).
    pub source: String,
    /// One line for people.
    pub summary: String,
}

/// Where the controller asks "has anything been wrong with this generation?" before it
/// marks it known-good.
pub trait AlarmSource: Send + Sync {
    /// Alarms about `generation` raised since `since` (empty when none).
    fn alarms(&self, generation: &Generation, since: SystemTime) -> Vec<Alarm>;
}

/// The default alarm source: never alarmed.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAlarms;

impl AlarmSource for NoAlarms {
    fn alarms(&self, _generation: &Generation, _since: SystemTime) -> Vec<Alarm> {
        Vec::new()
    }
}

/// The hooks a controller runs with.
#[derive(Clone)]
pub struct Hooks {
    /// Consulted after check.
    pub gate: Arc<dyn Gate>,
    /// Told after each apply's swap.
    pub watch: Arc<dyn Watch>,
    /// Consulted before marking known-good.
    pub alarms: Arc<dyn AlarmSource>,
    /// The detectors of the controller's data plane. With one, applies are guarded
    /// (canary slices, a watch after every swap, automatic revert on an alarm), alerts
    /// are persisted as store events and applies, rejections and rollbacks are counted
    /// in its metrics. It must watch the same data plane the controller is given.
    pub watcher: Option<Arc<Watcher>>,
}

impl Hooks {
    /// The hooks of a guarded Keel, as `keel serve` runs: the blast-radius gate, the
    /// watcher's alerts as the known-good alarm source, and guarded applies.
    pub fn guarded(watcher: Arc<Watcher>) -> Self {
        Self {
            gate: Arc::new(crate::gate::BlastRadiusGate),
            watch: Arc::new(NoWatch),
            alarms: watcher.clone(),
            watcher: Some(watcher),
        }
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            gate: Arc::new(AllowAll),
            watch: Arc::new(NoWatch),
            alarms: Arc::new(NoAlarms),
            watcher: None,
        }
    }
}

/// A generation has alarms when the watcher raised alerts about it: what keeps a
/// generation from becoming known-good. A `fleet_drift` alert is not one: it says the
/// node is out of step with its fleet, nothing about how the generation serves.
impl AlarmSource for Watcher {
    fn alarms(&self, generation: &Generation, since: SystemTime) -> Vec<Alarm> {
        self.alerts()
            .about(generation.id, since)
            .into_iter()
            .filter(|alert| alert.detector != keel_watch::Detector::FleetDrift)
            .map(|alert| Alarm {
                source: alert.detector.as_str().to_string(),
                summary: alert.summary,
            })
            .collect()
    }
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("guarded", &self.watcher.is_some())
            .finish_non_exhaustive()
    }
}
