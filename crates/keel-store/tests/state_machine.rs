//! The documented state machine, run against both stores (SQLite on a real file in a tempdir).

mod common;

use keel_store::{MemoryStore, SqliteStore};

#[test]
fn memory_store_follows_the_state_machine() {
    common::exercise_state_machine(&MemoryStore::new());
}

#[test]
fn sqlite_store_follows_the_state_machine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::ok(SqliteStore::open(dir.path()));
    common::exercise_state_machine(&store);
    assert_eq!(common::ok(store.integrity_check()), Vec::<String>::new());
}
