//! `Incident`: the first alert of a timeline, the changes that preceded it (root-cause
//! candidates), the rollback that ended it, and how long each step took, next to the March-15
//! incident's numbers.
//!
//! * A **signal** is an `alert` event that is not a resolution (`details.state` or
//!   `details.status` of `resolved`/`cleared`, or `details.resolved = true`), or an `identity`
//!   event (a backend answered as another application). Health flips are listed in the timeline
//!   but do not open an incident: backends go down for their own reasons.
//! * A **change** is an `apply` (live or canary), `promote`, `activate`, `canary-step` or
//!   `rollback` event.
//! * The first **root-cause candidate** is the last change before the first signal that made the
//!   signal's generation serve (when the signal names one), else simply the last change before
//!   it. Up to [`MAX_CANDIDATES`] earlier changes follow, newest first.
//! * **Detection** is candidate → first signal; **recovery** is candidate → the first rollback
//!   after the signal that moved away from the candidate's generation (any rollback after the
//!   signal if none names it).
//! * **Requests served** is the largest `requests_served` or `requests` number in the details of
//!   events about the suspect generation; the **largest share** is the largest `share`,
//!   `observed_share`, `misrouted_share` or `moved_share` (0..=1) in the signals' details. Both
//!   are `None` when no event recorded them.
//! * **Traffic affected** is measured where the data exists: the `traffic` event a rollback
//!   writes for the generation it takes out of service carries that generation's own counters
//!   (requests served, answered by the wrong application, 5xx, connect failures). Without one,
//!   the timeline falls back to the largest share a signal reported.

use keel_store::{GenerationId, kind};
use serde::Serialize;
use serde_json::Value;

use super::{ChangeInfo, TimelineEntry};

/// March 15, 2024: from the first alert (10:00) to order restored (12:00), in seconds.
pub const MARCH_15_RECOVERY_SECONDS: i64 = 7_200;
/// March 15, 2024: from the first alert (10:00) to suspicion turning to the load balancer
/// (10:20), in seconds.
pub const MARCH_15_SUSPECT_SECONDS: i64 = 1_200;
/// March 15, 2024: share of users sent to the wrong servers.
pub const MARCH_15_AFFECTED_SHARE: f64 = 0.7;
/// Most root-cause candidates listed.
pub const MAX_CANDIDATES: usize = 3;

/// What went wrong first, what likely caused it, and how long it lasted.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    /// The first alert (or identity flip) in the window.
    pub first_signal: IncidentSignal,
    /// Changes before the first signal, most likely cause first.
    pub root_causes: Vec<RootCause>,
    /// The rollback that ended it, if there was one in the window.
    pub rollback: Option<IncidentSignal>,
    /// Most likely cause → first signal, in ms.
    pub detection_ms: Option<i64>,
    /// Most likely cause → rollback, in ms.
    pub recovery_ms: Option<i64>,
    /// First signal → rollback, in ms.
    pub alert_to_rollback_ms: Option<i64>,
    /// How long the suspect generation served: until the rollback, or until the end of the
    /// window when it was not rolled back.
    pub served_ms: Option<i64>,
    /// Whether the suspect generation was still serving at the end of the window.
    pub still_serving: bool,
    /// Requests the suspect generation served, if an event recorded it.
    pub requests_served: Option<u64>,
    /// The largest traffic share a signal reported as affected, if any did.
    pub largest_share: Option<f64>,
    /// The suspect generation's own counters, from the `traffic` event its rollback wrote.
    pub traffic: Option<TrafficCounted>,
    /// Alerts from the first signal to the rollback (or the end).
    pub alerts: usize,
    /// Identity flips in the same span.
    pub identity_flips: usize,
    /// Health flips in the same span.
    pub health_flips: usize,
}

/// What a generation served, from its per-generation counters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrafficCounted {
    /// Requests it served.
    pub requests: u64,
    /// Of those, answered by the wrong application, 5xx or failed to connect.
    pub wrong_or_failed: u64,
    /// Of those, answered by the wrong application.
    pub misidentified: u64,
}

impl TrafficCounted {
    /// `wrong_or_failed / requests` (0 without requests).
    pub fn share(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.wrong_or_failed as f64 / self.requests as f64
        }
    }
}

/// One event that matters to the incident.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentSignal {
    /// Its event id.
    pub event_id: u64,
    /// When, ms since the Unix epoch.
    pub time_ms: i64,
    /// When, RFC 3339.
    pub time: String,
    /// Its kind.
    pub kind: String,
    /// The generation it names.
    pub generation: Option<GenerationId>,
    /// Its summary.
    pub summary: String,
}

/// A change that preceded the first signal.
#[derive(Debug, Clone, Serialize)]
pub struct RootCause {
    /// The change event.
    pub event: IncidentSignal,
    /// The generation the change made serve (or, for a rollback, moved to).
    pub generation: Option<GenerationId>,
    /// Why it is a candidate, one line.
    pub reason: String,
    /// How long before the first signal it happened, in ms.
    pub before_signal_ms: i64,
    /// The apply that created the generation, when it is in the window.
    pub change: Option<ChangeInfo>,
}

impl Incident {
    /// Finds the incident in `entries` (oldest first); `end_ms` is the end of the window.
    pub(crate) fn find(entries: &[TimelineEntry], end_ms: i64) -> Option<Incident> {
        let signal_index = entries.iter().position(is_signal)?;
        let signal = &entries[signal_index];
        let root_causes = root_causes(&entries[..signal_index], signal);
        let suspect = root_causes.first();
        let suspect_generation = suspect.and_then(|c| c.generation);
        let rollback = entries[signal_index..]
            .iter()
            .filter(|e| e.kind == kind::ROLLBACK)
            .find(|e| {
                suspect_generation.is_none()
                    || e.rollback.as_ref().and_then(|r| r.from) == suspect_generation
            })
            .or_else(|| {
                entries[signal_index..]
                    .iter()
                    .find(|e| e.kind == kind::ROLLBACK)
            });
        let change_ms = suspect.map(|c| c.event.time_ms);
        let span_end = rollback.map_or(end_ms, |r| r.time_ms);
        let in_span = || {
            entries[signal_index..]
                .iter()
                .filter(move |e| e.time_ms <= span_end)
        };
        Some(Incident {
            first_signal: signal_of(signal),
            detection_ms: change_ms.map(|c| signal.time_ms - c),
            recovery_ms: change_ms.zip(rollback).map(|(c, r)| r.time_ms - c),
            alert_to_rollback_ms: rollback.map(|r| r.time_ms - signal.time_ms),
            served_ms: change_ms.map(|c| span_end - c),
            still_serving: rollback.is_none() && suspect_generation.is_some(),
            requests_served: suspect_generation.and_then(|g| requests_served(entries, g)),
            largest_share: in_span()
                .filter(|e| is_signal(e))
                .filter_map(|e| share(&e.details))
                .max_by(f64::total_cmp),
            traffic: suspect_generation.and_then(|g| traffic(&entries[signal_index..], g)),
            alerts: in_span().filter(|e| e.kind == kind::ALERT).count(),
            identity_flips: in_span().filter(|e| e.kind == kind::IDENTITY).count(),
            health_flips: in_span().filter(|e| e.kind == kind::HEALTH).count(),
            rollback: rollback.map(signal_of),
            root_causes,
        })
    }

    /// The generation most likely at fault.
    pub fn suspect(&self) -> Option<GenerationId> {
        self.root_causes.first().and_then(|c| c.generation)
    }
}

fn is_signal(entry: &TimelineEntry) -> bool {
    match entry.kind.as_str() {
        kind::IDENTITY => true,
        kind::ALERT => !is_resolution(&entry.details),
        _ => false,
    }
}

fn is_resolution(details: &Value) -> bool {
    let word = |key: &str| details.get(key).and_then(Value::as_str);
    let resolved_word = |w: Option<&str>| {
        w.is_some_and(|w| {
            ["resolved", "cleared", "ok"]
                .iter()
                .any(|r| w.eq_ignore_ascii_case(r))
        })
    };
    resolved_word(word("state"))
        || resolved_word(word("status"))
        || details.get("resolved").and_then(Value::as_bool) == Some(true)
}

fn is_change(entry: &TimelineEntry) -> bool {
    matches!(
        entry.kind.as_str(),
        kind::APPLY | kind::PROMOTE | kind::ACTIVATE | kind::CANARY_STEP | kind::ROLLBACK
    )
}

fn root_causes(before: &[TimelineEntry], signal: &TimelineEntry) -> Vec<RootCause> {
    let changes: Vec<&TimelineEntry> = before.iter().rev().filter(|e| is_change(e)).collect();
    let named = signal
        .generation
        .and_then(|g| changes.iter().position(|e| e.generation == Some(g)));
    let mut order: Vec<(usize, String)> = Vec::new();
    match named {
        Some(index) => order.push((
            index,
            format!(
                "the last change before the first alert to make generation {} serve, and the alert names it",
                signal.generation.unwrap_or_default()
            ),
        )),
        None if !changes.is_empty() => {
            order.push((0, "the last change before the first alert".to_owned()));
        }
        None => {}
    }
    for index in 0..changes.len() {
        if order.len() >= MAX_CANDIDATES {
            break;
        }
        if !order.iter().any(|(i, _)| *i == index) {
            order.push((index, "an earlier change before the first alert".to_owned()));
        }
    }
    order
        .into_iter()
        .map(|(index, reason)| {
            let entry = changes[index];
            RootCause {
                event: signal_of(entry),
                generation: entry.generation,
                reason,
                before_signal_ms: signal.time_ms - entry.time_ms,
                change: apply_of(before, entry),
            }
        })
        .collect()
}

/// The apply that created the generation `entry` made serve, if it is in the window.
fn apply_of(entries: &[TimelineEntry], entry: &TimelineEntry) -> Option<ChangeInfo> {
    if let Some(change) = &entry.change {
        return Some(change.clone());
    }
    if entry.kind == kind::ROLLBACK {
        return None;
    }
    let generation = entry.generation?;
    entries
        .iter()
        .find(|e| e.kind == kind::APPLY && e.generation == Some(generation))
        .and_then(|e| e.change.clone())
}

fn requests_served(entries: &[TimelineEntry], generation: GenerationId) -> Option<u64> {
    entries
        .iter()
        .filter(|e| {
            e.generation == Some(generation)
                || e.rollback.as_ref().and_then(|r| r.from) == Some(generation)
        })
        .filter_map(|e| {
            ["requests_served", "requests"]
                .iter()
                .find_map(|key| e.details.get(*key).and_then(Value::as_u64))
        })
        .max()
}

fn traffic(entries: &[TimelineEntry], generation: GenerationId) -> Option<TrafficCounted> {
    let event = entries
        .iter()
        .find(|e| e.kind == kind::TRAFFIC && e.generation == Some(generation))?;
    let number = |key: &str| event.details.get(key).and_then(Value::as_u64);
    Some(TrafficCounted {
        requests: number("requests_served")?,
        wrong_or_failed: number("wrong_or_failed")?,
        misidentified: number("misidentified").unwrap_or(0),
    })
}

fn share(details: &Value) -> Option<f64> {
    ["share", "observed_share", "misrouted_share", "moved_share"]
        .iter()
        .find_map(|key| details.get(*key).and_then(Value::as_f64))
        .filter(|share| (0.0..=1.0).contains(share))
}

fn signal_of(entry: &TimelineEntry) -> IncidentSignal {
    IncidentSignal {
        event_id: entry.event_id,
        time_ms: entry.time_ms,
        time: entry.time.clone(),
        kind: entry.kind.clone(),
        generation: entry.generation,
        summary: entry.summary.clone(),
    }
}
