//! Row-level SQL for `SqliteStore`: encoding generations, events and state updates into rows,
//! and decoding rows back without trusting them (a row that does not decode is reported as
//! corrupt, never guessed at).

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::transition::{Snapshot, StateUpdate};
use crate::{
    EventQuery, EventRecord, GenerationId, GenerationRecord, GenerationState, NewEvent, StoreError,
};

const GENERATION_COLUMNS: &str = "id, config_text, content_hash, author, message, origin, \
     forced, created_at_ms, activated_at_ms, check_report, impact_report, state, known_good, \
     known_good_at_ms, certificates";

/// Inserts a generation; the database assigns its id (`record.id` is ignored).
pub(super) fn insert_generation(
    conn: &Connection,
    record: &GenerationRecord,
) -> Result<GenerationId, StoreError> {
    let impact_report = record
        .impact_report
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    conn.execute(
        "INSERT INTO generations (config_text, content_hash, author, message, origin, forced, \
         created_at_ms, activated_at_ms, check_report, impact_report, state, certificates) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            record.config_text,
            record.content_hash,
            record.author,
            record.message,
            record.origin,
            record.forced,
            record.created_at_ms,
            record.activated_at_ms,
            serde_json::to_string(&record.check_report)?,
            impact_report,
            record.state.as_str(),
            serde_json::to_string(&record.certificates)?,
        ],
    )?;
    row_id("generations", conn.last_insert_rowid())
}

/// Appends a normalized event. The caller has checked that its generation exists (the foreign
/// key would refuse it anyway, with a less helpful message).
pub(super) fn insert_event(conn: &Connection, event: &NewEvent) -> Result<u64, StoreError> {
    conn.execute(
        "INSERT INTO events (time_ms, kind, generation, summary, details) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            event.time_ms,
            event.kind,
            event.generation.map(sql_id).transpose()?,
            event.summary,
            serde_json::to_string(&event.details)?,
        ],
    )?;
    row_id("events", conn.last_insert_rowid())
}

/// Applies one planned state change.
pub(super) fn apply_update(
    conn: &Connection,
    update: &StateUpdate,
    now_ms: i64,
) -> Result<(), StoreError> {
    let known_good_at = update.known_good.map(|good| good.then_some(now_ms));
    let changed = conn.execute(
        "UPDATE generations SET state = ?2, \
             activated_at_ms = CASE WHEN ?3 THEN ?4 ELSE activated_at_ms END, \
             known_good = CASE WHEN ?5 THEN ?6 ELSE known_good END, \
             known_good_at_ms = CASE WHEN ?5 THEN ?7 ELSE known_good_at_ms END \
         WHERE id = ?1",
        params![
            sql_id(update.id)?,
            update.state.as_str(),
            update.stamp_activated,
            now_ms,
            known_good_at.is_some(),
            update.known_good.unwrap_or(false),
            known_good_at.flatten(),
        ],
    )?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::UnknownGeneration(update.id))
    }
}

/// One generation by id.
pub(super) fn generation(
    conn: &Connection,
    id: GenerationId,
) -> Result<Option<GenerationRecord>, StoreError> {
    let sql = format!("SELECT {GENERATION_COLUMNS} FROM generations WHERE id = ?1");
    let raw = conn
        .query_row(&sql, [sql_id(id)?], RawGeneration::from_row)
        .optional()?;
    raw.map(RawGeneration::decode).transpose()
}

/// The state-machine view of one generation, or `UnknownGeneration`.
pub(super) fn snapshot(conn: &Connection, id: GenerationId) -> Result<Snapshot, StoreError> {
    generation(conn, id)?
        .map(|record| Snapshot::from(&record))
        .ok_or(StoreError::UnknownGeneration(id))
}

/// Generations matching `filter` (a fixed SQL condition), newest first, at most `limit`.
pub(super) fn generations_where(
    conn: &Connection,
    filter: &str,
    limit: usize,
) -> Result<Vec<GenerationRecord>, StoreError> {
    let sql = format!(
        "SELECT {GENERATION_COLUMNS} FROM generations WHERE {filter} ORDER BY id DESC LIMIT ?1"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let raws = statement
        .query_map([sql_limit(Some(limit))], RawGeneration::from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter().map(RawGeneration::decode).collect()
}

/// Every certificate digest a generation pins (the `certificates` column's values).
pub(super) fn pinned_certificates(
    conn: &Connection,
) -> Result<std::collections::BTreeSet<String>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT DISTINCT value FROM generations, json_each(generations.certificates) \
         WHERE generations.certificates <> '{}'",
    )?;
    let digests = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    Ok(digests)
}

/// Events selected by `query`, oldest first.
pub(super) fn events(
    conn: &Connection,
    query: &EventQuery,
) -> Result<Vec<EventRecord>, StoreError> {
    let mut sql = String::from(
        "SELECT id, time_ms, kind, generation, summary, details FROM events WHERE 1 = 1",
    );
    let mut values: Vec<Value> = Vec::new();
    let mut bind = |sql: &mut String, clause: &str, value: Value| {
        values.push(value);
        sql.push_str(&clause.replace('?', &format!("?{}", values.len())));
    };
    if let Some(since) = query.since_ms {
        bind(&mut sql, " AND time_ms >= ?", Value::Integer(since));
    }
    if let Some(until) = query.until_ms {
        bind(&mut sql, " AND time_ms < ?", Value::Integer(until));
    }
    if let Some(generation) = query.generation {
        let generation = i64::try_from(generation).unwrap_or(i64::MAX);
        bind(&mut sql, " AND generation = ?", Value::Integer(generation));
    }
    if !query.kinds.is_empty() {
        sql.push_str(" AND kind IN (");
        for (i, kind) in query.kinds.iter().enumerate() {
            let placeholder = if i == 0 { "?" } else { ", ?" };
            bind(&mut sql, placeholder, Value::Text(kind.clone()));
        }
        sql.push(')');
    }
    bind(
        &mut sql,
        " ORDER BY time_ms, id LIMIT ?",
        Value::Integer(sql_limit(query.limit)),
    );
    let mut statement = conn.prepare(&sql)?;
    let raws = statement
        .query_map(params_from_iter(values), RawEvent::from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter().map(RawEvent::decode).collect()
}

/// A generation id as SQLite stores it. Ids above `i64::MAX` cannot have been assigned.
fn sql_id(id: GenerationId) -> Result<i64, StoreError> {
    i64::try_from(id).map_err(|_| StoreError::UnknownGeneration(id))
}

/// SQLite's LIMIT takes an i64; -1 means unlimited.
fn sql_limit(limit: Option<usize>) -> i64 {
    limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

fn row_id(table: &'static str, id: i64) -> Result<u64, StoreError> {
    u64::try_from(id).map_err(|_| StoreError::Corrupt {
        table,
        id,
        reason: "negative row id".to_owned(),
    })
}

/// A generation row as stored, before validation.
struct RawGeneration {
    id: i64,
    config_text: String,
    content_hash: String,
    author: String,
    message: String,
    origin: String,
    forced: bool,
    created_at_ms: i64,
    activated_at_ms: Option<i64>,
    check_report: String,
    impact_report: Option<String>,
    state: String,
    known_good: bool,
    known_good_at_ms: Option<i64>,
    certificates: String,
}

impl RawGeneration {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawGeneration {
            id: row.get(0)?,
            config_text: row.get(1)?,
            content_hash: row.get(2)?,
            author: row.get(3)?,
            message: row.get(4)?,
            origin: row.get(5)?,
            forced: row.get(6)?,
            created_at_ms: row.get(7)?,
            activated_at_ms: row.get(8)?,
            check_report: row.get(9)?,
            impact_report: row.get(10)?,
            state: row.get(11)?,
            known_good: row.get(12)?,
            known_good_at_ms: row.get(13)?,
            certificates: row.get(14)?,
        })
    }

    fn decode(self) -> Result<GenerationRecord, StoreError> {
        let id = self.id;
        let corrupt = |reason: String| StoreError::Corrupt {
            table: "generations",
            id,
            reason,
        };
        let json = |column: &str, text: &str| {
            serde_json::from_str(text).map_err(|e| corrupt(format!("{column}: {e}")))
        };
        Ok(GenerationRecord {
            id: row_id("generations", id)?,
            check_report: json("check_report", &self.check_report)?,
            impact_report: match &self.impact_report {
                Some(text) => Some(json("impact_report", text)?),
                None => None,
            },
            certificates: serde_json::from_str(&self.certificates)
                .map_err(|e| corrupt(format!("certificates: {e}")))?,
            state: self
                .state
                .parse::<GenerationState>()
                .map_err(|e| corrupt(e.to_string()))?,
            config_text: self.config_text,
            content_hash: self.content_hash,
            author: self.author,
            message: self.message,
            origin: self.origin,
            forced: self.forced,
            created_at_ms: self.created_at_ms,
            activated_at_ms: self.activated_at_ms,
            known_good: self.known_good,
            known_good_at_ms: self.known_good_at_ms,
        })
    }
}

/// An event row as stored, before validation.
struct RawEvent {
    id: i64,
    time_ms: i64,
    kind: String,
    generation: Option<i64>,
    summary: String,
    details: String,
}

impl RawEvent {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawEvent {
            id: row.get(0)?,
            time_ms: row.get(1)?,
            kind: row.get(2)?,
            generation: row.get(3)?,
            summary: row.get(4)?,
            details: row.get(5)?,
        })
    }

    fn decode(self) -> Result<EventRecord, StoreError> {
        let id = self.id;
        let corrupt = |reason: String| StoreError::Corrupt {
            table: "events",
            id,
            reason,
        };
        Ok(EventRecord {
            id: row_id("events", id)?,
            time_ms: self.time_ms,
            generation: self
                .generation
                .map(|g| u64::try_from(g).map_err(|_| corrupt(format!("generation {g}"))))
                .transpose()?,
            details: serde_json::from_str(&self.details)
                .map_err(|e| corrupt(format!("details: {e}")))?,
            kind: self.kind,
            summary: self.summary,
        })
    }
}
