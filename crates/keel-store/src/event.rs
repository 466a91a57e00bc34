//! The append-only event log: what happened, when, to which generation. `keel timeline` reads it
//! to draft a post-mortem, so events are never updated or deleted once written.
//!
//! Times are wall-clock milliseconds since the Unix epoch, given by the caller (a health flip is
//! stamped when the data plane saw it, not when the control plane got round to storing it). Ids
//! are assigned by the store and strictly increase; times usually do too, but a wall clock can
//! step backwards, so queries order by `(time_ms, id)`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{GenerationId, StoreError};

/// Well-known event kinds. `kind` is an open set of lowercase kebab-case words; these are the
/// ones Keel writes.
pub mod kind {
    /// A generation was recorded by an apply (activated, or pending as a canary).
    pub const APPLY: &str = "apply";
    /// An apply was refused by `keel check` or the blast-radius gate.
    pub const REJECT: &str = "reject";
    /// Traffic moved back from a generation to an earlier one (or a canary was aborted).
    pub const ROLLBACK: &str = "rollback";
    /// A pending (canary) generation was made active.
    pub const PROMOTE: &str = "promote";
    /// A generation that had served before was made active again, without judging the old one bad.
    pub const ACTIVATE: &str = "activate";
    /// The canary share of a pending generation changed.
    pub const CANARY_STEP: &str = "canary-step";
    /// A detector fired or cleared.
    pub const ALERT: &str = "alert";
    /// A backend's health changed.
    pub const HEALTH: &str = "health";
    /// A backend answered as the wrong service.
    pub const IDENTITY: &str = "identity";
    /// A generation was marked known-good.
    pub const KNOWN_GOOD: &str = "known-good";
    /// A generation was judged bad (by the guard's alarm or an operator's `keel mark-bad`):
    /// its known-good mark, if any, is withdrawn.
    pub const MARK_BAD: &str = "mark-bad";
    /// What a generation served, from its per-generation counters, written when a rollback
    /// takes it out of service (`details`: `requests_served`, `misidentified`,
    /// `server_errors`, `connect_failures`, `wrong_or_failed`, `affected_share`).
    pub const TRAFFIC: &str = "traffic";
    /// The guard's watch of a generation ran out of its extra time without the evidence
    /// it waited for (`details`: `baseline`, `waiting_for`): the generation keeps serving
    /// but is not promoted known-good until a later watch of it has the evidence.
    pub const UNPROVEN: &str = "unproven";
    /// A later watch of an unproven generation (a rollback to it) saw the evidence it
    /// lacked and no alarm: it may become known-good again.
    pub const PROVEN: &str = "proven";
    /// The daemon started.
    pub const STARTUP: &str = "startup";
    /// The daemon stopped.
    pub const SHUTDOWN: &str = "shutdown";
}

/// Longest accepted event kind, in bytes.
pub const MAX_KIND_BYTES: usize = 64;

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Its number: strictly increasing in insertion order.
    pub id: u64,
    /// When it happened, in ms since the Unix epoch.
    pub time_ms: i64,
    /// What kind of event; see [`kind`].
    pub kind: String,
    /// The generation it concerns (for rollbacks: the generation serving afterwards).
    pub generation: Option<GenerationId>,
    /// One line for humans.
    pub summary: String,
    /// Structured details for tools (always a JSON value; `{}` when there are none).
    pub details: serde_json::Value,
}

impl EventRecord {
    /// `time_ms` as RFC 3339 in UTC with milliseconds, e.g. `2024-03-15T14:02:11.250Z`.
    pub fn time_rfc3339(&self) -> String {
        rfc3339(self.time_ms)
    }
}

/// An event to append. Build with [`NewEvent::new`] and the chaining setters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// When it happened, in ms since the Unix epoch.
    pub time_ms: i64,
    /// Lowercase kebab-case kind (`[a-z0-9-]`, at most [`MAX_KIND_BYTES`]); see [`kind`].
    pub kind: String,
    /// The generation it concerns, which must exist.
    pub generation: Option<GenerationId>,
    /// One line for humans. Line breaks are replaced by spaces when stored, so a multi-line
    /// message quoted in a summary cannot break the one-line-per-event rendering.
    pub summary: String,
    /// Structured details (`{}` by default).
    pub details: serde_json::Value,
}

impl NewEvent {
    /// An event of `kind` happening now, about no generation, with no details.
    pub fn new(kind: &str, summary: impl Into<String>) -> Self {
        NewEvent {
            time_ms: now_ms(),
            kind: kind.to_owned(),
            generation: None,
            summary: summary.into(),
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// Sets when it happened.
    pub fn at(mut self, time_ms: i64) -> Self {
        self.time_ms = time_ms;
        self
    }

    /// Sets the generation it concerns.
    pub fn generation(mut self, id: GenerationId) -> Self {
        self.generation = Some(id);
        self
    }

    /// Sets the structured details.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// Checks the kind and flattens the summary to one line; the stores call this before writing.
    pub fn normalized(mut self) -> Result<Self, StoreError> {
        let kind_ok = !self.kind.is_empty()
            && self.kind.len() <= MAX_KIND_BYTES
            && self
                .kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !kind_ok {
            return Err(StoreError::InvalidInput(format!(
                "event kind {:?} must be 1..={MAX_KIND_BYTES} characters of [a-z0-9-]",
                self.kind
            )));
        }
        if self.summary.contains(['\n', '\r']) {
            self.summary = one_line(&self.summary);
        }
        Ok(self)
    }
}

/// Which events to return from [`crate::Store::events`]. The default returns everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventQuery {
    /// Only events at or after this time (ms since epoch, inclusive).
    pub since_ms: Option<i64>,
    /// Only events before this time (ms since epoch, exclusive).
    pub until_ms: Option<i64>,
    /// Only events of these kinds; empty means every kind.
    pub kinds: Vec<String>,
    /// Only events about this generation.
    pub generation: Option<GenerationId>,
    /// At most this many events, the oldest ones of the selection.
    pub limit: Option<usize>,
}

impl EventQuery {
    /// Whether `event` is selected by the time, kind and generation filters (not the limit).
    pub fn matches(&self, event: &EventRecord) -> bool {
        self.since_ms.is_none_or(|since| event.time_ms >= since)
            && self.until_ms.is_none_or(|until| event.time_ms < until)
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && self.generation.is_none_or(|g| event.generation == Some(g))
    }
}

/// Now, in ms since the Unix epoch (negative if the clock is set before 1970).
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// Renders ms since the Unix epoch as RFC 3339 in UTC with millisecond precision
/// (`2024-03-15T14:02:11.250Z`). A time outside years -9999..=9999 (only a corrupt or hostile
/// value can be) renders as `"<ms>ms-since-epoch"` rather than failing the whole listing.
pub fn rfc3339(time_ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(time_ms) {
        Ok(timestamp) => format!("{timestamp:.3}"),
        Err(_) => format!("{time_ms}ms-since-epoch"),
    }
}

/// First line of a message, for summaries.
pub(crate) fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim_end()
}

fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_renders_utc_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_710_511_331_250), "2024-03-15T14:02:11.250Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(i64::MAX), format!("{}ms-since-epoch", i64::MAX));
    }

    #[test]
    fn kinds_are_checked_and_summaries_flattened() {
        let event = NewEvent::new("alert", "first\r\nsecond\n").normalized();
        assert_eq!(
            event.map(|e| e.summary).ok(),
            Some("first second".to_owned())
        );
        for bad in [
            "",
            "Apply",
            "apply event",
            "a/b",
            &"x".repeat(MAX_KIND_BYTES + 1),
        ] {
            assert!(
                NewEvent::new(bad, "s").normalized().is_err(),
                "kind {bad:?} accepted"
            );
        }
        assert!(NewEvent::new(kind::CANARY_STEP, "s").normalized().is_ok());
    }

    #[test]
    fn query_filters_are_half_open_and_combine() {
        let event = EventRecord {
            id: 1,
            time_ms: 100,
            kind: "health".to_owned(),
            generation: Some(3),
            summary: String::new(),
            details: serde_json::Value::Null,
        };
        let query = |since, until| EventQuery {
            since_ms: since,
            until_ms: until,
            ..EventQuery::default()
        };
        assert!(query(Some(100), Some(101)).matches(&event));
        assert!(!query(Some(101), None).matches(&event));
        assert!(!query(None, Some(100)).matches(&event));
        let kinds = EventQuery {
            kinds: vec!["alert".to_owned()],
            ..EventQuery::default()
        };
        assert!(!kinds.matches(&event));
        let generation = EventQuery {
            generation: Some(4),
            ..EventQuery::default()
        };
        assert!(!generation.matches(&event));
    }
}
