//! A pool's `max_connections`: a backend never has more requests in flight from Keel
//! than the cap, requests beyond it wait their turn, counted as queued, and are served,
//! and one that waits past its route's timeout gets `503 backend-queue-timeout` without
//! reaching the backend.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use support::*;
use tokio::task::JoinSet;

/// How long the backend holds each request (200 milliseconds).
const HOLD: Duration = Duration::from_millis(200);

/// Requests in flight at the backend now, and the most seen at once.
#[derive(Default)]
struct Concurrency {
    now: AtomicUsize,
    most: AtomicUsize,
}

/// A backend that holds requests to `/hold` for [`HOLD`] and answers others at once,
/// counting how many it serves at the same time.
async fn holding_backend(concurrency: Arc<Concurrency>) -> TestBackend {
    TestBackend::with_handler("b1", move |request| {
        let concurrency = concurrency.clone();
        async move {
            let now = concurrency.now.fetch_add(1, SeqCst) + 1;
            concurrency.most.fetch_max(now, SeqCst);
            if request.uri().path() == "/hold" {
                tokio::time::sleep(HOLD).await;
            }
            concurrency.now.fetch_sub(1, SeqCst);
            Response::new(Full::new(Bytes::from_static(b"ok")))
        }
    })
    .await
}

/// Sends `count` GETs to `/hold` at once and checks that each is answered `200`.
async fn all_served_at_once(proxy: &TestProxy, count: usize) {
    let client = client();
    let mut requests = JoinSet::new();
    for _ in 0..count {
        let client = client.clone();
        let url = proxy.url("/hold");
        requests.spawn(async move { get(&client, &url, &[]).await });
    }
    while let Some(answer) = requests.join_next().await {
        let answer = answer.expect("request task");
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
}

fn capped_config(backend: &TestBackend, max_connections: u32) -> String {
    with_listener(&format!(
        "[services.web]\n\n{}\n\
         [[routes]]\nname = \"hold\"\nservice = \"web\"\npool = \"web\"\npath = \"/hold\"\ntimeout = \"10s\"\n\n\
         [[routes]]\nname = \"quick\"\nservice = \"web\"\npool = \"web\"\npath_prefix = \"/\"\ntimeout = \"100ms\"\n",
        pool(
            "web",
            "web",
            &[backend],
            &format!("max_connections = {max_connections}")
        )
    ))
}

#[tokio::test]
async fn a_backend_never_has_more_requests_in_flight_than_max_connections() {
    let concurrency = Arc::new(Concurrency::default());
    let backend = holding_backend(concurrency.clone()).await;
    let proxy = TestProxy::start(&capped_config(&backend, 2)).await;
    all_served_at_once(&proxy, 8).await;
    assert_eq!(backend.requests(), 8, "every waiting request is served");
    assert_eq!(
        concurrency.most.load(SeqCst),
        2,
        "the backend saw more (or fewer) requests at once than max_connections"
    );
}

#[tokio::test]
async fn a_request_waiting_past_its_timeout_gets_503_and_never_reaches_the_backend() {
    let concurrency = Arc::new(Concurrency::default());
    let backend = holding_backend(concurrency.clone()).await;
    let proxy = TestProxy::start(&capped_config(&backend, 1)).await;
    let client = client();
    let holding = {
        let client = client.clone();
        let url = proxy.url("/hold");
        tokio::spawn(async move { get(&client, &url, &[]).await })
    };
    eventually(WAIT, "the held request reaches the backend", || async {
        backend.requests() == 1
    })
    .await;

    // The only slot is taken for HOLD, longer than the quick route's 100 ms timeout.
    let queued = get(&client, &proxy.url("/quick"), &[]).await;
    assert_eq!(queued.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(queued.header("keel-error"), Some("backend-queue-timeout"));
    assert!(
        queued.text().contains("route `quick`, pool `web`"),
        "{}",
        queued.text()
    );
    assert_eq!(
        backend.requests(),
        1,
        "the timed-out request reached the backend"
    );

    let held = holding.await.expect("held request");
    assert_eq!(held.status, StatusCode::OK);
    // The slot came back with the connection.
    let after = get(&client, &proxy.url("/quick"), &[]).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text());
    assert_eq!(backend.requests(), 2);
    assert_eq!(
        proxy.generation.pools[0].backends[0].queued(),
        0,
        "a request that gave up is still counted as queued"
    );
}

#[tokio::test]
async fn waiting_requests_are_counted_as_queued_until_they_have_a_slot() {
    // Each request waits at the backend until the test lets it through.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let backend = {
        let gate = gate.clone();
        TestBackend::with_handler("b1", move |_request| {
            let gate = gate.clone();
            async move {
                if let Ok(pass) = gate.acquire().await {
                    pass.forget();
                }
                Response::new(Full::new(Bytes::from_static(b"ok")))
            }
        })
        .await
    };
    let config = with_listener(&format!(
        "[services.web]\n\n{}\n[[routes]]\nname = \"all\"\nservice = \"web\"\npool = \"web\"\n",
        pool("web", "web", &[&backend], "max_connections = 1")
    ));
    let proxy = TestProxy::start(&config).await;
    let client = client();
    let mut requests = JoinSet::new();
    for _ in 0..3 {
        let client = client.clone();
        let url = proxy.url("/");
        requests.spawn(async move { get(&client, &url, &[]).await });
    }
    let state = &proxy.generation.pools[0].backends[0];
    eventually(
        WAIT,
        "one request at the backend and two queued",
        || async { backend.requests() == 1 && state.queued() == 2 },
    )
    .await;
    gate.add_permits(3);
    while let Some(answer) = requests.join_next().await {
        assert_eq!(answer.expect("request task").status, StatusCode::OK);
    }
    assert_eq!(state.queued(), 0);
    assert_eq!(backend.requests(), 3);
}

#[tokio::test]
async fn without_max_connections_requests_are_not_held_back() {
    let concurrency = Arc::new(Concurrency::default());
    let backend = holding_backend(concurrency.clone()).await;
    let config = with_listener(&format!(
        "[services.web]\n\n{}\n[[routes]]\nname = \"hold\"\nservice = \"web\"\npool = \"web\"\n",
        pool("web", "web", &[&backend], "")
    ));
    let proxy = TestProxy::start(&config).await;
    all_served_at_once(&proxy, 6).await;
    assert_eq!(
        concurrency.most.load(SeqCst),
        6,
        "requests were held back with no max_connections set"
    );
}
