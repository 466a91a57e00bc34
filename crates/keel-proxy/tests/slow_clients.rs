//! `header_read_timeout` against real sockets: a client that never finishes its request
//! head, or leaves a keep-alive connection idle, is disconnected; a request whose
//! answer takes longer than the timeout is not cut, and its connection stays usable.
//! The same for HTTP/2 connections, which are idle while no stream is open. A client
//! that stalls mid-upload gets `408 client-timeout` at the route's deadline, and the
//! backend is not blamed.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The header read timeout under test (300 ms).
const HEAD_LIMIT: Duration = Duration::from_millis(300);

async fn proxy_for(backend: &TestBackend) -> TestProxy {
    proxy_in_front(backend, |limits| limits.header_read_timeout = HEAD_LIMIT).await
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_disconnected() {
    let backend = TestBackend::start("web", None).await;
    let proxy = proxy_for(&backend).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: shop\r\nX-Drip: 1\r\n")
        .await
        .expect("write");
    assert!(
        closed_by_peer(&mut stream).await,
        "a half-sent head kept its connection open"
    );
    assert_eq!(
        backend.requests(),
        0,
        "a half-sent head reached the backend"
    );
    // The watchdog closed one connection, not the listener.
    let answer = get(&client(), &proxy.url("/after"), &[]).await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let backend = TestBackend::start("web", None).await;
    let proxy = proxy_for(&backend).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let answer = get_on(&mut stream, "/first", "web").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        closed_by_peer(&mut stream).await,
        "an idle keep-alive connection stayed open"
    );
}

#[tokio::test]
async fn an_answer_slower_than_the_head_timeout_is_not_cut() {
    // Three times the head limit: the wait for the answer must not count against it.
    let backend = slow_backend().await;
    let proxy = proxy_for(&backend).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let slow = get_on(&mut stream, "/slow", "finished").await;
    assert!(slow.starts_with("HTTP/1.1 200"), "{slow}");
    // The same connection serves the next request.
    let next = get_on(&mut stream, "/next", "finished").await;
    assert!(next.starts_with("HTTP/1.1 200"), "{next}");
}

/// A backend whose `/slow` answer takes three times the head limit.
async fn slow_backend() -> TestBackend {
    let delay = HEAD_LIMIT * 3;
    TestBackend::with_handler("slow", move |request| async move {
        if request.uri().path() == "/slow" {
            tokio::time::sleep(delay).await;
        }
        Response::builder()
            .body(Full::new(Bytes::from_static(b"finished")))
            .unwrap_or_default()
    })
    .await
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_with_a_goaway() {
    let backend = TestBackend::start("web", None).await;
    let proxy = proxy_for(&backend).await;
    let (mut sender, connection) = h2_connection(proxy.addr).await;
    let (status, _) = h2_get(&mut sender, "/first").await.expect("first answer");
    assert_eq!(status, 200);
    // hyper's client connection ends without an error only on a GOAWAY; a bare close
    // would be an error.
    let ended = tokio::time::timeout(WAIT, connection).await;
    let ended = ended.expect("an idle HTTP/2 connection stayed open");
    assert!(matches!(ended, Ok(Ok(()))), "{ended:?}");
}

#[tokio::test]
async fn an_http2_connection_with_a_stream_open_is_not_idle() {
    let backend = slow_backend().await;
    let proxy = proxy_for(&backend).await;
    let (mut sender, connection) = h2_connection(proxy.addr).await;
    // The only stream waits three head limits for its answer.
    let (status, body) = h2_get(&mut sender, "/slow").await.expect("slow answer");
    assert_eq!((status.as_u16(), &body[..]), (200, &b"finished"[..]));
    // Requests one third of the limit apart, for three limits: never idle long enough.
    for round in 0..9 {
        tokio::time::sleep(HEAD_LIMIT / 3).await;
        let (status, _) = h2_get(&mut sender, &format!("/{round}"))
            .await
            .unwrap_or_else(|error| panic!("round {round}: {error}"));
        assert_eq!(status, 200, "round {round}");
    }
    assert!(!connection.is_finished());
}

#[tokio::test]
async fn a_stalled_upload_is_a_client_timeout_not_the_backends_fault() {
    // The backend reads the whole body before it answers, as most do.
    let backend = TestBackend::with_handler("web", |request: http::Request<_>| async move {
        let _ = http_body_util::BodyExt::collect(request.into_body()).await;
        Response::new(Full::new(Bytes::from_static(b"stored")))
    })
    .await;
    let config = with_listener(&format!(
        "[services.web]\n\n{}\n[[routes]]\nname = \"upload\"\nservice = \"web\"\npool = \"web\"\ntimeout = \"300ms\"\nretries = 0\n",
        pool(
            "web",
            "web",
            &[&backend],
            "outlier = { consecutive_failures = 1 }"
        )
    ));
    let proxy = TestProxy::start(&config).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    // Ten bytes announced, three sent, then nothing.
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .expect("write");
    let answer = read_until(&mut stream, "an answer", has_head).await;
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(
        answer.contains("keel-error: client-timeout\r\n"),
        "{answer}"
    );

    // Not counted against the backend: no 5xx or failure class, not ejected.
    let counters = &proxy.generation.stats.routes[0].targets[0][0];
    assert_eq!(
        counters.failures(),
        0,
        "a stalled upload counted as a failure"
    );
    assert_eq!(counters.get(keel_proxy::stats::Outcome::ClientError), 1);
    let answer = get(&client(), &proxy.url("/after"), &[]).await;
    assert_eq!(answer.status, 200, "the backend was ejected");
}
