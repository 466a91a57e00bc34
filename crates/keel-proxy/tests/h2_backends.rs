//! HTTP/2 to backends (`[pools.NAME] protocol = "h2c"`): requests reach the backend as
//! HTTP/2 streams with their host as `:authority`, health probes and the identity check
//! speak HTTP/2 too, trailers pass both ways, and a connection never carries more
//! streams at once than `max_streams_per_connection`, so a backend that refuses streams
//! past that limit never has to.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use support::*;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// How long the refusing backend holds each request (200 milliseconds), so that the
/// requests of a burst are in flight together.
const HOLD: Duration = Duration::from_millis(200);

fn h2c_config(backend: &TestBackend, extra: &str) -> String {
    with_listener(&format!(
        "[services.web]\nidentity = {{ header = \"x-service\", equals = \"web\" }}\n\n{}\n\
         [[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\n",
        pool(
            "web",
            "web",
            &[backend],
            &format!("protocol = \"h2c\"\n{extra}")
        )
    ))
}

#[tokio::test]
async fn an_h2c_pool_sends_requests_as_http2_with_the_host_as_authority() {
    let backend = TestBackend::start("b1", Some("web")).await;
    let proxy = TestProxy::start(&h2c_config(
        &backend,
        "health = { path = \"/healthz\", interval = \"50ms\" }",
    ))
    .await;
    let answer = get(
        &client(),
        &proxy.url("/cart?x=1"),
        &[("host", "shop.example")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "b1");
    let head = backend.last_head().expect("the backend saw the request");
    assert_eq!(head.version, http::Version::HTTP_2);
    assert_eq!(
        head.uri.authority().map(|a| a.as_str()),
        Some("shop.example")
    );
    assert_eq!(
        head.uri.path_and_query().map(|p| p.as_str()),
        Some("/cart?x=1")
    );
    // The health probes passed over HTTP/2, or the backend would get no traffic.
    assert!(backend.probes() > 0);
}

#[tokio::test]
async fn a_backend_that_answers_as_another_service_over_h2c_is_refused() {
    let backend = TestBackend::start("b1", Some("legacy")).await;
    let proxy = TestProxy::start(&h2c_config(&backend, "")).await;
    let answer = get(&client(), &proxy.url("/"), &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.text());
    assert_eq!(answer.header("keel-error"), Some("misidentified-backend"));
}

#[tokio::test]
async fn trailers_pass_through_an_h2c_pool_both_ways() {
    let backend =
        TestBackend::with_handler("b1", |request: Request<hyper::body::Incoming>| async move {
            // Echo the request's trailers back as response trailers, behind the body.
            let collected = request.into_body().collect().await.expect("request body");
            let mut trailers = collected.trailers().cloned().unwrap_or_default();
            trailers.insert("x-checksum", HeaderValue::from_static("abc"));
            let frames = vec![
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(
                    b"data",
                ))),
                Ok(http_body::Frame::trailers(trailers)),
            ];
            Response::builder()
                .header("x-service", "web")
                .body(StreamBody::new(futures_util::stream::iter(frames)))
                .expect("response")
        })
        .await;
    let proxy = TestProxy::start(&h2c_config(&backend, "")).await;
    let mut request_trailers = HeaderMap::new();
    request_trailers.insert("x-sent", HeaderValue::from_static("yes"));
    let frames = vec![
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(b"up"))),
        Ok(http_body::Frame::trailers(request_trailers)),
    ];
    let body = StreamBody::new(futures_util::stream::iter(frames));
    let request = Request::post(format!("http://{}/echo", proxy.addr))
        .body(body)
        .expect("request");
    let (mut sender, _connection) = raw_h2(proxy.addr).await;
    let response = tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .expect("answer in time")
        .expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().expect("response trailers");
    assert_eq!(
        trailers.get("x-checksum").map(|v| v.as_bytes()),
        Some(&b"abc"[..])
    );
    assert_eq!(
        trailers.get("x-sent").map(|v| v.as_bytes()),
        Some(&b"yes"[..]),
        "the request's trailers did not reach the backend"
    );
    assert_eq!(collected.to_bytes(), Bytes::from_static(b"data"));
}

/// An HTTP/2 connection whose requests carry any body type.
async fn raw_h2<B>(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<B>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
)
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("HTTP/2 handshake");
    (sender, tokio::spawn(connection))
}

/// What the refusing backend saw.
#[derive(Default)]
struct Streams {
    connections: AtomicUsize,
    answered: AtomicUsize,
    refused: AtomicUsize,
    /// Most streams in flight on one connection at once.
    most: AtomicUsize,
}

/// An h2c backend (the `h2` crate's server) that advertises no stream limit but refuses
/// (`RST_STREAM REFUSED_STREAM`) any stream past `limit` in flight on one connection,
/// as servers behind their own worker pools do; it holds each answer for [`HOLD`].
async fn refusing_backend(limit: usize) -> (SocketAddr, Arc<Streams>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Streams::default());
    let counted = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.connections.fetch_add(1, SeqCst);
            let seen = counted.clone();
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(stream).await else {
                    return;
                };
                let in_flight = Arc::new(AtomicUsize::new(0));
                while let Some(Ok((_request, mut respond))) = connection.accept().await {
                    let now = in_flight.fetch_add(1, SeqCst) + 1;
                    if now > limit {
                        in_flight.fetch_sub(1, SeqCst);
                        seen.refused.fetch_add(1, SeqCst);
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    seen.most.fetch_max(now, SeqCst);
                    let (seen, in_flight) = (seen.clone(), in_flight.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(HOLD).await;
                        let head = Response::builder()
                            .header("x-service", "web")
                            .body(())
                            .expect("head");
                        // Counted out before the end reaches Keel, which may then send
                        // the next stream at once.
                        in_flight.fetch_sub(1, SeqCst);
                        seen.answered.fetch_add(1, SeqCst);
                        if let Ok(mut body) = respond.send_response(head, false) {
                            let _ = body.send_data(Bytes::from_static(b"ok"), true);
                        }
                    });
                }
            });
        }
    });
    (addr, seen)
}

fn refusing_config(addr: SocketAddr, max_streams: u32, retries: u32) -> String {
    with_listener(&format!(
        "[services.web]\nidentity = {{ header = \"x-service\", equals = \"web\" }}\n\n\
         [pools.web]\nservice = \"web\"\nbackends = [\"{addr}\"]\nprotocol = \"h2c\"\n\
         max_streams_per_connection = {max_streams}\n\n\
         [[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\nretries = {retries}\n"
    ))
}

/// Sends `count` GETs at once; returns their statuses.
async fn burst(proxy: &TestProxy, count: usize) -> Vec<StatusCode> {
    let client = client();
    let mut requests = JoinSet::new();
    for i in 0..count {
        let client = client.clone();
        let url = proxy.url(&format!("/item/{i}"));
        requests.spawn(async move { get(&client, &url, &[]).await.status });
    }
    let mut statuses = Vec::new();
    while let Some(status) = requests.join_next().await {
        statuses.push(status.expect("request task"));
    }
    statuses
}

#[tokio::test]
async fn a_connection_carries_at_most_max_streams_so_a_refusing_backend_refuses_none() {
    let (addr, seen) = refusing_backend(2).await;
    let proxy = TestProxy::start(&refusing_config(addr, 2, 0)).await;
    let statuses = burst(&proxy, 6).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(
        seen.refused.load(SeqCst),
        0,
        "Keel sent streams past the limit"
    );
    assert_eq!(seen.answered.load(SeqCst), 6);
    assert_eq!(
        seen.most.load(SeqCst),
        2,
        "the streams were not multiplexed"
    );
    assert_eq!(
        seen.connections.load(SeqCst),
        3,
        "six requests at two streams each need three connections, no more"
    );
}

#[tokio::test]
async fn a_refused_stream_is_sent_again_on_a_new_connection() {
    // Keel's limit (8) is above the backend's real one (1): the backend refuses, and
    // a refused GET (which the backend did nothing with) goes out once more, on a new
    // connection.
    let (addr, seen) = refusing_backend(1).await;
    let proxy = TestProxy::start(&refusing_config(addr, 8, 1)).await;
    let statuses = burst(&proxy, 2).await;
    assert!(
        seen.refused.load(SeqCst) >= 1,
        "the backend refused nothing"
    );
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
}
