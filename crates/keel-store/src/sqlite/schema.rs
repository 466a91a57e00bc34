//! The SQLite schema and its migrations, versioned by `PRAGMA user_version`.
//!
//! The constraints are the second line of defence behind the state machine in `transition`:
//! a bug there surfaces as a failed transaction, never as a second active generation, a
//! rejected generation with an activation time, or an edited audit row.

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migration `i` takes the schema from version `i` to `i + 1`. Append only; never edit one that
/// has shipped.
const MIGRATIONS: &[&str] = &[V1, V2];

const V1: &str = r#"
CREATE TABLE generations (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    config_text      TEXT    NOT NULL,
    content_hash     TEXT    NOT NULL CHECK (length(content_hash) = 64),
    author           TEXT    NOT NULL,
    message          TEXT    NOT NULL,
    origin           TEXT    NOT NULL CHECK (origin <> ''),
    forced           INTEGER NOT NULL CHECK (forced IN (0, 1)),
    created_at_ms    INTEGER NOT NULL,
    activated_at_ms  INTEGER,
    check_report     TEXT    NOT NULL CHECK (json_valid(check_report)),
    impact_report    TEXT    CHECK (impact_report IS NULL OR json_valid(impact_report)),
    state            TEXT    NOT NULL
        CHECK (state IN ('pending', 'active', 'superseded', 'rolled-back', 'rejected')),
    known_good       INTEGER NOT NULL DEFAULT 0 CHECK (known_good IN (0, 1)),
    known_good_at_ms INTEGER,
    CHECK ((known_good = 1) = (known_good_at_ms IS NOT NULL)),
    CHECK (state <> 'active' OR activated_at_ms IS NOT NULL),
    CHECK (state <> 'rejected' OR (activated_at_ms IS NULL AND known_good = 0))
) STRICT;

-- At most one active generation, enforced by the database itself.
CREATE UNIQUE INDEX generations_single_active ON generations (state) WHERE state = 'active';
CREATE INDEX generations_known_good ON generations (id) WHERE known_good = 1;

CREATE TRIGGER generations_are_kept BEFORE DELETE ON generations
BEGIN SELECT RAISE(ABORT, 'generations are an audit log: rows are never deleted'); END;

CREATE TRIGGER generations_content_is_immutable
BEFORE UPDATE OF config_text, content_hash, author, message, origin, forced, created_at_ms,
                 check_report, impact_report ON generations
BEGIN SELECT RAISE(ABORT, 'a generation''s content never changes once recorded'); END;

CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms    INTEGER NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind <> ''),
    generation INTEGER REFERENCES generations (id),
    summary    TEXT    NOT NULL,
    details    TEXT    NOT NULL CHECK (json_valid(details))
) STRICT;

CREATE INDEX events_by_time ON events (time_ms, id);
CREATE INDEX events_by_kind ON events (kind, time_ms, id);
CREATE INDEX events_by_generation ON events (generation) WHERE generation IS NOT NULL;

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
"#;

/// Version 2: the certificates a generation pins (name → digest of its chain and key, JSON),
/// part of its immutable content.
const V2: &str = r#"
ALTER TABLE generations ADD COLUMN certificates TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(certificates) AND json_type(certificates) = 'object');

DROP TRIGGER generations_content_is_immutable;
CREATE TRIGGER generations_content_is_immutable
BEFORE UPDATE OF config_text, content_hash, author, message, origin, forced, created_at_ms,
                 check_report, impact_report, certificates ON generations
BEGIN SELECT RAISE(ABORT, 'a generation''s content never changes once recorded'); END;
"#;

/// Brings the database up to [`SCHEMA_VERSION`]. Each migration and its version bump commit
/// together, so a crash mid-migration leaves the previous version, to be migrated again.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read inside the write lock: two processes opening a fresh file must not both migrate.
        let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let Ok(applied) = usize::try_from(found) else {
            return Err(StoreError::Corrupt {
                table: "schema",
                id: found,
                reason: "negative user_version: not a Keel store".to_owned(),
            });
        };
        let Some(migration) = MIGRATIONS.get(applied) else {
            return Ok(());
        };
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", found + 1)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_2_adds_pins_to_the_generations_of_version_1() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(V1).expect("v1");
        conn.pragma_update(None, "user_version", 1)
            .expect("version");
        conn.execute(
            "INSERT INTO generations (config_text, content_hash, author, message, origin, \
             forced, created_at_ms, check_report, state) \
             VALUES ('x', ?1, 'a', 'm', 'cli', 0, 0, '{}', 'rejected')",
            ["0".repeat(64)],
        )
        .expect("a version 1 row");
        migrate(&mut conn).expect("migrate");
        let (pins, version): (String, i64) = conn
            .query_row(
                "SELECT certificates, (SELECT user_version FROM pragma_user_version) \
                 FROM generations WHERE id = 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("read");
        assert_eq!((pins.as_str(), version), ("{}", SCHEMA_VERSION));
        assert!(
            conn.execute("UPDATE generations SET certificates = '{\"a\":\"b\"}'", [])
                .is_err(),
            "pins are content: never edited"
        );
    }
}
