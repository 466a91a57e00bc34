//! The node's local copy (`<state_dir>/fleet.db`, SQLite in WAL mode): every fleet
//! generation this node recorded or served, which one it serves now (with the etcd revision
//! of the fleet's active pointer it followed), and events it could not send while etcd was
//! unreachable. A restart without etcd serves the last generation it had from here.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use keel_store::{GenerationId, GenerationRecord, NewEvent, StoreError};
use rusqlite::{Connection, OptionalExtension, params};

/// File name of the local copy inside the state directory.
pub const LOCAL_COPY_FILE_NAME: &str = "fleet.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS generations (id INTEGER PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS served (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 0),
    id INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    since_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS offline_events (id INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL);
";

/// What the node serves, as the local copy remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// The generation.
    pub id: GenerationId,
    /// The etcd revision of the fleet's active pointer when this node took it (0 when it
    /// took it without etcd: a local rollback).
    pub revision: i64,
    /// Since when (ms since the Unix epoch).
    pub since_ms: i64,
}

/// The local SQLite copy.
pub(crate) struct LocalCopy {
    connection: Mutex<Connection>,
}

impl LocalCopy {
    pub(crate) fn open(state_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|e| {
            StoreError::InvalidInput(format!("cannot create {}: {e}", state_dir.display()))
        })?;
        let connection = Connection::open(state_dir.join(LOCAL_COPY_FILE_NAME))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.busy_timeout(keel_store::BUSY_TIMEOUT)?;
        connection.execute_batch(SCHEMA)?;
        Ok(LocalCopy {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn put(&self, record: &GenerationRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record)?;
        self.lock().execute(
            "INSERT INTO generations (id, record) VALUES (?1, ?2)
             ON CONFLICT(id) DO UPDATE SET record = excluded.record",
            params![to_sql(record.id), json],
        )?;
        Ok(())
    }

    pub(crate) fn get(&self, id: GenerationId) -> Result<Option<GenerationRecord>, StoreError> {
        let json: Option<String> = self
            .lock()
            .query_row(
                "SELECT record FROM generations WHERE id = ?1",
                params![to_sql(id)],
                |row| row.get(0),
            )
            .optional()?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    /// The newest `limit` generations held, newest first.
    pub(crate) fn newest(&self, limit: usize) -> Result<Vec<GenerationRecord>, StoreError> {
        let connection = self.lock();
        let mut statement =
            connection.prepare("SELECT record FROM generations ORDER BY id DESC LIMIT ?1")?;
        let rows = statement
            .query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
                row.get::<_, String>(0)
            })?;
        let mut out = Vec::new();
        for json in rows {
            out.push(serde_json::from_str(&json?)?);
        }
        Ok(out)
    }

    pub(crate) fn set_served(&self, served: Served) -> Result<(), StoreError> {
        self.lock().execute(
            "INSERT INTO served (singleton, id, revision, since_ms) VALUES (0, ?1, ?2, ?3)
             ON CONFLICT(singleton) DO UPDATE SET id = excluded.id, revision = excluded.revision,
             since_ms = excluded.since_ms",
            params![to_sql(served.id), served.revision, served.since_ms],
        )?;
        Ok(())
    }

    pub(crate) fn served(&self) -> Result<Option<Served>, StoreError> {
        Ok(self
            .lock()
            .query_row("SELECT id, revision, since_ms FROM served", [], |row| {
                Ok(Served {
                    id: GenerationId::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                    revision: row.get(1)?,
                    since_ms: row.get(2)?,
                })
            })
            .optional()?)
    }

    /// Keeps an event etcd could not take; returns its local number.
    pub(crate) fn push_offline(&self, event: &NewEvent) -> Result<u64, StoreError> {
        let connection = self.lock();
        connection.execute(
            "INSERT INTO offline_events (event) VALUES (?1)",
            params![serde_json::to_string(event)?],
        )?;
        Ok(u64::try_from(connection.last_insert_rowid()).unwrap_or(0))
    }

    /// Events kept while etcd was unreachable, oldest first.
    pub(crate) fn offline(&self) -> Result<Vec<(i64, NewEvent)>, StoreError> {
        let connection = self.lock();
        let mut statement =
            connection.prepare("SELECT id, event FROM offline_events ORDER BY id")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            out.push((id, serde_json::from_str(&json)?));
        }
        Ok(out)
    }

    pub(crate) fn forget_offline(&self, id: i64) -> Result<(), StoreError> {
        self.lock()
            .execute("DELETE FROM offline_events WHERE id = ?1", params![id])?;
        Ok(())
    }
}

fn to_sql(id: GenerationId) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}
