//! Metrics exposition, in-process detectors and alert delivery.
//!
//! ```text
//! DataPlane counters (atomics) ──scrape──▶ PlaneCollector ─▶ GET /metrics
//!          │
//!          └──every 250 ms──▶ Series (sliding windows) ─▶ detectors ─▶ Alert ─▶ AlertLog (GET /alerts)
//! ProxyEvent (identity) ───────────────────────────────────▶ detectors     └──▶ webhooks (bounded, retried)
//!                                                                          └──▶ WatchVerdict ─▶ keel-control's guard
//! ```
//!
//! The hot path is untouched: the data plane bumps the counters it already had; metrics
//! read them at scrape time and the detectors read them once per [`TICK`].
//!
//! Entry points: [`Watcher::start`] (one per data plane), [`Watcher::watch_apply`] for the
//! controller's guard, [`Watcher::metrics_text`] and
//! [`Watcher::alerts_json`] for the admin API. Metric names are in [`names`]; the math
//! of each detector is in its module and in `docs/detectors.md`.
//!
//! # For the controller
//!
//! * At boot: `let (watcher, bad_hooks) = Watcher::start(plane.clone(), &config.alerts.webhooks)`;
//!   after an apply that changed `[alerts]`: [`Watcher::set_webhooks`].
//! * Admin API: `GET /metrics` → [`Watcher::metrics_text`] with [`METRICS_CONTENT_TYPE`]
//!   (token only if `[admin] metrics_require_token`); `GET /alerts` → [`Watcher::alerts_json`].
//! * Counters: [`Metrics::record_apply`], [`Metrics::record_rejection`],
//!   [`Metrics::record_rollback`] (the guard counts its own automatic rollbacks).
//! * Guarded apply: build a [`GuardPlan`] from `[safety]` and the `--canary/--watch` flags;
//!   `keel-control` walks [`GuardPlan::stages`] and awaits [`Watcher::watch_apply`] per
//!   stage. This crate never swaps the data plane: the detectors return verdicts, and the
//!   controller stays the one owner of swaps, reverts and store state.
//! * Persisting alerts: [`Watcher::subscribe`] hands every raised alert to the controller.
//! * Known-good promotion: [`AlertLog::about`]`(generation, since)` lists the alerts the
//!   generation collected since it became active.

mod alerts;
mod collector;
pub mod detectors;
mod evaluate;
pub mod handshake_window;
mod metrics;
pub mod names;
pub mod plan;
mod policy_metrics;
mod shape;
mod tls_metrics;
mod tunnel_metrics;
mod watcher;
mod webhook;
pub mod window;

pub use alerts::{ALERT_LOG_CAPACITY, Alert, AlertLog, Phase, Severity};
pub use collector::PlaneCollector;
pub use detectors::{Alarm, Detector, Thresholds};
pub use metrics::{Delivery, METRICS_CONTENT_TYPE, Metrics, RollbackTrigger};
pub use plan::{GuardPlan, MIN_STEP_WATCH};
pub use shape::{ANY_HOST, ArmShape, RouteShape, Shape};
pub use watcher::{
    ALERT_BUFFER, CONTINUOUS_REPEAT, EvidenceWait, MIN_FULL_HANDSHAKES, WatchMode, WatchRequest,
    WatchVerdict, Watcher,
};
pub use webhook::{
    Dispatcher, WEBHOOK_BACKOFF_BASE, WEBHOOK_BACKOFF_MAX, WEBHOOK_QUEUE, WebhookError, parse_url,
    payload,
};
pub use window::TICK;
