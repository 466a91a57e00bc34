//! HTTP/1 keep-alive connections parked between requests (hyper's state dropped, the
//! next head read by Keel and handed to a new hyper connection) behave on the wire as
//! one hyper connection did: keep-alive requests, heads arriving in pieces, pipelined
//! requests, requests with bodies, `Connection: close`, oversized heads and a drain.
//! What parking saves (memory per idle connection) is measured by bench/memory.sh.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A pause between two pieces of one request head, longer than an idle connection
/// waits before it is parked (20 ms), so that the first piece is held by a parked
/// connection (150 ms). Not a timing claim: the test passes either way.
const PIECE_GAP: Duration = Duration::from_millis(150);

async fn proxy_for(backend: &TestBackend) -> TestProxy {
    proxy_in_front(backend, |_| {}).await
}

/// Backend `web`, Keel in front of it, and a client connection to Keel.
async fn connected() -> (TestBackend, TestProxy, TcpStream) {
    let backend = TestBackend::start("web", None).await;
    let proxy = proxy_for(&backend).await;
    let stream = TcpStream::connect(proxy.addr).await.expect("connect");
    (backend, proxy, stream)
}

/// Reads until `count` answers with the body `body` have arrived; panics if the
/// connection closes first or a read takes longer than [`WAIT`].
async fn read_answers(stream: &mut TcpStream, count: usize, body: &str) -> String {
    let ending = format!("\r\n\r\n{body}");
    let answers = read_until(stream, &format!("{count} answers"), |read| {
        String::from_utf8_lossy(read).matches(&ending).count() >= count
    })
    .await;
    String::from_utf8_lossy(&answers).into_owned()
}

#[tokio::test]
async fn keep_alive_requests_follow_one_another_on_one_connection() {
    let (backend, _proxy, mut stream) = connected().await;
    for path in ["/one", "/two", "/three", "/four"] {
        let answer = get_on(&mut stream, path, "web").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
    }
    assert_eq!(backend.requests(), 4);
    let seen = backend.paths();
    assert_eq!(seen, ["/one", "/two", "/three", "/four"]);
}

#[tokio::test]
async fn a_head_sent_in_pieces_after_an_answer_is_answered() {
    let (backend, _proxy, mut stream) = connected().await;
    get_on(&mut stream, "/first", "web").await;
    for piece in [
        &b"GET /sec"[..],
        b"ond HTTP/1.1\r\nHost: sh",
        b"op\r\nX-Piece: 1\r\n",
        b"\r\n",
    ] {
        stream.write_all(piece).await.expect("write");
        tokio::time::sleep(PIECE_GAP).await;
    }
    let answer = read_answers(&mut stream, 1, "web").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let head = backend.last_head().expect("a request reached the backend");
    assert_eq!(head.uri.path(), "/second");
    assert_eq!(head.headers["x-piece"], "1");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (backend, _proxy, mut stream) = connected().await;
    stream
        .write_all(
            b"GET /a HTTP/1.1\r\nHost: shop\r\n\r\n\
              GET /b HTTP/1.1\r\nHost: shop\r\n\r\n\
              GET /c HTTP/1.1\r\nHost: shop\r\n\r\n",
        )
        .await
        .expect("write");
    let answers = read_answers(&mut stream, 3, "web").await;
    assert_eq!(answers.matches("HTTP/1.1 200").count(), 3, "{answers}");
    let seen = backend.paths();
    assert_eq!(seen, ["/a", "/b", "/c"]);
    // And the connection is still usable afterwards.
    get_on(&mut stream, "/d", "web").await;
}

#[tokio::test]
async fn a_pipelined_head_cut_in_two_is_answered() {
    let (backend, _proxy, mut stream) = connected().await;
    stream
        .write_all(b"GET /a HTTP/1.1\r\nHost: shop\r\n\r\nGET /b HTTP/1.1\r\nHo")
        .await
        .expect("write");
    read_answers(&mut stream, 1, "web").await;
    tokio::time::sleep(PIECE_GAP).await;
    stream.write_all(b"st: shop\r\n\r\n").await.expect("write");
    read_answers(&mut stream, 1, "web").await;
    let seen = backend.paths();
    assert_eq!(seen, ["/a", "/b"]);
}

#[tokio::test]
async fn requests_with_bodies_and_without_share_a_connection() {
    let (backend, _proxy, mut stream) = connected().await;
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .expect("write");
    read_answers(&mut stream, 1, "web").await;
    get_on(&mut stream, "/after-post", "web").await;
    stream
        .write_all(
            b"POST /chunked HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\n0\r\n\r\n",
        )
        .await
        .expect("write");
    read_answers(&mut stream, 1, "web").await;
    get_on(&mut stream, "/after-chunked", "web").await;
    assert_eq!(backend.requests(), 4);
}

#[tokio::test]
async fn connection_close_is_answered_then_the_connection_ends() {
    let (_backend, _proxy, mut stream) = connected().await;
    get_on(&mut stream, "/first", "web").await;
    stream
        .write_all(b"GET /last HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let answer = read_answers(&mut stream, 1, "web").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        closed_by_peer(&mut stream).await,
        "the connection stayed open after Connection: close"
    );
}

#[tokio::test]
async fn an_oversized_head_after_an_answer_gets_431() {
    let backend = TestBackend::start("web", None).await;
    let proxy = proxy_in_front(&backend, |limits| limits.max_header_bytes = 8192).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    get_on(&mut stream, "/first", "web").await;
    let filler = "x".repeat(1000);
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: shop\r\n")
        .await
        .expect("write");
    // Never ends: the head outgrows the limit while Keel waits for its end.
    let mut answer = Vec::new();
    for n in 0..64 {
        let line = format!("X-Filler-{n}: {filler}\r\n");
        if stream.write_all(line.as_bytes()).await.is_err() {
            break;
        }
    }
    let mut buffer = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(WAIT, stream.read(&mut buffer)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(
        backend.requests(),
        1,
        "the oversized head reached the backend"
    );
}

#[tokio::test]
async fn a_drain_closes_an_idle_keep_alive_connection() {
    let backend = TestBackend::start("web", None).await;
    let mut proxy = proxy_for(&backend).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    get_on(&mut stream, "/first", "web").await;
    proxy.begin_shutdown();
    assert!(
        closed_by_peer(&mut stream).await,
        "an idle connection outlived the drain"
    );
    proxy.finished().await;
}

#[tokio::test]
async fn a_chunk_size_past_the_bound_after_a_parked_wait_is_a_400() {
    // The head and body a parked connection reads go to hyper through the same
    // chunk-size guard as bytes hyper reads itself.
    let (backend, _proxy, mut stream) = connected().await;
    get_on(&mut stream, "/first", "web").await;
    tokio::time::sleep(PIECE_GAP).await;
    let request = "POST /upload HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n\
                   3\r\nabc\r\nffffffffffffffff\r\nabc\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: shop\r\n\r\n";
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(WAIT, stream.read(&mut buffer)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("keel-error: bad-request\r\n"), "{answer}");
    let paths: Vec<String> = backend.paths();
    assert!(!paths.iter().any(|p| p == "/admin"), "smuggled: {paths:?}");
}

/// Idle keep-alive connections are parked, and counted so: what an operator reads in
/// `keel_parked_connections`, and what keeps an idle connection's memory small. A
/// connection that keeps hyper's buffers while idle (parking broken) fails here.
#[tokio::test]
async fn idle_keep_alive_connections_are_counted_parked_then_gone() {
    let backend = TestBackend::start("web", None).await;
    let proxy = proxy_for(&backend).await;
    let mut clients = Vec::new();
    for path in ["/a", "/b", "/c"] {
        let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
        get_on(&mut stream, path, "web").await;
        clients.push(stream);
    }
    let all_parked = keel_testkit::eventually_holds(WAIT, || {
        let now = proxy.plane.client_connections();
        now.open == 3 && now.parked == 3
    })
    .await;
    assert!(
        all_parked,
        "three idle connections, not all parked: {:?}",
        proxy.plane.client_connections()
    );

    // A request unparks its connection; once answered it parks again.
    get_on(&mut clients[0], "/again", "web").await;
    assert!(
        keel_testkit::eventually_holds(WAIT, || proxy.plane.client_connections().parked == 3).await,
        "the connection did not park again: {:?}",
        proxy.plane.client_connections()
    );

    drop(clients);
    let gone = keel_testkit::eventually_holds(WAIT, || {
        proxy.plane.client_connections() == keel_proxy::ClientConnections::default()
    })
    .await;
    assert!(
        gone,
        "closed connections still counted: {:?}",
        proxy.plane.client_connections()
    );
}
