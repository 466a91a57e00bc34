//! The failure test of issue 25 on a real three-member etcd cluster (`/usr/bin/etcd` ×3 on
//! loopback ports the test chooses): etcd's leader is killed (SIGKILL) while an apply is in
//! flight. The apply either commits everywhere or nowhere: the fleet's active pointer is
//! the previous generation or the applied one, never anything half-written, and what the
//! operator was told agrees with it when it said "applied". The three Keel nodes keep
//! serving under a bounded load with no failed request, and once the killed member is back
//! every node serves the fleet's one active generation.
//!
//! The kill lands at several points of the apply (right away, a little later, later
//! still), one round each, on whichever member leads at that moment.

mod support;

use std::time::Duration;

use keel_control::ApplyStatus;
use keel_store::Store;
use keel_testkit::{Backend, EtcdCluster, eventually};
use support::{
    CONVERGE_WITHIN, THREE, TestNode, converged, get, leader, load_on, routing, start_nodes,
};

/// Bounded load on every node during a round: 40 requests per second for 5 seconds.
const LOAD_RPS: u32 = 40;
const LOAD_FOR: Duration = Duration::from_secs(5);
/// When, after the apply starts, the leader is killed: one round per delay.
const KILL_AFTER_MS: [u64; 3] = [0, 15, 60];

/// What the operator was told by the apply that raced the kill.
enum Told {
    Applied(u64),
    Refused(String),
    Failed(String),
}

impl std::fmt::Display for Told {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Told::Applied(generation) => write!(f, "applied as generation {generation}"),
            Told::Refused(why) => write!(f, "refused: {why}"),
            Told::Failed(error) => write!(f, "failed: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_leader_killed_during_an_apply_commits_everywhere_or_nowhere() {
    let Some(mut cluster) = EtcdCluster::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let one = Backend::new("web").start().await;
    let two = Backend::new("web").start().await;
    let endpoints = cluster.endpoints();
    let nodes = start_nodes(&THREE, &endpoints, "", dir.path(), &[one], "zero").await;
    let refs: Vec<&TestNode> = nodes.iter().collect();
    assert!(converged(&refs, 1).await, "generation 1 everywhere");

    let mut committed = 0;
    for (round, kill_after) in KILL_AFTER_MS.into_iter().enumerate() {
        let before = nodes[0]
            .store
            .active()
            .expect("the fleet's store answers")
            .expect("an active generation")
            .id;
        let killed = leader(&cluster).await.expect("the cluster has a leader");
        let loads: Vec<_> = nodes
            .iter()
            .map(|n| load_on(LOAD_RPS, n, LOAD_FOR))
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;

        // The apply goes to a node other than lb-1 in turn; the leader dies while it runs.
        let applier = &nodes[1 + round % 2];
        let marker = format!("round-{round}");
        let backends = if round % 2 == 0 {
            vec![one, two]
        } else {
            vec![one]
        };
        let text = format!("{}{}", applier.own_keys(), routing(&backends, &marker));
        let (outcome, ()) = tokio::join!(applier.apply(text), async {
            tokio::time::sleep(Duration::from_millis(kill_after)).await;
            cluster.kill(killed);
        });
        let told = match outcome {
            Ok(o) if o.status == ApplyStatus::Applied => {
                Told::Applied(o.generation.expect("an applied generation has an id"))
            }
            Ok(o) => Told::Refused(format!("{:?}: {:?}", o.status, o.refusals)),
            Err(e) => Told::Failed(e.to_string()),
        };

        // The two survivors elect a leader; the killed member comes back on its data.
        tokio::task::block_in_place(|| cluster.restart(killed));

        let fleet = eventually(CONVERGE_WITHIN, || async {
            let store = nodes[0].store.clone();
            tokio::task::spawn_blocking(move || store.active())
                .await
                .ok()?
                .ok()?
        })
        .await
        .expect("the recovered cluster answers with the fleet's active generation");
        eprintln!(
            "round {round}: leader m{killed} killed {kill_after} ms into the apply; told \"{told}\"; fleet active {} (was {before})",
            fleet.id
        );
        // Everywhere or nowhere: the previous generation, or the applied one whole.
        if fleet.id == before {
            assert!(
                !matches!(told, Told::Applied(_)),
                "round {round}: told applied, but the fleet still serves {before}"
            );
        } else {
            committed += 1;
            assert!(
                fleet.config_text.contains(&format!("\"{marker}\"")),
                "round {round}: the fleet's active generation {} is this round's apply",
                fleet.id
            );
            if let Told::Applied(generation) = told {
                assert_eq!(generation, fleet.id, "round {round}: told the generation");
            }
        }
        assert!(
            converged(&refs, fleet.id).await,
            "round {round}: every node serves the fleet's generation {}: {:?}",
            fleet.id,
            nodes.iter().map(TestNode::serving).collect::<Vec<_>>()
        );
        for (node, load) in nodes.iter().zip(loads) {
            let report = load.await.expect("load task");
            assert_eq!(
                report.transport_errors, 0,
                "round {round}, {}: {report:?}",
                node.name
            );
            assert_eq!(
                report.count(200),
                report.sent,
                "round {round}, {}: kept serving: {report:?}",
                node.name
            );
        }
        for node in &nodes {
            assert_eq!(
                get(node.listen).await,
                Some((200, Some(fleet.id))),
                "round {round}, {}",
                node.name
            );
        }
    }
    eprintln!("{committed} of {} applies committed", KILL_AFTER_MS.len());
    for node in nodes {
        node.stop().await;
    }
}
