//! The node canary with more than one canary node (`[fleet] rollout = { first = 2, then =
//! "all" }`) on a real etcd with three in-process nodes: a guarded apply on lb-1 serves on
//! lb-1 and lb-2 (the applying node, then the first other live node by name) and lb-3
//! waits. Clean, both canaries must record their clean watch before lb-3 follows; with a
//! misroute, one canary's alarm (lb-2's: only it has traffic) fails the rollout and both
//! canaries go back, while lb-3 never serves it.

mod support;

use std::time::{Duration, Instant};

use keel_control::ApplyStatus;
use keel_fleet::{FLEET_FOLLOW_EVENT, RolloutStep};
use keel_store::{EventQuery, EventRecord, GenerationState, Store};
use keel_testkit::{Backend, Etcd, eventually, free_addr};
use support::{TestNode, converged, load_on, node_keys_with_canaries, rollout_of, routing};

/// The canaries' watch in these tests (the default is 30 s).
const WATCH: Duration = Duration::from_secs(2);
/// Bounded load: 40 requests per second.
const LOAD_RPS: u32 = 40;
/// Longest a test drives load and waits for the rollout's end (60 seconds): a bound for a
/// slow machine, not a timing the test relies on.
const AT_MOST: Duration = Duration::from_secs(60);

async fn three_nodes(
    etcd: &Etcd,
    dir: &std::path::Path,
    backends: &[std::net::SocketAddr],
) -> Vec<TestNode> {
    let watch = format!("{}s", WATCH.as_secs());
    let mut nodes = Vec::new();
    for name in ["lb-1", "lb-2", "lb-3"] {
        let text = format!(
            "{}{}",
            node_keys_with_canaries(name, &etcd.endpoint(), free_addr(), free_addr(), &watch, 2),
            routing(backends, "one")
        );
        nodes.push(TestNode::start(name, &text, dir.join(name)).await);
    }
    nodes
}

async fn events(node: &TestNode) -> Vec<EventRecord> {
    let store = node.store.clone();
    tokio::task::spawn_blocking(move || store.events(EventQuery::default()))
        .await
        .expect("task")
        .expect("etcd answers")
}

/// Whether `events` hold one of `kind` for `generation` written by `node`.
fn by(events: &[EventRecord], kind: &str, generation: u64, node: &str) -> bool {
    events.iter().any(|e| {
        e.kind == kind
            && e.generation == Some(generation)
            && e.details.get("node").and_then(|n| n.as_str()) == Some(node)
    })
}

/// Whether `node` recorded a rollback from `generation` (a rollback's event names the
/// generation it went to; the one it left is `details.from`).
fn rolled_back_by(events: &[EventRecord], generation: u64, node: &str) -> bool {
    events.iter().any(|e| {
        e.kind == "rollback"
            && e.details.get("from").and_then(serde_json::Value::as_u64) == Some(generation)
            && e.details.get("node").and_then(|n| n.as_str()) == Some(node)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_canaries_both_watch_it_clean_before_the_third_follows() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let one = Backend::new("web").start().await;
    let two = Backend::new("web").start().await;
    let nodes = three_nodes(&etcd, dir.path(), &[one]).await;
    let refs: Vec<&TestNode> = nodes.iter().collect();
    assert!(converged(&refs, 1).await, "generation 1 everywhere");
    let load = load_on(LOAD_RPS, &nodes[0], AT_MOST);
    tokio::time::sleep(Duration::from_millis(800)).await;

    let text = format!("{}{}", nodes[0].own_keys(), routing(&[one, two], "two"));
    let outcome = nodes[0]
        .apply_guarded(text, false)
        .await
        .expect("the control plane answers");
    assert_eq!(
        outcome.status,
        ApplyStatus::Applied,
        "{:?}",
        outcome.refusals
    );
    let generation = outcome.generation.expect("a generation");
    let applied = Instant::now();
    let rollout = rollout_of(&nodes[2].store).await.expect("a rollout");
    assert_eq!(
        rollout.canaries,
        vec!["lb-1".to_string(), "lb-2".into()],
        "the applying node, then the first other live node by name: {rollout:?}"
    );
    // Both canaries serve it (lb-2 follows the candidate with its guard); lb-3 does not.
    assert!(
        converged(&[&nodes[0], &nodes[1]], generation).await,
        "both canaries serve it"
    );
    let fleet = nodes[2]
        .store
        .fleet_active()
        .expect("etcd")
        .map(|(id, _)| id);
    assert_eq!(
        fleet,
        Some(1),
        "the fleet's pointer waits for both canaries"
    );
    // Promoted only when both recorded a clean watch; then lb-3 follows.
    let promoted = eventually(AT_MOST, || async {
        rollout_of(&nodes[2].store)
            .await
            .filter(|r| r.step == RolloutStep::Promoted)
    })
    .await
    .expect("the canaries' clean watches promote it");
    let mut clean = promoted.clean.clone();
    clean.sort();
    assert_eq!(
        clean,
        vec!["lb-1".to_string(), "lb-2".into()],
        "{promoted:?}"
    );
    assert!(applied.elapsed() >= WATCH, "not before the watch");
    assert!(
        converged(&refs, generation).await,
        "lb-3 follows the promotion"
    );
    let events = events(&nodes[2]).await;
    assert!(
        by(&events, FLEET_FOLLOW_EVENT, generation, "lb-2"),
        "lb-2 served it as a canary"
    );
    load.abort();
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_canarys_alarm_reverts_both_canaries_and_the_third_never_moves() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let web = Backend::new("web").start().await;
    let api = Backend::new("api").start().await;
    let nodes = three_nodes(&etcd, dir.path(), &[web]).await;
    let refs: Vec<&TestNode> = nodes.iter().collect();
    assert!(converged(&refs, 1).await, "generation 1 everywhere");
    // Traffic on lb-2 only: lb-1 stays quiet, the alarm is lb-2's.
    let load = load_on(LOAD_RPS, &nodes[1], AT_MOST);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let misrouted = routing(&[api], "misrouted").replace(
        "health = { path = \"/healthz\", interval = \"200ms\" }\n",
        "",
    );
    let text = format!("{}{}", nodes[0].own_keys(), misrouted);
    let outcome = nodes[0]
        .apply_guarded(text, true)
        .await
        .expect("the control plane answers");
    assert_eq!(
        outcome.status,
        ApplyStatus::Applied,
        "{:?}",
        outcome.refusals
    );
    let generation = outcome.generation.expect("a generation");

    let failed = eventually(AT_MOST, || async {
        rollout_of(&nodes[2].store)
            .await
            .filter(|r| r.generation == generation && r.step == RolloutStep::Failed)
    })
    .await
    .expect("lb-2's guard fails the rollout");
    load.abort();
    assert_eq!(
        failed.canaries,
        vec!["lb-1".to_string(), "lb-2".into()],
        "{failed:?}"
    );
    assert!(
        failed
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("identity")),
        "{failed:?}"
    );
    let events = events(&nodes[2]).await;
    assert!(
        by(&events, FLEET_FOLLOW_EVENT, generation, "lb-2"),
        "lb-2 served it"
    );
    assert!(
        rolled_back_by(&events, generation, "lb-2"),
        "lb-2's guard reverted it"
    );
    assert!(
        !by(&events, FLEET_FOLLOW_EVENT, generation, "lb-3"),
        "lb-3 never served it"
    );
    assert!(
        converged(&refs, 1).await,
        "both canaries are back on generation 1: {:?}",
        nodes.iter().map(TestNode::serving).collect::<Vec<_>>()
    );
    let record = nodes[2]
        .store
        .generation(generation)
        .expect("etcd")
        .expect("recorded");
    assert_eq!(record.state, GenerationState::RolledBack);
    // lb-3 stays on generation 1 for a whole watch after the failure and then some.
    let until = Instant::now() + WATCH + Duration::from_secs(1);
    while Instant::now() < until {
        assert_eq!(nodes[2].serving(), Some(1), "lb-3 never serves it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        nodes[2]
            .store
            .fleet_active()
            .expect("etcd")
            .map(|(id, _)| id),
        Some(1)
    );
    for node in nodes {
        node.stop().await;
    }
}
