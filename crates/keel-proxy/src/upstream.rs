//! Keep-alive HTTP/1.1 connections to one backend.
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
//! Idle connections wait in lock-free queues (crossbeam's `ArrayQueue`, together
//! bounded by `max_idle_per_backend`), untouched. There is one queue per CPU the process
//! may use (or per serving thread, if there are more), and a thread returns connections
//! to, and first takes them from, its own: threads do not fight over one queue's head
//! and tail, and a connection tends to stay with the thread (and the reactor) that
//! opened it. A serving thread (see [`crate::serving`]) takes only from its own queue:
//! its connections are registered with its own reactor, and one from another thread's
//! would have its readiness noticed there. A checkout skips connections whose task has
//! ended (the backend closed it while it sat idle) and ones idle for longer than the
//! idle timeout; the request then waits until hyper reports the connection ready.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::UpstreamBody;
use crate::deadline::coarse_now_ms;
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
/// moves between the pool and requests as a pointer). Dropping it ends the
/// connection's task, which closes the connection.
pub(crate) struct PooledConn {
    pub(crate) sender: SendRequest<UpstreamBody>,
    /// When it last went idle, on the coarse clock: the idle timeout is seconds long,
    /// and a tick of error is worth not reading the clock twice per request.
    idle_since_ms: u64,
}

impl PooledConn {
    /// False once the connection's task has ended (closed or broken).
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        !self.sender.is_closed()
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
    idle_timeout_ms: u64,
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
            idle_timeout_ms: u64::try_from(idle_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// An idle, open connection, if one is left (this thread's own first). Never waits.
    pub(crate) fn checkout_idle(&self) -> Option<Box<PooledConn>> {
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
            let queue = &self.idle[(first + step) % self.idle.len()];
            while let Some(conn) = queue.pop() {
                let idle_ms = coarse_now_ms().saturating_sub(conn.idle_since_ms);
                if conn.is_open() && idle_ms <= self.idle_timeout_ms {
                    return Some(conn);
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
        let Some(queue) = self.idle.get(my_shard() % self.idle.len().max(1)) else {
            return;
        };
        // Right after the answer's end the connection's task may not have run yet, so
        // `is_ready` is still false for a body-less exchange: the checkout waits for it.
        if conn.is_open() && (!upload || conn.sender.is_ready()) {
            conn.idle_since_ms = coarse_now_ms();
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
        tokio::spawn(run_connection(io));
        Ok(Box::new(PooledConn {
            sender,
            idle_since_ms: coarse_now_ms(),
        }))
    }
}

/// A backend connection's task: the I/O until the connection closes or breaks, or its
/// `SendRequest` is dropped.
async fn run_connection(io: Connection<TokioIo<TcpStream>, UpstreamBody>) {
    if let Err(error) = io.await {
        tracing::debug!(%error, "upstream connection ended with an error");
    }
}
