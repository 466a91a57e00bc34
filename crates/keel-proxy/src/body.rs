//! Body types of the data plane.
//!
//! [`UpstreamBody`] is what goes to a backend: the client's body streamed through, or
//! nothing (retries of body-less requests). [`ResponseBody`] is what goes to the
//! client: the backend's body streamed through (compressed on the way by a route's
//! `compress`, see [`crate::compress`]), or a small body Keel wrote itself.
//!
//! Neither ever holds more than one frame: bytes move from one socket to the other as
//! they arrive, and each side's backpressure reaches the other. A streamed response
//! body holds its backend connection (see [`crate::upstream`]): when the body has
//! ended the connection goes back to its pool; if the client goes away first, the
//! connection is dropped, which closes it. The access-log record of a request is
//! completed when its response body is done, so it carries the bytes really sent.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::access_log::PendingRecord;
use crate::backend::Backend;
use crate::upstream::PooledConn;
use crate::watchdog::Exchange;

/// A request body on its way to a backend.
#[derive(Debug)]
pub enum UpstreamBody {
    /// The client's body, streamed.
    Incoming(Incoming),
    /// The client's body, streamed, with a flag set once all of it has been read from
    /// the client: a route deadline that passes before then is the client's doing
    /// (a stalled upload), not the backend's. Only requests with a body carry one (one
    /// small allocation each).
    Upload(Incoming, Arc<AtomicBool>),
    /// The client's body, streamed, and copied as it goes (up to
    /// [`crate::grpc_retry::RETRY_BUFFER_BYTES`]) so that a gRPC call can be sent again.
    Copied(Box<crate::grpc_retry::CopiedBody>),
    /// A copied body, sent again.
    Replay(crate::grpc_retry::Replay),
    /// No body.
    Empty,
}

impl UpstreamBody {
    /// The client's body as it goes upstream: tracked when it has bytes to send.
    pub(crate) fn from_client(body: Incoming) -> Self {
        if body.is_end_stream() {
            UpstreamBody::Incoming(body)
        } else {
            UpstreamBody::Upload(body, Arc::new(AtomicBool::new(false)))
        }
    }

    /// The flag an upload sets when the client has sent all of it.
    pub(crate) fn upload_received(&self) -> Option<Arc<AtomicBool>> {
        match self {
            UpstreamBody::Upload(_, received) => Some(received.clone()),
            UpstreamBody::Copied(copied) => Some(copied.received()),
            UpstreamBody::Incoming(_) | UpstreamBody::Replay(_) | UpstreamBody::Empty => None,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Incoming(body) => Pin::new(body).poll_frame(cx),
            UpstreamBody::Upload(body, received) => {
                let frame = Pin::new(&mut *body).poll_frame(cx);
                if matches!(frame, Poll::Ready(None)) || body.is_end_stream() {
                    received.store(true, Ordering::Release);
                }
                frame
            }
            UpstreamBody::Copied(copied) => copied.poll_frame(cx),
            UpstreamBody::Replay(replay) => Poll::Ready(replay.next_frame().map(Ok)),
            UpstreamBody::Empty => Poll::Ready(None),
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Incoming(body) | UpstreamBody::Upload(body, _) => body.is_end_stream(),
            UpstreamBody::Copied(copied) => copied.is_end_stream(),
            UpstreamBody::Replay(replay) => replay.is_end_stream(),
            UpstreamBody::Empty => true,
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Incoming(body) | UpstreamBody::Upload(body, _) => body.size_hint(),
            UpstreamBody::Copied(copied) => copied.size_hint(),
            UpstreamBody::Replay(replay) => replay.size_hint(),
            UpstreamBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// In-flight accounting for least-request balancing: decremented when the response
/// ends or is dropped. Also the response's handle on its backend (one reference
/// count per request, not two).
pub(crate) struct InFlight(pub(crate) Arc<Backend>);

impl InFlight {
    pub(crate) fn start(backend: &Arc<Backend>) -> Self {
        crate::idle_spin::backend_request_started();
        backend.start_request();
        Self(backend.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        crate::idle_spin::backend_request_finished();
        self.0.finish_request();
    }
}

/// A response body on its way to the client.
pub struct ResponseBody {
    inner: Inner,
    /// The backend connection this body is read from, until it goes back to its pool.
    conn: Option<Box<PooledConn>>,
    /// The request sent on `conn` had a body (see [`crate::upstream::Upstream::checkin`]).
    upload: bool,
    in_flight: Option<InFlight>,
    record: Option<Box<PendingRecord>>,
    /// The client connection's exchange this body answers: dropping it ends the
    /// exchange for the connection's watchdog.
    exchange: Option<Exchange>,
    /// Counts a gRPC answer's status when its trailers pass.
    grpc: Option<Box<crate::grpc::GrpcTally>>,
}

enum Inner {
    Upstream(Incoming),
    Full(Option<Bytes>),
    /// Another body, compressed as it streams (see [`crate::compress_body`]); that body
    /// keeps its own backend connection and gives it back when it ends.
    Compressed(Box<crate::compress_body::Compressing>),
}

impl ResponseBody {
    /// A body Keel wrote (errors, admin pages).
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            inner: Inner::Full(Some(bytes.into())),
            conn: None,
            upload: false,
            in_flight: None,
            record: None,
            exchange: None,
            grpc: None,
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self {
            inner: Inner::Full(None),
            conn: None,
            upload: false,
            in_flight: None,
            record: None,
            exchange: None,
            grpc: None,
        }
    }

    /// A backend's body; `conn` is `None` when the connection was already released.
    pub(crate) fn upstream(
        body: Incoming,
        conn: Option<Box<PooledConn>>,
        upload: bool,
        in_flight: InFlight,
    ) -> Self {
        Self {
            inner: Inner::Upstream(body),
            conn,
            upload,
            in_flight: Some(in_flight),
            record: None,
            exchange: None,
            grpc: None,
        }
    }

    /// This body compressed with `coding` as it streams. Call before the access-log
    /// record and the watchdog's exchange are attached: they belong to the outer body.
    pub(crate) fn compressed(self, coding: keel_config::ContentCoding) -> Self {
        Self {
            inner: Inner::Compressed(Box::new(crate::compress_body::Compressing::new(
                self, coding,
            ))),
            conn: None,
            upload: false,
            in_flight: None,
            record: None,
            exchange: None,
            grpc: None,
        }
    }

    /// Attaches the access-log record to complete when the body is done.
    pub(crate) fn set_record(&mut self, mut record: Box<PendingRecord>) {
        // An empty body (HEAD, 204, 304) may never be polled: it is complete already.
        record.complete = self.is_end_stream();
        self.record = Some(record);
    }

    /// Ties the body to its client connection's watchdog (see [`crate::watchdog`]),
    /// which from now on bounds how long the response may go without moving.
    pub(crate) fn answer(&mut self, mut exchange: Exchange) {
        exchange.response_started();
        self.exchange = Some(exchange);
    }

    /// Has `tally` count the gRPC status in the answer's trailers.
    pub(crate) fn count_grpc(&mut self, tally: Box<crate::grpc::GrpcTally>) {
        self.grpc = Some(tally);
    }

    #[inline]
    fn count(&mut self, frame: &Frame<Bytes>) {
        if let (Some(tally), Some(trailers)) = (self.grpc.as_mut(), frame.trailers_ref()) {
            tally.trailers(trailers);
        }
        if let (Some(record), Some(data)) = (self.record.as_mut(), frame.data_ref()) {
            record.bytes += data.len() as u64;
        }
    }

    fn finished(&mut self) {
        // After trailers with a status this counts nothing: the status was counted.
        if let Some(tally) = self.grpc.as_mut() {
            tally.ended_without_status();
        }
        if let (Some(conn), Some(in_flight)) = (self.conn.take(), &self.in_flight) {
            in_flight.0.upstream.checkin(conn, self.upload);
        }
        if let Some(record) = self.record.as_mut() {
            record.complete = true;
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Upstream(body) => Pin::new(body).poll_frame(cx),
            Inner::Compressed(body) => body.poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                this.count(frame);
                if this.is_end_stream() {
                    this.finished();
                }
            }
            Poll::Ready(None) => this.finished(),
            Poll::Ready(Some(Err(_))) => {
                if let Some(tally) = this.grpc.as_mut() {
                    tally.ended_without_status();
                }
                this.conn = None;
            }
            Poll::Pending => {}
        }
        polled
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Upstream(body) => body.is_end_stream(),
            Inner::Compressed(body) => body.is_end_stream(),
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Inner::Full(None) => SizeHint::with_exact(0),
            Inner::Upstream(body) => body.size_hint(),
            Inner::Compressed(_) => SizeHint::default(),
        }
    }
}
