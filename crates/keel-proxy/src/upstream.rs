//! Keep-alive HTTP/1.1 connections to one backend.
//!
//! Idle connections wait in a lock-free queue (crossbeam's `ArrayQueue`, bounded by
//! `max_idle_per_backend`); a request takes one, or opens a new one within the pool's
//! connect timeout. Connections come back when their response body has ended
//! ([`crate::body::ResponseBody`]); stale or closed ones are dropped on the way out.

use std::net::SocketAddr;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::UpstreamBody;

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

struct Idle {
    sender: SendRequest<UpstreamBody>,
    since: Instant,
}

/// The connection pool of one backend.
pub(crate) struct Upstream {
    addr: SocketAddr,
    idle: Option<ArrayQueue<Idle>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .field("idle", &self.idle.as_ref().map_or(0, ArrayQueue::len))
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
        let idle = (max_idle > 0).then(|| ArrayQueue::new(max_idle as usize));
        Self {
            addr,
            idle,
            connect_timeout,
            idle_timeout,
        }
    }

    /// An idle connection ready for a request, or a new one.
    pub(crate) async fn checkout(&self) -> Result<SendRequest<UpstreamBody>, ConnectError> {
        if let Some(queue) = &self.idle {
            while let Some(mut idle) = queue.pop() {
                if idle.sender.is_closed() || idle.since.elapsed() > self.idle_timeout {
                    continue;
                }
                if idle.sender.ready().await.is_ok() {
                    return Ok(idle.sender);
                }
            }
        }
        self.connect().await
    }

    /// Returns a connection after its exchange has finished.
    pub(crate) fn checkin(&self, sender: SendRequest<UpstreamBody>) {
        if let Some(queue) = &self.idle
            && !sender.is_closed()
        {
            // A full queue drops the connection, which closes it.
            let _ = queue.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Opens a new connection (used by checkout and by probes of the same backend).
    pub(crate) async fn connect(&self) -> Result<SendRequest<UpstreamBody>, ConnectError> {
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
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Handshake { addr, source })?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(backend = %addr, %error, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}
