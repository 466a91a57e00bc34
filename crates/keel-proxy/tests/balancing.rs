//! Each balancing algorithm against real backends: weighted shares for round robin,
//! least request and route splits; load-awareness for least request; stickiness and
//! minimal movement for the consistent-hash ring.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use keel_proxy::{DataPlane, DataPlaneOptions};
use support::*;

fn weighted_pool(name: &str, backends: &[(&TestBackend, u32)], extra: &str) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|(b, w)| format!("{{ addr = \"{}\", weight = {w} }}", b.addr))
        .collect();
    format!(
        "[pools.{name}]\nservice = \"web\"\nbackends = [{}]\n{extra}\n",
        list.join(", ")
    )
}

fn one_route(pool_block: &str) -> String {
    with_listener(&format!(
        "[services.web]\n\n{pool_block}\n[[routes]]\nname = \"all\"\nservice = \"web\"\npool = \"web\"\n"
    ))
}

fn share(counts: &HashMap<String, usize>, name: &str, total: usize) -> f64 {
    counts.get(name).copied().unwrap_or(0) as f64 / total as f64
}

async fn three_backends() -> (TestBackend, TestBackend, TestBackend) {
    (
        TestBackend::start("a", None).await,
        TestBackend::start("b", None).await,
        TestBackend::start("c", None).await,
    )
}

#[tokio::test]
async fn round_robin_follows_the_weights_exactly() {
    let (a, b, c) = three_backends().await;
    let config = one_route(&weighted_pool("web", &[(&a, 5), (&b, 3), (&c, 2)], ""));
    let proxy = TestProxy::start(&config).await;
    let counts = spread(&client(), &proxy.url("/"), 1000).await;
    // One client, one cursor: the smooth sequence repeats every 10 requests.
    assert_eq!(counts.get("a"), Some(&500), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&300), "{counts:?}");
    assert_eq!(counts.get("c"), Some(&200), "{counts:?}");
}

#[tokio::test]
async fn least_request_follows_the_weights_when_idle() {
    let (a, b, c) = three_backends().await;
    let config = one_route(&weighted_pool(
        "web",
        &[(&a, 6), (&b, 3), (&c, 1)],
        "balance = \"least_request\"",
    ));
    let proxy = TestProxy::start(&config).await;
    let total = 2000;
    let counts = spread(&client(), &proxy.url("/"), total).await;
    for (name, expected) in [("a", 0.6), ("b", 0.3), ("c", 0.1)] {
        let got = share(&counts, name, total);
        assert!(
            (got - expected).abs() < 0.05,
            "{name}: {got} vs {expected} {counts:?}"
        );
    }
}

#[tokio::test]
async fn least_request_sends_less_to_a_slow_backend() {
    let fast = TestBackend::start("fast", None).await;
    let slow = TestBackend::with_handler("slow", |_request| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Response::builder()
            .header("x-backend", "slow")
            .body(Full::new(Bytes::from_static(b"slow")))
            .unwrap_or_default()
    })
    .await;
    let config = one_route(&weighted_pool(
        "web",
        &[(&fast, 1), (&slow, 1)],
        "balance = \"least_request\"",
    ));
    let proxy = TestProxy::start(&config).await;
    let client = client();
    let url = proxy.url("/");
    let mut workers = Vec::new();
    for _ in 0..16 {
        let client = client.clone();
        let url = url.clone();
        workers.push(tokio::spawn(async move { spread(&client, &url, 25).await }));
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for worker in workers {
        for (name, n) in worker.await.expect("worker") {
            *counts.entry(name).or_default() += n;
        }
    }
    let fast_share = share(&counts, "fast", 400);
    // Round robin would give 50 %; two choices keep most requests off the slow one.
    assert!(fast_share > 0.75, "fast got {fast_share} {counts:?}");
}

#[tokio::test]
async fn route_splits_follow_their_weights() {
    let (a, b, _) = three_backends().await;
    let config = with_listener(&format!(
        "[services.web]\n\n{}\n{}\n[[routes]]\nname = \"split\"\nservice = \"web\"\nsplit = [{{ pool = \"one\", weight = 90 }}, {{ pool = \"two\", weight = 10 }}]\n",
        weighted_pool("one", &[(&a, 1)], ""),
        weighted_pool("two", &[(&b, 1)], "")
    ));
    let proxy = TestProxy::start(&config).await;
    let counts = spread(&client(), &proxy.url("/"), 1000).await;
    let got = share(&counts, "a", 1000);
    assert!((got - 0.9).abs() < 0.04, "{got} {counts:?}");
}

/// The backend each cart lands on.
async fn placement(proxy: &TestProxy, carts: usize) -> Vec<String> {
    let client = client();
    let mut out = Vec::with_capacity(carts);
    for cart in 0..carts {
        let cookie = format!("theme=dark; cart_id=cart-{cart}");
        let answer = get(&client, &proxy.url("/cart"), &[("cookie", cookie.as_str())]).await;
        assert_eq!(answer.status, StatusCode::OK);
        out.push(answer.header("x-backend").unwrap_or("").to_string());
    }
    out
}

fn hash_config(backends: &[&TestBackend]) -> String {
    let weighted: Vec<(&TestBackend, u32)> = backends.iter().map(|b| (*b, 1)).collect();
    one_route(&weighted_pool(
        "web",
        &weighted,
        "balance = \"consistent_hash\"\nhash_key = \"cookie:cart_id\"",
    ))
}

#[tokio::test]
async fn a_cart_sticks_to_one_backend_and_few_move_when_one_leaves() {
    let mut backends = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        backends.push(TestBackend::start(name, None).await);
    }
    let all: Vec<&TestBackend> = backends.iter().collect();
    let proxy = TestProxy::start(&hash_config(&all)).await;
    let carts = 300;
    let before = placement(&proxy, carts).await;
    assert_eq!(
        placement(&proxy, carts).await,
        before,
        "a cart changed backend"
    );
    let used: std::collections::HashSet<&String> = before.iter().collect();
    assert_eq!(used.len(), 5, "every backend holds some carts");

    // Backend `e` leaves the pool: a new generation without it.
    let fewer = config(&hash_config(&all[..4]));
    let next = proxy
        .plane
        .compile(2, Arc::new(fewer))
        .expect("compile without e");
    proxy.plane.activate(next);
    let after = placement(&proxy, carts).await;
    let mut moved = 0;
    for (old, new) in before.iter().zip(&after) {
        if old != new {
            moved += 1;
            assert_eq!(old, "e", "a cart moved off a backend that stayed");
        }
    }
    let moved_share = moved as f64 / carts as f64;
    assert!(
        (0.08..0.35).contains(&moved_share),
        "about 1/5 of the carts should move, {moved_share} did"
    );
}

#[tokio::test]
async fn placement_is_the_same_on_every_node() {
    // Two independent data planes (two Keel nodes) place every key identically: the
    // ring seed is fixed, not random per process.
    let mut backends = Vec::new();
    for name in ["a", "b", "c"] {
        backends.push(TestBackend::start(name, None).await);
    }
    let all: Vec<&TestBackend> = backends.iter().collect();
    let first = TestProxy::start(&hash_config(&all)).await;
    let second_plane = {
        let config = Arc::new(config(&hash_config(&all)));
        let plane = DataPlane::new(DataPlaneOptions::from_config(&config)).expect("plane");
        let generation = plane.compile(7, config).expect("compile");
        plane.activate(generation);
        plane
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let second_addr = listener.local_addr().expect("addr");
    let limits = keel_proxy::ListenerLimits {
        max_header_bytes: 65536,
        max_headers: 100,
        header_read_timeout: Duration::from_secs(5),
        body_idle_timeout: keel_config::defaults::BODY_IDLE_TIMEOUT,
        drain_timeout: Duration::from_secs(1),
    };
    let serving = tokio::spawn(async move {
        second_plane
            .serve(listener, limits, std::future::pending())
            .await
    });
    let client = client();
    for cart in 0..50 {
        let cookie = format!("cart_id=node-{cart}");
        let one = get(&client, &first.url("/"), &[("cookie", cookie.as_str())]).await;
        let two = get(
            &client,
            &format!("http://{second_addr}/"),
            &[("cookie", cookie.as_str())],
        )
        .await;
        assert_eq!(
            one.header("x-backend"),
            two.header("x-backend"),
            "cart {cart}"
        );
    }
    serving.abort();
}
