//! Keep-alive HTTP/1.1 connections to one backend (HTTP/2 pools share theirs instead:
//! see [`crate::upstream_h2`]).
//!
//! A connection is hyper's client pair: the `SendRequest` handle, which the pool and
//! the requests pass around, and the `Connection` future that does the I/O, which runs
//! as its own task on the runtime (the serving thread) that opened it. The request
//! writes into it through hyper's channel and waits for the answer; the task wakes are
//! local to the thread. (An earlier design polled the `Connection` from the request's
//! own task instead; with one runtime per serving thread, the separate task measured
//! 2 % faster at one thread and 4–7 % at two, and it let each scheduler pass batch the
//! writes to backends and clients.)
//!
//! Idle connections wait in stacks, untouched, together bounded by
//! `max_idle_per_backend`. There is one stack per CPU the process may use (or per serving
//! thread, if there are more), each behind its own mutex, and a thread returns
//! connections to, and first takes them from, its own: threads do not fight over one
//! lock, and a connection tends to stay with the thread (and the reactor) that opened it.
//! A serving thread (see [`crate::serving`]) takes only from its own stack: its
//! connections are registered with its own reactor, and one from another thread's would
//! have its readiness noticed there.
//!
//! Last in, first out: a checkout takes the connection that went idle last. When a
//! load keeps only some of the open connections busy at a time, the same few serve it,
//! and their buffers, sockets and hyper's per-connection request channel stay in the CPU
//! caches, on Keel's side and on the backend's. A queue (first in, first out, the
//! earlier design) cycled the requests through every open connection: under callgrind's
//! cache simulation at 64 client connections, Keel wrote about 3.7 cache lines per
//! request that had not been touched since the measurement began, against 0.5 for
//! HAProxy, most of them into hyper's request channels. The switch measured +2.5 % on
//! `peers.sh`'s `stable` preset (`bench/runs/2026-11-26-epyc-1024k-l2/2026-11-26-pass06.md`).
//!
//! The longest-idle connection sits at the bottom. Each checkin retires it once it has
//! been idle past its idle limit, or when the stack is full. A checkout skips
//! connections whose task has ended (the backend closed it while it sat idle) or that
//! are past their limit; the request then waits until hyper reports a new connection
//! ready.
//!
//! A connection's idle limit is the pool's `idle_timeout`, or less when the backend
//! announces its own (`Keep-Alive: timeout=N`): then [`KEEP_ALIVE_MARGIN`] before the
//! backend's, so that Keel stops reusing the connection before the backend closes it,
//! instead of racing the close with a request (the same rule as undici's and
//! browsers').
//!
//! A pool may cap the requests in flight to each backend (`max_connections`, HAProxy's
//! server `maxconn`). A request takes one of the backend's slots before it takes a
//! connection, and its connection holds the slot until it returns to the pool or
//! closes; at the cap, requests wait for a slot in arrival order (tokio's semaphore is
//! fair), and the admin API's status shows how many wait (`queued`). With no cap, which
//! is the default, nothing is counted.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use hyper::client::conn::http1::{self, Connection};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::body::UpstreamBody;
use crate::coarse_clock::coarse_now_ms;
use crate::serving::{serving_index, serving_thread_count};
use crate::upstream_h2::{H2Conns, Sender};

/// Why no connection to a backend could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect failed (refused, unreachable).
    #[error("connect to {addr} failed: {source}")]
    Io {
        /// The backend.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TLS handshake failed (certificate not trusted, wrong name, refused
    /// client certificate).
    #[error("TLS with {addr} failed: {source}")]
    Tls {
        /// The backend.
        addr: SocketAddr,
        /// What rustls said.
        source: std::io::Error,
    },
    /// TCP connect took longer than the pool's connect timeout.
    #[error("connect to {addr} timed out after {timeout:?}")]
    Timeout {
        /// The backend.
        addr: SocketAddr,
        /// The connect timeout.
        timeout: Duration,
    },
    /// The HTTP/1.1 handshake failed.
    #[error("HTTP handshake with {addr} failed: {source}")]
    Handshake {
        /// The backend.
        addr: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
}

/// One HTTP/1.1 connection to a backend, owned by whoever uses it (boxed once, so it
/// moves between the pool and requests as a pointer), or one stream of a shared HTTP/2
/// connection. Dropping an HTTP/1.1 one ends the connection's task, which closes the
/// connection; dropping a stream gives it back.
pub(crate) struct PooledConn {
    pub(crate) sender: Sender,
    /// The backend slot its exchange holds when the pool caps requests in flight; given
    /// back at checkin, or when the connection is dropped.
    pub(crate) slot: Option<OwnedSemaphorePermit>,
    /// Longest time it may sit idle and still be reused, in milliseconds.
    idle_limit_ms: u64,
}

/// Whether a request may take a connection to a backend now.
pub(crate) enum Slot {
    /// The pool sets no `max_connections`.
    Unlimited,
    /// A free slot.
    Held(OwnedSemaphorePermit),
    /// The backend is at its cap: wait on these slots.
    Full(Arc<Semaphore>),
}

/// A pooled connection and when its idle limit runs out, on the coarse clock (the limit
/// is seconds long, and a tick of error is worth not reading the clock twice per
/// request). The time sits beside the pointer so that a checkin can judge the stack's
/// bottom without touching that long-idle connection's memory.
struct Idle {
    expires_ms: u64,
    conn: Box<PooledConn>,
}

/// How much sooner than a backend's announced keep-alive timeout Keel stops reusing a
/// connection (1 second, or half the announced time when that is shorter): the request
/// must reach the backend before the backend's timer closes the connection.
pub(crate) const KEEP_ALIVE_MARGIN: Duration = Duration::from_secs(1);

impl PooledConn {
    /// False once the connection's task has ended (closed or broken).
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Heeds the backend's `Keep-Alive: timeout` announcement: the connection is not
    /// reused once it has been idle for nearly that long.
    pub(crate) fn heed_keep_alive(&mut self, announced: Duration) {
        self.idle_limit_ms = self.idle_limit_ms.min(announced_limit_ms(announced));
    }
}

/// The idle limit a backend's announced keep-alive timeout leaves, in milliseconds.
fn announced_limit_ms(announced: Duration) -> u64 {
    let announced_ms = duration_ms(announced);
    announced_ms - duration_ms(KEEP_ALIVE_MARGIN).min(announced_ms / 2)
}

/// Whole milliseconds, saturating.
fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Most idle-queue shards per backend (64).
const MAX_SHARDS: usize = 64;

/// Shards per idle pool: the CPUs this process may use, or the serving threads if there
/// are more, read once.
fn shard_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .max(serving_thread_count())
            .clamp(1, MAX_SHARDS)
    })
}

/// This thread's shard: a serving thread's own index; other threads are numbered in
/// the order they first use a pool.
#[inline]
fn my_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = serving_index().unwrap_or_else(|| NEXT.fetch_add(1, Relaxed)) % shard_count();
    }
    SHARD.with(|shard| *shard)
}

/// The connection pool of one backend.
pub(crate) struct Upstream {
    addr: SocketAddr,
    /// Idle connections, one stack per shard (empty when pooling is off): the most
    /// recently used at the back, the longest idle at the front.
    idle: Box<[Mutex<VecDeque<Idle>>]>,
    /// Most idle connections one shard keeps.
    per_shard: usize,
    connect_timeout: Duration,
    idle_timeout_ms: u64,
    /// One permit per request that may be in flight, when the pool caps them.
    slots: Option<Arc<Semaphore>>,
    /// Requests waiting for a slot now.
    queued: AtomicU32,
    /// The shared connections of an HTTP/2 pool (`None`: HTTP/1.1).
    h2: Option<H2Conns>,
    /// TLS to the backend, when the pool sets `tls` (an error when its settings could
    /// not make a client: then every connect fails, rather than fall back to plain).
    tls: Option<Result<crate::backend_tls::BackendTlsConnector, Arc<str>>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .field(
                "idle",
                &self.idle.iter().map(|s| lock(s).len()).sum::<usize>(),
            )
            .finish()
    }
}

impl Upstream {
    /// `max_connections` 0 sets no cap on requests in flight.
    pub(crate) fn new(
        addr: SocketAddr,
        max_idle: u32,
        max_connections: u32,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        let shards = shard_count();
        let per_shard = (max_idle as usize).div_ceil(shards);
        let idle = if max_idle == 0 {
            Box::default()
        } else {
            (0..shards).map(|_| Mutex::default()).collect()
        };
        Self {
            addr,
            idle,
            per_shard,
            connect_timeout,
            idle_timeout_ms: duration_ms(idle_timeout),
            slots: (max_connections > 0)
                .then(|| Arc::new(Semaphore::new(max_connections as usize))),
            queued: AtomicU32::new(0),
            h2: None,
            tls: None,
        }
    }

    /// Speaks TLS to the backend.
    pub(crate) fn with_tls(
        mut self,
        tls: Result<crate::backend_tls::BackendTlsConnector, Arc<str>>,
    ) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Speaks HTTP/2 to the backend (`h2c`, or `h2` when `tls`), at most `max_streams`
    /// requests at once per connection.
    pub(crate) fn with_h2(mut self, max_streams: u32, tls: bool) -> Self {
        self.h2 = Some(H2Conns::new(max_streams, self.idle_timeout_ms, tls));
        self
    }

    /// Waits for one of `slots` (from [`Upstream::slot`]), in arrival order, counted in
    /// [`Upstream::queued`] until it has one or gives up. `None` if the slots closed,
    /// which they never do.
    pub(crate) async fn wait_for_slot(
        &self,
        slots: Arc<Semaphore>,
    ) -> Option<OwnedSemaphorePermit> {
        let _counted = Queued::enter(&self.queued);
        slots.acquire_owned().await.ok()
    }

    /// Requests waiting for a slot now (0 without `max_connections`).
    pub(crate) fn queued(&self) -> u32 {
        self.queued.load(Relaxed)
    }

    /// A slot for one more request in flight, if the pool caps them. A free slot is
    /// taken only when nobody waits for one, so waiting requests keep their order.
    #[inline]
    pub(crate) fn slot(&self) -> Slot {
        let Some(slots) = &self.slots else {
            return Slot::Unlimited;
        };
        match Arc::clone(slots).try_acquire_owned() {
            Ok(slot) => Slot::Held(slot),
            Err(_) => Slot::Full(Arc::clone(slots)),
        }
    }

    /// An idle, open connection, if one is left (this thread's own first). Never waits.
    pub(crate) fn checkout_idle(&self) -> Option<Box<PooledConn>> {
        if let Some(h2) = &self.h2 {
            return h2.checkout().map(|sender| self.pooled(sender));
        }
        if self.idle.is_empty() {
            return None;
        }
        let first = my_shard();
        // A serving thread uses only connections it opened: they are registered with its
        // own reactor, so their readiness never has to cross threads.
        let shards = if serving_index().is_some() {
            1
        } else {
            self.idle.len()
        };
        for step in 0..shards {
            let shard = &self.idle[(first + step) % self.idle.len()];
            loop {
                // The guard goes at the end of this statement: a closed connection is
                // dropped below without the lock held.
                let popped = lock(shard).pop_back();
                let Some(idle) = popped else { break };
                if idle.conn.is_open() && !expired(&idle, coarse_now_ms()) {
                    return Some(idle.conn);
                }
            }
        }
        None
    }

    /// Returns a connection after its answer has been read to the end. One that is
    /// closed is dropped; so is one still sending an upload the backend answered early
    /// (`upload`: the request had a body), which closes it rather than make the next
    /// request wait behind the rest of the upload.
    pub(crate) fn checkin(&self, mut conn: Box<PooledConn>, upload: bool) {
        // The exchange is over: its slot goes to the next request, which may then take
        // this very connection.
        drop(conn.slot.take());
        if self.h2.is_some() {
            // Dropping the stream gives it back to its shared connection.
            return;
        }
        let Some(shard) = self.idle.get(my_shard() % self.idle.len().max(1)) else {
            return;
        };
        // Right after the answer's end the connection's task may not have run yet, so
        // `is_ready` is still false for a body-less exchange: the checkout waits for it.
        if !conn.is_open() || (upload && !conn.sender.is_ready()) {
            return;
        }
        let now = coarse_now_ms();
        let mut stack = lock(shard);
        // The longest-idle connection leaves when the stack is full or it expired, so
        // connections that a quieter load no longer reaches do not linger. (Closed ones
        // are left to the checkout, which has to look at the connection anyway.)
        let retired = match stack.front() {
            Some(oldest) if stack.len() >= self.per_shard || expired(oldest, now) => {
                stack.pop_front()
            }
            _ => None,
        };
        stack.push_back(Idle {
            expires_ms: now.saturating_add(conn.idle_limit_ms),
            conn,
        });
        drop(stack);
        // Outside the lock: dropping a connection ends its task.
        drop(retired);
    }

    /// Opens a new connection (for an HTTP/2 pool, takes a stream on a new connection,
    /// or with `reuse` on one another request opened meanwhile).
    pub(crate) async fn connect(&self, reuse: bool) -> Result<Box<PooledConn>, ConnectError> {
        let addr = self.addr;
        if let Some(h2) = &self.h2 {
            let sender = match &self.tls {
                Some(tls) => {
                    let io = async { self.tls(tls).await.map(TokioIo::new) };
                    h2.connect(addr, reuse, io).await?
                }
                None => {
                    let io = async { self.tcp().await.map(TokioIo::new) };
                    h2.connect(addr, reuse, io).await?
                }
            };
            return Ok(self.pooled(sender));
        }
        let builder = {
            let mut builder = http1::Builder::new();
            // See the listener's builder: flat writes are cheaper for small messages.
            builder.writev(false);
            builder
        };
        let sender = match &self.tls {
            Some(tls) => {
                let (sender, io) = builder
                    .handshake(TokioIo::new(self.tls(tls).await?))
                    .await
                    .map_err(|source| ConnectError::Handshake { addr, source })?;
                tokio::spawn(run_connection(io));
                sender
            }
            None => {
                let (sender, io) = builder
                    .handshake(TokioIo::new(self.tcp().await?))
                    .await
                    .map_err(|source| ConnectError::Handshake { addr, source })?;
                tokio::spawn(run_connection(io));
                sender
            }
        };
        Ok(self.pooled(Sender::Http1(sender)))
    }

    /// A connection of its own for an upgrade (never pooled): plain TCP, or TLS when
    /// the pool sets `tls`, within the connect timeout. The tunnel then runs over it.
    pub(crate) async fn connect_for_upgrade(&self) -> Result<UpgradeStream, ConnectError> {
        Ok(match &self.tls {
            Some(tls) => Box::new(self.tls(tls).await?),
            None => Box::new(self.tcp().await?),
        })
    }

    /// A TLS session with the backend, within the connect timeout (for both the TCP
    /// connect and the handshake).
    async fn tls(
        &self,
        tls: &Result<crate::backend_tls::BackendTlsConnector, Arc<str>>,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
        let addr = self.addr;
        let tls = tls.as_ref().map_err(|reason| ConnectError::Tls {
            addr,
            source: std::io::Error::other(reason.to_string()),
        })?;
        let tcp = self.tcp().await?;
        match tokio::time::timeout(self.connect_timeout, tls.connect(addr, tcp)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(source)) => Err(ConnectError::Tls { addr, source }),
            Err(_) => Err(ConnectError::Timeout {
                addr,
                timeout: self.connect_timeout,
            }),
        }
    }

    fn pooled(&self, sender: Sender) -> Box<PooledConn> {
        Box::new(PooledConn {
            sender,
            slot: None,
            idle_limit_ms: self.idle_timeout_ms,
        })
    }

    /// A TCP connection to the backend, within the connect timeout.
    async fn tcp(&self) -> Result<TcpStream, ConnectError> {
        let addr = self.addr;
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(source)) => return Err(ConnectError::Io { addr, source }),
                Err(_) => {
                    return Err(ConnectError::Timeout {
                        addr,
                        timeout: self.connect_timeout,
                    });
                }
            };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

/// A stream an upgrade request and then its tunnel run over: TCP or TLS.
pub(crate) type UpgradeStream = Box<dyn UpgradeIo>;

/// What an upgrade's backend connection must be.
pub(crate) trait UpgradeIo:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin
{
}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> UpgradeIo for T {}

/// Idle for longer than its limit.
#[inline]
fn expired(idle: &Idle, now_ms: u64) -> bool {
    now_ms > idle.expires_ms
}

/// One request counted as waiting for a slot, until it is dropped: when it has a slot,
/// or when its deadline or its client gave up.
struct Queued<'a>(&'a AtomicU32);

impl<'a> Queued<'a> {
    fn enter(count: &'a AtomicU32) -> Self {
        count.fetch_add(1, Relaxed);
        Self(count)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// A shard's stack; a poisoned lock still holds a consistent stack (every change to it
/// is a single push or pop).
#[inline]
fn lock(shard: &Mutex<VecDeque<Idle>>) -> MutexGuard<'_, VecDeque<Idle>> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A backend connection's task: the I/O until the connection closes or breaks, or its
/// `SendRequest` is dropped.
async fn run_connection<T>(io: Connection<TokioIo<T>, UpstreamBody>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if let Err(error) = io.await {
        tracing::debug!(%error, "upstream connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A backend that accepts connections and holds them open without answering: the
    /// pool never sends on them here, it only keeps them.
    async fn silent_backend() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        addr
    }

    fn pool(addr: SocketAddr, max_idle: u32, idle_timeout: Duration) -> Upstream {
        Upstream::new(addr, max_idle, 0, Duration::from_secs(2), idle_timeout)
    }

    /// A pool and two fresh connections to a silent backend, not yet checked in.
    async fn pool_with_two(
        max_idle: u32,
        idle_timeout: Duration,
    ) -> (Upstream, Box<PooledConn>, Box<PooledConn>) {
        let upstream = pool(silent_backend().await, max_idle, idle_timeout);
        let first = upstream.connect(false).await.expect("connect");
        let second = upstream.connect(false).await.expect("connect");
        (upstream, first, second)
    }

    /// A connection's identity: its box does not move while it is pooled.
    fn id(conn: &PooledConn) -> usize {
        std::ptr::from_ref(conn) as usize
    }

    fn idle_count(upstream: &Upstream) -> usize {
        upstream.idle.iter().map(|shard| lock(shard).len()).sum()
    }

    #[test]
    fn an_announced_keep_alive_timeout_leaves_a_margin() {
        let limit = |seconds| announced_limit_ms(Duration::from_secs(seconds));
        // Node and Apache announce 5 s: reused for up to 4 s.
        assert_eq!(limit(5), 4_000);
        assert_eq!(limit(2), 1_000);
        // Under two seconds the margin is half the announced time.
        assert_eq!(limit(1), 500);
        assert_eq!(limit(0), 0);
    }

    #[tokio::test]
    async fn checkout_takes_the_connection_that_went_idle_last() {
        let (upstream, first, second) = pool_with_two(8, Duration::from_secs(60)).await;
        let (first_id, second_id) = (id(&first), id(&second));
        upstream.checkin(first, false);
        upstream.checkin(second, false);
        let taken = upstream.checkout_idle().expect("an idle connection");
        assert_eq!(id(&taken), second_id);
        let taken_next = upstream.checkout_idle().expect("another idle connection");
        assert_eq!(id(&taken_next), first_id);
        assert!(upstream.checkout_idle().is_none());
    }

    #[tokio::test]
    async fn a_thread_outside_the_serving_threads_takes_from_any_stack() {
        let upstream = pool(silent_backend().await, 8, Duration::from_secs(60));
        let conn = upstream.connect(false).await.expect("connect");
        let conn_id = id(&conn);
        upstream.checkin(conn, false);
        // A new thread gets the next shard (the same one only on a one-CPU machine).
        let taken = std::thread::scope(|scope| {
            scope
                .spawn(|| upstream.checkout_idle().map(|conn| id(&conn)))
                .join()
                .expect("checkout thread")
        });
        assert_eq!(taken, Some(conn_id));
    }

    #[tokio::test]
    async fn a_full_stack_keeps_the_most_recent_connection() {
        // One idle connection at most (per shard).
        let (upstream, first, second) = pool_with_two(1, Duration::from_secs(60)).await;
        let second_id = id(&second);
        upstream.checkin(first, false);
        upstream.checkin(second, false);
        assert_eq!(idle_count(&upstream), 1);
        let taken = upstream.checkout_idle().expect("an idle connection");
        assert_eq!(id(&taken), second_id);
    }

    #[tokio::test]
    async fn a_checkin_retires_the_bottom_connection_once_it_expired() {
        let (upstream, first, second) = pool_with_two(8, Duration::from_millis(50)).await;
        let second_id = id(&second);
        upstream.checkin(first, false);
        // Well past the idle timeout on the coarse clock (10 ms ticks).
        tokio::time::sleep(Duration::from_millis(300)).await;
        upstream.checkin(second, false);
        assert_eq!(idle_count(&upstream), 1, "the expired one was retired");
        let shard = upstream.idle.iter().find(|s| !lock(s).is_empty());
        let kept = shard.and_then(|s| lock(s).back().map(|idle| id(&idle.conn)));
        assert_eq!(kept, Some(second_id));
    }
}
