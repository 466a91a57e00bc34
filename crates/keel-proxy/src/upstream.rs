//! Keep-alive HTTP/1.1 connections to one backend, driven by the requests that use them.
//!
//! A connection is hyper's client pair: the `SendRequest` handle and the `Connection`
//! future that does the I/O. Keel does not spawn a task per backend connection: the
//! request that holds a connection polls its `Connection` itself (while waiting for the
//! response head, and then from the response body that streams to the client). That
//! saves a task switch and a cross-task wake-up on every request, and it means an
//! exchange makes progress exactly as fast as its client consumes it.
//!
//! Idle connections wait in lock-free queues (crossbeam's `ArrayQueue`, together
//! bounded by `max_idle_per_backend`), untouched. There is one queue per CPU the process
//! may use (or per serving thread, if there are more), and a thread returns connections
//! to, and first takes them from, its own: threads do not fight over one queue's head
//! and tail, and a connection tends to stay with the thread (and the reactor) that
//! opened it. A serving thread (see [`crate::serving`]) takes only from its own queue:
//! its connections are registered with its own reactor, and one from another thread's
//! would have its readiness noticed there. A checkout polls a connection
//! once before using it, which is when a connection the backend closed in the meantime
//! is noticed and dropped; one idle for longer than the idle timeout is dropped unused.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::UpstreamBody;
use crate::serving::{serving_index, serving_thread_count};

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
/// moves between the pool and requests as a pointer).
pub(crate) struct PooledConn {
    pub(crate) sender: SendRequest<UpstreamBody>,
    /// The I/O half; `None` once it has completed (closed or failed). Dropping it then
    /// hands any request still queued on it back to its sender, unsent.
    io: Option<Connection<TokioIo<TcpStream>, UpstreamBody>>,
    idle_since: Instant,
}

impl PooledConn {
    /// Lets the connection make progress (write the request, read the response) with the
    /// caller's waker. Returns false once the connection is closed or broken.
    #[inline]
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(io) = self.io.as_mut()
            && let Poll::Ready(result) = Pin::new(io).poll(cx)
        {
            if let Err(error) = result {
                tracing::debug!(%error, "upstream connection ended with an error");
            }
            self.io = None;
        }
        self.io.is_some()
    }

    /// True when the connection is alive and idle, ready for a new request.
    #[inline]
    pub(crate) fn is_reusable(&self) -> bool {
        self.io.is_some() && self.sender.is_ready()
    }
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
    /// Idle connections, one queue per shard (empty when pooling is off).
    idle: Box<[ArrayQueue<Box<PooledConn>>]>,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .field(
                "idle",
                &self.idle.iter().map(ArrayQueue::len).sum::<usize>(),
            )
            .finish()
    }
}

impl Upstream {
    pub(crate) fn new(
        addr: SocketAddr,
        max_idle: u32,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        let idle = if max_idle == 0 {
            Box::default()
        } else {
            let shards = shard_count();
            let per_shard = (max_idle as usize).div_ceil(shards);
            (0..shards).map(|_| ArrayQueue::new(per_shard)).collect()
        };
        Self {
            addr,
            idle,
            connect_timeout,
            idle_timeout,
        }
    }

    /// An idle connection ready for a request, if one is left (this thread's own first).
    /// Never waits.
    pub(crate) async fn checkout_idle(&self) -> Option<Box<PooledConn>> {
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
        poll_fn(|cx| {
            for step in 0..shards {
                let queue = &self.idle[(first + step) % self.idle.len()];
                while let Some(mut conn) = queue.pop() {
                    if conn.idle_since.elapsed() > self.idle_timeout {
                        continue;
                    }
                    // One poll notices a connection the backend closed while it sat idle.
                    if conn.drive(cx) && conn.is_reusable() {
                        return Poll::Ready(Some(conn));
                    }
                }
            }
            Poll::Ready(None)
        })
        .await
    }

    /// Returns a connection after its exchange has finished; one that is closed or still
    /// busy (an upload the backend answered early) is dropped, which closes it.
    pub(crate) fn checkin(&self, mut conn: Box<PooledConn>, cx: &mut Context<'_>) {
        let Some(queue) = self.idle.get(my_shard() % self.idle.len().max(1)) else {
            return;
        };
        if conn.drive(cx) && conn.is_reusable() {
            conn.idle_since = Instant::now();
            // A full queue hands the connection back; dropping it closes it.
            let _ = queue.push(conn);
        }
    }

    /// Opens a new connection.
    pub(crate) async fn connect(&self) -> Result<Box<PooledConn>, ConnectError> {
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
        let (sender, io) = http1::Builder::new()
            // See the listener's builder: flat writes are cheaper for small messages.
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Handshake { addr, source })?;
        Ok(Box::new(PooledConn {
            sender,
            io: Some(io),
            idle_since: Instant::now(),
        }))
    }
}
