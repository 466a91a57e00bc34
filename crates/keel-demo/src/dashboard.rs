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
    /// The newest event id read.
    last_read: u64,
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
            last_read: 0,
        }
    }

    /// Reads new notable events from the store (a blocking SQLite read on its own thread).
    pub async fn refresh_events(&mut self) {
        let since_ms = self.since_ms;
        let query = EventQuery {
            since_ms: Some(since_ms),
            kinds: NOTABLE.iter().map(|k| (*k).to_owned()).collect(),
            ..EventQuery::default()
        };
        let Ok(records) = self.controller.with_store(move |s| s.events(query)).await else {
            // A failed read only delays the list: the next refresh tries again.
            return;
        };
        let last_read = self.last_read;
        for record in records.into_iter().filter(|r| r.id > last_read) {
            self.last_read = record.id;
            self.since_ms = self.since_ms.max(record.time_ms);
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
