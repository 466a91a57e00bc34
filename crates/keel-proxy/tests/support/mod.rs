//! Shared test fixtures: real hyper backends on 127.0.0.1:0, a real data plane serving a
//! real listener, an HTTP client, raw sockets; TLS fixtures in `tls.rs`, gRPC ones in
//! `grpc.rs`. Waiting and the loopback pieces every
//! crate's tests share come from `keel-testkit`, re-exported here under the names these
//! suites use.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod grpc;
pub mod tls;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keel_proxy::{DataPlane, DataPlaneOptions, Generation, ListenerLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

/// `eventually(WAIT, "what", || async { .. })` in these suites panics naming what it
/// waited for: keel-testkit's [`wait_until`](keel_testkit::wait_until).
#[allow(unused_imports)] // not every suite uses every helper
pub use keel_testkit::{
    WAIT, closed_by_peer, has_head, read_to_close, read_until, wait_until, wait_until as eventually,
};

/// A backend's answer body: any body of `Bytes` that cannot fail.
pub type AnyBody = UnsyncBoxBody<Bytes, Infallible>;

type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<AnyBody>> + Send>>
        + Send
        + Sync,
>;

/// What a test backend saw.
#[derive(Default)]
pub struct Seen {
    /// Requests other than health probes.
    pub requests: AtomicU64,
    /// Health probes (`GET /healthz`).
    pub probes: AtomicU64,
    /// Heads of the requests (not probes), in arrival order.
    pub heads: Mutex<Vec<SeenHead>>,
}

/// The head of a request a backend received.
#[derive(Clone, Debug)]
pub struct SeenHead {
    pub method: http::Method,
    pub uri: http::Uri,
    pub version: http::Version,
    pub headers: http::HeaderMap,
}

/// A real HTTP/1.1 + h2c server on 127.0.0.1:0.
pub struct TestBackend {
    pub addr: SocketAddr,
    pub name: String,
    pub seen: Arc<Seen>,
    accept: Option<JoinHandle<()>>,
}

impl TestBackend {
    /// A backend answering `200` with its name as body and `x-backend: NAME`, plus
    /// `x-service: SERVICE` when `service` is given (also on `/healthz`).
    pub async fn start(name: &str, service: Option<&str>) -> Self {
        let reply_name = name.to_string();
        let service = service.map(str::to_string);
        Self::with_handler(name, move |_request| {
            let name = reply_name.clone();
            let service = service.clone();
            async move {
                let mut response = Response::builder().header("x-backend", name.as_str());
                if let Some(service) = service {
                    response = response.header("x-service", service);
                }
                response
                    .body(Full::new(Bytes::from(name)))
                    .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
            }
        })
        .await
    }

    /// A backend answering with `handler` (probes to `/healthz` go to it too).
    pub async fn with_handler<F, Fut, B>(name: &str, handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<B>> + Send + 'static,
        B: http_body::Body<Data = Bytes, Error = Infallible> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        Self::serve_on(name, listener, handler)
    }

    /// Serves `handler` on an already bound listener.
    pub fn serve_on<F, Fut, B>(name: &str, listener: TcpListener, handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<B>> + Send + 'static,
        B: http_body::Body<Data = Bytes, Error = Infallible> + Send + 'static,
    {
        let addr = listener.local_addr().expect("backend addr");
        let seen = Arc::new(Seen::default());
        let handler: Handler = Arc::new(move |request| {
            let answer = handler(request);
            Box::pin(async move { answer.await.map(BodyExt::boxed_unsync) })
        });
        let counted = seen.clone();
        let accept = tokio::spawn(async move {
            // Owning the connection tasks here means aborting this task closes them all.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let seen = counted.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        if request.uri().path() == "/healthz" {
                            seen.probes.fetch_add(1, SeqCst);
                        } else {
                            seen.requests.fetch_add(1, SeqCst);
                            if let Ok(mut heads) = seen.heads.lock() {
                                heads.push(SeenHead {
                                    method: request.method().clone(),
                                    uri: request.uri().clone(),
                                    version: request.version(),
                                    headers: request.headers().clone(),
                                });
                            }
                        }
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(handler(request).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            name: name.to_string(),
            seen,
            accept: Some(accept),
        }
    }

    /// Requests received, probes excluded.
    pub fn requests(&self) -> u64 {
        self.seen.requests.load(SeqCst)
    }

    /// The last request head received (probes excluded).
    pub fn last_head(&self) -> Option<SeenHead> {
        self.seen.heads.lock().ok()?.last().cloned()
    }

    /// The paths of the request heads received, in order (probes excluded).
    pub fn paths(&self) -> Vec<String> {
        let heads = self.seen.heads.lock().expect("heads");
        heads
            .iter()
            .map(|head| head.uri.path().to_owned())
            .collect()
    }

    /// Health probes received.
    pub fn probes(&self) -> u64 {
        self.seen.probes.load(SeqCst)
    }

    /// Stops the backend: the port refuses connections and open connections close.
    pub async fn kill(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
    }
}

/// A data plane serving one listener on 127.0.0.1:0.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub plane: Arc<DataPlane>,
    pub generation: Arc<Generation>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<std::io::Result<()>>>,
}

/// Parses a config, failing the test on any error.
pub fn config(text: &str) -> keel_config::Config {
    let parsed = keel_config::parse(text);
    assert!(
        !parsed.has_errors(),
        "bad test config: {:#?}",
        parsed.diagnostics
    );
    parsed.config
}

/// A listener block plus `rest`, for tests that serve through `TestProxy`.
pub fn with_listener(rest: &str) -> String {
    format!("[listeners.test]\naddr = \"127.0.0.1:1\"\n\n{rest}")
}

impl TestProxy {
    /// Compiles `config_text` as generation 1 and serves it.
    pub async fn start(config_text: &str) -> Self {
        Self::start_with(config_text, |_| {}).await
    }

    /// Like [`TestProxy::start`], letting the test adjust options and limits.
    pub async fn start_with(config_text: &str, adjust: impl FnOnce(&mut ListenerLimits)) -> Self {
        Self::start_from(config(config_text), adjust).await
    }

    /// Like [`TestProxy::start_with`], from a config already parsed (and its files read).
    pub async fn start_from(
        config: keel_config::Config,
        adjust: impl FnOnce(&mut ListenerLimits),
    ) -> Self {
        let config = Arc::new(config);
        let mut options = DataPlaneOptions::from_config(&config);
        options.sample_size = options.sample_size.min(1000);
        let plane = DataPlane::new(options).expect("data plane");
        let generation = plane.compile(1, config.clone()).expect("compile");
        generation.first_probes(WAIT).await;
        plane.activate(generation.clone());
        let mut limits = ListenerLimits::from_server(&config.server);
        adjust(&mut limits);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = plane.clone();
        let served = tokio::spawn(async move {
            serving
                .serve(listener, limits, async move {
                    let _ = stopped.await;
                })
                .await
        });
        Self {
            addr,
            plane,
            generation,
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Asks the proxy to shut down (stop accepting, drain), without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for `serve` to return after [`TestProxy::begin_shutdown`].
    pub async fn finished(&mut self) {
        if let Some(served) = self.served.take() {
            let result = tokio::time::timeout(WAIT, served).await;
            assert!(
                matches!(result, Ok(Ok(Ok(())))),
                "serve did not end cleanly: {result:?}"
            );
        }
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// A keep-alive HTTP/1.1 client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 prior-knowledge (h2c) client.
pub fn h2c_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// An HTTP/2 (prior knowledge) connection to `addr`: the request handle, and the task
/// driving the connection, which ends when the connection does.
pub async fn h2_connection(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    JoinHandle<Result<(), hyper::Error>>,
) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    (sender, tokio::spawn(connection))
}

/// A GET for `path` on an HTTP/2 connection: the status and the whole body, or the
/// error that ended the exchange.
pub async fn h2_get(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    path: &str,
) -> Result<(StatusCode, Bytes), hyper::Error> {
    let request = Request::get(format!("http://shop{path}"))
        .body(Full::default())
        .expect("request");
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// A collected response.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends a request and collects the response (bounded by [`WAIT`]).
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Answer {
    let response = tokio::time::timeout(WAIT, client.request(request))
        .await
        .expect("response in time")
        .expect("response");
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(WAIT, body.collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// `GET url` with extra headers.
pub async fn get(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(
        client,
        request.body(Full::new(Bytes::new())).expect("request"),
    )
    .await
}

/// Counts answers by their `x-backend` header over `n` GETs.
pub async fn spread(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    n: usize,
) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let answer = get(client, url, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let backend = answer.header("x-backend").unwrap_or("none").to_string();
        *counts.entry(backend).or_insert(0) += 1;
    }
    counts
}

/// Sends a GET for `path` on an open keep-alive connection and reads its answer until
/// it ends with `body` (each read within `WAIT`); panics if the connection closes first.
pub async fn get_on(stream: &mut TcpStream, path: &str, body: &str) -> String {
    let head = format!("GET {path} HTTP/1.1\r\nHost: shop\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let answer = read_until(stream, &format!("the answer to {path}"), |read| {
        read.ends_with(body.as_bytes())
    })
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Writes `bytes` on a fresh connection and reads until the peer closes or `WAIT`
/// passes; returns what was read and whether the peer closed the connection.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let (read, closed) = read_to_close(&mut stream).await;
    (String::from_utf8_lossy(&read).into_owned(), closed)
}

/// A TCP "backend" that records every byte it receives and answers the first request
/// head of each connection with a fixed `200` (`Connection: close`), then reads what
/// follows for a moment and closes. For checking exactly what Keel forwards on the wire.
pub struct RawBackend {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<u8>>>,
    accept: JoinHandle<()>,
}

impl RawBackend {
    pub async fn start() -> Self {
        Self::answering(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\nx-backend: raw\r\n\r\nok",
        )
        .await
    }

    /// Like [`RawBackend::start`], answering every first request head with `answer`.
    pub async fn answering(answer: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind raw backend");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let accept = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                let sink = sink.clone();
                connections.spawn(async move {
                    let mut buffer = [0u8; 8192];
                    let mut this_connection = Vec::new();
                    let mut answered = false;
                    loop {
                        // Once answered, wait a little for the rest of a body, then close.
                        let read = if answered {
                            match tokio::time::timeout(
                                Duration::from_millis(300),
                                stream.read(&mut buffer),
                            )
                            .await
                            {
                                Ok(read) => read,
                                Err(_) => return,
                            }
                        } else {
                            stream.read(&mut buffer).await
                        };
                        let n = match read {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        this_connection.extend_from_slice(&buffer[..n]);
                        if let Ok(mut all) = sink.lock() {
                            all.extend_from_slice(&buffer[..n]);
                        }
                        if !answered && this_connection.windows(4).any(|w| w == b"\r\n\r\n") {
                            answered = true;
                            let _ = stream.write_all(answer).await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            received,
            accept,
        }
    }

    pub fn text(&self) -> String {
        self.received
            .lock()
            .map(|all| String::from_utf8_lossy(&all).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A pool block: `[pools.NAME]` with the given backends (weight 1) and extra lines.
pub fn pool(name: &str, service: &str, backends: &[&TestBackend], extra: &str) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ addr = \"{}\" }}", b.addr))
        .collect();
    format!(
        "[pools.{name}]\nservice = \"{service}\"\nbackends = [{}]\n{extra}\n",
        list.join(", ")
    )
}

/// A proxy with one route to a pool of `backend` (service `web`), its listener limits
/// adjusted by `adjust`.
pub async fn proxy_in_front(
    backend: &TestBackend,
    adjust: impl FnOnce(&mut ListenerLimits),
) -> TestProxy {
    let config = with_listener(&format!(
        "[services.web]\n\n{}\n[[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\n",
        pool("web", "web", &[backend], "")
    ));
    TestProxy::start_with(&config, adjust).await
}

/// A body fed from a channel, optionally announcing its exact length.
pub struct ChannelBody {
    pub frames: mpsc::Receiver<Bytes>,
    pub length: Option<u64>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.frames
            .poll_recv(cx)
            .map(|frame| frame.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.length.map_or_else(
            http_body::SizeHint::default,
            http_body::SizeHint::with_exact,
        )
    }
}
