//! A backend that closes an idle keep-alive connection just as Keel sends on it: the
//! request goes once more to the same backend on a new connection, when it can be sent
//! again, and the backend is not counted as failing.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A keep-alive backend that answers the first request of every connection and, on
/// the second, closes without answering: as if it had closed the connection as idle at
/// the moment the request arrived. Counts the requests it read.
async fn closes_every_second_request() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads = Arc::new(AtomicU64::new(0));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_one_then_close(stream, seen.clone()));
        }
    });
    (addr, heads)
}

async fn serve_one_then_close(mut stream: TcpStream, heads: Arc<AtomicU64>) {
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
        if answered == 1 {
            return; // closed with the request unanswered
        }
        pending.clear();
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-service: web\r\n\r\nok";
        if stream.write_all(answer).await.is_err() {
            return;
        }
    }
}

fn one_backend(addr: SocketAddr) -> String {
    with_listener(&format!(
        "[services.web]\n\n[pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"{addr}\" }}]\n\n[[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\n"
    ))
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
