//! `SqliteStore` on real files: what persists across reopen, file modes, schema versioning, the
//! audit log's immutability, and concurrent writers (threads and separate connections).

mod common;

use std::sync::Arc;

use keel_store::{
    DATABASE_FILE_NAME, EventQuery, GenerationState, NewEvent, SCHEMA_VERSION, SqliteStore, Store,
    StoreError, kind,
};

use common::{new_generation, ok};

#[test]
fn everything_persists_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (generations, events, active) = {
        let store = ok(SqliteStore::open(dir.path()));
        let g1 = ok(store.record_apply(new_generation("one"), true));
        ok(store.mark_known_good(g1));
        let g2 = ok(store.record_apply(new_generation("two"), true));
        ok(store.record_rejection(new_generation("three")));
        ok(store.record_rollback(g2, g1, "cli", "bad"));
        ok(store.append_event(NewEvent::new(kind::SHUTDOWN, "bye").generation(g1)));
        (
            ok(store.generations(usize::MAX)),
            ok(store.events(EventQuery::default())),
            ok(store.active()),
        )
    };
    assert_eq!(active.as_ref().map(|g| g.id), Some(1));

    let reopened = ok(SqliteStore::open(dir.path()));
    assert_eq!(ok(reopened.active()), active);
    assert_eq!(ok(reopened.generations(usize::MAX)), generations);
    assert_eq!(ok(reopened.events(EventQuery::default())), events);
    assert_eq!(
        ok(reopened.known_good(5))
            .iter()
            .map(|g| g.id)
            .collect::<Vec<_>>(),
        [1]
    );
    let four = ok(reopened.record_apply(new_generation("four"), true));
    assert_eq!(four, 4, "ids continue after reopen");
}

#[cfg(unix)]
#[test]
fn creates_a_private_state_dir_and_database() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().expect("tempdir");
    let state_dir = parent.path().join("nested").join("state");
    let store = ok(SqliteStore::open(&state_dir));
    ok(store.record_apply(new_generation("one"), true));
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .ok()
    };
    assert_eq!(mode(&state_dir), Some(0o700));
    assert_eq!(store.path(), state_dir.join(DATABASE_FILE_NAME));
    assert_eq!(mode(store.path()), Some(0o600));
    assert_eq!(
        mode(&state_dir.join("keel.db-wal")),
        Some(0o600),
        "WAL inherits the mode"
    );
}

fn raw(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(DATABASE_FILE_NAME)).expect("open raw connection")
}

#[test]
fn uses_wal_and_records_the_schema_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(ok(SqliteStore::open(dir.path())));
    let conn = raw(dir.path());
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("pragma");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!((mode.as_str(), version), ("wal", SCHEMA_VERSION));
}

#[test]
fn refuses_a_schema_from_the_future() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(ok(SqliteStore::open(dir.path())));
    raw(dir.path())
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("bump version");
    match SqliteStore::open(dir.path()) {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn the_database_refuses_to_rewrite_history_or_hold_two_active_generations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ok(SqliteStore::open(dir.path()));
    ok(store.record_apply(new_generation("one"), true));
    ok(store.record_apply(new_generation("two"), true));
    let conn = raw(dir.path());
    let refused = [
        "DELETE FROM events",
        "UPDATE events SET summary = 'nothing happened'",
        "DELETE FROM generations WHERE id = 1",
        "UPDATE generations SET config_text = 'edited' WHERE id = 1",
        "UPDATE generations SET state = 'active' WHERE id = 1",
        "UPDATE generations SET state = 'on-fire' WHERE id = 1",
        "UPDATE generations SET known_good = 1 WHERE id = 1",
    ];
    for sql in refused {
        assert!(conn.execute(sql, []).is_err(), "database accepted: {sql}");
    }
    assert_eq!(
        ok(store.generation(1)).map(|g| g.state),
        Some(GenerationState::Superseded)
    );
    assert_eq!(ok(store.events(EventQuery::default())).len(), 2);
}

#[test]
fn concurrent_writers_keep_one_active_generation() {
    const WRITERS: usize = 4;
    const APPLIES_EACH: usize = 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = Arc::new(ok(SqliteStore::open(dir.path())));
    let handles: Vec<_> = (0..WRITERS)
        .map(|writer| {
            // Half the writers share one store (one connection, mutex); the others open their
            // own connection to the same file (SQLite's write lock and busy timeout).
            let store: Arc<dyn Store> = if writer.is_multiple_of(2) {
                shared.clone()
            } else {
                Arc::new(ok(SqliteStore::open(dir.path())))
            };
            std::thread::spawn(move || {
                (0..APPLIES_EACH)
                    .map(|i| store.record_apply(new_generation(&format!("w{writer}-{i}")), true))
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .collect();
    let mut ids: Vec<u64> = Vec::new();
    for handle in handles {
        ids.extend(ok(handle.join().expect("writer thread panicked")));
    }
    ids.sort_unstable();
    let expected: Vec<u64> = (1..=(WRITERS * APPLIES_EACH) as u64).collect();
    assert_eq!(ids, expected, "every apply got its own id, none lost");
    let all = ok(shared.generations(usize::MAX));
    let active: Vec<u64> = all
        .iter()
        .filter(|g| g.state == GenerationState::Active)
        .map(|g| g.id)
        .collect();
    assert_eq!(active.len(), 1, "exactly one active: {active:?}");
    assert_eq!(
        active.first().copied(),
        ids.last().copied(),
        "the last committed apply is active"
    );
    let applies = ok(shared.events(EventQuery {
        kinds: vec![kind::APPLY.to_owned()],
        ..EventQuery::default()
    }));
    assert_eq!(applies.len(), WRITERS * APPLIES_EACH);
}

#[test]
fn a_row_that_does_not_decode_is_reported_not_guessed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ok(SqliteStore::open(dir.path()));
    ok(store.record_apply(new_generation("one"), true));
    let conn = raw(dir.path());
    // Only a hand edit that switches off the CHECK constraints can store this.
    conn.execute_batch(
        "PRAGMA ignore_check_constraints = ON; \
         UPDATE generations SET state = 'on-fire' WHERE id = 1;",
    )
    .expect("hand edit");
    match store.generation(1) {
        Err(StoreError::Corrupt { table, id, reason }) => {
            assert_eq!((table, id), ("generations", 1));
            assert!(reason.contains("on-fire"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(
        matches!(store.active(), Ok(None)),
        "the corrupt row is not active either"
    );
}

fn pinned(name: &str, pins: &[(&str, &str)]) -> keel_store::NewGeneration {
    keel_store::NewGeneration {
        certificates: pins
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_string()))
            .collect(),
        ..new_generation(name)
    }
}

#[test]
fn pinned_certificates_persist_are_listed_and_cannot_be_edited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    {
        let store = ok(SqliteStore::open(dir.path()));
        ok(store.record_apply(pinned("one", &[("shop", &a)]), true));
        ok(store.record_apply(pinned("two", &[("shop", &b), ("api", &a)]), true));
        ok(store.record_apply(new_generation("three"), true));
    }
    let store = ok(SqliteStore::open(dir.path()));
    let two = ok(store.generation(2)).expect("generation 2");
    assert_eq!(two.certificates.get("shop"), Some(&b));
    assert_eq!(two.certificates.get("api"), Some(&a));
    assert!(ok(store.generation(3)).expect("3").certificates.is_empty());
    let listed = ok(store.pinned_certificates());
    assert_eq!(listed.into_iter().collect::<Vec<_>>(), [a.clone(), b]);
    // The trait's default (what a store without its own query answers) agrees.
    let memory = keel_store::MemoryStore::new();
    ok(memory.record_apply(pinned("one", &[("shop", &a)]), true));
    assert_eq!(
        ok(memory.pinned_certificates())
            .into_iter()
            .collect::<Vec<_>>(),
        [a]
    );
    let conn = raw(dir.path());
    for sql in [
        "UPDATE generations SET certificates = '{}' WHERE id = 2",
        "UPDATE generations SET certificates = 'not json' WHERE id = 3",
    ] {
        assert!(conn.execute(sql, []).is_err(), "database accepted: {sql}");
    }
}
