//! Accepting client connections: HTTP/1.1 and HTTP/2 (h2c prior knowledge) on one
//! listener, bounded request heads, and a graceful drain on shutdown.
//!
//! The protocol is told apart by peeking at the first bytes (the HTTP/2 connection
//! preface starts `PRI * HTTP/2.0`). An HTTP/2 connection is then served by hyper's
//! own; an HTTP/1 one, plain or over TLS, by a hyper connection per busy spell, parked
//! between requests so that an idle keep-alive connection holds none of hyper's buffers
//! (`crate::parking`).
//!
//! Limits: a request head larger than `max_header_bytes` or with more than
//! `max_headers` fields gets `431`; a head not complete within `header_read_timeout`
//! closes the connection, and so does an HTTP/1 response body that moves no byte for
//! `body_idle_timeout`; anything hyper cannot parse gets `400`. After shutdown is
//! asked for, the listener closes at once (new connections are refused), idle
//! keep-alive connections close, and in-flight requests get `drain_timeout` to finish.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use keel_config::Server;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::connection_future::ServingConnection;
use crate::dataplane::DataPlane;
use crate::parking::{Drain, Parking, serve_http1};
use crate::progress::Progress;
use crate::request::ConnInfo;
use crate::serving::ServingThreads;
use crate::tls::TlsListener;
use crate::watchdog::{Cut, Exchange, ExchangeClock, Protocol, WatchLimits, watch};

/// Concurrent HTTP/2 streams per client connection (256 streams).
const MAX_CONCURRENT_STREAMS: u32 = 256;
/// The HTTP/2 connection preface a prior-knowledge client opens with (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Wait between two peeks at a connection that sent only part of the preface (1 ms).
const PREFACE_RETRY: Duration = Duration::from_millis(1);
/// Time an idle HTTP/2 connection has to finish closing after its `GOAWAY` (1 second):
/// the client's answer to hyper's closing `PING`, or nothing from a client gone away.
const GOAWAY_GRACE: Duration = Duration::from_secs(1);
/// Pause after a failed accept (out of file descriptors and the like) (50 ms).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Fewest connections a listener lists before it sweeps out the ended ones on accept.
const MIN_SWEEP_AT: usize = 64;
/// How often a listener forgets its connections that have ended (5 seconds), accepts
/// or not: each one's task handle holds the task's memory (about 640 bytes) and its
/// drain channel until then, so after a wave closes, RSS comes back within this long
/// rather than at the next busy spell.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Limits applied to every client connection of a listener.
#[derive(Clone, Debug)]
pub struct ListenerLimits {
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// Most request headers.
    pub max_headers: usize,
    /// Time to send a complete request head.
    pub header_read_timeout: Duration,
    /// Time an HTTP/1 response body may go without moving before the connection
    /// closes; zero for never.
    pub body_idle_timeout: Duration,
    /// Drain deadline after shutdown is asked for.
    pub drain_timeout: Duration,
}

impl ListenerLimits {
    /// The limits a config's `[server]` table sets.
    pub fn from_server(server: &Server) -> Self {
        Self {
            max_header_bytes: server.max_header_bytes as usize,
            max_headers: server.max_headers as usize,
            header_read_timeout: server.header_read_timeout,
            body_idle_timeout: server.body_idle_timeout,
            drain_timeout: server.drain_timeout,
        }
    }
}

/// hyper's connection builders, configured once per listener.
struct Builders {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
    header_read_timeout: Duration,
    body_idle_timeout: Duration,
    max_header_bytes: usize,
}

impl Builders {
    fn new(limits: &ListenerLimits) -> Self {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            // The request-head bound is Keel's own watchdog (see `crate::watchdog`):
            // hyper's would arm a timer per keep-alive request.
            .header_read_timeout(None)
            .max_header_size(limits.max_header_bytes)
            // hyper needs a read buffer of at least 8 KiB; the head limit is above.
            .max_buf_size(limits.max_header_bytes.max(8192))
            .max_headers(limits.max_headers)
            // One flat buffer and write(2) instead of writev(2): small answers dominate,
            // and the vectored path costs more in the kernel than the copy saves.
            .writev(false)
            .keep_alive(true);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            // RFC 8441: WebSocket over HTTP/2 (see `crate::upgrade`).
            .enable_connect_protocol();
        Self {
            http1,
            http2,
            header_read_timeout: limits.header_read_timeout,
            body_idle_timeout: limits.body_idle_timeout,
            max_header_bytes: limits.max_header_bytes,
        }
    }
}

impl DataPlane {
    /// Serves one listener until `shutdown` completes, then stops accepting and gives
    /// in-flight requests up to the drain deadline to finish.
    ///
    /// Connections run as tasks of the runtime this is called on.
    pub async fn serve(
        self: &Arc<Self>,
        listener: TcpListener,
        limits: ListenerLimits,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.serve_with(listener, limits, shutdown, None, None, None)
            .await
    }

    /// [`DataPlane::serve`] for the plain listener `name`: its requests match routes
    /// limited to it (`listener = "NAME"`), and its name reaches the access log.
    pub async fn serve_named(
        self: &Arc<Self>,
        listener: TcpListener,
        limits: ListenerLimits,
        name: &str,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let name = Some(Arc::from(name));
        self.serve_with(listener, limits, shutdown, None, None, name)
            .await
    }

    /// Like [`DataPlane::serve`], but every connection first completes a TLS handshake
    /// with the active generation's certificates for `tls` (see [`crate::tls`]); ALPN
    /// then picks HTTP/2 or HTTP/1.1.
    pub async fn serve_tls(
        self: &Arc<Self>,
        listener: TcpListener,
        limits: ListenerLimits,
        tls: TlsListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let name = Some(tls.name.clone());
        self.serve_with(listener, limits, shutdown, None, Some(tls), name)
            .await
    }

    /// Like [`DataPlane::serve`], but each accepted connection runs on the next of
    /// `threads` in turn, and stays there (see [`ServingThreads`]).
    ///
    /// With one serving thread the listener itself runs on it, so a connection starts
    /// on the thread and reactor that accepted it. Accepting elsewhere and handing it
    /// over costs, per connection, two more `epoll_ctl` calls (out of one reactor, into
    /// the other) and a wake-up of the serving thread from another thread.
    pub async fn serve_on(
        self: &Arc<Self>,
        listener: TcpListener,
        limits: ListenerLimits,
        shutdown: impl Future<Output = ()> + Send + 'static,
        threads: &ServingThreads,
    ) -> std::io::Result<()> {
        self.serve_on_with(listener, limits, shutdown, threads, None, None)
            .await
    }

    /// [`DataPlane::serve_on`] for the plain listener `name`: its requests match routes
    /// limited to it (`listener = "NAME"`), and its name reaches the access log.
    pub async fn serve_named_on(
        self: &Arc<Self>,
        listener: TcpListener,
        limits: ListenerLimits,
        name: &str,
        shutdown: impl Future<Output = ()> + Send + 'static,
        threads: &ServingThreads,
    ) -> std::io::Result<()> {
        let name = Some(Arc::from(name));
        self.serve_on_with(listener, limits, shutdown, threads, None, name)
            .await
    }

    /// [`DataPlane::serve_on`] for a TLS listener (see [`DataPlane::serve_tls`]).
    pub async fn serve_tls_on(
        self: &Arc<Self>,
        listener: TcpListener,
        limits: ListenerLimits,
        tls: TlsListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
        threads: &ServingThreads,
    ) -> std::io::Result<()> {
        let name = Some(tls.name.clone());
        self.serve_on_with(listener, limits, shutdown, threads, Some(tls), name)
            .await
    }

    async fn serve_on_with(
        self: &Arc<Self>,
        listener: TcpListener,
        limits: ListenerLimits,
        shutdown: impl Future<Output = ()> + Send + 'static,
        threads: &ServingThreads,
        tls: Option<TlsListener>,
        name: Option<Arc<str>>,
    ) -> std::io::Result<()> {
        if threads.len() > 1 {
            return self
                .serve_with(listener, limits, shutdown, Some(threads), tls, name)
                .await;
        }
        let listener = listener.into_std()?;
        let plane = self.clone();
        let accepting = threads.spawn(async move {
            let listener = TcpListener::from_std(listener)?;
            plane
                .serve_with(listener, limits, shutdown, None, tls, name)
                .await
        });
        // Cancelled only when the serving threads stop, which happens after shutdown.
        accepting
            .await
            .unwrap_or_else(|error| Err(std::io::Error::other(error)))
    }

    async fn serve_with(
        self: &Arc<Self>,
        listener: TcpListener,
        limits: ListenerLimits,
        shutdown: impl Future<Output = ()>,
        threads: Option<&ServingThreads>,
        tls: Option<TlsListener>,
        name: Option<Arc<str>>,
    ) -> std::io::Result<()> {
        let builders = Arc::new(Builders::new(&limits));
        let mut live = Connections::default();
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                _ = sweep.tick() => {
                    live.sweep();
                    continue;
                }
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let conn = Arc::new(ConnInfo {
                peer_header: HeaderValue::from_maybe_shared(Bytes::from(peer.ip().to_string()))
                    .unwrap_or(HeaderValue::from_static("unknown")),
                local_addr: stream.local_addr().ok(),
                exchange_clock: ExchangeClock::new(),
                parking: Parking::new(),
                upgraded: AtomicBool::new(false),
                listener: name.clone(),
                tls: None,
                open: self.connections.opened(),
            });
            let plane = self.clone();
            let builders = builders.clone();
            let tls = tls.clone();
            let (drain, draining) = oneshot::channel();
            let task = match threads {
                // Spawned as it is, not inside an `async` block: a block would keep its
                // own copy of the arguments beside the future, 80 bytes more in the task
                // of every connection (parked ones included), which takes tokio's task
                // cell past a 128-byte step.
                None => tokio::spawn(plane.serve_connection(stream, conn, builders, draining, tls)),
                Some(threads) => {
                    // Move the socket to the serving thread's own reactor.
                    let Ok(stream) = stream.into_std() else {
                        continue;
                    };
                    threads.spawn(async move {
                        match TcpStream::from_std(stream) {
                            Ok(stream) => {
                                plane
                                    .serve_connection(stream, conn, builders, draining, tls)
                                    .await;
                            }
                            Err(error) => tracing::warn!(%error, "cannot register a connection"),
                        }
                    })
                }
            };
            live.add(drain, task);
        }
        drop(listener);
        live.drain(limits.drain_timeout).await;
        Ok(())
    }

    /// Serves one accepted client connection: the PROXY header if the listener expects
    /// one, the TLS handshake on a TLS listener, then HTTP/1 or HTTP/2.
    ///
    /// An `async` block, not an `async fn`: an `async fn` keeps each argument twice in
    /// the connection's task (as passed, and as moved into its body) for the whole life
    /// of the connection.
    #[allow(clippy::manual_async_fn)] // On purpose: see above.
    fn serve_connection(
        self: Arc<Self>,
        mut stream: TcpStream,
        mut conn: Arc<ConnInfo>,
        builders: Arc<Builders>,
        draining: oneshot::Receiver<()>,
        tls: Option<TlsListener>,
    ) -> impl Future<Output = ()> {
        async move {
            // Boxed: only a listener with `proxy_protocol` pays for the header's state.
            if self.expects_proxy_header(conn.local_addr) {
                let deadline = Instant::now() + builders.header_read_timeout;
                if !Box::pin(crate::proxy_protocol::accept(
                    &mut stream,
                    &mut conn,
                    deadline,
                ))
                .await
                {
                    return;
                }
            }
            // TLS: ALPN decides the protocol (no ALPN: HTTP/1.1, as RFC 7301 clients expect).
            if let Some(tls) = tls {
                // Boxed: inline, the handshake's and the TLS stream's state (rustls's) would
                // size the task of every connection, plain parked ones included.
                Box::pin(async move {
                    if let Some(established) = self.handshake(stream, &tls).await {
                        // Not shared yet: the connection's requests start after this.
                        if let Some(info) = Arc::get_mut(&mut conn) {
                            info.tls = Some(established.session);
                        }
                        let stream = if established.h2 {
                            Established::Http2(established.stream)
                        } else {
                            Established::Http1(established.stream)
                        };
                        self.serve_io(stream, conn, &builders, draining).await;
                    }
                })
                .await;
                return;
            }
            let deadline = Instant::now() + builders.header_read_timeout;
            // Boxed, as is the HTTP/2 branch below: the task of a connection is as large as
            // the largest state its future passes through, and it keeps that size for the
            // connection's life. Inline, the preface wait's two timers and hyper's HTTP/2
            // connection would size every HTTP/1 connection's task, parked ones included.
            // The socket is moved in and out rather than borrowed: a borrow across the await
            // would keep a second copy of it in the task.
            let preface = Box::pin(tokio::time::timeout_at(deadline, sends_h2_preface(stream)));
            let (stream, is_h2) = match preface.await {
                Ok((stream, Ok(is_h2))) => (stream, is_h2),
                Ok((_, Err(_))) | Err(_) => return,
            };
            let stream = if is_h2 {
                Established::Http2(stream)
            } else {
                Established::Http1(stream)
            };
            self.serve_io(stream, conn, &builders, draining).await;
        }
    }

    /// Serves HTTP/1 or HTTP/2 on an established client stream (plain or TLS).
    ///
    /// Not an `async fn`: an HTTP/1 connection's task holds the future returned here for
    /// the connection's whole life, parked ones included, and an `async fn` would keep
    /// its arguments there a second time, beside the futures they were moved into
    /// (see `crate::connection_future`).
    fn serve_io<'b, IO>(
        self: Arc<Self>,
        stream: Established<IO>,
        conn: Arc<ConnInfo>,
        builders: &'b Builders,
        draining: oneshot::Receiver<()>,
    ) -> impl Future<Output = ()> + Send + 'b
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let protocol = match stream {
            Established::Http2(_) => Protocol::Http2,
            Established::Http1(_) => Protocol::Http1,
        };
        let plane = self.clone();
        let watched = conn.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let plane = plane.clone();
            conn.parking.request_started(request.body().is_end_stream());
            let exchange = Exchange::start(conn.clone(), protocol);
            plane.serve_request(request, exchange)
        });
        let limits = WatchLimits {
            head: builders.header_read_timeout,
            body_idle: builders.body_idle_timeout,
        };
        // Both protocols write through `Progress`, the watchdog's measure of a moving body.
        match stream {
            Established::Http2(stream) => {
                // Boxed: hyper's HTTP/2 connection would otherwise size every HTTP/1
                // connection's task too.
                ServingConnection::http2(Box::pin(async move {
                    let io = Progress::new(TokioIo::new(stream), watched.clone(), false);
                    let mut connection = pin!(builders.http2.serve_connection(io, service));
                    let drained =
                        until_drained(connection.as_mut(), draining, |c| c.graceful_shutdown());
                    let result = match watch(drained, watched, protocol, limits).await {
                        Ok(result) => result,
                        Err(Cut::NoHead) => {
                            // Idle with no stream open: a GOAWAY tells the client that
                            // nothing it sent was dropped, and the connection then ends
                            // at once.
                            tracing::debug!(limit = ?limits.head, "HTTP/2 connection idle: closing");
                            connection.as_mut().graceful_shutdown();
                            tokio::time::timeout(GOAWAY_GRACE, connection)
                                .await
                                .unwrap_or(Ok(()))
                        }
                        Err(Cut::BodyStalled) => {
                            self.stalled(limits);
                            Ok(())
                        }
                    };
                    if let Err(error) = result {
                        tracing::debug!(%error, "client connection ended with an error");
                    }
                }))
            }
            Established::Http1(stream) => {
                // Parked between requests, plain or TLS: an idle connection holds none of
                // hyper's buffers. With upgrades: a `101` from a route that allows it
                // hands the socket to a tunnel (see `crate::upgrade`).
                let served = serve_http1(
                    stream,
                    service,
                    watched.clone(),
                    &builders.http1,
                    builders.max_header_bytes,
                    Drain::new(draining),
                );
                ServingConnection::http1(watch(served, watched, Protocol::Http1, limits), self)
            }
        }
    }

    /// Logs why the watchdog cut an HTTP/1 connection.
    pub(crate) fn cut_http1(&self, cut: Cut, limits: WatchLimits) {
        match cut {
            Cut::NoHead => tracing::debug!(
                limit = ?limits.head,
                "no request head in time: connection closed"
            ),
            Cut::BodyStalled => self.stalled(limits),
        }
    }
}

/// A client stream whose protocol is known.
pub(crate) enum Established<IO> {
    /// HTTP/2, plain or over TLS.
    Http2(IO),
    /// HTTP/1, plain or over TLS: parked between requests (see [`crate::parking`]).
    Http1(IO),
}

impl DataPlane {
    /// Counts and logs a connection cut for a stalled response body.
    fn stalled(&self, limits: WatchLimits) {
        self.stalled_responses.fetch_add(1, Relaxed);
        tracing::debug!(
            limit = ?limits.body_idle,
            "response body stalled: client and backend connections closed"
        );
    }
}

/// Runs a connection; when `draining` fires, asks it to finish its in-flight requests
/// and close (keep-alive connections close at once when idle).
///
/// Checking a oneshot receiver on each poll is one atomic load: no lock, no allocation.
async fn until_drained<C, T, E>(
    mut connection: Pin<&mut C>,
    mut draining: oneshot::Receiver<()>,
    graceful: impl Fn(Pin<&mut C>),
) -> Result<T, E>
where
    C: Future<Output = Result<T, E>>,
{
    let mut asked = false;
    poll_fn(|cx| {
        if !asked && Pin::new(&mut draining).poll(cx).is_ready() {
            asked = true;
            graceful(connection.as_mut());
        }
        connection.as_mut().poll(cx)
    })
    .await
}

/// The client connections of one listener: a drain signal and a task handle each.
#[derive(Default)]
struct Connections {
    entries: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
    /// Size at which finished connections are next swept out (amortized O(1) per accept).
    sweep_at: usize,
}

impl Connections {
    fn add(&mut self, drain: oneshot::Sender<()>, task: JoinHandle<()>) {
        if self.entries.len() >= self.sweep_at {
            self.sweep();
        }
        self.entries.push((drain, task));
    }

    /// Forgets the connections that have ended, which frees their tasks, and the
    /// list's room beyond twice what is left.
    fn sweep(&mut self) {
        self.entries.retain(|(_, task)| !task.is_finished());
        self.sweep_at = (self.entries.len() * 2).max(MIN_SWEEP_AT);
        if self.entries.capacity() > self.sweep_at * 2 {
            self.entries.shrink_to(self.sweep_at);
        }
    }

    /// Asks every connection to finish, waits up to `deadline` for them, then closes
    /// the ones still open.
    async fn drain(self, deadline: Duration) {
        let mut tasks = Vec::with_capacity(self.entries.len());
        for (drain, task) in self.entries {
            if !task.is_finished() {
                let _ = drain.send(());
                tasks.push(task);
            }
        }
        tracing::info!(connections = tasks.len(), "draining");
        let until = Instant::now() + deadline;
        for task in &mut tasks {
            if tokio::time::timeout_at(until, &mut *task).await.is_err() {
                tracing::warn!("drain deadline passed; closing the remaining connections");
                break;
            }
        }
        for task in &tasks {
            task.abort();
        }
    }
}

/// Whether the client opens with the HTTP/2 preface, and the socket back. Decides at
/// the first byte that differs; `false` at end of stream (HTTP/1 handling then closes it).
async fn sends_h2_preface(stream: TcpStream) -> (TcpStream, std::io::Result<bool>) {
    let mut buffer = [0u8; H2_PREFACE.len()];
    loop {
        let seen = match stream.peek(&mut buffer).await {
            Ok(seen) => seen,
            Err(error) => return (stream, Err(error)),
        };
        if seen == 0 || buffer[..seen] != H2_PREFACE[..seen] {
            return (stream, Ok(false));
        }
        if seen == H2_PREFACE.len() {
            return (stream, Ok(true));
        }
        // Part of the preface so far; peeking again at once would see the same bytes.
        tokio::time::sleep(PREFACE_RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sweep_forgets_ended_connections_and_gives_back_their_room() {
        let mut live = Connections::default();
        let (drain, draining) = oneshot::channel::<()>();
        // One connection still open, waiting for its drain; a thousand that end at once.
        live.add(drain, tokio::spawn(async move { drop(draining.await) }));
        for _ in 0..1000 {
            live.add(oneshot::channel().0, tokio::spawn(async {}));
        }
        // The spawned tasks run, and all but one end.
        for _ in 0..100 {
            if live
                .entries
                .iter()
                .filter(|(_, task)| task.is_finished())
                .count()
                == 1000
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        live.sweep();
        assert_eq!(live.entries.len(), 1, "only the open connection is left");
        assert!(
            live.entries.capacity() < 4 * MIN_SWEEP_AT,
            "the list kept room for {} connections",
            live.entries.capacity()
        );
    }

    /// The largest a plain connection's task future may be, in bytes: it is allocated
    /// for the connection's whole life, so it is most of what an idle keep-alive
    /// connection costs. tokio's task cell is 96 bytes and the future's stage (future
    /// plus 8) in 128-byte steps, so up to 408 bytes the cell is 512 bytes. The future is
    /// 400 bytes in a release build and 416 in this (unoptimised) test build; the cell was
    /// 768 when the future was 576 (`serve_io` an `async fn` keeping its arguments twice,
    /// and the spawn inside a wrapping block), 1,128 before that.
    const MAX_CONNECTION_FUTURE_BYTES: usize = 416;

    fn connection_future_size<F, Fut>(_: F) -> usize
    where
        F: FnOnce(
            Arc<DataPlane>,
            TcpStream,
            Arc<ConnInfo>,
            Arc<Builders>,
            oneshot::Receiver<()>,
            Option<TlsListener>,
        ) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn a_connection_task_stays_small() {
        let size = connection_future_size(DataPlane::serve_connection);
        assert!(
            size <= MAX_CONNECTION_FUTURE_BYTES,
            "a connection's future is {size} bytes, over {MAX_CONNECTION_FUTURE_BYTES}"
        );
        println!("connection future: {size} bytes");
    }
}
