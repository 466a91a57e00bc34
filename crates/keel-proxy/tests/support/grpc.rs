//! gRPC fixtures for the suites that speak it through Keel (`grpc.rs`, `grpc_health.rs`):
//! a raw-bytes codec (tonic frames the messages, so no protobuf build step), a tonic
//! server over h2c on 127.0.0.1:0 whose methods a test answers by path, and tonic's
//! client half over an h2c connection to a [`TestProxy`](super::TestProxy).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::{Buf, BufMut, Bytes};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Messages are raw bytes: tonic frames them, this only copies them.
#[derive(Clone, Copy, Default)]
pub struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The future a test's `tower::Service` for a gRPC method returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A tonic gRPC server (HTTP/2 only) on 127.0.0.1:0: each request goes to `answer`,
/// which picks the method by path (`tonic::server::Grpc::new(Raw).unary(..)`, or
/// `Status::unimplemented(..).into_http()` for a path it does not serve).
pub async fn grpc_server<A, F>(answer: A) -> SocketAddr
where
    A: Fn(http::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = http::Response<tonic::body::Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<Incoming>| {
                    let response = answer(request);
                    async move { Ok::<_, Infallible>(response.await) }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A gRPC channel: hyper's client over h2c.
pub type Channel = Client<HttpConnector, tonic::body::Body>;

/// tonic's client half over an h2c connection to Keel, ready for calls.
pub async fn grpc_client(proxy: &super::TestProxy) -> tonic::client::Grpc<Channel> {
    let channel = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let origin = format!("http://{}", proxy.addr).parse().expect("origin");
    let mut grpc = tonic::client::Grpc::with_origin(channel, origin);
    grpc.ready().await.expect("ready");
    grpc
}
