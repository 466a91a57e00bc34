//! Hot reload under load: a real listener, real backends and a real HTTP client with
//! keep-alive, while 100 applies and 100 rollbacks alternate. Every request must
//! succeed, and every response must come from the backend its generation routes to
//! (each generation sends everything to one backend that echoes its own name).

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_control::{ApplyRequest, ApplyStatus, Hooks, RollbackRequest};
use keel_proxy::ListenerLimits;
use keel_store::SqliteStore;
use keel_testkit::Backend;
use support::{Answer, Http, config, eventually};

/// Applies, and as many rollbacks, alternating.
const ROUNDS: usize = 100;
/// Concurrent client connections.
const CLIENTS: usize = 8;
/// Upper bound on requests, so the load stays bounded whatever the machine's speed.
const MAX_REQUESTS: u64 = 200_000;
/// Upper bound on the test's duration.
const DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn applies_and_rollbacks_under_load_lose_no_request_and_never_mix_generations() {
    let names = ["A", "B", "C", "D"];
    let mut backends: Vec<SocketAddr> = Vec::new();
    for name in names {
        backends.push(
            Backend::new(name)
                .delay(Duration::from_millis(1))
                .start()
                .await,
        );
    }
    let settings = "[safety]\nknown_good_after = \"0s\"\nkeep_generations = 5";
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path()).expect("store"));
    let controller = support::controller(store, Hooks::default());
    let first = controller
        .apply(apply(config(backends[0], settings)))
        .await
        .expect("apply");
    assert_eq!(first.generation, Some(1));
    controller.promote_known_good().await.expect("promote");
    // generation → the backend name it routes to.
    let expected: Arc<Mutex<HashMap<u64, &str>>> = Arc::new(Mutex::new(HashMap::from([(1, "A")])));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_serving, serving_stopped) = tokio::sync::oneshot::channel::<()>();
    let limits = ListenerLimits {
        max_header_bytes: 64 * 1024,
        max_headers: 100,
        header_read_timeout: Duration::from_secs(10),
        body_idle_timeout: keel_config::defaults::BODY_IDLE_TIMEOUT,
        drain_timeout: Duration::from_secs(5),
    };
    let plane = controller.plane().clone();
    let server = tokio::spawn(async move {
        plane
            .serve(listener, limits, async {
                let _ = serving_stopped.await;
            })
            .await
    });

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let answers: Arc<Mutex<Vec<Result<Answer, String>>>> = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (stop, sent, answers) = (stop.clone(), sent.clone(), answers.clone());
        clients.push(tokio::spawn(async move {
            let http = Http::new();
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed)
                && sent.fetch_add(1, Ordering::Relaxed) < MAX_REQUESTS
            {
                mine.push(http.get(addr, "/shop").await);
            }
            if let Ok(mut all) = answers.lock() {
                all.extend(mine);
            }
        }));
    }

    let started = tokio::time::Instant::now();
    for round in 0..ROUNDS {
        let name = names[1 + round % 3];
        let outcome = controller
            .apply(apply(config(backends[1 + round % 3], settings)))
            .await
            .expect("apply");
        assert_eq!(
            outcome.status,
            ApplyStatus::Applied,
            "{:?}",
            outcome.refusals
        );
        let id = outcome.generation.expect("id");
        if let Ok(mut expected) = expected.lock() {
            expected.insert(id, name);
        }
        let before = sent.load(Ordering::Relaxed);
        // Let some traffic flow on each generation.
        wait_for_requests(&sent, before + 20).await;
        let rolled = controller
            .rollback(RollbackRequest::default())
            .await
            .expect("rollback");
        assert_eq!((rolled.from, rolled.to, rolled.persisted), (id, 1, true));
        let before = sent.load(Ordering::Relaxed);
        wait_for_requests(&sent, before + 20).await;
        assert!(started.elapsed() < DEADLINE, "took too long");
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client");
    }
    let _ = stop_serving.send(());
    server.await.expect("join").expect("serve");

    let answers = answers.lock().map(|a| a.clone()).unwrap_or_default();
    let expected = expected.lock().map(|e| e.clone()).unwrap_or_default();
    assert!(
        answers.len() >= 4 * ROUNDS * 10,
        "only {} requests",
        answers.len()
    );
    let mut per_generation: HashMap<u64, usize> = HashMap::new();
    for answer in &answers {
        let answer = answer.as_ref().expect("no request fails");
        assert_eq!(answer.status, 200, "{answer:?}");
        let generation = answer
            .generation
            .expect("x-keel-generation on every response");
        assert_eq!(
            expected.get(&generation).copied(),
            Some(answer.body.as_str()),
            "generation {generation} answered by {}",
            answer.body
        );
        *per_generation.entry(generation).or_default() += 1;
    }
    // Traffic reached generation 1 and most applied generations.
    assert!(per_generation.get(&1).is_some_and(|n| *n > 0));
    assert!(
        per_generation.len() > ROUNDS / 2,
        "{} generations served",
        per_generation.len()
    );
    assert_eq!(controller.plane().active().map(|a| a.primary.id), Some(1));
    eprintln!(
        "{} requests, {} generations served, all correct",
        answers.len(),
        per_generation.len()
    );
}

fn apply(text: String) -> ApplyRequest {
    ApplyRequest {
        config_text: text,
        author: "load-test".into(),
        ..ApplyRequest::default()
    }
}

async fn wait_for_requests(sent: &AtomicU64, at_least: u64) {
    let reached = eventually(Duration::from_secs(10), || async {
        (sent.load(Ordering::Relaxed) >= at_least).then_some(())
    })
    .await;
    assert!(reached.is_some(), "the load stalled");
}
