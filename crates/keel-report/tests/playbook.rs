//! The playbook: rollback targets and well-formed, extractable rollback commands, verification
//! steps, recent changes, live states, and both renderings.

mod common;

use keel_report::{BackendHealth, LiveStates, LiveView, Playbook, ROLLBACK_MARKER, TargetReason};
use keel_store::{MemoryStore, SqliteStore, Store};

const ADMIN: &str = "http://127.0.0.1:9901";

/// Apply 1 and 2 (both known-good), 3 (active), 4 (rolled back to 3).
fn history(store: &dyn Store) {
    store
        .record_apply(common::generation(common::SHOP_V1, "alice", "first"), true)
        .expect("1");
    store.mark_known_good(1).expect("kg 1");
    store
        .record_apply(
            common::generation(&common::shop_v2(), "bob", "second"),
            true,
        )
        .expect("2");
    store.mark_known_good(2).expect("kg 2");
    let third = common::SHOP_V1.replace("weight = 2", "weight = 3");
    store
        .record_apply(
            common::generation(&third, "carol", "third <script>alert(1)</script>"),
            true,
        )
        .expect("3");
    store
        .record_apply(
            common::generation(&common::shop_v2(), "dave", "fourth"),
            true,
        )
        .expect("4");
    store
        .record_rollback(4, 3, "guard", "identity alert")
        .expect("rollback");
}

/// The commands in the Markdown, found by their marker as a script would find them.
fn extract_commands(markdown: &str) -> Vec<(u64, String)> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix(ROLLBACK_MARKER) {
            assert_eq!(lines[i - 1], "```sh", "the marker opens its own sh block");
            assert_eq!(lines[i + 2], "```", "one command per block");
            let to = rest
                .trim()
                .strip_prefix("to=")
                .and_then(|n| n.parse().ok())
                .expect("to=N");
            found.push((to, lines[i + 1].to_owned()));
        }
    }
    found
}

fn check_history(store: &dyn Store) {
    history(store);
    let live = LiveView::Unknown {
        reason: "admin API not reachable at http://127.0.0.1:9901 (connection refused)".into(),
    };
    let playbook = Playbook::from_store(store, live, ADMIN).expect("playbook");
    assert_eq!(playbook.active.as_ref().map(|a| a.id), Some(3));
    let targets: Vec<(u64, TargetReason)> = playbook
        .targets
        .iter()
        .map(|t| (t.generation.id, t.reason))
        .collect();
    // Newest known-good first; 4 was rolled back (judged bad) and is never offered.
    assert_eq!(
        targets,
        [(2, TargetReason::KnownGood), (1, TargetReason::KnownGood)]
    );
    let commands = playbook.rollback_commands();
    assert_eq!(
        commands,
        [
            format!("keel rollback --to 2 --admin {ADMIN}"),
            format!("keel rollback --to 1 --admin {ADMIN}")
        ]
    );
    for (command, target) in commands.iter().zip(&playbook.targets) {
        let words: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(words.len(), 6, "{command}");
        assert_eq!(&words[..3], ["keel", "rollback", "--to"]);
        assert_eq!(words[3].parse::<u64>().ok(), Some(target.generation.id));
        assert_eq!(words[4..], ["--admin", ADMIN]);
    }

    let markdown = playbook.render_markdown(Some("playbook.svg"));
    let extracted = extract_commands(&markdown);
    assert_eq!(
        extracted,
        [(2, commands[0].clone()), (1, commands[1].clone())]
    );
    assert!(
        markdown.contains("backend states unknown: admin API not reachable"),
        "{markdown}"
    );
    assert!(markdown.contains("### Generation 2: newest known-good (recommended)"));
    assert!(markdown.contains("`keel_active_generation 2`"));
    assert!(markdown.contains("`keel_requests_total{generation=\"3\",…}` no longer rising"));
    assert!(markdown.contains("keel status --admin http://127.0.0.1:9901"));
    assert!(markdown.contains("curl -s -o /dev/null -D - -H 'host: shop.example.com' http://127.0.0.1:8080/ | grep -i x-keel-generation"));
    assert!(markdown.contains("`x-keel-generation: 2`"));
    assert!(markdown.contains("| 4 | ") && markdown.contains("rolled-back"));
    assert!(markdown.contains("| 1 | ") && markdown.contains("superseded, known-good"));
    assert!(!markdown.contains("<script>"), "messages are escaped");
    assert!(markdown.contains("```mermaid\nflowchart LR"));
    assert!(markdown.contains("![Topology of the active generation](playbook.svg)"));
    // Every backend is grey: the states are unknown.
    assert!(markdown.contains("classDef unknown"));
    assert!(!markdown.contains("classDef healthy"));

    let html = playbook.render_html().expect("html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg ") && !html.contains("<?xml"));
    assert!(html.contains(&format!(
        "data-keel-rollback-to=\"2\">{ROLLBACK_MARKER} to=2\n{}</code>",
        commands[0]
    )));
    assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
}

#[test]
fn targets_and_commands_on_memory_store() {
    check_history(&MemoryStore::new());
}

#[test]
fn targets_and_commands_on_sqlite_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    check_history(&SqliteStore::open(dir.path()).expect("open"));
}

#[test]
fn without_known_good_the_previous_generation_is_offered_and_urls_are_quoted() {
    let store = MemoryStore::new();
    store
        .record_apply(common::generation(common::SHOP_V1, "alice", "first"), true)
        .expect("1");
    store
        .record_apply(
            common::generation(&common::shop_v2(), "bob", "second"),
            true,
        )
        .expect("2");
    let admin = "http://127.0.0.1:9901/keel admin's";
    let playbook = Playbook::from_store(
        &store,
        LiveView::Unknown {
            reason: "offline".into(),
        },
        admin,
    )
    .expect("playbook");
    let targets: Vec<(u64, TargetReason)> = playbook
        .targets
        .iter()
        .map(|t| (t.generation.id, t.reason))
        .collect();
    assert_eq!(targets, [(1, TargetReason::PreviouslyServed)]);
    assert_eq!(
        playbook.rollback_commands(),
        [r"keel rollback --to 1 --force --admin 'http://127.0.0.1:9901/keel admin'\''s'"]
    );
    let markdown = playbook.render_markdown(None);
    assert!(
        markdown
            .contains("### Generation 1: served before the active one, never marked known-good")
    );
    assert_eq!(extract_commands(&markdown).len(), 1);
    assert!(!markdown.contains("![Topology"));
}

#[test]
fn live_states_colour_the_topology_and_disagreements_are_flagged() {
    let store = MemoryStore::new();
    history(&store);
    let mut states = LiveStates::new(format!("GET {ADMIN}/status"));
    states.active_generation = Some(4);
    states.insert("web", "127.0.0.1:9101", BackendHealth::Healthy);
    states.insert(
        "checkout-v2",
        "127.0.0.1:9002",
        BackendHealth::Misidentified,
    );
    let playbook = Playbook::from_store(&store, LiveView::Known(states), ADMIN).expect("playbook");
    let markdown = playbook.render_markdown(None);
    assert!(
        markdown
            .contains("backend states from GET http://127.0.0.1:9901/status (2 backends reported)")
    );
    assert!(markdown.contains("the admin API says generation 4 is active, the store says 3"));
    assert!(markdown.contains("classDef healthy") && markdown.contains("classDef misidentified"));
    let svg = playbook.topology_svg().expect("svg").expect("a topology");
    assert!(
        svg.contains(BackendHealth::Misidentified.fill())
            && svg.contains(BackendHealth::Healthy.fill())
    );
}

#[test]
fn an_empty_store_gives_a_playbook_that_says_so() {
    let store = MemoryStore::new();
    let playbook = Playbook::from_store(
        &store,
        LiveView::Unknown {
            reason: "offline".into(),
        },
        ADMIN,
    )
    .expect("playbook");
    assert!(playbook.rollback_commands().is_empty() && playbook.topology.is_none());
    let markdown = playbook.render_markdown(None);
    assert!(markdown.contains("Nothing has been applied yet"));
    assert!(markdown.contains("No generation can be rolled back to"));
    assert!(
        playbook
            .render_html()
            .expect("html")
            .contains("No active config.")
    );
}

#[test]
fn metrics_behind_the_token_get_the_header() {
    let store = MemoryStore::new();
    let text = format!(
        "[admin]\naddr = \"127.0.0.1:9901\"\nmetrics_require_token = true\n{}",
        common::SHOP_V1
    );
    store
        .record_apply(common::generation(&text, "alice", "first"), true)
        .expect("1");
    store
        .record_apply(
            common::generation(&text.replace("weight = 2", "weight = 5"), "bob", "second"),
            true,
        )
        .expect("2");
    let playbook = Playbook::from_store(
        &store,
        LiveView::Unknown {
            reason: "offline".into(),
        },
        ADMIN,
    )
    .expect("playbook");
    let metrics = playbook
        .verify
        .iter()
        .flat_map(|s| &s.commands)
        .find(|c| c.contains("/metrics"))
        .expect("metrics step");
    assert!(
        metrics.starts_with(
            "curl -s -H \"authorization: Bearer $KEEL_ADMIN_TOKEN\" http://127.0.0.1:9901/metrics"
        ),
        "{metrics}"
    );
}

/// Issue 27 (3): forced generations are marked, and the newest known-good generation that
/// is not active is the recommended target.
#[test]
fn forced_generations_are_marked_and_the_newest_known_good_is_recommended() {
    let store = MemoryStore::new();
    store
        .record_apply(common::generation(common::SHOP_V1, "alice", "first"), true)
        .expect("1");
    store.mark_known_good(1).expect("kg 1");
    let forced = keel_store::NewGeneration {
        forced: true,
        ..common::generation(&common::shop_v2(), "bob", "forced over the gate")
    };
    store.record_apply(forced, true).expect("2");
    store.mark_known_good(2).expect("kg 2");
    store
        .record_apply(
            common::generation(
                &common::SHOP_V1.replace("weight = 2", "weight = 3"),
                "carol",
                "third",
            ),
            true,
        )
        .expect("3");
    // Trying generation 1 by hand and going forward again leaves 2 the newest known-good
    // target behind the active one.
    store.record_rollback(3, 1, "cli", "try 1").expect("back");
    store.activate(3, "cli", "forward again").expect("forward");
    let playbook = Playbook::from_store(
        &store,
        LiveView::Unknown {
            reason: "offline".into(),
        },
        ADMIN,
    )
    .expect("playbook");
    assert_eq!(playbook.targets[0].generation.id, 2);
    assert_eq!(playbook.targets[0].reason, TargetReason::KnownGood);
    assert!(playbook.targets[0].generation.forced);
    let markdown = playbook.render_markdown(None);
    assert!(
        markdown.contains("### Generation 2, FORCED: newest known-good (recommended)"),
        "{markdown}"
    );
    assert!(
        markdown.contains("superseded, known-good, FORCED"),
        "{markdown}"
    );
    let html = playbook.render_html().expect("html");
    assert!(html.contains("Generation 2, FORCED"), "{html}");
}
