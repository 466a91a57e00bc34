//! The node canary with more than one canary node (`[fleet] rollout = { first = 2, then =
//! "all" }`) on a real etcd with three in-process nodes: a guarded apply on lb-1 serves on
//! lb-1 and lb-2 (the applying node, then the first other live node by name) and lb-3
//! waits. Clean, both canaries must record their clean watch before lb-3 follows; with a
//! misroute, one canary's alarm (lb-2's: only it has traffic) fails the rollout and both
//! canaries go back, while lb-3 never serves it.

mod support;

use std::time::{Duration, Instant};

use keel_fleet::{FLEET_FOLLOW_EVENT, RolloutStep};
use keel_store::GenerationState;
use keel_testkit::Backend;
use support::{
    TestNode, applied_generation, apply_misroute, by, converged, events, fleet_active,
    fleet_of_three, load_on, recorded, rolled_back_by, rollout, rollout_of, rollout_reaches,
    routing, stay_on,
};

/// The canaries' watch in these tests (the default is 30 s).
const WATCH: Duration = Duration::from_secs(2);
/// Bounded load: 40 requests per second.
const LOAD_RPS: u32 = 40;
/// Longest a test drives load and waits for the rollout's end (60 seconds): a bound for a
/// slow machine, not a timing the test relies on.
const AT_MOST: Duration = Duration::from_secs(60);

/// The `[fleet]` rollout line of these tests' nodes: two canaries, then all.
fn two_canaries() -> String {
    rollout(2, "\"all\"", WATCH)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_canaries_both_watch_it_clean_before_the_third_follows() {
    let one = Backend::new("web").start().await;
    let two = Backend::new("web").start().await;
    let Some((_etcd, _dir, nodes)) = fleet_of_three(&two_canaries(), &[one]).await else {
        return;
    };
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let load = load_on(LOAD_RPS, &nodes[0], AT_MOST);
    tokio::time::sleep(Duration::from_millis(800)).await;

    let text = format!("{}{}", nodes[0].own_keys(), routing(&[one, two], "two"));
    let outcome = nodes[0]
        .apply_guarded(text, false)
        .await
        .expect("the control plane answers");
    let generation = applied_generation(&outcome);
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
    let fleet = fleet_active(&nodes[2].store).await;
    assert_eq!(
        fleet,
        Some(1),
        "the fleet's pointer waits for both canaries"
    );
    // Promoted only when both recorded a clean watch; then lb-3 follows.
    let promoted = rollout_reaches(&nodes[2], AT_MOST, None, RolloutStep::Promoted)
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
    let events = events(&nodes[2], &[]).await;
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
    let web = Backend::new("web").start().await;
    let api = Backend::new("api").start().await;
    let Some((_etcd, _dir, nodes)) = fleet_of_three(&two_canaries(), &[web]).await else {
        return;
    };
    let refs: Vec<&TestNode> = nodes.iter().collect();
    // Traffic on lb-2 only: lb-1 stays quiet, the alarm is lb-2's.
    let load = load_on(LOAD_RPS, &nodes[1], AT_MOST);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let generation = apply_misroute(&nodes[0], api).await;

    let failed = rollout_reaches(&nodes[2], AT_MOST, Some(generation), RolloutStep::Failed)
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
    let events = events(&nodes[2], &[]).await;
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
    let record = recorded(&nodes[2], generation).await;
    assert_eq!(record.state, GenerationState::RolledBack);
    // lb-3 stays on generation 1 for a whole watch after the failure and then some.
    let until = Instant::now() + WATCH + Duration::from_secs(1);
    stay_on(&[&nodes[2]], 1, until, "never serves it").await;
    assert_eq!(fleet_active(&nodes[2].store).await, Some(1));
    for node in nodes {
        node.stop().await;
    }
}
