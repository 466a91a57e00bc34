//! gRPC health checks (`health = { kind = "grpc" }`) against a tonic server serving
//! `grpc.health.v1.Health/Check` (built here with tonic's server half; its two
//! one-field messages written as the protobuf bytes the spec defines): a backend whose
//! status flips to NOT_SERVING is ejected and gets no calls, and comes back once
//! SERVING again; a service name the server does not know (NOT_FOUND) keeps it out.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use hyper::body::Incoming;
use keel_config::UpstreamProtocol;
use keel_proxy::BackendState;
use keel_proxy::probe::{ProbeTarget, ProbeVerdict, probe_backend_over};
use support::grpc::{BoxFuture, Channel, Raw, grpc_client, grpc_server};
use support::*;
use tonic::{Code, Status};

/// `ServingStatus` values of grpc.health.v1.
const SERVING: u8 = 1;
const NOT_SERVING: u8 = 2;
/// The service name the backends know.
const KNOWN: &str = "shop.Inventory";

/// One backend: its health status (flipped by the test), the names it was asked
/// about, and the echo calls it served.
#[derive(Clone)]
struct Backend {
    name: &'static str,
    status: Arc<AtomicU8>,
    asked: Arc<Mutex<Vec<String>>>,
    calls: Arc<AtomicUsize>,
}

/// `HealthCheckRequest { string service = 1; }`: the service name.
fn service_name(message: &[u8]) -> Result<String, Status> {
    match message {
        [] => Ok(String::new()),
        [0x0a, len, name @ ..] if usize::from(*len) == name.len() => {
            Ok(String::from_utf8_lossy(name).into_owned())
        }
        _ => Err(Status::invalid_argument("not a HealthCheckRequest")),
    }
}

struct Health(Backend);

impl tower::Service<tonic::Request<Bytes>> for Health {
    type Response = tonic::Response<Bytes>;
    type Error = Status;
    type Future = BoxFuture<Result<Self::Response, Status>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let backend = self.0.clone();
        Box::pin(async move {
            let name = service_name(&request.into_inner())?;
            backend.asked.lock().expect("asked").push(name.clone());
            if !name.is_empty() && name != KNOWN {
                return Err(Status::not_found("unknown service"));
            }
            // HealthCheckResponse { ServingStatus status = 1; }
            let status = backend.status.load(SeqCst);
            let mut response = tonic::Response::new(Bytes::from(vec![0x08, status]));
            response
                .metadata_mut()
                .insert("x-service", "inventory".parse().expect("metadata"));
            Ok(response)
        })
    }
}

struct Echo(Backend);

impl tower::Service<tonic::Request<Bytes>> for Echo {
    type Response = tonic::Response<Bytes>;
    type Error = Status;
    type Future = BoxFuture<Result<Self::Response, Status>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: tonic::Request<Bytes>) -> Self::Future {
        let backend = self.0.clone();
        Box::pin(async move {
            backend.calls.fetch_add(1, SeqCst);
            let mut response = tonic::Response::new(Bytes::from_static(backend.name.as_bytes()));
            response
                .metadata_mut()
                .insert("x-service", "inventory".parse().expect("metadata"));
            Ok(response)
        })
    }
}

/// A tonic gRPC server (HTTP/2 only) on 127.0.0.1:0 serving the health service and
/// `/test.Echo/Unary` (answers its name).
async fn grpc_backend(name: &'static str) -> (SocketAddr, Backend) {
    let backend = Backend {
        name,
        status: Arc::new(AtomicU8::new(SERVING)),
        asked: Arc::default(),
        calls: Arc::default(),
    };
    let shared = backend.clone();
    let addr = grpc_server(move |request: http::Request<Incoming>| {
        let backend = shared.clone();
        async move {
            match request.uri().path() {
                "/grpc.health.v1.Health/Check" => {
                    tonic::server::Grpc::new(Raw)
                        .unary(Health(backend), request)
                        .await
                }
                "/test.Echo/Unary" => {
                    tonic::server::Grpc::new(Raw)
                        .unary(Echo(backend), request)
                        .await
                }
                _ => Status::unimplemented("no such method").into_http(),
            }
        }
    })
    .await;
    (addr, backend)
}

fn health_config(backends: &[SocketAddr], grpc_service: &str) -> String {
    let list: Vec<String> = backends.iter().map(|a| format!("\"{a}\"")).collect();
    with_listener(&format!(
        "[services.inventory]\nidentity = {{ header = \"x-service\", equals = \"inventory\" }}\n\n\
         [pools.inventory]\nservice = \"inventory\"\nprotocol = \"h2c\"\nbackends = [{}]\n\
         health = {{ kind = \"grpc\", grpc_service = \"{grpc_service}\", interval = \"50ms\", \
         timeout = \"500ms\", healthy_after = 2, unhealthy_after = 2 }}\n\
         outlier = {{ consecutive_failures = 0 }}\n\n\
         [[routes]]\nname = \"inventory\"\nservice = \"inventory\"\npool = \"inventory\"\n",
        list.join(", ")
    ))
}

/// Which backend answered each of `n` unary calls.
async fn answers(grpc: &mut tonic::client::Grpc<Channel>, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let request = tonic::Request::new(Bytes::from_static(b"x"));
        let call = grpc.unary(request, PathAndQuery::from_static("/test.Echo/Unary"), Raw);
        let answer = tokio::time::timeout(WAIT, call)
            .await
            .expect("an answer in time")
            .expect("a served call")
            .into_inner();
        out.push(String::from_utf8_lossy(&answer).into_owned());
    }
    out
}

#[tokio::test]
async fn a_backend_not_serving_is_ejected_and_comes_back_when_serving() {
    let (steady_addr, steady) = grpc_backend("steady").await;
    let (flaky_addr, flaky) = grpc_backend("flaky").await;
    let proxy = TestProxy::start(&health_config(&[steady_addr, flaky_addr], KNOWN)).await;
    let flaky_state = || proxy.generation.pools[0].backends[1].state();
    assert_eq!(flaky_state(), BackendState::Healthy);
    assert!(
        flaky
            .asked
            .lock()
            .expect("asked")
            .iter()
            .all(|n| n == KNOWN),
        "the probe names the configured service"
    );
    let mut grpc = grpc_client(&proxy).await;
    let served = answers(&mut grpc, 10).await;
    assert_eq!(
        served.iter().filter(|b| *b == "flaky").count(),
        5,
        "{served:?}"
    );

    flaky.status.store(NOT_SERVING, SeqCst);
    eventually(WAIT, "flaky is ejected as unhealthy", || async {
        flaky_state() == BackendState::Unhealthy
    })
    .await;
    let before = flaky.calls.load(SeqCst);
    let served = answers(&mut grpc, 10).await;
    assert!(served.iter().all(|b| b == "steady"), "{served:?}");
    assert_eq!(flaky.calls.load(SeqCst), before, "no call reached flaky");
    assert!(steady.calls.load(SeqCst) >= 15);

    flaky.status.store(SERVING, SeqCst);
    eventually(WAIT, "flaky is healthy again", || async {
        flaky_state() == BackendState::Healthy
    })
    .await;
    let served = answers(&mut grpc, 10).await;
    assert_eq!(
        served.iter().filter(|b| *b == "flaky").count(),
        5,
        "{served:?}"
    );
}

#[tokio::test]
async fn a_service_the_backend_does_not_know_keeps_it_out() {
    let (addr, backend) = grpc_backend("b1").await;
    let proxy = TestProxy::start(&health_config(&[addr], "shop.Unknown")).await;
    assert_eq!(
        proxy.generation.pools[0].backends[0].state(),
        BackendState::Unhealthy
    );
    assert!(!backend.asked.lock().expect("asked").is_empty(), "probed");
    let mut grpc = grpc_client(&proxy).await;
    let request = tonic::Request::new(Bytes::from_static(b"x"));
    let status = grpc
        .unary(request, PathAndQuery::from_static("/test.Echo/Unary"), Raw)
        .await
        .expect_err("no healthy backend");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(backend.calls.load(SeqCst), 0);
}

/// The probe `keel check --probe` and the health checks share, directly: its verdict
/// and the words it gives.
#[tokio::test]
async fn the_probe_reads_serving_not_serving_and_grpc_errors() {
    let (addr, backend) = grpc_backend("b1").await;
    let probe = |target| {
        probe_backend_over(
            UpstreamProtocol::H2c,
            None,
            addr,
            target,
            None,
            Duration::from_secs(2),
        )
    };
    let ok = probe(ProbeTarget::GrpcHealth("")).await;
    assert_eq!(ok.verdict, ProbeVerdict::Ok, "{}", ok.detail);
    assert_eq!(ok.detail, "SERVING");
    backend.status.store(NOT_SERVING, SeqCst);
    let down = probe(ProbeTarget::GrpcHealth(KNOWN)).await;
    assert_eq!(down.verdict, ProbeVerdict::Down);
    assert_eq!(down.detail, "gRPC health NOT_SERVING");
    let unknown = probe(ProbeTarget::GrpcHealth("shop.Unknown")).await;
    assert_eq!(unknown.verdict, ProbeVerdict::Down);
    assert!(
        unknown.detail.contains("grpc-status 5 unknown service"),
        "{}",
        unknown.detail
    );
    assert_eq!(
        *backend.asked.lock().expect("asked"),
        ["", KNOWN, "shop.Unknown"]
    );
    // A plain GET of this gRPC server is not a pass: it answers 200 with
    // grpc-status UNIMPLEMENTED, which only the gRPC probe reads.
    let get = probe(ProbeTarget::Get("/healthz")).await;
    assert_eq!(get.status, Some(200));
}
