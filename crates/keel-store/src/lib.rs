//! Durable history of generations and events, behind a trait; SQLite is the embedded default.
//!
//! Every config Keel applies (or refuses) becomes a numbered *generation*: its full text, content
//! hash, author, message, origin, check and blast-radius reports, and a lifecycle state. Next to
//! the generations lives an append-only *event log* (applies, rollbacks, alerts, health flips, ...)
//! that `keel timeline` turns into a post-mortem draft.
//!
//! * [`Store`]: the trait the control plane and reports use.
//! * [`SqliteStore`]: the embedded default, `<state_dir>/keel.db`, WAL, one transaction per
//!   operation, safe against `kill -9` at any instant (see `docs/store.md`).
//! * [`MemoryStore`]: the same rules in a `Mutex`, for other crates' unit tests and as the
//!   template for a shared store.
//!
//! # State machine
//!
//! | operation | generation(s) before | after | event |
//! |---|---|---|---|
//! | `record_apply(new, activate = true)` | previous active | new: `active`; previous: `superseded` | `apply` |
//! | `record_apply(new, activate = false)` | – | new: `pending` (a canary) | `apply` |
//! | `record_rejection(new)` | – | new: `rejected` (final) | `reject` |
//! | `activate(id)` | id `pending` | id `active`; previous active `superseded` | `promote` |
//! | `activate(id)` | id `superseded` / `rolled-back` | id `active`; previous active `superseded` | `activate` |
//! | `record_rollback(from, to)` | from `active`, to served before | from `rolled-back` (keeps its known-good flag); to `active` | `rollback` |
//! | `record_rollback(from, to)` | from `pending`, to `active` | from `rolled-back`; to stays `active` | `rollback` |
//! | `mark_known_good(id)` | id served before, not `rejected` | flag set (idempotent) | `known-good` |
//! | `mark_bad(id)` | id not `rejected` | flag withdrawn; state unchanged | `mark-bad` |
//!
//! Anything else is refused with [`StoreError::InvalidTransition`] and changes nothing.
//!
//! * At most one generation is active; exactly one once anything has been activated.
//! * Only a generation that has served traffic (superseded or rolled-back with an activation
//!   time) can be a rollback target; rejected generations never become active.
//! * *Known-good* is a flag, not a state: set by [`Store::mark_known_good`] on a generation that
//!   has served traffic, kept when it is superseded or rolled back from, withdrawn only by
//!   [`Store::mark_bad`] (an alarm the guard acted on, or an operator's `keel mark-bad`).
//! * Every transition writes exactly one event (`apply`, `reject`, `promote`, `activate`,
//!   `rollback`, `known-good`) in the same transaction.

mod error;
mod event;
mod generation;
mod memory;
mod sqlite;
mod state;
mod store;
pub mod transition;

pub use error::StoreError;
pub use event::{EventQuery, EventRecord, MAX_KIND_BYTES, NewEvent, kind, now_ms, rfc3339};
pub use generation::{GenerationId, GenerationRecord, NewGeneration, content_hash, origin};
pub use memory::MemoryStore;
pub use sqlite::{BUSY_TIMEOUT, DATABASE_FILE_NAME, SCHEMA_VERSION, SqliteStore};
pub use state::{GenerationState, UnknownState};
pub use store::Store;
