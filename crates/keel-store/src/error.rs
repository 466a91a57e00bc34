//! `StoreError`: every way a store operation can fail, typed so callers can tell a refused
//! transition (the caller's mistake, state unchanged) from a broken store (operator's problem).

use std::path::PathBuf;

use crate::{GenerationId, GenerationState};

/// Why a store operation failed. A failed operation never leaves a partial write behind:
/// every mutation is one transaction (SQLite) or one critical section (memory).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory or the database file could not be created or its mode set.
    #[error("cannot prepare state path {path}: {source}")]
    StatePath {
        /// The directory or file Keel tried to create.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },

    /// SQLite reported an error (I/O, locking past the busy timeout, constraint, corruption).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// The database was written by a newer Keel whose schema this build does not know.
    #[error(
        "store schema version {found} is newer than this Keel supports ({supported}); \
         upgrade Keel or point it at another state directory"
    )]
    SchemaTooNew {
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// The newest schema version this build can migrate to.
        supported: i64,
    },

    /// SQLite refused to switch the database to write-ahead logging (e.g. a filesystem without
    /// shared-memory support); without WAL the crash-safety argument in `docs/store.md` does not hold.
    #[error("cannot enable WAL journal mode: sqlite reports journal_mode={0}")]
    NotWal(String),

    /// No generation has this id.
    #[error("generation {0} does not exist")]
    UnknownGeneration(GenerationId),

    /// The requested transition is not allowed from the generation's current state
    /// (see the state machine in the crate docs). Nothing was changed.
    #[error("generation {id} is {state}: cannot {action}")]
    InvalidTransition {
        /// The generation the caller asked to move.
        id: GenerationId,
        /// Its current lifecycle state.
        state: GenerationState,
        /// What was attempted, e.g. "roll back to it: it never served traffic".
        action: String,
    },

    /// An event or generation was refused before anything was written (e.g. an empty kind).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A stored row does not decode (unknown state name, invalid JSON, negative id). The store
    /// refuses to guess; `SqliteStore::integrity_check` and `docs/store.md` help the operator.
    #[error("corrupt {table} row {id}: {reason}")]
    Corrupt {
        /// Table (or collection) holding the row.
        table: &'static str,
        /// Row id as stored.
        id: i64,
        /// What did not decode.
        reason: String,
    },

    /// A JSON report could not be serialized.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// A shared store (fleet mode's etcd) could not be reached or answered an error. Nothing
    /// was changed by this call (an etcd transaction is all-or-nothing).
    #[error("shared store unavailable: {0}")]
    Unavailable(String),

    /// Another node changed the fleet first: the compare-and-swap on the fleet's active
    /// revision failed. Nothing was written; the message names the generation that won.
    #[error("{0}")]
    Conflict(String),

    /// A thread panicked while holding the in-memory store's lock; its contents may be
    /// half-updated, so the store refuses further use.
    #[error("in-memory store poisoned by a panic in another thread")]
    Poisoned,
}
