//! The node canary in steps (`[fleet] rollout = { first = 1, then = 1, watch = STEP_WATCH }`)
//! on a real etcd with three in-process nodes: a good guarded apply reaches the applying
//! node, then one more node per step, each step watched for `watch` before the next, and the
//! last step's clean watch promotes it; a misroute that passes a quiet first canary is
//! caught by the guard of the node of the second step, and every node that had it (the
//! first canary too) goes back, while the third never serves it.

mod support;

use std::time::{Duration, Instant};

use keel_control::ApplyStatus;
use keel_fleet::{FLEET_FOLLOW_EVENT, RolloutStep};
use keel_store::{EventQuery, GenerationState, Store};
use keel_testkit::{Backend, Etcd, eventually, free_addr};
use support::{
    CONVERGE_WITHIN, TestNode, converged, load_on, node_keys_with_steps, rollout_of, routing,
};

/// Each step's watch in these tests (the default is 30 s).
const STEP_WATCH: Duration = Duration::from_secs(2);
/// Bounded load on a node: 40 requests per second.
const LOAD_RPS: u32 = 40;
/// Longest the alarm test drives load and waits for the rollout to fail (60 seconds): a
/// bound for a slow machine, not a timing the test relies on.
const LOAD_AT_MOST: Duration = Duration::from_secs(60);
/// Slack for a node's status tick (`NODE_TICK`, 1 s) and a follow, when a test checks that a
/// node has not moved yet.
const EARLY: Duration = Duration::from_millis(300);

async fn three_nodes(
    etcd: &Etcd,
    dir: &std::path::Path,
    backends: &[std::net::SocketAddr],
) -> Vec<TestNode> {
    let watch = format!("{}s", STEP_WATCH.as_secs());
    let mut nodes = Vec::new();
    for name in ["lb-1", "lb-2", "lb-3"] {
        let text = format!(
            "{}{}",
            node_keys_with_steps(name, &etcd.endpoint(), free_addr(), free_addr(), &watch, 1),
            routing(backends, "one")
        );
        nodes.push(TestNode::start(name, &text, dir.join(name)).await);
    }
    nodes
}

/// `node` serves `generation` at every look until `until`.
async fn stays_on(node: &TestNode, generation: u64, until: Instant) {
    while Instant::now() < until {
        assert_eq!(
            node.serving(),
            Some(generation),
            "{} must not move before its step",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `node` serves `generation`; the time it took from `since`.
async fn reaches(node: &TestNode, generation: u64, since: Instant) -> Duration {
    eventually(CONVERGE_WITHIN, || async {
        (node.serving() == Some(generation)).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("{} serves generation {generation}", node.name));
    since.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_good_apply_reaches_one_more_node_per_step_each_watched() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let one = Backend::new("web").start().await;
    let two = Backend::new("web").start().await;
    let nodes = three_nodes(&etcd, dir.path(), &[one]).await;
    let refs: Vec<&TestNode> = nodes.iter().collect();
    assert!(converged(&refs, 1).await, "generation 1 everywhere");
    let load = load_on(LOAD_RPS, &nodes[0], STEP_WATCH * 4 + Duration::from_secs(4));
    tokio::time::sleep(Duration::from_millis(800)).await;

    let started = Instant::now();
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
    let rollout = rollout_of(&nodes[1].store).await.expect("a rollout");
    assert_eq!(
        (rollout.canaries.clone(), rollout.batch),
        (vec!["lb-1".to_string()], Some(1)),
        "{rollout:?}"
    );

    // Step 1: lb-1 alone for the watch; lb-2 and lb-3 stay on generation 1.
    stays_on(&nodes[2], 1, started + STEP_WATCH - EARLY).await;
    assert_eq!(nodes[1].serving(), Some(1), "lb-2 waits for lb-1's watch");
    // Step 2: lb-2 follows it (with its guard); lb-3 still waits a whole watch.
    let second = reaches(&nodes[1], generation, started).await;
    let second_at = Instant::now();
    assert!(second >= STEP_WATCH, "{second:?}");
    let rollout = rollout_of(&nodes[1].store).await.expect("a rollout");
    assert_eq!(rollout.step, RolloutStep::Canary, "{rollout:?}");
    assert_eq!(rollout.canaries, vec!["lb-1".to_string(), "lb-2".into()]);
    stays_on(&nodes[2], 1, second_at + STEP_WATCH - EARLY).await;
    // Step 3 and the promotion: every node serves it, and it is the fleet's.
    let third = reaches(&nodes[2], generation, started).await;
    assert!(
        third >= second + STEP_WATCH - EARLY,
        "{second:?} then {third:?}"
    );
    let promoted = eventually(CONVERGE_WITHIN, || async {
        rollout_of(&nodes[0].store)
            .await
            .filter(|r| r.step == RolloutStep::Promoted)
    })
    .await
    .expect("the last step's clean watch promotes");
    assert_eq!(
        promoted.clean,
        vec!["lb-1".to_string(), "lb-2".into(), "lb-3".into()]
    );
    let active = nodes[2].store.active().expect("etcd").expect("active");
    assert_eq!(active.id, generation);
    assert!(converged(&refs, generation).await);
    eprintln!(
        "rollout in steps of 1 (watch {} ms): lb-2 at {} ms, lb-3 at {} ms, promoted at {} ms",
        STEP_WATCH.as_millis(),
        second.as_millis(),
        third.as_millis(),
        started.elapsed().as_millis()
    );
    let report = load.await.expect("load task");
    assert_eq!(report.count(200), report.sent, "{report:?}");
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alarm_in_the_second_step_reverts_every_node_that_had_it() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let web = Backend::new("web").start().await;
    let api = Backend::new("api").start().await;
    let nodes = three_nodes(&etcd, dir.path(), &[web]).await;
    let refs: Vec<&TestNode> = nodes.iter().collect();
    assert!(converged(&refs, 1).await, "generation 1 everywhere");
    // Traffic on lb-2 only: the first canary is quiet, the second step's guard sees it. The
    // load runs until the rollout has failed (however slow the machine), then stops.
    let load = load_on(LOAD_RPS, &nodes[1], LOAD_AT_MOST);
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

    // Waited on as conditions, not times: lb-2 may serve the candidate for less than a
    // poll before its guard reverts it, so what it did is read from the fleet's records.
    let failed = eventually(LOAD_AT_MOST, || async {
        rollout_of(&nodes[2].store)
            .await
            .filter(|r| r.generation == generation && r.step == RolloutStep::Failed)
    })
    .await
    .expect("lb-2's guard fails the rollout");
    load.abort();
    assert!(
        failed
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("identity")),
        "{failed:?}"
    );
    assert_eq!(
        failed.canaries,
        vec!["lb-1".to_string(), "lb-2".into()],
        "the second step was lb-2, and there was no third: {failed:?}"
    );
    let events = {
        let store = nodes[2].store.clone();
        tokio::task::spawn_blocking(move || store.events(EventQuery::default()))
            .await
            .expect("task")
            .expect("etcd answers")
    };
    let by = |kind: &str, node: &str| {
        events.iter().any(|e| {
            e.kind == kind
                && e.generation == Some(generation)
                && e.details.get("node").and_then(|n| n.as_str()) == Some(node)
        })
    };
    assert!(
        by(FLEET_FOLLOW_EVENT, "lb-2"),
        "lb-2 served the candidate as its step's canary"
    );
    // A rollback's event names the generation it went to; the one it left is `from`.
    let reverted_by_lb2 = events.iter().any(|e| {
        e.kind == "rollback"
            && e.details.get("from").and_then(serde_json::Value::as_u64) == Some(generation)
            && e.details.get("node").and_then(|n| n.as_str()) == Some("lb-2")
    });
    assert!(reverted_by_lb2, "lb-2's guard reverted it");
    assert!(
        !by(FLEET_FOLLOW_EVENT, "lb-3"),
        "lb-3 never served the candidate"
    );
    assert!(
        converged(&refs, 1).await,
        "lb-2 and the first canary lb-1 are back on generation 1: {:?}",
        nodes.iter().map(TestNode::serving).collect::<Vec<_>>()
    );
    let record = nodes[2]
        .store
        .generation(generation)
        .expect("etcd")
        .expect("recorded");
    assert_eq!(record.state, GenerationState::RolledBack);
    // lb-3 never had it, for a whole step's watch after the failure and then some.
    stays_on(
        &nodes[2],
        1,
        Instant::now() + STEP_WATCH + Duration::from_secs(1),
    )
    .await;
    let active = nodes[2].store.active().expect("etcd").expect("active");
    assert_eq!(active.id, 1);
    for node in nodes {
        node.stop().await;
    }
}
