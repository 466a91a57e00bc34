//! Event log queries (time range, kinds, generation, limit, ordering) on both stores.

mod common;

use keel_store::{
    EventQuery, MemoryStore, NewEvent, SqliteStore, Store, StoreError, kind, rfc3339,
};
use serde_json::json;

use common::ok;

/// Base time: 2024-03-15T14:00:00Z.
const T0: i64 = 1_710_511_200_000;

fn fill(store: &dyn Store) -> u64 {
    let generation = ok(store.record_apply(common::new_generation("base"), true));
    // Inserted out of time order on purpose: queries order by time, then id.
    let events = [
        NewEvent::new(kind::HEALTH, "b1 unhealthy").at(T0 + 3_000),
        NewEvent::new(kind::ALERT, "share shift on /checkout")
            .at(T0 + 1_000)
            .generation(generation),
        NewEvent::new(kind::HEALTH, "b1 healthy").at(T0 + 5_000),
        NewEvent::new(kind::IDENTITY, "b2 answered as payments\nextra").at(T0 + 1_000),
        NewEvent::new(kind::STARTUP, "keel started")
            .at(T0)
            .details(json!({ "pid": 42, "listeners": ["127.0.0.1:8080"] })),
    ];
    for event in events {
        ok(store.append_event(event));
    }
    generation
}

fn summaries(store: &dyn Store, query: EventQuery) -> Vec<String> {
    ok(store.events(query))
        .into_iter()
        .filter(|e| e.kind != kind::APPLY)
        .map(|e| e.summary)
        .collect()
}

fn check_queries(store: &dyn Store) {
    let generation = fill(store);
    let since_t0 = EventQuery {
        since_ms: Some(T0),
        ..EventQuery::default()
    };
    assert_eq!(
        summaries(store, since_t0.clone()),
        [
            "keel started",
            "share shift on /checkout",
            "b2 answered as payments extra",
            "b1 unhealthy",
            "b1 healthy"
        ]
    );
    let window = EventQuery {
        since_ms: Some(T0 + 1_000),
        until_ms: Some(T0 + 5_000),
        ..EventQuery::default()
    };
    assert_eq!(
        summaries(store, window),
        [
            "share shift on /checkout",
            "b2 answered as payments extra",
            "b1 unhealthy"
        ],
        "since is inclusive, until exclusive"
    );
    let health_and_startup = EventQuery {
        kinds: vec![kind::HEALTH.to_owned(), kind::STARTUP.to_owned()],
        ..EventQuery::default()
    };
    assert_eq!(
        summaries(store, health_and_startup),
        ["keel started", "b1 unhealthy", "b1 healthy"]
    );
    let health_late = EventQuery {
        since_ms: Some(T0 + 4_000),
        kinds: vec![kind::HEALTH.to_owned()],
        ..EventQuery::default()
    };
    assert_eq!(summaries(store, health_late), ["b1 healthy"]);
    let first_two = EventQuery {
        limit: Some(2),
        ..since_t0
    };
    assert_eq!(
        summaries(store, first_two),
        ["keel started", "share shift on /checkout"]
    );
    let about_generation: Vec<String> = ok(store.events(EventQuery {
        generation: Some(generation),
        ..EventQuery::default()
    }))
    .into_iter()
    .map(|e| e.kind)
    .collect();
    assert_eq!(about_generation, [kind::ALERT, kind::APPLY]);
    let none = EventQuery {
        kinds: vec!["no-such-kind".to_owned()],
        ..EventQuery::default()
    };
    assert!(ok(store.events(none)).is_empty());

    let startup = ok(store.events(EventQuery {
        kinds: vec![kind::STARTUP.to_owned()],
        ..EventQuery::default()
    }));
    let startup = startup.first().expect("startup event");
    assert_eq!(startup.details["listeners"][0], json!("127.0.0.1:8080"));
    assert_eq!(startup.time_rfc3339(), "2024-03-15T14:00:00.000Z");
    assert_eq!(rfc3339(T0 + 5_250), "2024-03-15T14:00:05.250Z");

    let ids: Vec<u64> = ok(store.events(EventQuery::default()))
        .iter()
        .map(|e| e.id)
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "event ids are unique");

    assert!(matches!(
        store.append_event(NewEvent::new(kind::ALERT, "x").generation(generation + 100)),
        Err(StoreError::UnknownGeneration(_))
    ));
    assert!(matches!(
        store.append_event(NewEvent::new("Not A Kind", "x")),
        Err(StoreError::InvalidInput(_))
    ));
    assert_eq!(
        ok(store.events(EventQuery::default())).len(),
        ids.len(),
        "refused events are not stored"
    );
}

#[test]
fn memory_store_answers_event_queries() {
    check_queries(&MemoryStore::new());
}

#[test]
fn sqlite_store_answers_event_queries() {
    let dir = tempfile::tempdir().expect("tempdir");
    check_queries(&ok(SqliteStore::open(dir.path())));
}
