//! `body_idle_timeout` against real sockets: a response body that stops moving, because
//! the backend stops sending or the client stops reading, closes the client connection
//! and the backend connection; a slow body that keeps moving is never cut. On HTTP/2
//! too, where the bound is per connection. A route may set its own bound.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The body idle timeout under test (300 ms).
const BODY_IDLE: Duration = Duration::from_millis(300);

async fn proxy_for(backend: &TestBackend) -> TestProxy {
    proxy_in_front(backend, |limits| limits.body_idle_timeout = BODY_IDLE).await
}

/// A backend whose `/stream` answer is fed by `feed` (a fresh call per request) and
/// announces `length` bytes; `released` is set once Keel drops the backend connection
/// (the body's sender sees its receiver gone).
async fn streaming_backend<F, Fut>(length: u64, feed: F) -> (TestBackend, Arc<AtomicBool>)
where
    F: Fn(mpsc::Sender<Bytes>) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let released = Arc::new(AtomicBool::new(false));
    let seen = released.clone();
    let backend = TestBackend::with_handler("web", move |_request| {
        let seen = seen.clone();
        async move {
            let (frames, receiver) = mpsc::channel(1);
            tokio::spawn(async move {
                let watch = frames.clone();
                feed(frames).await;
                watch.closed().await;
                seen.store(true, SeqCst);
            });
            Response::new(ChannelBody {
                frames: receiver,
                length: Some(length),
            })
        }
    })
    .await;
    (backend, released)
}

/// A [`streaming_backend`] announcing 100 bytes that sends ten, then nothing: the rest
/// never comes, and the sender stays open until the body is dropped.
async fn stalls_after_ten_bytes() -> (TestBackend, Arc<AtomicBool>) {
    streaming_backend(100, |frames| async move {
        let _ = frames.send(Bytes::from_static(b"first ten.")).await;
        frames.closed().await;
    })
    .await
}

/// Sends a GET for `/stream` on a new connection.
async fn request_stream(proxy: &TestProxy) -> TcpStream {
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .expect("write");
    stream
}

/// Reads until what arrived ends with `end`; fails if the connection closes first.
async fn read_through(stream: &mut TcpStream, end: &[u8]) {
    read_until(stream, "the rest of the body", |read| read.ends_with(end)).await;
}

#[tokio::test]
async fn a_backend_that_stops_mid_body_is_cut_at_both_ends() {
    let (backend, released) = stalls_after_ten_bytes().await;
    let proxy = proxy_for(&backend).await;
    assert_eq!(proxy.plane.stalled_responses(), 0);
    let mut stream = request_stream(&proxy).await;
    let (answer, closed) = read_to_close(&mut stream).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed, "a stalled body kept the client connection open");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("first ten."), "{answer}");
    // Keel's end of the backend exchange is gone too, and the cut is counted.
    eventually(WAIT, "the backend connection was released", || async {
        released.load(SeqCst)
    })
    .await;
    assert_eq!(proxy.plane.stalled_responses(), 1);
    // One connection was cut, not the listener.
    let mut again = request_stream(&proxy).await;
    let mut head = [0u8; 12];
    again.read_exact(&mut head).await.expect("a second answer");
    assert_eq!(&head, b"HTTP/1.1 200");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_and_frees_the_backend() {
    // Far more than the socket buffers on both sides of Keel hold.
    const FRAMES: u64 = 4096;
    const FRAME: usize = 64 * 1024;
    let (backend, released) = streaming_backend(FRAMES * FRAME as u64, |frames| async move {
        for _ in 0..FRAMES {
            if frames.send(Bytes::from(vec![b'x'; FRAME])).await.is_err() {
                return;
            }
        }
    })
    .await;
    let proxy = proxy_for(&backend).await;
    let mut stream = request_stream(&proxy).await;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.expect("answer head");
    assert_eq!(&head, b"HTTP/1.1 200");
    // The client reads nothing more; Keel's writes to it block, and then it gives up.
    eventually(WAIT, "the backend connection was released", || async {
        released.load(SeqCst)
    })
    .await;
    let (rest, closed) = read_to_close(&mut stream).await;
    assert!(closed, "a client that stopped reading kept its connection");
    assert!(
        (rest.len() as u64) < FRAMES * FRAME as u64,
        "the whole body arrived, so nothing was cut"
    );
}

#[tokio::test]
async fn a_slow_body_that_keeps_moving_is_not_cut() {
    // Ten frames, each after a third of the idle timeout: three times the timeout in
    // all, never idle for one.
    let (backend, _released) = streaming_backend(10, |frames| async move {
        for _ in 0..10 {
            tokio::time::sleep(BODY_IDLE / 3).await;
            if frames.send(Bytes::from_static(b"x")).await.is_err() {
                return;
            }
        }
    })
    .await;
    let proxy = proxy_for(&backend).await;
    let mut stream = request_stream(&proxy).await;
    read_through(&mut stream, b"\r\n\r\nxxxxxxxxxx").await;
    let mut buffer = [0u8; 1024];
    // The connection is still usable: the idle bound ended with the body.
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .expect("write");
    let n = tokio::time::timeout(WAIT, stream.read(&mut buffer))
        .await
        .expect("a second answer")
        .expect("read");
    assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn the_wait_for_an_answer_head_is_the_route_timeouts_not_the_body_bound() {
    // The backend thinks for three body idle timeouts before it answers.
    let backend = TestBackend::with_handler("web", |_request| async {
        tokio::time::sleep(BODY_IDLE * 3).await;
        Response::new(http_body_util::Full::new(Bytes::from_static(b"done")))
    })
    .await;
    let proxy = proxy_for(&backend).await;
    let answer = get(&client(), &proxy.url("/think"), &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "done");
}

#[tokio::test]
async fn an_http2_body_that_stops_moving_is_cut() {
    let (backend, released) = stalls_after_ten_bytes().await;
    let proxy = proxy_for(&backend).await;
    let (mut sender, connection) = h2_connection(proxy.addr).await;
    let answer = tokio::time::timeout(WAIT, h2_get(&mut sender, "/stream")).await;
    let answer = answer.expect("a stalled HTTP/2 body was never cut");
    assert!(answer.is_err(), "{answer:?}");
    eventually(WAIT, "the backend connection was released", || async {
        released.load(SeqCst)
    })
    .await;
    let ended = tokio::time::timeout(WAIT, connection).await;
    assert!(ended.is_ok(), "the client connection stayed open");
    assert_eq!(proxy.plane.stalled_responses(), 1);
}

#[tokio::test]
async fn a_route_with_its_own_bound_lets_a_quiet_body_pause() {
    // Quiet for three listener bounds mid-body, as a server-sent event stream is.
    let (backend, _released) = streaming_backend(20, |frames| async move {
        let _ = frames.send(Bytes::from_static(b"first ten.")).await;
        tokio::time::sleep(BODY_IDLE * 3).await;
        let _ = frames.send(Bytes::from_static(b"last ten..")).await;
    })
    .await;
    let config = with_listener(&format!(
        "[services.web]\n\n{}\n[[routes]]\nname = \"events\"\npath_prefix = \"/stream\"\nheaders = {{ \"x-events\" = \"1\" }}\nservice = \"web\"\npool = \"web\"\nbody_idle_timeout = \"0s\"\n\n[[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\n",
        pool("web", "web", &[&backend], "")
    ));
    let proxy = TestProxy::start_with(&config, |limits| limits.body_idle_timeout = BODY_IDLE).await;

    // HTTP/1, on the route with no bound: the whole body arrives.
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nHost: shop\r\nx-events: 1\r\n\r\n")
        .await
        .expect("write");
    read_through(&mut stream, b"first ten.last ten..").await;
    // The next request on the same connection takes the other route, and the
    // listener's bound again.
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .expect("write");
    let (cut, closed) = read_to_close(&mut stream).await;
    assert!(closed, "the listener's bound no longer applied");
    assert!(
        cut.ends_with(b"first ten."),
        "{}",
        String::from_utf8_lossy(&cut)
    );

    // HTTP/2: the route lengthens the connection's bound.
    let (mut sender, _connection) = h2_connection(proxy.addr).await;
    let request = http::Request::get("http://shop/stream")
        .header("x-events", "1")
        .body(http_body_util::Full::default())
        .expect("request");
    let response = sender.send_request(request).await.expect("answer head");
    let body = http_body_util::BodyExt::collect(response.into_body()).await;
    let body = body.expect("the whole HTTP/2 body").to_bytes();
    assert_eq!(&body[..], b"first ten.last ten..");
}
