//! HTTP/2 connections to one backend (`[pools.NAME] protocol = "h2c"` or `"h2"`), and
//! the sender a request uses whichever version its pool speaks.
//!
//! An HTTP/2 connection carries many requests at once as streams, so unlike HTTP/1.1
//! (see [`crate::upstream`]) a connection is not taken out of the pool by a request:
//! every open connection stays listed, and a request takes one *stream* on it. Each
//! connection counts its streams in flight; a request takes the first listed connection
//! below the pool's `max_streams_per_connection`, and when all are at the limit, one
//! more connection is opened (one at a time: requests that arrive meanwhile wait for it
//! and share it). The stream is given back when the response body ends or is dropped.
//!
//! The backend's own limit (its `SETTINGS_MAX_CONCURRENT_STREAMS`) is heeded by hyper,
//! which queues a stream past it; Keel's limit is what keeps a backend that refuses
//! streams past a smaller limit of its own from seeing them.
//!
//! A connection that has carried no stream for the pool's idle limit is closed at the
//! next checkout; one that the backend closed (GOAWAY, reset) is dropped from the list.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use http::header::{self, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1, http2};
use hyper::rt::{Read, Write};
use hyper_util::rt::TokioExecutor;

use crate::body::UpstreamBody;
use crate::coarse_clock::coarse_now_ms;

/// How a request reaches its backend: an HTTP/1.1 connection of its own, or one stream
/// of a shared HTTP/2 connection.
pub(crate) enum Sender {
    /// An HTTP/1.1 connection, owned by the request until its answer has been read.
    Http1(http1::SendRequest<UpstreamBody>),
    /// A stream on a shared HTTP/2 connection; the stream counts against the
    /// connection's limit until this is dropped.
    Http2(http2::SendRequest<UpstreamBody>, Stream),
}

impl Sender {
    /// Ready when the connection can take a request.
    #[inline]
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
        match self {
            Sender::Http1(sender) => sender.poll_ready(cx),
            Sender::Http2(sender, _) => sender.poll_ready(cx),
        }
    }

    /// False once the connection's task has ended.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Sender::Http1(sender) => sender.is_closed(),
            Sender::Http2(sender, _) => sender.is_closed(),
        }
    }

    /// Whether the connection could take a request now.
    #[inline]
    pub(crate) fn is_ready(&self) -> bool {
        match self {
            Sender::Http1(sender) => sender.is_ready(),
            Sender::Http2(sender, _) => sender.is_ready(),
        }
    }

    /// Sends the request and waits for the head of the answer; an unsent request comes
    /// back in the error.
    ///
    /// A plain function returning one of hyper's two send futures, not an `async fn`:
    /// an `async fn` would keep its own copy of the request (352 bytes) beside hyper's
    /// future, and every request's future, moved whole per request, carried both.
    #[inline]
    pub(crate) fn send(
        &mut self,
        request: Request<UpstreamBody>,
    ) -> Sending<impl SendFuture, impl SendFuture> {
        match self {
            Sender::Http1(sender) => Sending::Http1 {
                future: sender.try_send_request(request),
            },
            Sender::Http2(sender, stream) => {
                let request = as_h2_request(request, stream.conn.scheme.clone());
                Sending::Http2 {
                    future: sender.try_send_request(request),
                }
            }
        }
    }
}

/// What hyper's `try_send_request` returns, for either version.
pub(crate) trait SendFuture:
    Future<Output = Result<Response<Incoming>, TrySendError<Request<UpstreamBody>>>>
{
}

impl<F> SendFuture for F where
    F: Future<Output = Result<Response<Incoming>, TrySendError<Request<UpstreamBody>>>>
{
}

pin_project_lite::pin_project! {
    /// One request being sent on an HTTP/1.1 connection or an HTTP/2 stream.
    #[project = SendingProj]
    pub(crate) enum Sending<H1, H2> {
        /// On an HTTP/1.1 connection.
        Http1 { #[pin] future: H1 },
        /// On a stream of an HTTP/2 connection.
        Http2 { #[pin] future: H2 },
    }
}

impl<H1: SendFuture, H2: SendFuture> Future for Sending<H1, H2> {
    type Output = H1::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            SendingProj::Http1 { future } => future.poll(cx),
            SendingProj::Http2 { future } => future.poll(cx),
        }
    }
}

/// Rewrites an HTTP/1.1-shaped request for an HTTP/2 backend: the target becomes an
/// absolute URI whose authority (`:authority`) is the `Host` header, which HTTP/2 does
/// not carry beside it, and `te: trailers` says that Keel passes trailers on (gRPC
/// servers look for it; Keel strips the client's own `te` as hop-by-hop).
fn as_h2_request(mut request: Request<UpstreamBody>, scheme: Scheme) -> Request<UpstreamBody> {
    let authority = request
        .headers_mut()
        .remove(header::HOST)
        .and_then(|host| Authority::try_from(host.as_bytes()).ok())
        .or_else(|| request.uri().authority().cloned());
    let mut parts = request.uri().clone().into_parts();
    if let Some(authority) = authority {
        parts.scheme = Some(scheme);
        parts.authority = Some(authority);
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    *request.version_mut() = http::Version::HTTP_2;
    request
        .headers_mut()
        .insert(header::TE, HeaderValue::from_static("trailers"));
    request
}

/// One HTTP/2 connection to a backend and its streams in flight.
pub(crate) struct H2Conn {
    sender: http2::SendRequest<UpstreamBody>,
    /// Streams in flight on it now.
    streams: AtomicU32,
    /// When its last stream ended, on the coarse clock.
    idle_since_ms: AtomicU64,
    /// `http` for h2c, `https` for h2 over TLS.
    scheme: Scheme,
}

/// One stream taken on an HTTP/2 connection, given back when dropped.
pub(crate) struct Stream {
    conn: Arc<H2Conn>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.conn.streams.fetch_sub(1, Relaxed) == 1 {
            self.conn.idle_since_ms.store(coarse_now_ms(), Relaxed);
        }
    }
}

/// The HTTP/2 connections of one backend.
pub(crate) struct H2Conns {
    open: Mutex<Vec<Arc<H2Conn>>>,
    /// Streams one connection carries at once, at most.
    max_streams: u32,
    /// Longest a connection may carry no stream and still be used, in milliseconds.
    idle_limit_ms: u64,
    /// Held while a connection is being opened, so that a burst of requests opens one
    /// connection, not one each.
    opening: tokio::sync::Mutex<()>,
    scheme: Scheme,
}

impl H2Conns {
    pub(crate) fn new(max_streams: u32, idle_limit_ms: u64, tls: bool) -> Self {
        Self {
            open: Mutex::default(),
            max_streams: max_streams.max(1),
            idle_limit_ms,
            opening: tokio::sync::Mutex::const_new(()),
            scheme: if tls { Scheme::HTTPS } else { Scheme::HTTP },
        }
    }

    /// A stream on an open connection below its limit, if any. Never waits. Closed
    /// connections, and idle ones past the idle limit, are dropped on the way.
    pub(crate) fn checkout(&self) -> Option<Sender> {
        let now = coarse_now_ms();
        let mut open = self.lock();
        open.retain(|conn| {
            !conn.sender.is_closed()
                && (conn.streams.load(Relaxed) > 0
                    || now.saturating_sub(conn.idle_since_ms.load(Relaxed)) <= self.idle_limit_ms)
        });
        for conn in open.iter() {
            let taken = conn
                .streams
                .fetch_update(Relaxed, Relaxed, |streams| {
                    (streams < self.max_streams).then_some(streams + 1)
                })
                .is_ok();
            if taken {
                return Some(Sender::Http2(
                    conn.sender.clone(),
                    Stream {
                        conn: Arc::clone(conn),
                    },
                ));
            }
        }
        None
    }

    /// A stream on a new connection over `io` (already connected, and through TLS for
    /// `h2`), unless `reuse` and a connection opened while this one waited its turn
    /// has room.
    pub(crate) async fn connect<T, F>(
        &self,
        addr: SocketAddr,
        reuse: bool,
        io: F,
    ) -> Result<Sender, crate::upstream::ConnectError>
    where
        T: Read + Write + Unpin + Send + 'static,
        F: Future<Output = Result<T, crate::upstream::ConnectError>>,
    {
        let _turn = self.opening.lock().await;
        if reuse && let Some(sender) = self.checkout() {
            return Ok(sender);
        }
        let io = io.await?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await
            .map_err(|source| crate::upstream::ConnectError::Handshake { addr, source })?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream HTTP/2 connection ended with an error");
            }
        });
        let conn = Arc::new(H2Conn {
            sender: sender.clone(),
            streams: AtomicU32::new(1),
            idle_since_ms: AtomicU64::new(coarse_now_ms()),
            scheme: self.scheme.clone(),
        });
        self.lock().push(Arc::clone(&conn));
        Ok(Sender::Http2(sender, Stream { conn }))
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<H2Conn>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a failed exchange was the backend refusing the stream before doing anything
/// with it (`REFUSED_STREAM`, or a GOAWAY that did not cover it): RFC 9113 §8.7 says
/// such a request may be sent again, whatever its method.
pub(crate) fn was_refused(error: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR));
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_for_an_h2_backend_carries_its_host_as_authority() {
        let request = Request::get("/shop/cart?x=1")
            .header(header::HOST, "shop.example:8080")
            .body(UpstreamBody::Empty)
            .expect("request");
        let request = as_h2_request(request, Scheme::HTTP);
        assert_eq!(
            request.uri().to_string(),
            "http://shop.example:8080/shop/cart?x=1"
        );
        assert!(request.headers().get(header::HOST).is_none());
        assert_eq!(request.headers()[header::TE], "trailers");
    }

    #[test]
    fn a_request_without_host_keeps_its_path() {
        let request = Request::get("/healthz")
            .body(UpstreamBody::Empty)
            .expect("request");
        let request = as_h2_request(request, Scheme::HTTPS);
        assert_eq!(request.uri().path(), "/healthz");
    }
}
