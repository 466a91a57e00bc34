//! The node canary on a real etcd (`/usr/bin/etcd`, per test on loopback ports), three
//! in-process nodes with `[fleet] rollout = { first = 1, watch = ROLLOUT_WATCH }`: a good
//! guarded apply serves on the applying node first and reaches the others only after the
//! watch; a bad one (a forced identity misroute) is reverted by the canary's guard, the
//! rollout is recorded failed, and the other nodes never serve it; one that passes a quiet
//! canary is followed by the others with their guards, and a follower's alarm moves the
//! whole fleet back.

mod support;

use std::time::{Duration, Instant};

use keel_fleet::RolloutStep;
use keel_store::GenerationState;
use keel_testkit::{Backend, eventually};
use support::{
    CONVERGE_WITHIN, TestNode, applied_generation, apply_misroute, converged, events, fleet_active,
    fleet_of_three, load_on, misrouted, recorded, rollout, rollout_of, rollout_reaches, routing,
    stay_on,
};

/// The node canary's watch in these tests (the default is 30 s).
const ROLLOUT_WATCH: Duration = Duration::from_secs(3);
/// Bounded load on the canary while it is watched: 40 requests per second.
const LOAD_RPS: u32 = 40;
/// What a node that moved before its time was told to do.
const MUST_WAIT: &str = "must not move before the canary's watch ends";

/// The `[fleet]` rollout line of these tests' nodes: one canary, then all.
fn canary() -> String {
    rollout(1, "\"all\"", ROLLOUT_WATCH)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_good_apply_reaches_its_canary_first_and_the_others_after_the_watch() {
    let one = Backend::new("web").start().await;
    let two = Backend::new("web").start().await;
    let Some((_etcd, _dir, nodes)) = fleet_of_three(&canary(), &[one]).await else {
        return;
    };
    let refs: Vec<&TestNode> = nodes.iter().collect();
    // Evidence for the gate and the guard: traffic before and during the watch.
    let load = load_on(LOAD_RPS, &nodes[0], ROLLOUT_WATCH + Duration::from_secs(3));
    tokio::time::sleep(Duration::from_millis(800)).await;

    let started = Instant::now();
    let text = format!("{}{}", nodes[0].own_keys(), routing(&[one, two], "two"));
    let outcome = nodes[0]
        .apply_guarded(text, false)
        .await
        .expect("the control plane answers");
    let generation = applied_generation(&outcome);
    assert_eq!(nodes[0].serving(), Some(generation), "the canary serves it");
    let rollout = rollout_of(&nodes[1].store).await.expect("a rollout");
    assert_eq!(
        (rollout.generation, rollout.step, rollout.canaries.clone()),
        (generation, RolloutStep::Canary, vec!["lb-1".to_string()]),
        "{rollout:?}"
    );
    assert_eq!(fleet_active(&nodes[1].store).await, Some(1));
    let record = recorded(&nodes[2], generation).await;
    assert_eq!(record.state, GenerationState::Pending, "the candidate");
    // Another apply meanwhile would take the fleet from under the canary: refused, named.
    let other = format!("{}{}", nodes[1].own_keys(), routing(&[one], "other"));
    let refused = nodes[1].apply(other).await;
    let message = refused
        .expect_err("refused while the canary runs")
        .to_string();
    assert!(
        message.contains(&format!(
            "generation {generation} is on its node canary (lb-1)"
        )) && message.contains("nothing was recorded"),
        "{message}"
    );

    // Until the watch ends, lb-2 and lb-3 stay on generation 1.
    let watch_ends = started + ROLLOUT_WATCH - Duration::from_millis(300);
    stay_on(&[&nodes[1], &nodes[2]], 1, watch_ends, MUST_WAIT).await;
    assert!(
        converged(&refs, generation).await,
        "after the watch every node serves generation {generation}"
    );
    let all = started.elapsed();
    assert!(all >= ROLLOUT_WATCH, "{all:?}");
    eprintln!(
        "node canary: every node serves generation {generation} {} ms after the apply began (watch {} ms)",
        all.as_millis(),
        ROLLOUT_WATCH.as_millis()
    );
    let rollout = rollout_of(&nodes[1].store).await.expect("a rollout");
    assert_eq!(rollout.step, RolloutStep::Promoted, "{rollout:?}");
    assert_eq!(rollout.clean, vec!["lb-1".to_string()]);
    assert_eq!(fleet_active(&nodes[1].store).await, Some(generation));
    let promoted = events(&nodes[2], &["promote"]).await;
    assert!(
        promoted.iter().any(|e| e.generation == Some(generation)
            && e.details["origin"] == keel_fleet::ROLLOUT_ORIGIN
            && e.details["node"] == "lb-1"),
        "{promoted:?}"
    );
    let report = load.await.expect("load task");
    assert_eq!(report.transport_errors, 0, "{report:?}");
    assert_eq!(report.count(200), report.sent, "{report:?}");
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_apply_is_reverted_on_its_canary_and_never_reaches_the_others() {
    let web = Backend::new("web").start().await;
    // A backend that answers as another application: the March-15 misroute.
    let api = Backend::new("api").start().await;
    let Some((_etcd, _dir, nodes)) = fleet_of_three(&canary(), &[web]).await else {
        return;
    };
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let load = load_on(LOAD_RPS, &nodes[0], ROLLOUT_WATCH + Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(800)).await;

    let started = Instant::now();
    // No health check on the new pool: only the responses' identity gives it away.
    let misrouted = misrouted(&[api]);
    assert!(!misrouted.contains("health"), "{misrouted}");
    let generation = apply_misroute(&nodes[0], api).await;

    // The canary's guard reverts it; its rollback records the rollout failed.
    let reverted = eventually(CONVERGE_WITHIN, || async {
        (nodes[0].serving() == Some(1)).then_some(())
    })
    .await;
    assert!(reverted.is_some(), "lb-1 is back on generation 1");
    let failed = rollout_reaches(
        &nodes[1],
        CONVERGE_WITHIN,
        Some(generation),
        RolloutStep::Failed,
    )
    .await
    .expect("the rollout is recorded failed");
    assert!(
        failed
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("identity detector")),
        "{failed:?}"
    );
    let record = recorded(&nodes[2], generation).await;
    assert_eq!(record.state, GenerationState::RolledBack);

    // Past the watch and then some, lb-2 and lb-3 never served it.
    stay_on(
        &[&nodes[1], &nodes[2]],
        1,
        started + ROLLOUT_WATCH + Duration::from_secs(2),
        MUST_WAIT,
    )
    .await;
    assert_eq!(fleet_active(&nodes[1].store).await, Some(1));
    let _ = load.await;
    // A new apply is not blocked by the failed rollout (after a little traffic for its gate).
    let report = load_on(LOAD_RPS, &nodes[1], Duration::from_millis(500))
        .await
        .expect("load");
    assert_eq!(report.count(200), report.sent, "{report:?}");
    let text = format!("{}{}", nodes[1].own_keys(), routing(&[web], "fixed"));
    let outcome = nodes[1]
        .apply(text)
        .await
        .expect("the control plane answers");
    let fixed = applied_generation(&outcome);
    assert!(
        converged(&refs, fixed).await,
        "--no-guard: every node at once"
    );
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_the_promotion_an_alarm_on_a_follower_reverts_the_whole_fleet() {
    let web = Backend::new("web").start().await;
    let api = Backend::new("api").start().await;
    let Some((_etcd, _dir, nodes)) = fleet_of_three(&canary(), &[web]).await else {
        return;
    };
    let refs: Vec<&TestNode> = nodes.iter().collect();
    // Traffic on the followers only: the canary lb-1 sees none, so its watch passes clean
    // and the misroute is promoted; the followers' guards are the ones that can catch it.
    let long = ROLLOUT_WATCH * 3 + Duration::from_secs(6);
    let loads = [
        load_on(LOAD_RPS, &nodes[1], long),
        load_on(LOAD_RPS, &nodes[2], long),
    ];
    tokio::time::sleep(Duration::from_millis(800)).await;
    let generation = apply_misroute(&nodes[0], api).await;
    let promoted = rollout_reaches(
        &nodes[1],
        CONVERGE_WITHIN,
        Some(generation),
        RolloutStep::Promoted,
    )
    .await;
    assert!(promoted.is_some(), "the quiet canary promotes it");

    // A follower serves it under load, its guard reverts it, and the revert is the fleet's.
    let back = eventually(CONVERGE_WITHIN, || async {
        (fleet_active(&nodes[1].store).await == Some(1)).then_some(())
    })
    .await;
    assert!(
        back.is_some(),
        "a follower's guard moved the fleet back to generation 1"
    );
    assert!(
        converged(&refs, 1).await,
        "every node, the canary too, serves generation 1 again: {:?}",
        nodes.iter().map(TestNode::serving).collect::<Vec<_>>()
    );
    let record = recorded(&nodes[0], generation).await;
    assert_eq!(record.state, GenerationState::RolledBack);
    let rollbacks = events(&nodes[0], &["rollback"]).await;
    let by = rollbacks
        .iter()
        .find(|e| e.generation == Some(generation) || e.details["from"] == generation)
        .map(|e| e.details["node"].clone());
    assert!(
        by.as_ref().is_some_and(|n| n == "lb-2" || n == "lb-3"),
        "the revert was a follower's: {rollbacks:?}"
    );
    for load in loads {
        let _ = load.await;
    }
    for node in nodes {
        node.stop().await;
    }
}
