//! Failures between Keel and its backends: a backend killed under load is ejected and
//! clients see no error; retries go only where they are safe and always to another
//! backend; 5xx answers eject with an exponential back-off.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use keel_proxy::{BackendState, ProxyEvent};
use support::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

fn config_with(pool_block: &str, route_extra: &str) -> String {
    with_listener(&format!(
        "[services.web]\n\n{pool_block}\n[[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\n{route_extra}\n"
    ))
}

/// A backend that reads a request head and closes the connection without answering.
async fn slammer() -> (
    std::net::SocketAddr,
    Arc<AtomicU64>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                counter.fetch_add(1, SeqCst);
                // Dropping the stream closes it: the request reached a backend, no answer.
            });
        }
    });
    (addr, seen, task)
}

/// A proxy over one pool of `backends` in this order, round robin, never ejecting, with
/// two retries.
async fn proxy_over(backends: &[std::net::SocketAddr]) -> TestProxy {
    let list: Vec<String> = backends
        .iter()
        .map(|addr| format!("{{ addr = \"{addr}\" }}"))
        .collect();
    let text = config_with(
        &format!(
            "[pools.web]\nservice = \"web\"\nbackends = [{}]\noutlier = {{ consecutive_failures = 0 }}\n",
            list.join(", ")
        ),
        "retries = 2",
    );
    TestProxy::start(&text).await
}

/// A proxy over the slammer and one good backend: round robin starts every other
/// request on the slammer.
async fn proxy_over_slammer_and_good() -> (
    TestProxy,
    TestBackend,
    Arc<AtomicU64>,
    tokio::task::JoinHandle<()>,
) {
    let (slam_addr, slammed, task) = slammer().await;
    let good = TestBackend::start("good", None).await;
    let proxy = proxy_over(&[slam_addr, good.addr]).await;
    (proxy, good, slammed, task)
}

#[tokio::test]
async fn a_killed_backend_is_ejected_and_clients_see_no_error() {
    let a = TestBackend::start("a", None).await;
    let mut b = TestBackend::start("b", None).await;
    let c = TestBackend::start("c", None).await;
    let text = config_with(
        &pool(
            "web",
            "web",
            &[&a, &b, &c],
            "outlier = { consecutive_failures = 2, base_ejection = \"30s\" }",
        ),
        "",
    );
    let proxy = TestProxy::start(&text).await;
    let client = client();
    let url = proxy.url("/");
    let failures = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (client, url, failures, done) =
            (client.clone(), url.clone(), failures.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            for _ in 0..150 {
                let answer = get(&client, &url, &[]).await;
                if answer.status != StatusCode::OK {
                    failures.fetch_add(1, SeqCst);
                }
                done.fetch_add(1, SeqCst);
            }
        }));
    }
    eventually(WAIT, "load is flowing", || async {
        done.load(SeqCst) > 200
    })
    .await;
    b.kill().await;
    let b_state = || proxy.generation.pools[0].backends[1].state();
    eventually(WAIT, "b is ejected", || async {
        b_state() == BackendState::Ejected
    })
    .await;
    // From now on, any connection Keel opens to b's address is counted.
    let tried_after_ejection = Arc::new(AtomicU64::new(0));
    let counter = tried_after_ejection.clone();
    let watch = TcpListener::bind(b.addr).await.expect("rebind b's port");
    let _watching = tokio::spawn(async move {
        while watch.accept().await.is_ok() {
            counter.fetch_add(1, SeqCst);
        }
    });
    for worker in workers {
        worker.await.expect("worker");
    }
    assert_eq!(failures.load(SeqCst), 0, "a client saw an error");
    assert_eq!(done.load(SeqCst), 1200);
    assert_eq!(
        tried_after_ejection.load(SeqCst),
        0,
        "b was tried after its ejection"
    );
    assert_eq!(b_state(), BackendState::Ejected);
}

#[tokio::test]
async fn a_request_that_reached_a_backend_is_retried_only_if_idempotent() {
    let (proxy, good, slammed, _task) = proxy_over_slammer_and_good().await;
    let client = client();
    let (mut posts_failed, mut gets_ok) = (0, 0);
    for i in 0..10 {
        // Round robin: even requests start on the slammer.
        let post = Request::post(proxy.url("/order"))
            .body(Full::new(Bytes::from_static(b"{\"buy\":1}")))
            .expect("request");
        let answer = send(&client, post).await;
        if answer.status == StatusCode::BAD_GATEWAY {
            assert_eq!(answer.header("keel-error"), Some("upstream-reset"));
            posts_failed += 1;
        } else {
            assert_eq!(answer.status, StatusCode::OK, "POST {i}");
        }
        let answer = get(&client, &proxy.url("/item"), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "GET {i}: {}", answer.text());
        gets_ok += 1;
    }
    assert_eq!(gets_ok, 10);
    assert!(posts_failed > 0, "some POSTs started on the slammer");
    let posts_at_good = good
        .seen
        .heads
        .lock()
        .map(|heads| {
            heads
                .iter()
                .filter(|h| h.method == http::Method::POST)
                .count()
        })
        .unwrap_or(0);
    assert_eq!(
        posts_at_good + posts_failed,
        10,
        "a POST that reached a backend was sent twice"
    );
    assert!(slammed.load(SeqCst) >= 10);
}

#[tokio::test]
async fn an_idempotent_request_is_resent_with_its_head_intact() {
    let (proxy, good, slammed, _task) = proxy_over_slammer_and_good().await;
    let client = client();
    let headers = [
        ("x-cart", "c-42"),
        ("accept", "text/html"),
        ("x-cart", "c-43"),
        ("authorization", "Bearer t0ken"),
    ];
    for i in 0..10 {
        let answer = get(&client, &proxy.url("/item?n=7"), &headers).await;
        assert_eq!(answer.status, StatusCode::OK, "GET {i}: {}", answer.text());
    }
    // Round robin sent half of them to the slammer first, which read them and hung up:
    // those were resent from Keel's copy of the head, which must match the original.
    assert!(slammed.load(SeqCst) >= 5, "the slammer took its share");
    let heads = good
        .seen
        .heads
        .lock()
        .map(|heads| heads.clone())
        .unwrap_or_default();
    assert_eq!(heads.len(), 10);
    for head in &heads {
        assert_eq!(head.method, http::Method::GET);
        assert_eq!(
            head.uri.path_and_query().map(|p| p.as_str()),
            Some("/item?n=7")
        );
        let carts: Vec<_> = head.headers.get_all("x-cart").iter().collect();
        assert_eq!(carts, ["c-42", "c-43"], "{:?}", head.headers);
        assert_eq!(head.headers["accept"], "text/html");
        assert_eq!(head.headers["authorization"], "Bearer t0ken");
        assert!(head.headers.contains_key("x-request-id"));
        assert!(head.headers.contains_key("x-forwarded-for"));
    }
}

#[tokio::test]
async fn a_request_that_never_reached_a_backend_is_retried_whatever_its_method() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let good = TestBackend::start("good", None).await;
    let text = config_with(
        &format!(
            "[pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"{dead_addr}\" }}, {{ addr = \"{}\" }}]\noutlier = {{ consecutive_failures = 0 }}\n",
            good.addr
        ),
        "retries = 1",
    );
    let proxy = TestProxy::start(&text).await;
    let client = client();
    for i in 0..6 {
        let post = Request::post(proxy.url("/order"))
            .body(Full::new(Bytes::from(format!("order {i}"))))
            .expect("request");
        let answer = send(&client, post).await;
        assert_eq!(answer.status, StatusCode::OK, "POST {i}: {}", answer.text());
    }
    assert_eq!(good.requests(), 6);
}

#[tokio::test]
async fn every_retry_goes_to_a_backend_not_yet_tried() {
    let (first, first_seen, _t1) = slammer().await;
    let (second, second_seen, _t2) = slammer().await;
    let good = TestBackend::start("good", None).await;
    let proxy = proxy_over(&[first, second, good.addr]).await;
    let client = client();
    for i in 0..9 {
        let answer = get(&client, &proxy.url("/"), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "GET {i}");
        assert_eq!(answer.header("x-backend"), Some("good"));
    }
    // Each request tries each slammer at most once.
    assert!(first_seen.load(SeqCst) <= 9 && second_seen.load(SeqCst) <= 9);
    assert_eq!(good.requests(), 9);

    // With one retry fewer than needed, the answer is a clean 502 naming the route.
    let text = config_with(
        &format!(
            "[pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"{first}\" }}, {{ addr = \"{second}\" }}]\noutlier = {{ consecutive_failures = 0 }}\n"
        ),
        "retries = 5",
    );
    let proxy = TestProxy::start(&text).await;
    let before = first_seen.load(SeqCst) + second_seen.load(SeqCst);
    let answer = get(&client, &proxy.url("/"), &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert!(answer.text().contains("route `web`"), "{}", answer.text());
    assert_eq!(
        first_seen.load(SeqCst) + second_seen.load(SeqCst) - before,
        2,
        "five retries allowed, but only two distinct backends exist"
    );
}

#[tokio::test]
async fn server_errors_eject_with_an_exponential_back_off() {
    let good = TestBackend::start("good", None).await;
    let broken = TestBackend::with_handler("broken", |_request| async {
        Response::builder()
            .status(500)
            .header("x-backend", "broken")
            .body(Full::new(Bytes::from_static(b"oops")))
            .unwrap_or_default()
    })
    .await;
    let text = config_with(
        &pool(
            "web",
            "web",
            &[&good, &broken],
            "outlier = { consecutive_failures = 3, base_ejection = \"200ms\", max_ejection = \"10s\" }",
        ),
        "",
    );
    let proxy = TestProxy::start(&text).await;
    let mut events = proxy.plane.subscribe();
    let client = client();
    let mut reasons = Vec::new();
    eventually(WAIT, "two ejections", || {
        let client = client.clone();
        let url = proxy.url("/");
        while let Ok(event) = events.try_recv() {
            if let ProxyEvent::BackendState {
                to: BackendState::Ejected,
                reason,
                ..
            } = event
            {
                reasons.push(reason);
            }
        }
        let enough = reasons.len() >= 2;
        async move {
            if !enough {
                get(&client, &url, &[]).await;
            }
            enough
        }
    })
    .await;
    assert!(reasons[0].contains("ejected for 200ms"), "{reasons:?}");
    assert!(reasons[1].contains("ejected for 400ms"), "{reasons:?}");
    // While ejected, the broken backend is skipped.
    assert_eq!(
        proxy.generation.pools[0].backends[1].state(),
        BackendState::Ejected
    );
    let counts = spread(&client, &proxy.url("/"), 10).await;
    assert_eq!(counts.get("good"), Some(&10));
    tokio::time::sleep(Duration::ZERO).await;
}
