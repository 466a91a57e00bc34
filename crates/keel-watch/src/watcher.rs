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
//! the watch time ends. Alerts of the background watch repeat at most once per
//! [`CONTINUOUS_REPEAT`] per (detector, subject, generation).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use keel_config::Webhook;
use keel_proxy::{DataPlane, Generation, ProxyEvent};
use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

use crate::alerts::{Alert, AlertLog, Phase};
use crate::detectors::{Alarm, Detector, identity};
use crate::evaluate;
use crate::metrics::Metrics;
use crate::webhook::{Dispatcher, WebhookError};
use crate::window::{Series, TICK};

/// Series kept at most: live ones, watched ones, and the most recent frozen ones (8).
const MAX_SERIES: usize = 8;
/// Change summaries remembered, newest generations first (64 changes).
const MAX_CHANGES: usize = 64;
/// A background alert for the same detector, subject and generation repeats at most this often (5 minutes).
pub const CONTINUOUS_REPEAT: Duration = Duration::from_secs(300);
/// Alerts buffered for a slow [`Watcher::subscribe`]r before the oldest are dropped (256 alerts).
pub const ALERT_BUFFER: usize = 256;

/// How the candidate serves while it is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchMode {
    /// A canary slice of this many thousandths; the baseline serves the rest.
    Canary {
        /// Share of requests, in thousandths.
        permille: u32,
    },
    /// The candidate serves everything; the baseline is what it replaced.
    Full,
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
        /// The alert raised.
        alert: Alert,
        /// Time from the start of the watch to the alarm.
        after: Duration,
    },
    /// The candidate's config disables the detectors: nothing was watched.
    Disabled,
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
        if !request.candidate.config.detectors.enabled {
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
        match tokio::time::timeout(duration, rx).await {
            Ok(Ok(alert)) => WatchVerdict::Alarm {
                alert,
                after: started.elapsed(),
            },
            _ => WatchVerdict::Clean,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One sampling and detection round.
    fn tick(&self) {
        let now = Instant::now();
        let active = self.plane.active();
        let mut raised = Vec::new();
        {
            let mut state = self.state();
            let live: Vec<Arc<Generation>> = active
                .iter()
                .flat_map(|a| {
                    std::iter::once(a.primary.clone())
                        .chain(a.canary.iter().map(|c| c.generation.clone()))
                })
                .collect();
            for generation in &live {
                state.ensure_series(generation, now, &self.metrics);
            }
            for series in &mut state.series {
                let is_live = live.iter().any(|g| series.is_of(g));
                series.sample(is_live, now);
            }
            evict(&mut state, &live);
            self.evaluate_watches(&mut state, &mut raised);
            self.evaluate_background(&mut state, &live, now, &mut raised);
            let window = active
                .as_ref()
                .map_or(keel_config::defaults::DETECTOR_WINDOW, |a| {
                    a.primary.config.detectors.window
                });
            for detector in Detector::ALL {
                let firing = state
                    .last_fired
                    .get(&detector)
                    .is_some_and(|at| now.duration_since(*at) < window);
                self.metrics.set_firing(detector, firing);
            }
            self.metrics.set_detectors_enabled(
                active
                    .as_ref()
                    .is_some_and(|a| a.primary.config.detectors.enabled),
            );
        }
        self.publish(raised);
    }

    fn evaluate_watches(&self, state: &mut State, raised: &mut Vec<Alert>) {
        let mut fired = Vec::new();
        for watch in &state.watches {
            if watch.done.is_none() {
                continue;
            }
            let Some(candidate) = state.series_of(&watch.request.candidate) else {
                continue;
            };
            let baseline = state.series_of(&watch.request.baseline);
            if let Some(alarm) =
                evaluate::compare(baseline, candidate, &watch.request.candidate.config)
            {
                fired.push((watch.id, alarm));
            }
        }
        for (id, alarm) in fired {
            self.conclude(state, id, alarm, raised);
        }
    }

    /// Raises the alert of an apply watch and resolves it.
    fn conclude(&self, state: &mut State, id: u64, alarm: Alarm, raised: &mut Vec<Alert>) {
        let Some(watch) = state.watches.iter_mut().find(|w| w.id == id) else {
            return;
        };
        let Some(done) = watch.done.take() else {
            return;
        };
        let phase = match watch.request.mode {
            WatchMode::Canary { permille } => Phase::Canary { permille },
            WatchMode::Full => Phase::AfterSwap,
        };
        let detector = alarm.detector;
        let alert = self.alerts.raise(
            alarm,
            watch.request.candidate.id,
            Some(watch.request.baseline.id),
            phase,
            Some(watch.request.change.clone()),
        );
        tracing::warn!(alert = alert.id, "{}", alert.text());
        let _ = done.send(alert.clone());
        state.last_fired.insert(detector, Instant::now());
        raised.push(alert);
    }

    fn evaluate_background(
        &self,
        state: &mut State,
        live: &[Arc<Generation>],
        now: Instant,
        raised: &mut Vec<Alert>,
    ) {
        let mut alarms = Vec::new();
        for generation in live {
            if !generation.config.detectors.enabled
                || state
                    .watches
                    .iter()
                    .any(|w| Arc::ptr_eq(&w.request.candidate, generation))
            {
                continue;
            }
            if let Some(series) = state.series_of(generation) {
                for alarm in evaluate::continuous(series, &generation.config) {
                    alarms.push((generation.id, alarm));
                }
            }
        }
        for (generation, alarm) in alarms {
            self.raise_background(state, generation, alarm, now, raised);
        }
    }

    fn raise_background(
        &self,
        state: &mut State,
        generation: u64,
        alarm: Alarm,
        now: Instant,
        raised: &mut Vec<Alert>,
    ) {
        let key = (alarm.detector, alarm.subject.clone(), generation);
        if state
            .repeats
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < CONTINUOUS_REPEAT)
        {
            return;
        }
        state.repeats.insert(key, now);
        state.last_fired.insert(alarm.detector, now);
        let change = state.changes.get(&generation).cloned();
        let alert = self
            .alerts
            .raise(alarm, generation, None, Phase::Continuous, change);
        tracing::warn!(alert = alert.id, "{}", alert.text());
        raised.push(alert);
    }

    /// Identity events act at once: a watched candidate is concluded, the active
    /// generation gets a background alert.
    fn on_event(&self, event: &ProxyEvent) {
        let mut raised = Vec::new();
        {
            let mut state = self.state();
            let now = Instant::now();
            match event {
                ProxyEvent::IdentityMismatch { generation, .. } => {
                    let Some(alarm) = identity::from_event(event, None) else {
                        return;
                    };
                    let ProxyEvent::IdentityMismatch { route, backend, .. } = event else {
                        return;
                    };
                    // A backend that already answered wrongly under the baseline is not
                    // the candidate's doing: the background watch reports it.
                    let watch = state
                        .watches
                        .iter()
                        .find(|w| {
                            w.done.is_some()
                                && w.request.candidate.id == *generation
                                && !state.series_of(&w.request.baseline).is_some_and(|b| {
                                    evaluate::misidentified(b)
                                        .iter()
                                        .any(|m| &m.route == route && m.backend == *backend)
                                })
                        })
                        .map(|w| w.id);
                    // Late responses of a concluded watch, or of a generation that no
                    // longer serves, are not news.
                    let concluded = state
                        .watches
                        .iter()
                        .any(|w| w.request.candidate.id == *generation);
                    let live = self.plane.active().is_some_and(|a| {
                        a.primary.id == *generation
                            || a.canary
                                .as_ref()
                                .is_some_and(|c| c.generation.id == *generation)
                    });
                    match watch {
                        Some(id) => self.conclude(&mut state, id, alarm, &mut raised),
                        None if concluded || !live => {}
                        None => {
                            self.raise_background(&mut state, *generation, alarm, now, &mut raised)
                        }
                    }
                }
                ProxyEvent::BackendState { pool, backend, .. } => {
                    let seen = self
                        .find_backend(pool, *backend)
                        .and_then(|b| b.identity_seen());
                    let Some(alarm) = identity::from_event(event, seen.as_deref()) else {
                        return;
                    };
                    // Only a backend the candidate brought in is the candidate's fault.
                    let watch = state
                        .watches
                        .iter()
                        .find(|w| {
                            w.done.is_some()
                                && uses_backend(&w.request.candidate, pool, *backend)
                                && !uses_backend(&w.request.baseline, pool, *backend)
                        })
                        .map(|w| w.id);
                    match watch {
                        Some(id) => self.conclude(&mut state, id, alarm, &mut raised),
                        None => {
                            let primary = self.plane.active().map_or(0, |a| a.primary.id);
                            self.raise_background(&mut state, primary, alarm, now, &mut raised);
                        }
                    }
                }
            }
        }
        self.publish(raised);
    }

    fn find_backend(
        &self,
        pool: &str,
        addr: std::net::SocketAddr,
    ) -> Option<Arc<keel_proxy::Backend>> {
        let active = self.plane.active()?;
        std::iter::once(&active.primary)
            .chain(active.canary.iter().map(|c| &c.generation))
            .flat_map(|g| g.pools.iter())
            .filter(|p| &*p.name == pool)
            .flat_map(|p| p.backends.iter())
            .find(|b| b.addr == addr)
            .cloned()
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

/// True when a generation has a pool `pool` with backend `addr`.
fn uses_backend(generation: &Generation, pool: &str, addr: std::net::SocketAddr) -> bool {
    generation
        .pools
        .iter()
        .any(|p| &*p.name == pool && p.backends.iter().any(|b| b.addr == addr))
}

/// Drops the oldest series that are neither live nor watched, beyond [`MAX_SERIES`].
fn evict(state: &mut State, live: &[Arc<Generation>]) {
    while state.series.len() > MAX_SERIES {
        let watched = |s: &Series| {
            live.iter().any(|g| s.is_of(g))
                || state
                    .watches
                    .iter()
                    .any(|w| s.is_of(&w.request.baseline) || s.is_of(&w.request.candidate))
        };
        let oldest = state
            .series
            .iter()
            .enumerate()
            .filter(|(_, s)| !watched(s))
            .min_by_key(|(_, s)| s.last_live)
            .map(|(i, _)| i);
        match oldest {
            Some(i) => {
                state.series.remove(i);
            }
            None => break,
        }
    }
    while state.changes.len() > MAX_CHANGES {
        state.changes.pop_first();
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
