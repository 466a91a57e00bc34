//! What the live view shows, sampled into plain values: the shoppers' side (requests/s,
//! success rate, who answered), Keel's side (the generation serving, backend states) and
//! the notable events of the store (applies, refusals, alerts, rollbacks).
//!
//! [`Sampler`] reads the load's counters, the data plane and the store; the views only
//! render a [`Dashboard`], so they can be tested on a made-up one.

use std::time::Duration;

use keel_control::Controller;
use keel_store::{EventQuery, EventRecord, kind};

use crate::load::{AffectedShare, Answerer, LoadStats};

/// Seconds of history the sparklines show (60 seconds).
pub const HISTORY_SECONDS: usize = 60;
/// Notable events kept for the view (50 events).
const EVENTS_KEPT: usize = 50;
/// How far back each read of the store looks before the newest event seen (10 seconds):
/// alerts are stamped with the time they fired, a moment before they are stored, so
/// store order and time order can differ.
const EVENTS_OVERLAP_MS: i64 = 10_000;
/// Event kinds the view lists: changes, verdicts and alarms (health flips are shown as
/// backend states instead).
const NOTABLE: [&str; 9] = [
    kind::APPLY,
    kind::REJECT,
    kind::ROLLBACK,
    kind::ALERT,
    kind::IDENTITY,
    kind::KNOWN_GOOD,
    kind::PROMOTE,
    kind::ACTIVATE,
    kind::CANARY_STEP,
];

/// One backend as the view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendView {
    /// Its address.
    pub addr: String,
    /// `unknown`, `healthy`, `unhealthy`, `misidentified` or `ejected`.
    pub state: String,
}

/// One pool of the generation serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolView {
    /// The pool's name.
    pub name: String,
    /// Its backends.
    pub backends: Vec<BackendView>,
}

/// A notable store event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventView {
    /// Arrival order in the view, from 1: what the plain view has printed is below it.
    pub seq: u64,
    /// The store's event id.
    pub id: u64,
    /// Seconds since the load started (0 for events before it).
    pub at_secs: f64,
    /// The event kind.
    pub kind: String,
    /// Its one-line summary.
    pub summary: String,
}

/// Everything the live view shows, at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dashboard {
    /// Time since the load started.
    pub elapsed: Duration,
    /// What the game day is doing (`warm-up`, `scene 2: forced past the gate`, …).
    pub phase: String,
    /// Requests sent in the last complete second.
    pub requests_per_sec: u64,
    /// Share of ok answers in the last complete second.
    pub success_rate: Option<f64>,
    /// Share of answers per answering application in the last complete second, for
    /// every application that answered (`(none)`: Keel itself, refusing).
    pub answered: Vec<(String, f64)>,
    /// Affected shoppers over the last 10 seconds.
    pub affected_recent: AffectedShare,
    /// The generation the data plane serves.
    pub generation: Option<u64>,
    /// The generation's pools and their backends.
    pub pools: Vec<PoolView>,
    /// Notable events, oldest first.
    pub events: Vec<EventView>,
    /// Success rate (percent) of each of the last [`HISTORY_SECONDS`] complete seconds.
    pub success_history: Vec<u64>,
    /// Requests sent in each of the last [`HISTORY_SECONDS`] complete seconds.
    pub rate_history: Vec<u64>,
}

impl Dashboard {
    /// Backends getting traffic (healthy or not yet probed), and all backends.
    pub fn serving(&self) -> (usize, usize) {
        let all = self.pools.iter().flat_map(|p| &p.backends);
        let total = all.clone().count();
        let serving = all
            .filter(|b| matches!(b.state.as_str(), "healthy" | "unknown"))
            .count();
        (serving, total)
    }
}

/// Samples a [`Dashboard`] from the load, the controller and the store.
#[derive(Debug)]
pub struct Sampler {
    controller: Controller,
    stats: std::sync::Arc<LoadStats>,
    /// The load's start, in ms since the Unix epoch (events are placed relative to it).
    load_started_ms: i64,
    /// Events are read from this time on.
    since_ms: i64,
    events: Vec<EventView>,
    /// Generations whose first identity mismatch is already listed: one per generation
    /// says it all, the data plane reports one per backend per second.
    identity_listed: Vec<u64>,
    /// Every event id read so far (a demo run stores a few hundred events at most).
    read: std::collections::HashSet<u64>,
}

impl Sampler {
    /// A sampler; events older than `since_ms` are not shown.
    pub fn new(
        controller: Controller,
        stats: std::sync::Arc<LoadStats>,
        load_started_ms: i64,
        since_ms: i64,
    ) -> Sampler {
        Sampler {
            controller,
            stats,
            load_started_ms,
            since_ms,
            events: Vec::new(),
            identity_listed: Vec::new(),
            read: std::collections::HashSet::new(),
        }
    }

    /// Reads new notable events from the store (a blocking SQLite read on its own thread).
    pub async fn refresh_events(&mut self) {
        let query = EventQuery {
            since_ms: Some(self.since_ms),
            kinds: NOTABLE.iter().map(|k| (*k).to_owned()).collect(),
            ..EventQuery::default()
        };
        let Ok(records) = self.controller.with_store(move |s| s.events(query)).await else {
            // A failed read only delays the list: the next refresh tries again.
            return;
        };
        for record in records {
            if !self.read.insert(record.id) {
                continue;
            }
            self.since_ms = self
                .since_ms
                .max(record.time_ms.saturating_sub(EVENTS_OVERLAP_MS));
            if record.kind == kind::IDENTITY {
                let generation = record.generation.unwrap_or(0);
                if self.identity_listed.contains(&generation) {
                    continue;
                }
                self.identity_listed.push(generation);
            }
            self.events.push(self.view_of(record));
        }
        let excess = self.events.len().saturating_sub(EVENTS_KEPT);
        self.events.drain(..excess);
    }

    fn view_of(&self, record: EventRecord) -> EventView {
        EventView {
            seq: self.read.len() as u64,
            id: record.id,
            at_secs: (record.time_ms - self.load_started_ms).max(0) as f64 / 1000.0,
            kind: record.kind,
            summary: record.summary,
        }
    }

    /// The dashboard now, with the events read by the last [`refresh_events`](Self::refresh_events).
    pub fn sample(&self, phase: &str) -> Dashboard {
        let snapshot = self.stats.snapshot();
        let answered_total = snapshot.last_second.answered;
        let answered = answered_total
            .nonzero()
            .map(|(answerer, _)| {
                let name = match answerer {
                    Answerer::Unidentified => "keel (refused)".to_owned(),
                    other => other.name().to_owned(),
                };
                (name, answered_total.share(answerer))
            })
            .collect();
        let status = self.controller.status();
        let pools = status
            .health
            .pools
            .into_iter()
            .map(|pool| PoolView {
                name: pool.name,
                backends: pool
                    .backends
                    .into_iter()
                    .map(|b| BackendView {
                        addr: b.addr,
                        state: b.state,
                    })
                    .collect(),
            })
            .collect();
        let seconds = self.stats.seconds();
        // The current second is still filling: history ends at the last complete one.
        let complete = &seconds[..seconds.len().saturating_sub(1)];
        let recent = &complete[complete.len().saturating_sub(HISTORY_SECONDS)..];
        Dashboard {
            elapsed: snapshot.elapsed,
            phase: phase.to_owned(),
            requests_per_sec: snapshot.requests_per_sec,
            success_rate: snapshot.success_rate,
            answered,
            affected_recent: snapshot.affected_recent,
            generation: self.controller.plane().active().map(|a| a.primary.id),
            pools,
            events: self.events.clone(),
            success_history: recent
                .iter()
                .map(|s| {
                    s.outcomes
                        .success_rate()
                        .map_or(100, |r| (r * 100.0).round() as u64)
                })
                .collect(),
            rate_history: recent.iter().map(|s| s.sent).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use keel_control::{Controller, Hooks};
    use keel_proxy::{DataPlane, DataPlaneOptions};
    use keel_store::{MemoryStore, NewEvent, Store};

    use super::*;

    fn sampler() -> (Sampler, Arc<dyn Store>) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let plane = DataPlane::new(DataPlaneOptions {
            sample_size: 0,
            sample_window: Duration::from_secs(1),
            access_log: None,
            generation_header: true,
        })
        .expect("data plane");
        let controller = Controller::new(store.clone(), plane, Hooks::default());
        let stats = Arc::new(LoadStats::new(Instant::now(), 4));
        (Sampler::new(controller, stats, 1_000, 0), store)
    }

    #[tokio::test]
    async fn events_stored_out_of_time_order_are_listed_once_each() {
        let (mut sampler, store) = sampler();
        let append = |event: NewEvent| store.append_event(event).expect("append");
        append(NewEvent::new(kind::APPLY, "generation 3 applied").at(5_000));
        append(NewEvent::new(kind::ROLLBACK, "rolled back from 3 to 1").at(5_100));
        sampler.refresh_events().await;
        // The alert fired before the rollback but reached the store after it.
        append(NewEvent::new(kind::ALERT, "identity alert on generation 3").at(5_050));
        append(NewEvent::new(kind::HEALTH, "a health flip").at(5_060));
        sampler.refresh_events().await;
        sampler.refresh_events().await;
        let listed: Vec<(&str, u64)> = sampler
            .events
            .iter()
            .map(|e| (e.kind.as_str(), e.seq))
            .collect();
        assert_eq!(
            listed,
            vec![(kind::APPLY, 1), (kind::ROLLBACK, 2), (kind::ALERT, 3)]
        );
        assert_eq!(sampler.events[0].at_secs, 4.0);
    }

    #[tokio::test]
    async fn identity_mismatches_are_listed_once() {
        let (mut sampler, store) = sampler();
        for n in 0..5 {
            store
                .append_event(NewEvent::new(kind::IDENTITY, format!("mismatch {n}")).at(2_000 + n))
                .expect("append");
        }
        sampler.refresh_events().await;
        assert_eq!(sampler.events.len(), 1);
        assert_eq!(sampler.events[0].summary, "mismatch 0");
    }
}
