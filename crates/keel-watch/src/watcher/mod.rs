//! The watcher: one background task that samples the live generations every
//! [`TICK`], runs the detectors, raises alerts and answers the apply watches.
//!
//! ```text
//! every 250 ms ─▶ sample primary + canary (+ frozen baselines) ─▶ apply watches: candidate vs baseline
//!                                                              └▶ background: active generation alone
//! ProxyEvent  ─▶ identity mismatch / backend misidentified ─▶ at once, without waiting for the tick
//! ```
//!
//! [`Watcher::watch_apply`] is what the controller awaits after a swap or while a canary
//! serves: it resolves with the first alarm about the candidate — within one tick of
//! the evidence reaching the counters, at once for identity events — or `Clean` when
//! the watch time ends and every route that had `min_requests` in the baseline window
//! has seen as many under the candidate, and every TLS listener presenting a changed
//! certificate has completed enough full handshakes with it (`handshake_evidence.rs`):
//! no evidence is not good evidence, so it waits up to the watch time again for them,
//! and says `Unproven`, naming them, if they never come. Alerts of the background watch repeat at most once per
//! [`CONTINUOUS_REPEAT`] per (detector, subject, generation).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use keel_config::Webhook;
use keel_proxy::{DataPlane, Generation, ProxyEvent};
use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

use crate::alerts::{Alert, AlertLog, Phase};
use crate::detectors::Detector;
use crate::metrics::Metrics;
use crate::webhook::{Dispatcher, WebhookError};
use crate::window::{Series, TICK};

mod events;
mod handshake_evidence;
mod tick;

pub use handshake_evidence::MIN_FULL_HANDSHAKES;

/// Series kept at most: live ones, watched ones, and the most recent frozen ones (8).
const MAX_SERIES: usize = 8;
/// Change summaries remembered, newest generations first (64 changes).
const MAX_CHANGES: usize = 64;
/// A background alert for the same detector, subject and generation repeats at most this often (5 minutes).
pub const CONTINUOUS_REPEAT: Duration = Duration::from_secs(300);
/// How often a watch past its clock looks again for the evidence it waits for (250 ms).
const EVIDENCE_POLL: Duration = TICK;
/// Alerts buffered for a slow [`Watcher::subscribe`]r before the oldest are dropped (256 alerts).
pub const ALERT_BUFFER: usize = 256;

/// Evidence a watch still waits for (`keel status` shows these): a route that carried
/// `needed` requests in the baseline window and has carried only `requests` under the
/// candidate; or, when `certificates` is not empty, a TLS listener (`route` is its name)
/// presenting those changed certificates that has completed only `requests` full
/// handshakes of the `needed` ones (`handshake_evidence.rs`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EvidenceWait {
    /// The route's name (the listener's, for handshakes).
    pub route: String,
    /// Requests it has carried in the candidate's window (full handshakes completed
    /// with the changed certificate).
    pub requests: u64,
    /// Requests it needs (`min_requests`, the smaller of the two configs'), or full
    /// handshakes ([`MIN_FULL_HANDSHAKES`]).
    pub needed: u64,
    /// The changed certificate the listener presents (one per wait): a wait for
    /// handshakes with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
}

impl EvidenceWait {
    /// What it waits for, in words: `route shop (3 of 20 requests)` or `listener https
    /// presenting changed certificate shop (3 of 20 full TLS handshakes)`.
    pub fn describe(&self) -> String {
        if self.certificates.is_empty() {
            format!(
                "route {} ({} of {} requests)",
                self.route, self.requests, self.needed
            )
        } else {
            format!(
                "listener {} presenting changed certificate {} ({} of {} full TLS handshakes)",
                self.route,
                self.certificates.join(", "),
                self.requests,
                self.needed
            )
        }
    }
}

/// How the candidate serves while it is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchMode {
    /// A canary slice of this many thousandths; the baseline serves the rest.
    Canary {
        /// Share of requests, in thousandths.
        permille: u32,
    },
    /// The candidate serves everything; the baseline is what it replaced, which served
    /// everything too (a full swap, a rollback). Partial route and service losses are
    /// judged only here: both windows saw all of the traffic.
    Full,
    /// The last stage of a canary: the candidate serves everything, but the baseline's
    /// window is the slice the primary kept, chosen by sticky key; judged like a canary.
    Promotion,
}

/// One apply to watch.
#[derive(Clone, Debug)]
pub struct WatchRequest {
    /// The generation serving before the change (the primary during a canary).
    pub baseline: Arc<Generation>,
    /// The new generation.
    pub candidate: Arc<Generation>,
    /// How the candidate serves.
    pub mode: WatchMode,
    /// How long to watch.
    pub duration: Duration,
    /// The change's diff summary, carried into every alert.
    pub change: String,
}

/// What a watch concluded.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchVerdict {
    /// No detector fired for the whole watch.
    Clean,
    /// A detector fired.
    Alarm {
        /// The alert raised (boxed: a verdict is moved around, an alert is large).
        alert: Box<Alert>,
        /// Time from the start of the watch to the alarm.
        after: Duration,
    },
    /// The candidate's config disables the detectors: nothing was watched.
    Disabled,
    /// No detector fired, but the watch ran out of its extra time while these routes,
    /// which carried `min_requests` in the baseline's window, had not yet under the
    /// candidate: no evidence is not good evidence, so the watch cannot vouch for it.
    Unproven {
        /// The routes it still waited for.
        waiting: Vec<EvidenceWait>,
    },
}

struct ApplyWatch {
    id: u64,
    request: WatchRequest,
    done: Option<oneshot::Sender<Alert>>,
}

#[derive(Default)]
struct State {
    series: Vec<Series>,
    watches: Vec<ApplyWatch>,
    next_watch: u64,
    repeats: HashMap<(Detector, String, u64), Instant>,
    last_fired: HashMap<Detector, Instant>,
    changes: BTreeMap<u64, String>,
}

impl State {
    fn series_of(&self, generation: &Arc<Generation>) -> Option<&Series> {
        self.series.iter().find(|s| s.is_of(generation))
    }

    fn ensure_series(&mut self, generation: &Arc<Generation>, now: Instant, metrics: &Metrics) {
        if self.series.iter().any(|s| s.is_of(generation)) {
            return;
        }
        let ticks = window_ticks(generation.config.detectors.window);
        self.series.push(Series::new(generation, ticks, now));
        metrics.retain(generation);
    }
}

/// Ticks in a detector window (at least one).
fn window_ticks(window: Duration) -> usize {
    (window.as_millis() / TICK.as_millis()).max(1) as usize
}

/// Metrics, detectors and alerts of one data plane.
pub struct Watcher {
    plane: Arc<DataPlane>,
    metrics: Arc<Metrics>,
    alerts: AlertLog,
    webhooks: Mutex<Dispatcher>,
    state: Mutex<State>,
    raised: broadcast::Sender<Alert>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Watcher {
    /// Starts watching a data plane: the tick task and one delivery task per webhook
    /// (needs a Tokio runtime). The task ends when the watcher is dropped.
    pub fn start(plane: Arc<DataPlane>, webhooks: &[Webhook]) -> (Arc<Self>, Vec<WebhookError>) {
        let metrics = Arc::new(Metrics::new(&plane));
        let (dispatcher, errors) = Dispatcher::start(webhooks, metrics.clone());
        let events = plane.subscribe();
        let watcher = Arc::new(Self {
            plane,
            metrics,
            alerts: AlertLog::default(),
            webhooks: Mutex::new(dispatcher),
            state: Mutex::new(State::default()),
            raised: broadcast::channel(ALERT_BUFFER).0,
        });
        tokio::spawn(run(Arc::downgrade(&watcher), events));
        (watcher, errors)
    }

    /// The metrics registry (the controller counts applies, rollbacks and rejections on it).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The recent alerts.
    pub fn alerts(&self) -> &AlertLog {
        &self.alerts
    }

    /// Every alert raised from now on (the control plane persists them as store events).
    /// A subscriber that falls more than [`ALERT_BUFFER`] alerts behind loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<Alert> {
        self.raised.subscribe()
    }

    /// Raises an alert found outside the detectors (an ACME certificate that keeps
    /// failing to renew) against the active generation: logged, counted, sent to the
    /// webhooks and persisted like a detector's, but no watch acts on it.
    pub fn raise_external(&self, alarm: crate::detectors::Alarm) -> Alert {
        let generation = self.plane.active().map_or(0, |active| active.primary.id);
        let alert = self
            .alerts
            .raise(alarm, generation, None, Phase::Continuous, None);
        self.publish(vec![alert.clone()]);
        alert
    }

    /// Raises a standing condition (a fleet node out of step) once while it lasts: like
    /// [`Watcher::raise_external`], unless an alert of the same detector and subject is
    /// still standing (then `None`). [`Watcher::clear_condition`] ends it.
    pub fn raise_condition(&self, alarm: crate::detectors::Alarm) -> Option<Alert> {
        if self
            .alerts
            .standing(alarm.detector, &alarm.subject)
            .is_some()
        {
            return None;
        }
        Some(self.raise_external(alarm))
    }

    /// Ends a standing condition: its alert stays in the log, stamped `cleared`, and is no
    /// longer open (`GET /status`). Returns whether one was standing.
    pub fn clear_condition(&self, detector: crate::detectors::Detector, subject: &str) -> bool {
        self.alerts.clear(detector, subject) > 0
    }

    /// The data plane watched.
    pub fn plane(&self) -> &Arc<DataPlane> {
        &self.plane
    }

    /// The body of `GET /metrics` (content type [`crate::METRICS_CONTENT_TYPE`]).
    pub fn metrics_text(&self) -> String {
        self.metrics.encode()
    }

    /// The body of `GET /alerts`: `{"alerts": [...]}`, newest first.
    pub fn alerts_json(&self, limit: usize) -> serde_json::Value {
        self.alerts.to_json(limit)
    }

    /// Replaces the webhooks (after an apply changed `[alerts]`); alerts queued for the
    /// old hooks are still delivered.
    pub fn set_webhooks(&self, webhooks: &[Webhook]) -> Vec<WebhookError> {
        let (dispatcher, errors) = Dispatcher::start(webhooks, self.metrics.clone());
        *self.webhooks.lock().unwrap_or_else(|p| p.into_inner()) = dispatcher;
        errors
    }

    /// Tells the watcher which change produced a generation, so background alerts on
    /// it name the change (watch_apply does this itself).
    pub fn note_change(&self, generation: u64, change: &str) {
        self.state().changes.insert(generation, change.to_string());
    }

    /// Watches a candidate against its baseline until a detector fires or the watch
    /// time ends. Call it right after the swap (or after starting the canary).
    pub async fn watch_apply(&self, request: WatchRequest) -> WatchVerdict {
        // A change never chooses its own judge: it is watched when either config
        // enables the detectors, with the stricter thresholds of the two.
        if !request.candidate.config.detectors.enabled && !request.baseline.config.detectors.enabled
        {
            tracing::warn!(
                generation = request.candidate.id,
                "detectors disabled: apply not watched"
            );
            return WatchVerdict::Disabled;
        }
        let started = Instant::now();
        let (tx, rx) = oneshot::channel();
        let duration = request.duration;
        let id = {
            let mut state = self.state();
            state.next_watch += 1;
            let id = state.next_watch;
            state
                .changes
                .insert(request.candidate.id, request.change.clone());
            state.ensure_series(&request.baseline, started, &self.metrics);
            state.ensure_series(&request.candidate, started, &self.metrics);
            state.watches.push(ApplyWatch {
                id,
                request,
                done: Some(tx),
            });
            id
        };
        let _unregister = Unregister { watcher: self, id };
        // No evidence is not good evidence: past the clock, the watch goes on (at most
        // as long again) while a route that had traffic before has not yet seen
        // `min_requests` under the candidate.
        let clock = started + duration;
        let limit = clock + duration;
        let mut rx = rx;
        loop {
            let until = if Instant::now() < clock {
                clock
            } else {
                (Instant::now() + EVIDENCE_POLL).min(limit)
            };
            match tokio::time::timeout_at(until, &mut rx).await {
                Ok(Ok(alert)) => {
                    return WatchVerdict::Alarm {
                        alert: Box::new(alert),
                        after: started.elapsed(),
                    };
                }
                Ok(Err(_)) => return WatchVerdict::Clean,
                Err(_) => {}
            }
            let now = Instant::now();
            if now < clock {
                continue;
            }
            let waiting = self.awaits_evidence(id);
            if waiting.is_empty() {
                return WatchVerdict::Clean;
            }
            if now >= limit {
                return WatchVerdict::Unproven { waiting };
            }
        }
    }

    /// Requests in the window the watcher holds for `generation`: its live window, or
    /// the frozen last window it served (0 without a series). A watch that compares a
    /// change with it judges on these.
    pub fn observed_requests(&self, generation: &Arc<Generation>) -> u64 {
        self.state()
            .series_of(generation)
            .map_or(0, |s| crate::window::requests(&s.window().total()))
    }

    /// What the newest watch of generation `candidate` still waits for: the routes that
    /// carried `min_requests` in the baseline window and have not yet under the candidate
    /// (empty when no watch of it runs).
    pub fn awaiting_evidence(&self, candidate: u64) -> Vec<EvidenceWait> {
        let id = self
            .state()
            .watches
            .iter()
            .rev()
            .find(|w| w.request.candidate.id == candidate)
            .map(|w| w.id);
        id.map_or_else(Vec::new, |id| self.awaits_evidence(id))
    }

    /// Routes of a watched candidate that carried `min_requests` in the baseline window
    /// and have not yet in the candidate's.
    fn awaits_evidence(&self, id: u64) -> Vec<EvidenceWait> {
        let state = self.state();
        let Some(watch) = state.watches.iter().find(|w| w.id == id) else {
            return Vec::new();
        };
        let (Some(baseline), Some(candidate)) = (
            state.series_of(&watch.request.baseline),
            state.series_of(&watch.request.candidate),
        ) else {
            return Vec::new();
        };
        let min = u64::from(
            watch
                .request
                .baseline
                .config
                .detectors
                .min_requests
                .min(watch.request.candidate.config.detectors.min_requests),
        )
        .max(1);
        let (before, now) = (baseline.window(), candidate.window());
        candidate
            .shape
            .routes
            .iter()
            .enumerate()
            .filter(|(r, route)| {
                let had = baseline
                    .shape
                    .route_id(&route.name)
                    .is_some_and(|b| crate::window::requests(&before.route(b)) >= min);
                had && crate::window::requests(&now.route(*r)) < min
            })
            .map(|(r, route)| EvidenceWait {
                route: route.name.to_string(),
                requests: crate::window::requests(&now.route(r)),
                needed: min,
                certificates: Vec::new(),
            })
            .chain(handshake_evidence::handshake_waits(
                &watch.request.baseline,
                &watch.request.candidate,
                &before.handshakes(),
                &now.handshakes(),
            ))
            .collect()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts and sends alerts (outside the state lock).
    fn publish(&self, raised: Vec<Alert>) {
        if raised.is_empty() {
            return;
        }
        let webhooks = self.webhooks.lock().unwrap_or_else(|p| p.into_inner());
        for alert in &raised {
            self.metrics.record_alert(alert);
            webhooks.send(alert);
            // No subscriber is fine: the alert log and the webhooks have it.
            let _ = self.raised.send(alert.clone());
        }
    }
}
/// Removes an apply watch when `watch_apply` returns or is cancelled.
struct Unregister<'a> {
    watcher: &'a Watcher,
    id: u64,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.watcher.state().watches.retain(|w| w.id != self.id);
    }
}

async fn run(watcher: Weak<Watcher>, mut events: broadcast::Receiver<ProxyEvent>) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let Some(watcher) = watcher.upgrade() else { return };
                watcher.tick();
            }
            event = events.recv() => {
                let Some(watcher) = watcher.upgrade() else { return };
                match event {
                    Ok(event) => watcher.on_event(&event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "watcher fell behind on data-plane events");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}
