//! Metrics exposition, in-process detectors and alert delivery.
//!
//! ```text
//! DataPlane counters (atomics) ──scrape──▶ PlaneCollector ─▶ GET /metrics
//!          │
//!          └──every 250 ms──▶ Series (sliding windows) ─▶ detectors ─▶ Alert ─▶ AlertLog (GET /alerts)
//! ProxyEvent (identity) ───────────────────────────────────▶ detectors     └──▶ webhooks (bounded, retried)
//!                                                                          └──▶ WatchVerdict ─▶ guard: revert
//! ```
//!
//! The hot path is untouched: the data plane bumps the counters it already had; metrics
//! read them at scrape time and the detectors read them once per [`TICK`].
//!
//! Entry points: [`Watcher::start`] (one per data plane), [`Watcher::watch_apply`] and
//! [`guard::guarded_apply`] for the controller, [`Watcher::metrics_text`] and
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
//! * Guarded apply: build a [`GuardPlan`] from `[safety]` and the `--canary/--watch` flags.
//!   [`guard::guarded_apply`] runs the whole plan and does the swaps itself; `keel-control`
//!   instead walks [`GuardPlan::stages`] and awaits [`Watcher::watch_apply`] per stage, so
//!   the controller stays the one owner of swaps and store state. `--no-guard` →
//!   [`unguarded_apply`] (or the controller's own equivalent).
//! * Persisting alerts: [`Watcher::subscribe`] hands every raised alert to the controller.
//! * Known-good promotion: [`AlertLog::about`]`(generation, since)` lists the alerts the
//!   generation collected since it became active.

mod alerts;
mod collector;
pub mod detectors;
mod evaluate;
pub mod guard;
mod metrics;
pub mod names;
mod shape;
mod tls_metrics;
mod watcher;
mod webhook;
pub mod window;

pub use alerts::{ALERT_LOG_CAPACITY, Alert, AlertLog, Phase, Severity};
pub use collector::PlaneCollector;
pub use detectors::{Alarm, Detector, Thresholds};
pub use guard::{GuardOutcome, GuardPlan, guarded_apply, unguarded_apply};
pub use metrics::{Delivery, METRICS_CONTENT_TYPE, Metrics, RollbackTrigger};
pub use shape::{ANY_HOST, ArmShape, RouteShape, Shape};
pub use watcher::{
    ALERT_BUFFER, CONTINUOUS_REPEAT, WatchMode, WatchRequest, WatchVerdict, Watcher,
};
pub use webhook::{
    Dispatcher, WEBHOOK_BACKOFF_BASE, WEBHOOK_BACKOFF_MAX, WEBHOOK_QUEUE, WebhookError, parse_url,
    payload,
};
pub use window::TICK;
