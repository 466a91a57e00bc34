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

mod alerts;
mod collector;
pub mod detectors;
mod evaluate;
pub mod guard;
mod metrics;
pub mod names;
mod shape;
mod watcher;
mod webhook;
pub mod window;

pub use alerts::{ALERT_LOG_CAPACITY, Alert, AlertLog, Phase, Severity};
pub use collector::PlaneCollector;
pub use detectors::{Alarm, Detector, Thresholds};
pub use guard::{GuardOutcome, GuardPlan, guarded_apply, unguarded_apply};
pub use metrics::{Delivery, METRICS_CONTENT_TYPE, Metrics, RollbackTrigger};
pub use shape::{ANY_HOST, ArmShape, RouteShape, Shape};
pub use watcher::{CONTINUOUS_REPEAT, WatchMode, WatchRequest, WatchVerdict, Watcher};
pub use webhook::{
    Dispatcher, WEBHOOK_BACKOFF_BASE, WEBHOOK_BACKOFF_MAX, WEBHOOK_QUEUE, WebhookError, parse_url,
    payload,
};
pub use window::TICK;
