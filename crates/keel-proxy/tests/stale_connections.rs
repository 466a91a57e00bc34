//! A backend that closes an idle keep-alive connection just as Keel sends on it: the
//! request goes once more to the same backend on a new connection, when it can be sent
//! again, and the backend is not counted as failing. And the two ways Keel avoids that
//! race: a pool's `idle_timeout`, and the backend's own `Keep-Alive: timeout=N`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The answer of [`closes_every_second_request`].
const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-service: web\r\n\r\nok";

/// A keep-alive backend that answers the first request of every connection and, on
/// the second, closes without answering: as if it had closed the connection as idle at
/// the moment the request arrived. Counts the requests it read.
async fn closes_every_second_request() -> (SocketAddr, Arc<AtomicU64>) {
    let (addr, heads, _) = backend(OK, Some(1)).await;
    (addr, heads)
}

/// A backend answering every request with `answer` on kept-alive connections, closing
/// each one unanswered at request number `close_at` (from 0) if set. Counts the request
/// heads it read and the connections it accepted.
async fn backend(
    answer: &'static [u8],
    close_at: Option<u32>,
) -> (SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads = Arc::new(AtomicU64::new(0));
    let connections = Arc::new(AtomicU64::new(0));
    let (seen, accepted) = (heads.clone(), connections.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            accepted.fetch_add(1, SeqCst);
            tokio::spawn(serve(stream, seen.clone(), answer, close_at));
        }
    });
    (addr, heads, connections)
}

async fn serve(
    mut stream: TcpStream,
    heads: Arc<AtomicU64>,
    answer: &'static [u8],
    close_at: Option<u32>,
) {
    let mut pending = Vec::new();
    let mut buffer = [0u8; 4096];
    for answered in 0.. {
        while !pending.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buffer[..n]),
            }
        }
        heads.fetch_add(1, SeqCst);
        if close_at == Some(answered) {
            return; // closed with the request unanswered
        }
        pending.clear();
        if stream.write_all(answer).await.is_err() {
            return;
        }
    }
}

fn one_backend(addr: SocketAddr) -> String {
    one_backend_with(addr, "")
}

/// A one-backend pool with `extra` lines in its table.
fn one_backend_with(addr: SocketAddr, extra: &str) -> String {
    with_listener(&format!(
        "[services.web]\n\n[pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"{addr}\" }}]\n{extra}\n\n[[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\n"
    ))
}

/// Sends GETs through `proxy`, pausing `pause` before each after the first, and returns
/// how many connections the backend accepted for them.
async fn connections_for(proxy: &TestProxy, connections: &AtomicU64, pause: Duration) -> u64 {
    let client = client();
    for round in 0..3 {
        if round > 0 {
            tokio::time::sleep(pause).await;
        }
        let answer = get(&client, &proxy.url(&format!("/{round}")), &[]).await;
        assert_eq!(answer.status, 200, "round {round}: {}", answer.text());
    }
    connections.load(SeqCst)
}

#[tokio::test]
async fn a_connection_idle_past_the_pools_idle_timeout_is_not_reused() {
    let (addr, _, connections) = backend(OK, None).await;
    let proxy = TestProxy::start(&one_backend_with(addr, "idle_timeout = \"300ms\"")).await;
    // Back to back, one connection serves all three.
    assert_eq!(
        connections_for(&proxy, &connections, Duration::ZERO).await,
        1
    );
    // Each pause outlasts the timeout, so each request opens its own connection.
    let more = connections_for(&proxy, &connections, Duration::from_millis(600)).await;
    assert_eq!(more, 1 + 2);
}

#[tokio::test]
async fn a_backends_announced_keep_alive_timeout_is_heeded() {
    // Announces 1 s: Keel stops reusing after 0.5 s (half of it, as it is under two
    // seconds), well under the pool's default minute.
    const ANNOUNCING: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\nkeep-alive: timeout=1, max=100\r\n\r\nok";
    let (addr, _, connections) = backend(ANNOUNCING, None).await;
    let proxy = TestProxy::start(&one_backend(addr)).await;
    assert_eq!(
        connections_for(&proxy, &connections, Duration::from_millis(100)).await,
        1
    );
    let more = connections_for(&proxy, &connections, Duration::from_millis(800)).await;
    assert_eq!(more, 1 + 2);
}

#[tokio::test]
async fn a_get_on_a_connection_the_backend_closed_is_sent_again_on_a_new_one() {
    let (addr, heads) = closes_every_second_request().await;
    let proxy = TestProxy::start(&one_backend(addr)).await;
    let client = client();
    // One backend, so no other backend to retry on; and more rounds than the passive
    // ejection threshold (5), which counting these as failures would trip.
    for round in 0..8 {
        let answer = get(&client, &proxy.url(&format!("/{round}")), &[]).await;
        assert_eq!(answer.status, 200, "round {round}: {}", answer.text());
        assert_eq!(answer.text(), "ok");
    }
    // Every round after the first found the pooled connection closed under it, and sent
    // its request once more.
    assert_eq!(heads.load(SeqCst), 15);
}

#[tokio::test]
async fn a_post_that_reached_the_backend_is_not_sent_twice() {
    let (addr, heads) = closes_every_second_request().await;
    let proxy = TestProxy::start(&one_backend(addr)).await;
    let client = client();
    let first = get(&client, &proxy.url("/first"), &[]).await;
    assert_eq!(first.status, 200);
    // The POST goes out on the pooled connection, which the backend then closes: it may
    // have acted on it, so Keel answers 502 rather than send it again.
    let request = http::Request::post(proxy.url("/order"))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"x=1")))
        .expect("request");
    let post = send(&client, request).await;
    assert_eq!(post.status, 502, "{}", post.text());
    assert_eq!(heads.load(SeqCst), 2);
}
