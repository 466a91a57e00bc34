//! Active health checks with identity: only backends that answer 2xx *as the pool's
//! service* get traffic, from the very first request; a failing backend leaves and
//! comes back; responses can be verified too.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use keel_proxy::{BackendState, DataPlane, DataPlaneOptions};
use support::*;

const CHECKED: &str = "health = { path = \"/healthz\", interval = \"50ms\", timeout = \"500ms\", healthy_after = 2, unhealthy_after = 2 }";

fn checked_config(backends: &[&TestBackend], service_extra: &str, pool_extra: &str) -> String {
    with_listener(&format!(
        "[services.web]\nidentity = {{ header = \"x-service\", equals = \"web\" }}\n{service_extra}\n\n{}\n[[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\n",
        pool("web", "web", backends, pool_extra)
    ))
}

#[tokio::test]
async fn a_backend_answering_as_another_service_never_gets_a_request() {
    let good = TestBackend::start("good", Some("web")).await;
    // The wrong backend is slow to answer its probes: for its first 300 ms it is not
    // judged yet, and must still get nothing.
    let wrong = TestBackend::with_handler("wrong", |request| async move {
        if request.uri().path() == "/healthz" {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        Response::builder()
            .header("x-backend", "wrong")
            .header("x-service", "legacy-admin")
            .body(Full::new(Bytes::from_static(b"wrong")))
            .unwrap_or_default()
    })
    .await;
    let silent = TestBackend::start("silent", None).await;
    let text = checked_config(&[&good, &wrong, &silent], "", CHECKED);
    // Serve at once, without waiting for the first probes: requests race the probes.
    let config = Arc::new(config(&text));
    let plane = DataPlane::new(DataPlaneOptions::from_config(&config)).expect("plane");
    let generation = plane.compile(1, config).expect("compile");
    plane.activate(generation.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let limits = keel_proxy::ListenerLimits {
        max_header_bytes: 65536,
        max_headers: 100,
        header_read_timeout: std::time::Duration::from_secs(5),
        body_idle_timeout: keel_config::defaults::BODY_IDLE_TIMEOUT,
        drain_timeout: std::time::Duration::from_secs(1),
    };
    let serving =
        tokio::spawn(async move { plane.serve(listener, limits, std::future::pending()).await });
    let client = client();
    let url = format!("http://{addr}/");
    let mut ok = 0;
    for _ in 0..300 {
        let answer = get(&client, &url, &[]).await;
        match answer.status {
            StatusCode::OK => {
                ok += 1;
                assert_eq!(answer.header("x-backend"), Some("good"));
            }
            // Before the first probe passes, nothing is proven: 503, never a guess.
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(answer.header("keel-error"), Some("no-healthy-backend"));
            }
            other => panic!("unexpected {other}: {}", answer.text()),
        }
    }
    assert!(
        ok > 250,
        "the good backend should serve nearly all requests, served {ok}"
    );
    assert_eq!(wrong.requests(), 0, "the misidentified backend got traffic");
    assert_eq!(
        silent.requests(),
        0,
        "the backend without identity got traffic"
    );
    let backends = &generation.pools[0].backends;
    eventually(WAIT, "the slow wrong backend is judged", || async {
        backends[1].state() == BackendState::Misidentified
    })
    .await;
    assert_eq!(wrong.requests(), 0, "the misidentified backend got traffic");
    assert!(wrong.probes() > 0 && silent.probes() > 0);
    assert_eq!(backends[0].state(), BackendState::Healthy);
    assert_eq!(backends[1].identity_seen().as_deref(), Some("legacy-admin"));
    assert_eq!(backends[2].state(), BackendState::Misidentified);
    serving.abort();
}

#[tokio::test]
async fn an_unhealthy_backend_leaves_and_comes_back() {
    let failing = Arc::new(AtomicBool::new(false));
    let steady = TestBackend::start("steady", Some("web")).await;
    let flag = failing.clone();
    let flaky = TestBackend::with_handler("flaky", move |_request| {
        let failing = flag.load(SeqCst);
        async move {
            let status = if failing { 500 } else { 200 };
            Response::builder()
                .status(status)
                .header("x-backend", "flaky")
                .header("x-service", "web")
                .body(Full::new(Bytes::from_static(b"flaky")))
                .unwrap_or_default()
        }
    })
    .await;
    let text = checked_config(
        &[&steady, &flaky],
        "",
        &format!("{CHECKED}\noutlier = {{ consecutive_failures = 0 }}"),
    );
    let proxy = TestProxy::start(&text).await;
    let flaky_state = || proxy.generation.pools[0].backends[1].state();
    assert_eq!(flaky_state(), BackendState::Healthy);
    let client = client();
    let counts = spread(&client, &proxy.url("/"), 20).await;
    assert_eq!(counts.get("flaky"), Some(&10));

    failing.store(true, SeqCst);
    eventually(WAIT, "flaky is marked unhealthy", || async {
        flaky_state() == BackendState::Unhealthy
    })
    .await;
    let counts = spread(&client, &proxy.url("/"), 20).await;
    assert_eq!(counts.get("steady"), Some(&20), "{counts:?}");

    failing.store(false, SeqCst);
    eventually(WAIT, "flaky is healthy again", || async {
        flaky_state() == BackendState::Healthy
    })
    .await;
    let counts = spread(&client, &proxy.url("/"), 20).await;
    assert_eq!(counts.get("flaky"), Some(&10), "{counts:?}");
}

#[tokio::test]
async fn verified_responses_catch_a_wrong_backend_without_probes() {
    let good = TestBackend::start("good", Some("web")).await;
    let wrong = TestBackend::start("wrong", Some("payments")).await;
    // No health check: only the per-response identity check stands guard.
    let text = checked_config(&[&good, &wrong], "verify_responses = true", "");
    let proxy = TestProxy::start(&text).await;
    let mut events = proxy.plane.subscribe();
    let client = client();
    for _ in 0..50 {
        let answer = get(&client, &proxy.url("/"), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(
            answer.header("x-backend"),
            Some("good"),
            "a wrong answer reached the client"
        );
    }
    // The first answer from the wrong backend takes it out; none reach a client.
    assert_eq!(wrong.requests(), 1);
    assert_eq!(
        proxy.generation.pools[0].backends[1].state(),
        BackendState::Misidentified
    );
    let mut saw_mismatch = false;
    while let Ok(event) = events.try_recv() {
        if let keel_proxy::ProxyEvent::IdentityMismatch { seen, .. } = event {
            saw_mismatch = seen.as_deref() == Some("payments");
        }
    }
    assert!(
        saw_mismatch,
        "an identity-mismatch event names what the backend said"
    );
}
