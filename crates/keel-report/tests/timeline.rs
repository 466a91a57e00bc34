//! The timeline of the scripted scenario (apply 1, apply 2, identity alert on 2, automatic
//! rollback to 1), against both stores.

mod common;

use keel_report::{DiffSource, Timeline, TimelineEntry};
use keel_store::{MemoryStore, NewEvent, SqliteStore, Store, kind};
use serde_json::json;

fn position(entries: &[TimelineEntry], kind: &str, generation: u64) -> usize {
    entries
        .iter()
        .position(|e| e.kind == kind && e.generation == Some(generation))
        .unwrap_or_else(|| panic!("no {kind} event for generation {generation}"))
}

fn check_scenario(store: &dyn Store) {
    common::march_15_scenario(store);
    let timeline = Timeline::build(store, None, None).expect("timeline");
    let entries = &timeline.entries;

    let apply_1 = position(entries, kind::APPLY, 1);
    let apply_2 = position(entries, kind::APPLY, 2);
    let alert = position(entries, kind::ALERT, 2);
    let identity = position(entries, kind::IDENTITY, 2);
    let rollback = position(entries, kind::ROLLBACK, 1);
    assert!(apply_1 < apply_2 && apply_2 < identity && identity < alert && alert < rollback);
    assert!(
        entries
            .windows(2)
            .all(|w| (w[0].time_ms, w[0].event_id) <= (w[1].time_ms, w[1].event_id))
    );

    let change = entries[apply_2]
        .change
        .as_ref()
        .expect("apply 2 has change info");
    assert_eq!(change.author, "bob");
    assert_eq!(change.previous_active, Some(1));
    assert_eq!(change.diff.source, DiffSource::Computed);
    assert!(
        change.diff.text.contains("+ pool checkout-v3"),
        "{}",
        change.diff.text
    );
    assert!(
        change
            .diff
            .text
            .contains("route checkout: target: pool checkout-v2 → pool checkout-v3"),
        "{}",
        change.diff.text
    );
    assert_eq!(change.check, "check: 0 errors, 0 warnings");
    assert!(
        change.impact.starts_with("blast radius: 0.0% of 400"),
        "{}",
        change.impact
    );
    assert_eq!(change.state_now.as_deref(), Some("rolled-back"));
    let first = entries[apply_1].change.as_ref().expect("apply 1 change");
    assert_eq!(first.diff.source, DiffSource::FirstGeneration);
    assert!(
        first.diff.text.contains("2 routes, 2 pools, 4 backends"),
        "{}",
        first.diff.text
    );

    let back = entries[rollback].rollback.as_ref().expect("rollback info");
    assert_eq!((back.from, back.to), (Some(2), Some(1)));
    assert_eq!(back.origin, "guard");

    let incident = timeline.incident.as_ref().expect("an incident");
    assert_eq!(incident.first_signal.kind, kind::IDENTITY);
    assert_eq!(incident.suspect(), Some(2));
    let cause = &incident.root_causes[0];
    assert_eq!(cause.event.kind, kind::APPLY);
    assert_eq!(cause.event.event_id, entries[apply_2].event_id);
    assert!(cause.reason.contains("names it"), "{}", cause.reason);
    assert_eq!(
        cause.change.as_ref().map(|c| c.author.as_str()),
        Some("bob")
    );
    // The earlier apply of generation 1 is a lesser candidate, never the first.
    assert!(
        incident
            .root_causes
            .iter()
            .skip(1)
            .all(|c| c.generation != Some(2) || c.event.kind != kind::APPLY)
    );
    let rolled = incident.rollback.as_ref().expect("rollback found");
    assert_eq!(rolled.generation, Some(1));
    assert_eq!(incident.largest_share, Some(0.7));
    // The generation's own counters win over an alert's estimate.
    assert_eq!(incident.requests_served, Some(500));
    let counted = incident.traffic.expect("traffic counted by the generation");
    assert_eq!((counted.requests, counted.wrong_or_failed), (500, 100));
    assert_eq!((incident.alerts, incident.identity_flips), (1, 1));
    assert!(!incident.still_serving);
    let (detection, recovery) = (
        incident.detection_ms.expect("detection"),
        incident.recovery_ms.expect("recovery"),
    );
    assert!(
        0 <= detection && detection <= recovery,
        "{detection} {recovery}"
    );

    let markdown = timeline.render_markdown();
    let line = |needle: &str| {
        markdown
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing from\n{markdown}"))
    };
    assert!(markdown.starts_with("# Post-mortem draft: generation 2: "));
    let timeline_at = line("## Timeline");
    let apply_line = line("`apply`: generation 2 applied by bob");
    let alert_line = line("`alert`: identity detector");
    let rollback_line = line("`rollback`: rolled back from generation 2 to 1 via guard");
    assert!(timeline_at < apply_line && apply_line < alert_line && alert_line < rollback_line);
    assert!(line("## Root-cause candidates") > rollback_line);
    assert!(
        markdown.contains("1. **generation 2** (most likely): `apply`"),
        "{markdown}"
    );
    assert!(markdown.contains("inspect: `keel diff 1 2`"), "{markdown}");
    assert!(
        markdown.contains(
            "| traffic affected | 100 of 500 requests (20.0%) answered by the wrong application (97) or failed (counted by the generation) | 70.0% of users |"
        ),
        "{markdown}"
    );
    assert!(markdown.contains("- **Duration**: "), "{markdown}");
    assert!(markdown.contains("**(first alert)**"));
    line("## Issue Summary");
    line("## Impact");
    line("## Corrective and Preventative Measures");

    let json = timeline.to_json();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["incident"]["root_causes"][0]["generation"], 2);
    assert_eq!(json["incident"]["rollback"]["generation"], 1);
    let kinds: Vec<&str> = json["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "apply",
            "known-good",
            "health",
            "apply",
            "identity",
            "alert",
            "rollback",
            "traffic"
        ]
    );
    assert_eq!(json["entries"][3]["change"]["diff"]["source"], "computed");
}

#[test]
fn scenario_on_memory_store() {
    check_scenario(&MemoryStore::new());
}

#[test]
fn scenario_on_sqlite_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    check_scenario(&store);
}

#[test]
fn windows_select_events_and_empty_ranges_are_refused() {
    let store = MemoryStore::new();
    let start = common::march_15_scenario(&store);
    let late = keel_store::now_ms() + 60_000;
    store
        .append_event(
            NewEvent::new(kind::ALERT, "late alert")
                .at(late)
                .generation(1),
        )
        .expect("late alert");
    let before = Timeline::build(&store, Some(start), Some(late)).expect("before");
    assert_eq!(before.entries.len(), 8);
    assert!(before.entries.iter().all(|e| e.summary != "late alert"));
    let after = Timeline::build(&store, Some(late), None).expect("after");
    assert_eq!(after.entries.len(), 1);
    assert_eq!(
        after.since.as_deref(),
        Some(keel_store::rfc3339(late).as_str())
    );
    // The alert's cause is outside the window: the draft says so instead of guessing.
    let incident = after.incident.as_ref().expect("incident");
    assert!(incident.root_causes.is_empty() && incident.suspect().is_none());
    assert!(after.render_markdown().contains("widen `--since`"));
    let empty = Timeline::build(&store, Some(late + 1), None).expect("empty");
    assert!(empty.entries.is_empty() && empty.incident.is_none());
    assert!(empty.render_markdown().contains("No events were recorded"));
    let error = Timeline::build(&store, Some(10), Some(10))
        .err()
        .map(|e| e.to_string());
    assert!(error.is_some_and(|e| e.contains("empty")));
}

#[test]
fn resolved_alerts_do_not_open_an_incident() {
    let store = MemoryStore::new();
    store
        .record_apply(common::generation(common::SHOP_V1, "alice", "first"), true)
        .expect("apply");
    store
        .append_event(
            NewEvent::new(kind::ALERT, "share shift cleared")
                .generation(1)
                .details(json!({"state": "resolved"})),
        )
        .expect("event");
    let timeline = Timeline::build(&store, None, None).expect("timeline");
    assert!(timeline.incident.is_none());
    assert!(
        timeline
            .render_markdown()
            .starts_with("# Timeline: no alert in this window")
    );
}

#[test]
fn an_unattributed_alert_blames_the_last_change_and_reports_still_serving() {
    let store = MemoryStore::new();
    store
        .record_apply(common::generation(common::SHOP_V1, "alice", "first"), true)
        .expect("apply 1");
    store
        .record_apply(
            common::generation(&common::shop_v2(), "bob", "second"),
            true,
        )
        .expect("apply 2");
    store
        .record_rejection(common::generation("not toml [", "carol", "broken"))
        .expect("reject");
    store
        .append_event(NewEvent::new(kind::ALERT, "error rate jumped"))
        .expect("alert");
    let timeline = Timeline::build(&store, None, None).expect("timeline");
    let incident = timeline.incident.expect("incident");
    // The rejection is not a change: it never served.
    assert_eq!(incident.suspect(), Some(2));
    assert_eq!(
        incident.root_causes[0].reason,
        "the last change before the first alert"
    );
    assert_eq!(incident.root_causes.len(), 2);
    assert!(incident.still_serving && incident.rollback.is_none());
    let reject = timeline
        .entries
        .iter()
        .find(|e| e.kind == kind::REJECT)
        .and_then(|e| e.change.clone())
        .expect("reject change");
    // A rejection is compared with what was serving when it was refused.
    assert_eq!(reject.diff.source, DiffSource::Computed);
    assert!(
        reject.diff.text.starts_with("vs generation 2:"),
        "{}",
        reject.diff.text
    );
}

/// Issue 27 (3): a timeline that ends now opens with the alerts still open: those about the
/// generation that serves, raised since it became active, naming it.
#[test]
fn open_alerts_about_the_serving_generation_come_first() {
    let store = MemoryStore::new();
    store
        .record_apply(common::generation(common::SHOP_V1, "alice", "first"), true)
        .expect("apply 1");
    store
        .record_apply(
            common::generation(&common::shop_v2(), "bob", "second"),
            true,
        )
        .expect("apply 2");
    store
        .append_event(
            NewEvent::new(kind::ALERT, "identity: checkout answered by web")
                .generation(2)
                .details(serde_json::json!({"detector": "identity"})),
        )
        .expect("alert");
    let timeline = Timeline::build(&store, None, None).expect("timeline");
    assert_eq!(timeline.open_alerts.len(), 1);
    assert_eq!(timeline.open_alerts[0].generation, 2);
    let markdown = timeline.render_markdown();
    let open = markdown
        .find("## Open alerts")
        .expect("open alerts section");
    assert!(
        open < markdown.find("## Issue Summary").expect("summary"),
        "{markdown}"
    );
    assert!(
        markdown.contains("Generation 2 serves now and has 1 alert since it became active"),
        "{markdown}"
    );
    // After a rollback away from it, nothing about generation 2 is open any more.
    store
        .record_rollback(2, 1, "cli", "back")
        .expect("rollback");
    let after = Timeline::build(&store, None, None).expect("timeline");
    assert!(after.open_alerts.is_empty());
    assert!(!after.render_markdown().contains("## Open alerts"));
}
