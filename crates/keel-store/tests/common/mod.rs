//! Helpers shared by the integration tests: building generations and a store-agnostic check of
//! the state machine, run against every `Store` implementation.

#![allow(dead_code, unreachable_pub)] // each test binary uses a different subset

use keel_store::{
    EventQuery, EventRecord, GenerationId, GenerationState, NewGeneration, Store, StoreError,
    content_hash, kind,
};
use serde_json::json;

/// A generation whose text and reports are derived from `name`.
pub fn new_generation(name: &str) -> NewGeneration {
    NewGeneration {
        config_text: format!("[listeners.web]\naddress = \"127.0.0.1:0\"\n# {name}\n"),
        author: "alice".to_owned(),
        message: format!("apply {name}\nsecond line of the message"),
        origin: keel_store::origin::CLI.to_owned(),
        forced: false,
        check_report: json!({ "name": name, "errors": [] }),
        impact_report: Some(json!({ "moved_permille": 12 })),
        certificates: Default::default(),
    }
}

/// Unwraps a store result, failing the test with the error's message.
pub fn ok<T>(result: Result<T, StoreError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("store operation failed: {error}"),
    }
}

/// The state of generation `id`.
pub fn state(store: &dyn Store, id: GenerationId) -> GenerationState {
    match ok(store.generation(id)) {
        Some(record) => record.state,
        None => panic!("generation {id} missing"),
    }
}

/// Every event, oldest first.
pub fn all_events(store: &dyn Store) -> Vec<EventRecord> {
    ok(store.events(EventQuery::default()))
}

/// `(kind, generation)` of every event.
pub fn event_trail(store: &dyn Store) -> Vec<(String, Option<GenerationId>)> {
    all_events(store)
        .into_iter()
        .map(|e| (e.kind, e.generation))
        .collect()
}

/// Drives a store through applies, known-good marks, a rejection, rollbacks, a canary abort and a
/// promotion, checking states, flags, ids, hashes and the event trail after each step, and that
/// refused transitions change nothing.
pub fn exercise_state_machine(store: &dyn Store) {
    use GenerationState::{Active, Pending, Rejected, RolledBack, Superseded};

    assert_eq!(ok(store.active()), None);
    assert!(ok(store.generations(10)).is_empty());
    let anonymous = NewGeneration {
        origin: " ".to_owned(),
        ..new_generation("no origin")
    };
    assert!(matches!(
        store.record_apply(anonymous, true),
        Err(StoreError::InvalidInput(_))
    ));
    assert!(
        ok(store.generations(10)).is_empty(),
        "a refused apply records nothing"
    );

    let g1 = ok(store.record_apply(new_generation("one"), true));
    let g2 = ok(store.record_apply(new_generation("two"), true));
    assert!(g2 > g1, "ids increase: {g1} then {g2}");
    assert_eq!((state(store, g1), state(store, g2)), (Superseded, Active));
    ok(store.mark_known_good(g1));
    ok(store.mark_known_good(g2));

    let g3 = ok(store.record_rejection(new_generation("three")));
    assert_eq!(state(store, g3), Rejected);
    let active = ok(store.active());
    assert_eq!(
        active.as_ref().map(|g| g.id),
        Some(g2),
        "a rejection leaves the active one"
    );

    let g4 = ok(store.record_apply(new_generation("four"), true));
    let two = ok(store.generation(g2));
    assert_eq!(
        two.as_ref().map(|g| (g.state, g.known_good)),
        Some((Superseded, true))
    );

    ok(store.record_rollback(g4, g2, "cli", "5xx jump\nmore detail"));
    assert_eq!((state(store, g4), state(store, g2)), (RolledBack, Active));

    // Refused transitions change nothing and write no event.
    let before = event_trail(store);
    assert!(matches!(
        store.record_rollback(g2, g3, "cli", "to a rejected one"),
        Err(StoreError::InvalidTransition { id, state: Rejected, .. }) if id == g3
    ));
    assert!(matches!(
        store.record_rollback(g4, g1, "cli", "from a generation not serving"),
        Err(StoreError::InvalidTransition { id, state: RolledBack, .. }) if id == g4
    ));
    assert!(matches!(
        store.activate(g2, "cli", ""),
        Err(StoreError::InvalidTransition { .. })
    ));
    assert!(matches!(
        store.activate(g3, "cli", ""),
        Err(StoreError::InvalidTransition { .. })
    ));
    assert!(matches!(
        store.mark_known_good(g3),
        Err(StoreError::InvalidTransition { .. })
    ));
    assert!(matches!(
        store.activate(999, "cli", ""),
        Err(StoreError::UnknownGeneration(999))
    ));
    ok(store.mark_known_good(g2)); // already known-good: succeeds, writes nothing
    assert_eq!(event_trail(store), before);
    assert_eq!(state(store, g2), Active);

    // A canary that is aborted, then one that is promoted.
    let g5 = ok(store.record_apply(new_generation("five"), false));
    assert_eq!((state(store, g5), state(store, g2)), (Pending, Active));
    assert!(matches!(
        store.mark_known_good(g5),
        Err(StoreError::InvalidTransition { .. })
    ));
    ok(store.record_rollback(g5, g2, "guard", "share shift"));
    assert_eq!((state(store, g5), state(store, g2)), (RolledBack, Active));
    let g6 = ok(store.record_apply(new_generation("six"), false));
    ok(store.activate(g6, "guard", "canary healthy"));
    assert_eq!((state(store, g6), state(store, g2)), (Active, Superseded));

    // Rolling back away from a known-good generation keeps the mark; judging it bad
    // withdraws it.
    ok(store.mark_known_good(g6));
    ok(store.record_rollback(g6, g2, "cli", "trying the old one"));
    let six = ok(store.generation(g6));
    assert_eq!(
        six.as_ref().map(|g| (g.state, g.known_good)),
        Some((RolledBack, true))
    );
    ok(store.mark_bad(g6, "cli", "identity mismatch"));
    let six = ok(store.generation(g6));
    assert_eq!(
        six.as_ref()
            .map(|g| (g.state, g.known_good, g.known_good_at_ms)),
        Some((RolledBack, false, None))
    );
    assert!(matches!(
        store.mark_bad(g3, "cli", "refused one"),
        Err(StoreError::InvalidTransition { .. })
    ));
    let known_good: Vec<GenerationId> = ok(store.known_good(10)).iter().map(|g| g.id).collect();
    assert_eq!(known_good, vec![g2, g1]);

    // Re-activating a rolled-back generation does not judge the active one bad.
    ok(store.activate(g4, "cli", "false alarm"));
    assert_eq!((state(store, g4), state(store, g2)), (Active, Superseded));

    let newest: Vec<GenerationId> = ok(store.generations(3)).iter().map(|g| g.id).collect();
    assert_eq!(newest, vec![g6, g5, g4]);
    let all = ok(store.generations(usize::MAX));
    assert_eq!(all.len(), 6);
    for record in &all {
        assert_eq!(record.content_hash, content_hash(&record.config_text));
        match record.state {
            Active | Superseded => assert!(record.activated_at_ms.is_some(), "{}", record.id),
            Pending | Rejected => assert_eq!(record.activated_at_ms, None, "{}", record.id),
            RolledBack => {}
        }
    }
    assert_eq!(all.iter().filter(|g| g.state == Active).count(), 1);
    let three = ok(store.generation(g3));
    assert_eq!(
        three.map(|g| (g.activated_at_ms, g.check_report["name"].clone())),
        Some((None, json!("three")))
    );
    assert_eq!(
        ok(store.generation(g1)).map(|g| g.content_hash),
        Some(content_hash(&new_generation("one").config_text)),
        "hash is stable"
    );

    let expected: Vec<(String, Option<GenerationId>)> = [
        (kind::APPLY, g1),
        (kind::APPLY, g2),
        (kind::KNOWN_GOOD, g1),
        (kind::KNOWN_GOOD, g2),
        (kind::REJECT, g3),
        (kind::APPLY, g4),
        (kind::ROLLBACK, g2),
        (kind::APPLY, g5),
        (kind::ROLLBACK, g2),
        (kind::APPLY, g6),
        (kind::PROMOTE, g6),
        (kind::KNOWN_GOOD, g6),
        (kind::ROLLBACK, g2),
        (kind::MARK_BAD, g6),
        (kind::ACTIVATE, g4),
    ]
    .into_iter()
    .map(|(k, g)| (k.to_owned(), Some(g)))
    .collect();
    assert_eq!(event_trail(store), expected);

    let events = all_events(store);
    let first_rollback = events.iter().find(|e| e.kind == kind::ROLLBACK);
    assert_eq!(
        first_rollback.map(|e| (
            e.summary.as_str(),
            e.details["from"].clone(),
            e.details["to"].clone()
        )),
        Some((
            format!("rolled back from generation {g4} to {g2} via cli: 5xx jump").as_str(),
            json!(g4),
            json!(g2)
        ))
    );
    let apply_two = events
        .iter()
        .find(|e| e.kind == kind::APPLY && e.generation == Some(g2));
    assert_eq!(
        apply_two.map(|e| e.details["previous_active"].clone()),
        Some(json!(g1))
    );
    let pending = events
        .iter()
        .find(|e| e.kind == kind::APPLY && e.generation == Some(g5));
    assert_eq!(
        pending.map(|e| e.details["activated"].clone()),
        Some(json!(false))
    );
}
