//! The sampling round: every tick, snapshot the live generations, judge the apply
//! watches (candidate against baseline) and the background watch (the active
//! generation alone), and forget series nobody needs.

use std::sync::Arc;

use keel_proxy::Generation;
use tokio::time::Instant;

use super::{CONTINUOUS_REPEAT, MAX_CHANGES, MAX_SERIES, State, WatchMode, Watcher};
use crate::alerts::{Alert, Phase};
use crate::detectors::{Alarm, Detector};
use crate::evaluate;
use crate::window::Series;

impl Watcher {
    /// One sampling and detection round.
    pub(super) fn tick(&self) {
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
            if let Some(alarm) = evaluate::compare(
                baseline,
                candidate,
                &watch.request.baseline.config,
                &watch.request.candidate.config,
                watch.request.mode == WatchMode::Full,
            ) {
                fired.push((watch.id, alarm));
            }
        }
        for (id, alarm) in fired {
            self.conclude(state, id, alarm, raised);
        }
    }

    /// Raises the alert of an apply watch and resolves it.
    pub(super) fn conclude(
        &self,
        state: &mut State,
        id: u64,
        alarm: Alarm,
        raised: &mut Vec<Alert>,
    ) {
        let Some(watch) = state.watches.iter_mut().find(|w| w.id == id) else {
            return;
        };
        let Some(done) = watch.done.take() else {
            return;
        };
        let phase = match watch.request.mode {
            WatchMode::Canary { permille } => Phase::Canary { permille },
            WatchMode::Full | WatchMode::Promotion => Phase::AfterSwap,
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

    pub(super) fn raise_background(
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
