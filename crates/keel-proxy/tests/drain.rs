//! Graceful shutdown of a listener: it stops accepting at once, in-flight requests
//! finish, idle keep-alive connections close, and the drain deadline is enforced.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Answers `/warm` at once and everything else after `delay`.
async fn slow_backend(delay: Duration) -> TestBackend {
    TestBackend::with_handler("slow", move |request| async move {
        let warm = request.uri().path() == "/warm";
        if !warm {
            tokio::time::sleep(delay).await;
        }
        let body: &'static [u8] = if warm { b"warm" } else { b"finished" };
        Response::builder()
            .header("x-backend", "slow")
            .body(Full::new(Bytes::from_static(body)))
            .unwrap_or_default()
    })
    .await
}

fn config_for(backend: &TestBackend) -> String {
    with_listener(&format!(
        "[services.web]\n\n{}\n[[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\n",
        pool("web", "web", &[backend], "")
    ))
}

#[tokio::test]
async fn in_flight_requests_finish_and_new_connections_are_refused() {
    let backend = slow_backend(Duration::from_millis(600)).await;
    let mut proxy = TestProxy::start(&config_for(&backend)).await;
    // An idle keep-alive connection, opened before the shutdown.
    let mut idle = TcpStream::connect(proxy.addr).await.expect("connect");
    get_on(&mut idle, "/warm", "warm").await;
    let client = client();
    let url = proxy.url("/slow");
    let in_flight = tokio::spawn(async move { get(&client, &url, &[]).await });
    eventually(WAIT, "the slow request reached the backend", || async {
        backend.requests() >= 2 // `/warm`, then `/slow`
    })
    .await;
    proxy.begin_shutdown();
    eventually(WAIT, "the listener refuses new connections", || async {
        TcpStream::connect(proxy.addr).await.is_err()
    })
    .await;
    let answer = in_flight.await.expect("in-flight request");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "finished");
    // The idle keep-alive connection was closed by Keel, with nothing more on it.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, idle.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the idle keep-alive connection was not closed"
    );
    assert!(rest.is_empty());
    proxy.finished().await;
}

#[tokio::test]
async fn the_drain_deadline_closes_what_is_still_running() {
    let backend = slow_backend(Duration::from_secs(30)).await;
    let mut proxy = TestProxy::start_with(&config_for(&backend), |limits| {
        limits.drain_timeout = Duration::from_millis(300);
    })
    .await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET /forever HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .expect("write");
    eventually(WAIT, "the request reached the backend", || async {
        backend.requests() >= 1
    })
    .await;
    let started = tokio::time::Instant::now();
    proxy.begin_shutdown();
    proxy.finished().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "serve returned only after {took:?}"
    );
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection outlived the drain deadline");
    assert!(
        rest.is_empty(),
        "no answer was due: {}",
        String::from_utf8_lossy(&rest)
    );
}
