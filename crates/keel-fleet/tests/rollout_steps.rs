//! The node canary in steps (`[fleet] rollout = { first = 1, then = 1, watch = STEP_WATCH }`)
//! on a real etcd with three in-process nodes: a good guarded apply reaches the applying
//! node, then one more node per step, each step watched for `watch` before the next, and the
//! last step's clean watch promotes it; a misroute that passes a quiet first canary is
//! caught by the guard of the node of the second step, and every node that had it (the
//! first canary too) goes back, while the third never serves it.

mod support;

use std::time::{Duration, Instant};

use keel_fleet::{FLEET_FOLLOW_EVENT, RolloutStep};
use keel_store::{GenerationState, Store};
use keel_testkit::{Backend, eventually};
use support::{
    CONVERGE_WITHIN, TestNode, applied_generation, apply_misroute, by, converged, events,
    fleet_of_three, load_on, recorded, rolled_back_by, rollout, rollout_of, rollout_reaches,
    routing, stay_on,
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

/// The `[fleet]` rollout line of these tests' nodes: one canary, then one more per step.
fn steps_of_one() -> String {
    rollout(1, "1", STEP_WATCH)
}

/// What a node that moved before its step was told to do.
const MUST_WAIT: &str = "must not move before its step";

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
    let one = Backend::new("web").start().await;
    let two = Backend::new("web").start().await;
    let Some((_etcd, _dir, nodes)) = fleet_of_three(&steps_of_one(), &[one]).await else {
        return;
    };
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let load = load_on(LOAD_RPS, &nodes[0], STEP_WATCH * 4 + Duration::from_secs(4));
    tokio::time::sleep(Duration::from_millis(800)).await;

    let started = Instant::now();
    let text = format!("{}{}", nodes[0].own_keys(), routing(&[one, two], "two"));
    let outcome = nodes[0]
        .apply_guarded(text, false)
        .await
        .expect("the control plane answers");
    let generation = applied_generation(&outcome);
    let rollout = rollout_of(&nodes[1].store).await.expect("a rollout");
    assert_eq!(
        (rollout.canaries.clone(), rollout.batch),
        (vec!["lb-1".to_string()], Some(1)),
        "{rollout:?}"
    );

    // Step 1: lb-1 alone for the watch; lb-2 and lb-3 stay on generation 1.
    stay_on(&[&nodes[2]], 1, started + STEP_WATCH - EARLY, MUST_WAIT).await;
    assert_eq!(nodes[1].serving(), Some(1), "lb-2 waits for lb-1's watch");
    // Step 2: lb-2 follows it (with its guard); lb-3 still waits a whole watch.
    let second = reaches(&nodes[1], generation, started).await;
    let second_at = Instant::now();
    assert!(second >= STEP_WATCH, "{second:?}");
    let rollout = rollout_of(&nodes[1].store).await.expect("a rollout");
    assert_eq!(rollout.step, RolloutStep::Canary, "{rollout:?}");
    assert_eq!(rollout.canaries, vec!["lb-1".to_string(), "lb-2".into()]);
    stay_on(&[&nodes[2]], 1, second_at + STEP_WATCH - EARLY, MUST_WAIT).await;
    // Step 3 and the promotion: every node serves it, and it is the fleet's.
    let third = reaches(&nodes[2], generation, started).await;
    assert!(
        third >= second + STEP_WATCH - EARLY,
        "{second:?} then {third:?}"
    );
    let promoted = rollout_reaches(&nodes[0], CONVERGE_WITHIN, None, RolloutStep::Promoted)
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
    let web = Backend::new("web").start().await;
    let api = Backend::new("api").start().await;
    let Some((_etcd, _dir, nodes)) = fleet_of_three(&steps_of_one(), &[web]).await else {
        return;
    };
    let refs: Vec<&TestNode> = nodes.iter().collect();
    // Traffic on lb-2 only: the first canary is quiet, the second step's guard sees it. The
    // load runs until the rollout has failed (however slow the machine), then stops.
    let load = load_on(LOAD_RPS, &nodes[1], LOAD_AT_MOST);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let generation = apply_misroute(&nodes[0], api).await;

    // Waited on as conditions, not times: lb-2 may serve the candidate for less than a
    // poll before its guard reverts it, so what it did is read from the fleet's records.
    let failed = rollout_reaches(
        &nodes[2],
        LOAD_AT_MOST,
        Some(generation),
        RolloutStep::Failed,
    )
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
    let events = events(&nodes[2], &[]).await;
    assert!(
        by(&events, FLEET_FOLLOW_EVENT, generation, "lb-2"),
        "lb-2 served the candidate as its step's canary"
    );
    assert!(
        rolled_back_by(&events, generation, "lb-2"),
        "lb-2's guard reverted it"
    );
    assert!(
        !by(&events, FLEET_FOLLOW_EVENT, generation, "lb-3"),
        "lb-3 never served the candidate"
    );
    assert!(
        converged(&refs, 1).await,
        "lb-2 and the first canary lb-1 are back on generation 1: {:?}",
        nodes.iter().map(TestNode::serving).collect::<Vec<_>>()
    );
    let record = recorded(&nodes[2], generation).await;
    assert_eq!(record.state, GenerationState::RolledBack);
    // lb-3 never had it, for a whole step's watch after the failure and then some.
    stay_on(
        &[&nodes[2]],
        1,
        Instant::now() + STEP_WATCH + Duration::from_secs(1),
        MUST_WAIT,
    )
    .await;
    let active = nodes[2].store.active().expect("etcd").expect("active");
    assert_eq!(active.id, 1);
    for node in nodes {
        node.stop().await;
    }
}
