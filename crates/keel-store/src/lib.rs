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
//! ```text
//!   record_apply(activate=false)      record_apply(activate=true)      record_rejection
//!             │                                  │                            │
//!             ▼            activate (promote)    ▼                            ▼
//!         pending ─────────────────────────▶  active                      rejected (final)
//!             │                              │  ▲  │
//!  record_rollback(from=pending, to=active)  │  │  │ a newer apply, or activate(other)
//!             │                              │  │  ▼
//!             ▼      record_rollback(from=active)│ superseded
//!        rolled-back ◀───────────────────────┘  │  │
//!             │  record_rollback(to=..) / activate│◀─┘ record_rollback(to=..) / activate
//!             └───────────────────────────────────┘
//! ```
//!
//! * At most one generation is active; exactly one once anything has been activated.
//! * Only a generation that has served traffic (superseded or rolled-back with an activation
//!   time) can be a rollback target; rejected generations never become active.
//! * *Known-good* is a flag, not a state: set by [`Store::mark_known_good`] on a generation that
//!   has served traffic, kept when it is superseded, withdrawn when a rollback moves away from it.
//! * Every transition writes exactly one event (`apply`, `reject`, `promote`, `activate`,
//!   `rollback`, `known-good`) in the same transaction.

mod error;
mod event;
mod generation;
mod memory;
mod sqlite;
mod state;
mod store;
mod transition;

pub use error::StoreError;
pub use event::{EventQuery, EventRecord, MAX_KIND_BYTES, NewEvent, kind, now_ms, rfc3339};
pub use generation::{GenerationId, GenerationRecord, NewGeneration, content_hash, origin};
pub use memory::MemoryStore;
pub use sqlite::{BUSY_TIMEOUT, DATABASE_FILE_NAME, SCHEMA_VERSION, SqliteStore};
pub use state::{GenerationState, UnknownState};
pub use store::Store;
