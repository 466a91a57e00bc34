//! Body types of the data plane.
//!
//! [`UpstreamBody`] is what goes to a backend: the client's body streamed through, or
//! nothing (retries of body-less requests). [`ResponseBody`] is what goes to the
//! client: the backend's body streamed through — handing the keep-alive connection
//! back to its pool once the body has ended — or a small body Keel wrote itself.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

use crate::backend::Backend;

/// A request body on its way to a backend.
#[derive(Debug)]
pub enum UpstreamBody {
    /// The client's body, streamed.
    Incoming(Incoming),
    /// No body.
    Empty,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Incoming(body) => Pin::new(body).poll_frame(cx),
            UpstreamBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Incoming(body) => body.is_end_stream(),
            UpstreamBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Incoming(body) => body.size_hint(),
            UpstreamBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// A backend connection lent to one response; returned to the pool when the response
/// body ends, dropped (closing the connection) if the client goes away first.
pub(crate) struct Lease {
    pub(crate) sender: SendRequest<UpstreamBody>,
    pub(crate) backend: Arc<Backend>,
}

impl Lease {
    fn release(self) {
        self.backend.upstream.checkin(self.sender);
    }
}

/// In-flight accounting for least-request balancing: decremented when the response
/// ends or is dropped.
pub(crate) struct InFlight(pub(crate) Arc<Backend>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finish_request();
    }
}

/// A response body on its way to the client.
pub struct ResponseBody {
    inner: Inner,
    lease: Option<Lease>,
    _in_flight: Option<InFlight>,
}

enum Inner {
    Upstream(Incoming),
    Full(Option<Bytes>),
}

impl ResponseBody {
    /// A body Keel wrote (errors, admin pages).
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            inner: Inner::Full(Some(bytes.into())),
            lease: None,
            _in_flight: None,
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self {
            inner: Inner::Full(None),
            lease: None,
            _in_flight: None,
        }
    }

    pub(crate) fn upstream(body: Incoming, lease: Lease, in_flight: InFlight) -> Self {
        let mut this = Self {
            inner: Inner::Upstream(body),
            lease: Some(lease),
            _in_flight: Some(in_flight),
        };
        if this.is_end_stream()
            && let Some(lease) = this.lease.take()
        {
            lease.release();
        }
        this
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
        match &mut this.inner {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Upstream(body) => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => {
                        if let Some(lease) = this.lease.take() {
                            lease.release();
                        }
                    }
                    Poll::Ready(Some(Ok(_))) if body.is_end_stream() => {
                        if let Some(lease) = this.lease.take() {
                            lease.release();
                        }
                    }
                    Poll::Ready(Some(Err(_))) => this.lease = None,
                    _ => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Inner::Full(None) => SizeHint::with_exact(0),
            Inner::Upstream(body) => body.size_hint(),
        }
    }
}
