//! The store's failover over etcd endpoints (`crates/keel-fleet/src/etcd.rs`, `doubt.rs`):
//!
//! * On a real three-member cluster, the member every node lists first (the leader) is
//!   killed and an apply is sent at once: it goes to a live member and succeeds, and every
//!   node follows it (before, it failed with "tcp connect error" although two members
//!   lived).
//! * A store whose first endpoint is dead (nothing listens) writes through the next one on
//!   its very first call (before, "tcp connect error").
//! * On a real etcd behind a loopback TCP proxy that forwards an apply's transaction and
//!   then cuts the connection before etcd's answer comes back: the apply, run again on the
//!   direct endpoint, finds that its transaction committed and reports it, once: one
//!   generation, one id, one `apply` event (not a conflict with itself, nor a second
//!   generation).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use keel_control::ApplyStatus;
use keel_fleet::FleetStore;
use keel_store::{EventQuery, NewGeneration, Store};
use keel_testkit::{Backend, Etcd, EtcdCluster, free_addr};
use support::{PREFIX, TestNode, converged, leader, routing, start_nodes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_apply_right_after_a_member_dies_goes_to_a_live_one() {
    let Some(mut cluster) = EtcdCluster::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Backend::new("web").start().await;
    // Every node lists the leader first: its first attempt goes to the member that dies.
    let killed = leader(&cluster).await.expect("the cluster has a leader");
    let mut endpoints = vec![cluster.endpoint(killed)];
    endpoints.extend(
        (0..keel_testkit::ETCD_CLUSTER_MEMBERS)
            .filter(|i| *i != killed)
            .map(|i| cluster.endpoint(i)),
    );
    let nodes = start_nodes(
        &["lb-1", "lb-2"],
        &endpoints,
        "",
        dir.path(),
        &[backend],
        "zero",
    )
    .await;
    let refs: Vec<&TestNode> = nodes.iter().collect();
    assert!(converged(&refs, 1).await, "generation 1 everywhere");

    cluster.kill(killed);
    let applier = &nodes[1];
    for (round, marker) in ["after-the-kill", "and-again"].into_iter().enumerate() {
        let text = format!("{}{}", applier.own_keys(), routing(&[backend], marker));
        let outcome = applier.apply(text).await.expect("the apply answers");
        assert_eq!(
            outcome.status,
            ApplyStatus::Applied,
            "round {round}: applied on a live member: {:?}",
            outcome.refusals
        );
        let generation = outcome.generation.expect("an applied generation has an id");
        assert_eq!(generation, 2 + round as u64, "one generation per apply");
        assert!(
            converged(&refs, generation).await,
            "round {round}: every node follows generation {generation}: {:?}",
            nodes.iter().map(TestNode::serving).collect::<Vec<_>>()
        );
    }
    for node in nodes {
        node.stop().await;
    }
}

/// A TCP proxy to `upstream` that, once, forwards the first client chunk holding an
/// insert transaction (it names both the id counter and an event key) and then drops the
/// connection without passing etcd's answer back. Returns its address and the count of
/// transactions it cut.
async fn answer_losing_proxy(upstream: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cut = Arc::new(AtomicUsize::new(0));
    let armed = Arc::new(AtomicBool::new(true));
    let upstream = upstream.trim_start_matches("http://").to_string();
    let counter = cut.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, armed, cut) = (upstream.clone(), armed.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                relay(client, server, &armed, &cut).await;
            });
        }
    });
    (format!("http://{addr}"), cut)
}

async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    armed: &AtomicBool,
    cut: &AtomicUsize,
) {
    let (mut up, mut down) = ([0u8; 16384], [0u8; 16384]);
    let seq = format!("{PREFIX}/seq");
    let events = format!("{PREFIX}/events/");
    loop {
        tokio::select! {
            read = client.read(&mut up) => {
                let Ok(n @ 1..) = read else { return };
                let chunk = &up[..n];
                let insert = contains(chunk, seq.as_bytes()) && contains(chunk, events.as_bytes());
                if server.write_all(chunk).await.is_err() {
                    return;
                }
                if insert && armed.swap(false, Ordering::SeqCst) {
                    // etcd commits it; its answer never reaches the client.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    cut.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
            read = server.read(&mut down) => {
                let Ok(n @ 1..) = read else { return };
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn generation(name: &str) -> NewGeneration {
    NewGeneration {
        config_text: format!("# {name}\n"),
        author: "alice".into(),
        message: format!("apply {name}"),
        origin: keel_store::origin::CLI.into(),
        forced: false,
        check_report: serde_json::json!({ "errors": [] }),
        impact_report: None,
        certificates: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_whose_answer_was_lost_is_found_committed_not_written_twice() {
    let Some(etcd) = Etcd::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (proxy, cut) = answer_losing_proxy(etcd.endpoint()).await;
    let direct = FleetStore::open(vec![etcd.endpoint()], PREFIX, "lb-1", &dir.path().join("a"))
        .expect("open");
    let proxied = FleetStore::open(
        vec![proxy, etcd.endpoint()],
        PREFIX,
        "lb-2",
        &dir.path().join("b"),
    )
    .expect("open");
    let (direct, proxied) = (Arc::new(direct), Arc::new(proxied));
    let outcome = tokio::task::spawn_blocking(move || {
        let first = direct.record_apply(generation("one"), true)?;
        // lb-2 sees the fleet's pointer (through the proxy), then applies over it.
        let seen = proxied.active()?.map(|g| g.id);
        let second = proxied.record_apply(generation("two"), true);
        let history: Vec<u64> = direct.generations(10)?.iter().map(|g| g.id).collect();
        let applies = direct
            .events(EventQuery::default())?
            .into_iter()
            .filter(|e| e.kind == "apply" && e.generation == Some(2))
            .count();
        let active = direct.active()?.map(|g| g.id);
        Ok::<_, keel_store::StoreError>((first, seen, second, history, applies, active))
    })
    .await
    .expect("task")
    .expect("the store answers");
    let (first, seen, second, history, applies, active) = outcome;
    assert_eq!((first, seen), (1, Some(1)));
    assert_eq!(cut.load(Ordering::SeqCst), 1, "the proxy lost one answer");
    assert_eq!(
        second.expect("the apply whose answer was lost reports its commit"),
        2
    );
    assert_eq!(history, vec![2, 1], "one generation written, not two");
    assert_eq!(applies, 1, "one apply event for generation 2");
    assert_eq!(active, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_first_endpoint_is_dead_writes_through_the_next_at_once() {
    let Some(etcd) = Etcd::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing listens there: every connection to it is refused.
    let dead = format!("http://{}", free_addr());
    let store =
        FleetStore::open(vec![dead, etcd.endpoint()], PREFIX, "lb-1", dir.path()).expect("open");
    let (applied, read) = tokio::task::spawn_blocking(move || {
        // The very first call is a write: nothing before it moved the store off the dead one.
        let applied = store.record_apply(generation("one"), true);
        let read = store.generation(1);
        (applied, read)
    })
    .await
    .expect("task");
    assert_eq!(applied.expect("written through the live endpoint"), 1);
    assert!(read.expect("read").is_some());
}
