//! `SqliteStore`: the embedded default store, one SQLite file in the state directory.
//!
//! Every mutation is one `BEGIN IMMEDIATE` transaction containing the row changes and the event
//! that records them. With the write-ahead log, a transaction is durable and visible exactly when
//! its commit record is in the WAL: a process killed at any instant leaves either the whole
//! transaction or none of it, and the next open replays or discards it. `docs/store.md` has the
//! full argument.

mod rows;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use schema::SCHEMA_VERSION;

use crate::transition::{self, Plan, Snapshot};
use crate::{
    EventQuery, EventRecord, GenerationId, GenerationRecord, GenerationState, NewEvent,
    NewGeneration, Store, StoreError, now_ms,
};

/// The database file's name inside the state directory.
pub const DATABASE_FILE_NAME: &str = "keel.db";

/// How long an operation waits for another connection's write lock (e.g. `keel timeline`
/// reading while the daemon applies) before failing with a "database is locked" error.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Mode of a state directory Keel creates: config texts may embed credentials.
const STATE_DIR_MODE: u32 = 0o700;
/// Mode of a database file Keel creates; SQLite gives its -wal and -shm files the same mode.
const DATABASE_FILE_MODE: u32 = 0o600;

/// A [`Store`] in `<state_dir>/keel.db`.
///
/// One connection behind a mutex: the store is called a few times per apply and per event, never
/// per request, so serializing callers costs nothing and keeps transactions simple.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if missing) the store in `state_dir`.
    ///
    /// Creates `state_dir` with mode 0700 and `keel.db` with mode 0600 if they do not exist
    /// (existing ones keep their modes), enables WAL with `synchronous=FULL` (a commit fsyncs the
    /// WAL, so an apply that returned survives power loss too, at the price of one fsync per
    /// apply, which is nothing at the rate configs change), turns on foreign keys, and migrates
    /// the schema. Opening after a crash recovers the WAL: committed transactions are kept,
    /// the interrupted one is discarded.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(state_dir)?;
        let path = state_dir.join(DATABASE_FILE_NAME);
        create_private_file(&path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NotWal(mode));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        schema::migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs SQLite's `PRAGMA integrity_check`; returns the problems found, empty when the file
    /// is intact. For `keel doctor` and the crash tests.
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut statement = conn.prepare("PRAGMA integrity_check")?;
        let lines = statement
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(lines.into_iter().filter(|line| line != "ok").collect())
    }

    /// The connection. A panic while it was held cannot have left a transaction half-applied
    /// (dropping a `Transaction` rolls it back), so a poisoned lock is safe to reuse.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `work` in one immediate (write-locked from the start) transaction and commits it;
    /// any error rolls everything back.
    fn write<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>, i64) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let result = work(&tx, now_ms())?;
        tx.commit()?;
        Ok(result)
    }

    fn read<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        work(&self.lock())
    }
}

fn execute(tx: &Transaction<'_>, plan: Plan, now_ms: i64) -> Result<(), StoreError> {
    let event = plan.event.normalized()?;
    for update in &plan.updates {
        rows::apply_update(tx, update, now_ms)?;
    }
    rows::insert_event(tx, &event)?;
    Ok(())
}

fn active_id(conn: &Connection) -> Result<Option<GenerationId>, StoreError> {
    Ok(active_record(conn)?.map(|g| g.id))
}

fn active_record(conn: &Connection) -> Result<Option<GenerationRecord>, StoreError> {
    let mut found = rows::generations_where(conn, "state = 'active'", 1)?;
    Ok(found.pop())
}

impl Store for SqliteStore {
    fn record_apply(&self, new: NewGeneration, activate: bool) -> Result<GenerationId, StoreError> {
        new.validate()?;
        self.write(|tx, now| {
            let previous = active_id(tx)?;
            for update in transition::apply_demotions(activate, previous) {
                rows::apply_update(tx, &update, now)?;
            }
            let mut record = new.into_record(0, transition::applied_state(activate), now);
            record.id = rows::insert_generation(tx, &record)?;
            let event = transition::apply_event(&record, previous).normalized()?;
            rows::insert_event(tx, &event)?;
            Ok(record.id)
        })
    }

    fn record_rejection(&self, new: NewGeneration) -> Result<GenerationId, StoreError> {
        new.validate()?;
        self.write(|tx, now| {
            let mut record = new.into_record(0, GenerationState::Rejected, now);
            record.id = rows::insert_generation(tx, &record)?;
            let event = transition::reject_event(&record).normalized()?;
            rows::insert_event(tx, &event)?;
            Ok(record.id)
        })
    }

    fn activate(&self, id: GenerationId, origin: &str, reason: &str) -> Result<(), StoreError> {
        self.write(|tx, now| {
            let target = rows::snapshot(tx, id)?;
            let active = active_record(tx)?.map(|g| Snapshot::from(&g));
            let plan = transition::plan_activate(target, active, origin, reason, now)?;
            execute(tx, plan, now)
        })
    }

    fn record_rollback(
        &self,
        from: GenerationId,
        to: GenerationId,
        origin: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.write(|tx, now| {
            let (from, to) = (rows::snapshot(tx, from)?, rows::snapshot(tx, to)?);
            let plan = transition::plan_rollback(from, to, origin, reason, now)?;
            execute(tx, plan, now)
        })
    }

    fn mark_known_good(&self, id: GenerationId) -> Result<(), StoreError> {
        self.write(|tx, now| {
            let target = rows::snapshot(tx, id)?;
            match transition::plan_known_good(target, now)? {
                Some(plan) => execute(tx, plan, now),
                None => Ok(()),
            }
        })
    }

    fn mark_bad(&self, id: GenerationId, origin: &str, reason: &str) -> Result<(), StoreError> {
        self.write(|tx, now| {
            let target = rows::snapshot(tx, id)?;
            let plan = transition::plan_mark_bad(target, origin, reason, now)?;
            execute(tx, plan, now)
        })
    }

    fn active(&self) -> Result<Option<GenerationRecord>, StoreError> {
        self.read(active_record)
    }

    fn generation(&self, id: GenerationId) -> Result<Option<GenerationRecord>, StoreError> {
        self.read(|conn| rows::generation(conn, id))
    }

    fn generations(&self, limit: usize) -> Result<Vec<GenerationRecord>, StoreError> {
        self.read(|conn| rows::generations_where(conn, "1 = 1", limit))
    }

    fn known_good(&self, limit: usize) -> Result<Vec<GenerationRecord>, StoreError> {
        self.read(|conn| rows::generations_where(conn, "known_good = 1", limit))
    }

    fn append_event(&self, event: NewEvent) -> Result<u64, StoreError> {
        let event = event.normalized()?;
        self.write(|tx, _| {
            if let Some(id) = event.generation {
                rows::snapshot(tx, id)?;
            }
            rows::insert_event(tx, &event)
        })
    }

    fn events(&self, query: EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        self.read(|conn| rows::events(conn, &query))
    }

    fn pinned_certificates(&self) -> Result<std::collections::BTreeSet<String>, StoreError> {
        self.read(rows::pinned_certificates)
    }
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, STATE_DIR_MODE);
    builder.create(dir).map_err(|source| StoreError::StatePath {
        path: dir.to_owned(),
        source,
    })
}

/// Creates the database file with a private mode before SQLite does (SQLite would use 0644).
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, DATABASE_FILE_MODE);
    options
        .open(path)
        .map(drop)
        .map_err(|source| StoreError::StatePath {
            path: path.to_owned(),
            source,
        })
}
