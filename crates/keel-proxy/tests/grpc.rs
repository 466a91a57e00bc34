//! gRPC through an h2c pool, with tonic's own client and server (raw-bytes messages, so
//! no protobuf build step): unary and server-streaming calls pass with their trailers;
//! a call's `grpc-status` is what the stats count (a 200 with UNAVAILABLE is a server
//! error); a trailers-only UNAVAILABLE is retried once on another backend; the client's
//! `grpc-timeout` caps the route's timeout; and Keel's own errors reach the client as
//! gRPC statuses it can read.

mod support;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use hyper::body::Incoming;
use keel_proxy::stats::Outcome;
use support::grpc::{BoxFuture, Channel, Raw, grpc_client, grpc_server};
use support::*;
use tonic::{Code, Status};

/// How a test backend answers.
#[derive(Clone, Copy)]
enum Mode {
    /// `NAME:message`, and a stream of three messages.
    Serve,
    /// UNAVAILABLE, trailers-only (tonic's way of sending an error).
    Unavailable,
    /// Never within any test's patience.
    Hang,
    /// Streams one message, then nothing more: the call never ends.
    Stall,
}

#[derive(Clone)]
struct Echo {
    name: &'static str,
    mode: Mode,
    calls: Arc<AtomicUsize>,
}

impl Echo {
    async fn answer(self, message: Bytes) -> Result<Bytes, Status> {
        self.calls.fetch_add(1, SeqCst);
        match self.mode {
            Mode::Serve => Ok(Bytes::from(format!(
                "{}:{}",
                self.name,
                String::from_utf8_lossy(&message)
            ))),
            Mode::Unavailable => Err(Status::unavailable("shedding load")),
            Mode::Stall => Ok(message),
            Mode::Hang => {
                tokio::time::sleep(Duration::from_secs(600)).await;
                Err(Status::internal("woke up"))
            }
        }
    }
}

impl tower::Service<tonic::Request<Bytes>> for Echo {
    type Response = tonic::Response<Bytes>;
    type Error = Status;
    type Future = BoxFuture<Result<Self::Response, Status>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let echo = self.clone();
        Box::pin(async move {
            let answer = echo.answer(request.into_inner()).await?;
            let mut response = tonic::Response::new(answer);
            response
                .metadata_mut()
                .insert("x-service", "echo".parse().expect("metadata"));
            Ok(response)
        })
    }
}

/// The server-streaming method: three messages, `NAME:message:i`.
#[derive(Clone)]
struct Stream(Echo);

type Messages = Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, Status>> + Send>>;

impl tower::Service<tonic::Request<Bytes>> for Stream {
    type Response = tonic::Response<Messages>;
    type Error = Status;
    type Future = BoxFuture<Result<Self::Response, Status>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let echo = self.0.clone();
        Box::pin(async move {
            let stall = matches!(echo.mode, Mode::Stall);
            let first = echo.answer(request.into_inner()).await?;
            let items: Vec<Result<Bytes, Status>> = (0..3)
                .map(|i| {
                    Ok(Bytes::from(format!(
                        "{}:{i}",
                        String::from_utf8_lossy(&first)
                    )))
                })
                .collect();
            let messages = futures_util::stream::iter(items);
            let messages: Messages = if stall {
                use futures_util::StreamExt;
                Box::pin(messages.take(1).chain(futures_util::stream::pending()))
            } else {
                Box::pin(messages)
            };
            Ok(tonic::Response::new(messages))
        })
    }
}

/// A tonic gRPC server (HTTP/2 only) on 127.0.0.1:0: the calls it took.
async fn grpc_backend(name: &'static str, mode: Mode) -> (SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let echo = Echo {
        name,
        mode,
        calls: calls.clone(),
    };
    let addr = grpc_server(move |request: http::Request<Incoming>| {
        let echo = echo.clone();
        async move {
            match request.uri().path() {
                "/test.Echo/Unary" => tonic::server::Grpc::new(Raw).unary(echo, request).await,
                "/test.Echo/Stream" => {
                    tonic::server::Grpc::new(Raw)
                        .server_streaming(Stream(echo), request)
                        .await
                }
                _ => Status::unimplemented("no such method").into_http(),
            }
        }
    })
    .await;
    (addr, calls)
}

fn grpc_config(backends: &[SocketAddr], route_extra: &str) -> String {
    let list: Vec<String> = backends.iter().map(|a| format!("\"{a}\"")).collect();
    with_listener(&format!(
        "[services.echo]\n\n\
         [pools.echo]\nservice = \"echo\"\nprotocol = \"h2c\"\nbackends = [{}]\n\n\
         [[routes]]\nname = \"echo\"\nservice = \"echo\"\npool = \"echo\"\n{route_extra}\n",
        list.join(", ")
    ))
}

async fn unary(
    grpc: &mut tonic::client::Grpc<Channel>,
    message: &'static str,
) -> Result<Bytes, Status> {
    unary_within(grpc, message, None).await
}

async fn unary_within(
    grpc: &mut tonic::client::Grpc<Channel>,
    message: &'static str,
    deadline: Option<Duration>,
) -> Result<Bytes, Status> {
    let mut request = tonic::Request::new(Bytes::from_static(message.as_bytes()));
    if let Some(deadline) = deadline {
        request.set_timeout(deadline);
    }
    let call = grpc.unary(request, PathAndQuery::from_static("/test.Echo/Unary"), Raw);
    tokio::time::timeout(WAIT, call)
        .await
        .expect("an answer before the test's patience ran out")
        .map(tonic::Response::into_inner)
}

/// The route's outcomes across its backends.
fn outcomes(proxy: &TestProxy, outcome: Outcome) -> u64 {
    proxy.generation.stats.routes[0].targets[0]
        .iter()
        .map(|counters| counters.get(outcome))
        .sum()
}

#[tokio::test]
async fn unary_and_streaming_calls_pass_with_their_trailers_and_count_as_successes() {
    let (addr, calls) = grpc_backend("b1", Mode::Serve).await;
    let proxy = TestProxy::start(&grpc_config(&[addr], "")).await;
    let mut grpc = grpc_client(&proxy).await;
    assert_eq!(unary(&mut grpc, "hi").await.expect("unary call"), "b1:hi");

    let request = tonic::Request::new(Bytes::from_static(b"s"));
    let mut stream = grpc
        .server_streaming(request, PathAndQuery::from_static("/test.Echo/Stream"), Raw)
        .await
        .expect("streaming call")
        .into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await.expect("a message") {
        messages.push(message);
    }
    assert_eq!(messages, ["b1:s:0", "b1:s:1", "b1:s:2"]);
    // The stream's end: its trailers carried grpc-status 0 through Keel.
    let trailers = stream.trailers().await.expect("trailers");
    assert!(trailers.is_some(), "no trailers reached the client");
    assert_eq!(calls.load(SeqCst), 2);
    eventually(WAIT, "both calls counted as successes", || async {
        outcomes(&proxy, Outcome::Success) == 2
    })
    .await;
    assert_eq!(outcomes(&proxy, Outcome::ServerError), 0);
}

#[tokio::test]
async fn a_200_with_grpc_status_unavailable_counts_as_a_server_error() {
    let (addr, calls) = grpc_backend("b1", Mode::Unavailable).await;
    let proxy = TestProxy::start(&grpc_config(&[addr], "retries = 0")).await;
    let mut grpc = grpc_client(&proxy).await;
    let status = unary(&mut grpc, "hi").await.expect_err("unavailable");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "shedding load",
        "the backend's own status"
    );
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(outcomes(&proxy, Outcome::ServerError), 1);
    assert_eq!(outcomes(&proxy, Outcome::Success), 0);
}

#[tokio::test]
async fn unavailable_before_any_byte_is_retried_once_on_another_backend() {
    let (down, down_calls) = grpc_backend("down", Mode::Unavailable).await;
    let (up, up_calls) = grpc_backend("up", Mode::Serve).await;
    let proxy = TestProxy::start(&grpc_config(&[down, up], "retries = 1")).await;
    let mut grpc = grpc_client(&proxy).await;
    for _ in 0..4 {
        assert_eq!(unary(&mut grpc, "hi").await.expect("served"), "up:hi");
    }
    let refused = down_calls.load(SeqCst) as u64;
    assert!(
        refused >= 1,
        "round robin never tried the unavailable backend"
    );
    assert_eq!(
        up_calls.load(SeqCst),
        4,
        "each call reached the good backend once"
    );
    assert_eq!(outcomes(&proxy, Outcome::ServerError), refused);
    assert_eq!(outcomes(&proxy, Outcome::Success), 4);
}

#[tokio::test]
async fn the_clients_grpc_timeout_caps_the_route_timeout() {
    let (addr, _) = grpc_backend("b1", Mode::Hang).await;
    // The route would wait a minute; the client says 300 ms; the test waits 10 s.
    let proxy = TestProxy::start(&grpc_config(&[addr], "timeout = \"60s\"")).await;
    let mut grpc = grpc_client(&proxy).await;
    let status = unary_within(&mut grpc, "hi", Some(Duration::from_millis(300)))
        .await
        .expect_err("deadline exceeded");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("keel: upstream-timeout"),
        "{status:?}"
    );
}

#[tokio::test]
async fn keels_own_errors_are_grpc_statuses_the_client_reads() {
    // A backend address with nothing listening.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let proxy = TestProxy::start(&grpc_config(&[closed], "retries = 0")).await;
    let mut grpc = grpc_client(&proxy).await;
    let status = unary(&mut grpc, "hi").await.expect_err("no backend");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("keel: upstream-connect-failed"),
        "{status:?}"
    );
}

#[tokio::test]
async fn calls_the_client_cancels_do_not_eject_a_healthy_backend() {
    let (addr, calls) = grpc_backend("b1", Mode::Stall).await;
    let proxy = TestProxy::start(&grpc_config(&[addr], "timeout = \"60s\"")).await;
    let mut grpc = grpc_client(&proxy).await;
    // More cancelled calls than the outlier ejection's consecutive failures (5): each
    // gets its first message, then the client gives up on it.
    for _ in 0..8 {
        let request = tonic::Request::new(Bytes::from_static(b"s"));
        let mut stream = grpc
            .server_streaming(request, PathAndQuery::from_static("/test.Echo/Stream"), Raw)
            .await
            .expect("streaming call")
            .into_inner();
        assert!(stream.message().await.expect("first message").is_some());
        drop(stream);
    }
    eventually(WAIT, "every call reached the backend", || async {
        calls.load(SeqCst) == 8
    })
    .await;
    eventually(WAIT, "the cancelled calls are counted", || async {
        outcomes(&proxy, Outcome::ClientError) == 8
    })
    .await;
    assert_eq!(
        outcomes(&proxy, Outcome::ServerError),
        0,
        "a cancelled call counted as the backend's error"
    );
    assert_ne!(
        proxy.generation.pools[0].backends[0].state(),
        keel_proxy::BackendState::Ejected
    );
}
