//! `Timeline`: the store's event log and generation records merged into one ordered list, the
//! raw material of a post-mortem draft.
//!
//! Every generation has its `apply` (or `reject`) event, written by the store in the same
//! transaction as the generation row, so the timeline walks the events in `(time, id)` order and
//! joins each change event with its generation record (author, message, check and blast-radius
//! reports, config text for the change summary). Health and identity flips, alerts, canary steps,
//! promotions and rollbacks are taken as the events say. [`Incident`] then finds the first alert
//! and the change that preceded it.
//!
//! The JSON form ([`Timeline::to_json`]) is schema version [`TIMELINE_SCHEMA_VERSION`]; its
//! fields are the serde names of these types, documented in `docs/timeline-and-playbook.md`.

mod incident;
mod markdown;

use std::collections::HashMap;

use keel_store::{
    EventQuery, EventRecord, GenerationId, GenerationRecord, Store, kind, now_ms, rfc3339,
};
use serde::Serialize;
use serde_json::Value;

pub use incident::{
    Incident, IncidentSignal, MARCH_15_AFFECTED_SHARE, MARCH_15_RECOVERY_SECONDS,
    MARCH_15_SUSPECT_SECONDS, MAX_CANDIDATES, RootCause, TrafficCounted,
};

use crate::ReportError;
use crate::certificates::{CertificateChange, CertificateSource, certificate_changes};
use crate::changes::{
    ChangeSummary, ParsedConfigs, Previous, check_summary, impact_summary, summarize,
};

/// Version of the timeline's JSON form; renaming or removing a field bumps it.
pub const TIMELINE_SCHEMA_VERSION: u32 = 1;

/// An ordered timeline of what happened to the load balancer's config and traffic.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// Always [`TIMELINE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Start of the window (inclusive), RFC 3339; `None` for "from the beginning".
    pub since: Option<String>,
    /// End of the window (exclusive), RFC 3339; `None` for "until now".
    pub until: Option<String>,
    /// When this timeline was built, RFC 3339.
    pub generated_at: String,
    /// Every event in the window, oldest first.
    pub entries: Vec<TimelineEntry>,
    /// The first alert in the window and what preceded it; `None` when nothing alerted.
    pub incident: Option<Incident>,
    /// Alerts still open at the end of the window: about the generation the store says
    /// is active, raised since it last became active (only for a window ending now).
    pub open_alerts: Vec<OpenAlert>,
}

/// An alert about the generation that serves now.
#[derive(Debug, Clone, Serialize)]
pub struct OpenAlert {
    /// When it was raised, RFC 3339.
    pub time: String,
    /// The generation it blames.
    pub generation: GenerationId,
    /// Its summary.
    pub summary: String,
}

/// One line of the timeline: a stored event, joined with its generation when it is a change.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    /// When it happened, ms since the Unix epoch.
    pub time_ms: i64,
    /// When it happened, RFC 3339 UTC.
    pub time: String,
    /// The store's event id.
    pub event_id: u64,
    /// The event kind (`apply`, `reject`, `rollback`, `alert`, `identity`, ...).
    pub kind: String,
    /// The generation it concerns (for a rollback: the one serving afterwards).
    pub generation: Option<GenerationId>,
    /// The event's one-line summary.
    pub summary: String,
    /// The fleet node that wrote it (`details.node`, fleet mode: docs/fleet.md); `None` on a
    /// single node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// For `apply` and `reject`: who, why, what changed, and the check and blast-radius results.
    pub change: Option<ChangeInfo>,
    /// For `rollback`: from which generation to which, how and why.
    pub rollback: Option<RollbackInfo>,
    /// The event's structured details, as stored.
    pub details: Value,
}

/// What an apply or rejection changed, and what the checks said about it.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeInfo {
    /// Who applied it.
    pub author: String,
    /// Why, in their words.
    pub message: String,
    /// What triggered it (`cli`, `sighup`, `startup`, ...).
    pub origin: String,
    /// Whether a failing check or gate was overridden.
    pub forced: bool,
    /// For applies: whether it went live at once (`false`: a pending canary).
    pub activated: Option<bool>,
    /// The generation serving when it was applied, if known.
    pub previous_active: Option<GenerationId>,
    /// What changed.
    pub diff: ChangeSummary,
    /// The `keel check` result, one line.
    pub check: String,
    /// The blast-radius result, one line.
    pub impact: String,
    /// The generation's lifecycle state now (`active`, `rolled-back`, ...).
    pub state_now: Option<String>,
    /// Certificates it added, replaced or removed, against the generation serving before
    /// (by pinned digest; empty when that generation is not known).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateChange>,
}

/// A rollback's endpoints and reason.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackInfo {
    /// The generation taken out of service.
    pub from: Option<GenerationId>,
    /// The generation serving afterwards.
    pub to: Option<GenerationId>,
    /// Who or what rolled back (`cli`, the guard, ...).
    pub origin: String,
    /// Why.
    pub reason: String,
}

impl Timeline {
    /// Builds the timeline of the events in `[since_ms, until_ms)` (either end open when `None`).
    pub fn build(
        store: &dyn Store,
        since_ms: Option<i64>,
        until_ms: Option<i64>,
    ) -> Result<Timeline, ReportError> {
        Self::build_with(store, since_ms, until_ms, None)
    }

    /// [`Timeline::build`], with the leaves of changed certificates read from `source`
    /// (the pinned copies in the state directory); without one, digests only.
    pub fn build_with(
        store: &dyn Store,
        since_ms: Option<i64>,
        until_ms: Option<i64>,
        source: Option<&dyn CertificateSource>,
    ) -> Result<Timeline, ReportError> {
        if let (Some(since), Some(until)) = (since_ms, until_ms)
            && since >= until
        {
            return Err(ReportError::EmptyRange {
                since: rfc3339(since),
                until: rfc3339(until),
            });
        }
        let events = store.events(EventQuery {
            since_ms,
            until_ms,
            ..EventQuery::default()
        })?;
        let mut records: HashMap<GenerationId, Option<GenerationRecord>> = HashMap::new();
        let mut parsed = ParsedConfigs::default();
        let mut serving: Option<GenerationId> = None;
        let mut entries = Vec::with_capacity(events.len());
        for event in events {
            let change = match event.kind.as_str() {
                kind::APPLY | kind::REJECT => {
                    change_info(store, &mut records, &mut parsed, &event, serving, source)?
                }
                _ => None,
            };
            let rollback = (event.kind == kind::ROLLBACK).then(|| rollback_info(&event.details));
            serving = next_serving(serving, &event, change.as_ref(), rollback.as_ref());
            entries.push(TimelineEntry {
                time_ms: event.time_ms,
                time: event.time_rfc3339(),
                event_id: event.id,
                kind: event.kind,
                generation: event.generation,
                summary: event.summary,
                node: node_of(&event.details),
                change,
                rollback,
                details: event.details,
            });
        }
        let generated_at_ms = now_ms();
        let incident = Incident::find(&entries, until_ms.unwrap_or(generated_at_ms));
        let open_alerts = match (until_ms, store.active()?) {
            (None, Some(active)) => {
                let since = active.activated_at_ms.unwrap_or(i64::MIN);
                entries
                    .iter()
                    .rev()
                    .filter(|e| {
                        e.kind == kind::ALERT
                            && e.generation == Some(active.id)
                            && e.time_ms >= since
                    })
                    .map(|e| OpenAlert {
                        time: e.time.clone(),
                        generation: active.id,
                        summary: e.summary.clone(),
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        Ok(Timeline {
            schema_version: TIMELINE_SCHEMA_VERSION,
            since: since_ms.map(rfc3339),
            until: until_ms.map(rfc3339),
            generated_at: rfc3339(generated_at_ms),
            entries,
            incident,
            open_alerts,
        })
    }

    /// The JSON form (schema version [`TIMELINE_SCHEMA_VERSION`]).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The Markdown post-mortem draft.
    pub fn render_markdown(&self) -> String {
        markdown::render(self)
    }
}

fn change_info(
    store: &dyn Store,
    records: &mut HashMap<GenerationId, Option<GenerationRecord>>,
    parsed: &mut ParsedConfigs,
    event: &EventRecord,
    serving: Option<GenerationId>,
    source: Option<&dyn CertificateSource>,
) -> Result<Option<ChangeInfo>, ReportError> {
    let Some(id) = event.generation else {
        return Ok(None);
    };
    if let std::collections::hash_map::Entry::Vacant(slot) = records.entry(id) {
        slot.insert(store.generation(id)?);
    }
    let Some(Some(record)) = records.get(&id) else {
        return Ok(None);
    };
    let details = &event.details;
    // A rejection does not record what was serving; the timeline knows it if the window saw it.
    let previous = match (event.kind.as_str(), Previous::from_details(details)) {
        (kind::REJECT, Previous::Unknown) => serving.map_or(Previous::Unknown, Previous::Known),
        (_, previous) => previous,
    };
    let certificates = match previous {
        Previous::Nothing => certificate_changes(None, &record.certificates, source),
        Previous::Known(before) => match store.generation(before)? {
            Some(before) => {
                certificate_changes(Some(&before.certificates), &record.certificates, source)
            }
            None => Vec::new(),
        },
        Previous::Unknown => Vec::new(),
    };
    Ok(Some(ChangeInfo {
        certificates,
        author: record.author.clone(),
        message: record.message.clone(),
        origin: record.origin.clone(),
        forced: record.forced,
        activated: details.get("activated").and_then(Value::as_bool),
        previous_active: details.get("previous_active").and_then(Value::as_u64),
        diff: summarize(store, parsed, record, details, previous),
        check: check_summary(&record.check_report),
        impact: impact_summary(record.impact_report.as_ref()),
        state_now: Some(record.state.as_str().to_owned()),
    }))
}

fn rollback_info(details: &Value) -> RollbackInfo {
    let text = |key: &str| {
        details
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    RollbackInfo {
        from: details.get("from").and_then(Value::as_u64),
        to: details.get("to").and_then(Value::as_u64),
        origin: text("origin"),
        reason: text("reason"),
    }
}

/// The generation serving after `event`, as far as the events show.
fn next_serving(
    serving: Option<GenerationId>,
    event: &EventRecord,
    change: Option<&ChangeInfo>,
    rollback: Option<&RollbackInfo>,
) -> Option<GenerationId> {
    match event.kind.as_str() {
        kind::APPLY if change.and_then(|c| c.activated) == Some(true) => event.generation,
        kind::PROMOTE | kind::ACTIVATE => event.generation.or(serving),
        kind::ROLLBACK => rollback.and_then(|r| r.to).or(serving),
        _ => serving,
    }
}

/// The fleet node named in an event's details (`"node"`), if any.
pub(crate) fn node_of(details: &Value) -> Option<String> {
    details
        .get("node")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}
