//! Fleet mode on a real etcd (`/usr/bin/etcd`, started per test on loopback ports): three
//! in-process nodes converge on an apply sent to any of them with zero failed requests under
//! a bounded load; two concurrent applies, one wins and the loser is told which; a node
//! restarted without etcd serves its last generation; a node cut off from etcd keeps
//! serving, rolls back locally and reports drift instead of flipping back.

mod support;

use std::time::Duration;

use keel_control::{ApplyStatus, RollbackRequest};
use keel_store::{EventQuery, Store};
use keel_testkit::{Backend, Etcd, eventually};
use support::{
    CONVERGE_WITHIN, TestNode, applied_generation, converged, fleet_of_three, get, load_on,
    routing, three_nodes,
};

/// Bounded load during an apply: 50 requests per second for 4 seconds per node.
const LOAD_RPS: u32 = 50;
const LOAD_FOR: Duration = Duration::from_secs(4);

/// Applies `text` on `node` (after a little traffic) and returns the generation it became.
async fn applied(node: &TestNode, text: String) -> u64 {
    warm(node).await;
    let outcome = node.apply(text).await.expect("the control plane answers");
    applied_generation(&outcome)
}

/// Sends `node` a little traffic: the gate's evidence for the next apply.
async fn warm(node: &TestNode) {
    let addr = node.listen;
    let report = keel_testkit::sequential(20, |_| {
        http::Request::get(format!("http://{addr}/"))
            .header("host", "shop.example")
            .body(http_body_util::Empty::new())
            .expect("request")
    })
    .await;
    assert_eq!(report.count(200), 20, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_apply_to_any_node_converges_on_all_three_with_no_failed_request() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let one = Backend::new("web").start().await;
    let two = Backend::new("web").start().await;
    let nodes = three_nodes(&etcd, "", dir.path(), &[one]).await;
    let refs: Vec<&TestNode> = nodes.iter().collect();
    assert!(
        converged(&refs, 1).await,
        "the first node's file is the fleet's generation 1 everywhere"
    );

    // Load on every node while node 2 applies a second backend and a new marker.
    let loads: Vec<_> = nodes
        .iter()
        .map(|n| load_on(LOAD_RPS, n, LOAD_FOR))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = format!("{}{}", nodes[1].own_keys(), routing(&[one, two], "two"));
    let outcome = nodes[1]
        .apply(text)
        .await
        .expect("the control plane answers");
    let generation = applied_generation(&outcome);
    assert!(
        converged(&refs, generation).await,
        "every node serves generation {generation}"
    );
    for (node, load) in nodes.iter().zip(loads) {
        let report = load.await.expect("load task");
        assert_eq!(report.transport_errors, 0, "{}: {report:?}", node.name);
        assert_eq!(report.count(200), report.sent, "{}: {report:?}", node.name);
    }
    // Each node kept its own listener: a generation applied on lb-2 moved no socket.
    for node in &nodes {
        assert_eq!(
            get(node.listen).await,
            Some((200, Some(generation))),
            "{}",
            node.name
        );
    }
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_applies_one_wins_and_the_loser_names_the_winner() {
    let one = Backend::new("web").start().await;
    let Some((_etcd, _dir, nodes)) = fleet_of_three("", &[one]).await else {
        return;
    };
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let a = format!("{}{}", nodes[0].own_keys(), routing(&[one], "a"));
    let c = format!("{}{}", nodes[2].own_keys(), routing(&[one], "c"));
    warm(&nodes[0]).await;
    warm(&nodes[2]).await;
    let (a, c) = tokio::join!(nodes[0].apply(a), nodes[2].apply(c));
    let fleet = nodes[1].store.active().expect("store").expect("active");
    match (a, c) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => {
            assert_eq!(won.status, ApplyStatus::Applied, "{won:?}");
            assert_eq!(won.generation, Some(fleet.id));
            let message = lost.to_string();
            assert!(
                message.contains(&format!("generation {} ", fleet.id))
                    && message.contains("nothing was recorded"),
                "the loser names the winner: {message}"
            );
        }
        (Ok(first), Ok(second)) => {
            assert_eq!(
                (first.status, second.status),
                (ApplyStatus::Applied, ApplyStatus::Applied)
            );
            // The second began after the first had been followed: sequential, not a race.
            let (early, late) = if first.generation < second.generation {
                (first, second)
            } else {
                (second, first)
            };
            assert_eq!(
                late.previous, early.generation,
                "the later apply saw the earlier one"
            );
            assert_eq!(late.generation, Some(fleet.id));
        }
        (Err(a), Err(c)) => panic!("both applies failed: {a} / {c}"),
    }
    assert!(
        converged(&refs, fleet.id).await,
        "all nodes serve the winner {}",
        fleet.id
    );
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_restarted_without_etcd_serves_its_last_generation() {
    let one = Backend::new("web").start().await;
    let two = Backend::new("web").start().await;
    let Some((mut etcd, _dir, nodes)) = fleet_of_three("", &[one]).await else {
        return;
    };
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let text = format!("{}{}", nodes[0].own_keys(), routing(&[one, two], "two"));
    let generation = applied(&nodes[0], text).await;
    assert!(converged(&refs, generation).await);

    let mut nodes = nodes;
    let third = nodes.pop().expect("lb-3");
    let (file, state_dir, listen) = (third.file.clone(), third.state_dir.clone(), third.listen);
    third.stop().await;
    etcd.stop();
    let own = std::fs::read_to_string(&file).expect("file");
    let restarted = TestNode::start("lb-3", &own, state_dir).await;
    assert_eq!(
        restarted.serving(),
        Some(generation),
        "the local copy's generation, not the file's"
    );
    assert_eq!(get(listen).await, Some((200, Some(generation))));
    // The others kept serving through the outage too.
    for node in &nodes {
        assert_eq!(
            get(node.listen).await,
            Some((200, Some(generation))),
            "{}",
            node.name
        );
    }
    etcd.resume();
    restarted.stop().await;
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_rolls_back_locally_and_reports_drift_without_flipping() {
    let one = Backend::new("web").start().await;
    let two = Backend::new("web").start().await;
    let Some((mut etcd, _dir, nodes)) = fleet_of_three("", &[one]).await else {
        return;
    };
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let text = format!("{}{}", nodes[0].own_keys(), routing(&[one, two], "two"));
    let second = applied(&nodes[0], text).await;
    assert!(converged(&refs, second).await);

    etcd.stop();
    // lb-2 rolls back to generation 1 on its own (`keel rollback --local`): no etcd needed.
    let rollback = nodes[1]
        .controller
        .rollback(RollbackRequest {
            to: Some(1),
            author: "oncall".into(),
            reason: "etcd is down and lb-2 misbehaves".into(),
            origin: keel_store::origin::LOCAL.into(),
            force: true,
            ..RollbackRequest::default()
        })
        .await;
    let rollback = rollback.expect("the swap needs no store");
    assert!(!rollback.persisted, "a local rollback is not the fleet's");
    assert!(
        rollback
            .persist_error
            .as_deref()
            .is_some_and(|e| e.contains("local rollback")),
        "{rollback:?}"
    );
    assert_eq!(nodes[1].serving(), Some(1));
    assert_eq!(get(nodes[1].listen).await, Some((200, Some(1))));
    assert_eq!(get(nodes[0].listen).await, Some((200, Some(second))));

    etcd.resume();
    // Back online, lb-2 reports the divergence as drift and does not flip by itself.
    let drift = eventually(CONVERGE_WITHIN, || async {
        let store = nodes[0].store.clone();
        tokio::task::spawn_blocking(move || {
            store.events(EventQuery {
                kinds: vec![keel_fleet::FLEET_DRIFT_EVENT.into()],
                ..EventQuery::default()
            })
        })
        .await
        .ok()?
        .ok()?
        .into_iter()
        .find(|e| e.details["node"] == "lb-2")
    })
    .await;
    assert!(drift.is_some(), "a fleet-drift event names lb-2");
    // ... and a standing `fleet_drift` alert in lb-2's alert list and its /status.
    let watcher = nodes[1].controller.watcher().cloned().expect("a watcher");
    let alert = watcher
        .alerts()
        .standing(keel_watch::Detector::FleetDrift, "node lb-2")
        .expect("a standing fleet_drift alert");
    assert_eq!(alert.numbers["fleet"], second, "{alert:?}");
    assert!(
        nodes[1]
            .controller
            .status()
            .open_alerts
            .iter()
            .any(|a| a.detector == "fleet_drift"),
        "open in /status"
    );
    assert_eq!(
        nodes[1].serving(),
        Some(1),
        "no silent flip back to the fleet's generation"
    );
    let status = keel_fleet::fleet_status(&[etcd.endpoint()], support::PREFIX)
        .await
        .expect("status");
    let lb2 = status
        .iter()
        .find(|s| s.node == "lb-2")
        .expect("lb-2 is a member");
    assert_eq!(
        (lb2.generation, lb2.fleet_generation),
        (Some(1), Some(second))
    );
    assert!(lb2.lag_ms > 0, "{lb2:?}");

    // The fleet's next apply brings it back in step.
    let text = format!("{}{}", nodes[0].own_keys(), routing(&[one, two], "three"));
    let third = applied(&nodes[0], text).await;
    assert!(
        converged(&refs, third).await,
        "the next apply converges every node"
    );
    let cleared = eventually(CONVERGE_WITHIN, || async {
        watcher
            .alerts()
            .standing(keel_watch::Detector::FleetDrift, "node lb-2")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        cleared.is_some(),
        "the fleet_drift alert is cleared once lb-2 converged"
    );
    assert!(
        watcher
            .alerts()
            .recent(50)
            .iter()
            .any(|a| a.id == alert.id && a.cleared.is_some()),
        "kept in the log, stamped cleared"
    );
    for node in nodes {
        node.stop().await;
    }
}
