//! The future that serves a client connection once its protocol is known: an HTTP/2
//! connection's boxed future, or an HTTP/1 connection's watched serving loop with what
//! is done when it ends (a cut logged and counted, an error logged).
//!
//! Why a hand-written future rather than an `async` block: a connection's task keeps the
//! largest state its future passes through for the connection's whole life, and an idle
//! keep-alive HTTP/1 connection lives mostly parked (`crate::parking`). An `async` block
//! that awaits a future it was given keeps it twice: once where it was captured and once
//! where `.await` moved it, about 300 bytes more in every connection's task. This type
//! polls the watched loop where it lies.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use crate::dataplane::DataPlane;
use crate::watchdog::Watched;

pin_project_lite::pin_project! {
    /// Serves one client connection to its end (see the module doc).
    #[project = ServingProjection]
    pub(crate) enum ServingConnection<H2, H1> {
        /// HTTP/2 (or anything boxed): its future handles its own ending.
        Http2 { #[pin] future: H2 },
        /// HTTP/1: the watchdog around the parking loop, and the data plane that counts
        /// a stalled body.
        Http1 {
            #[pin]
            future: Watched<H1>,
            plane: Arc<DataPlane>,
        },
    }
}

impl<H2, H1> ServingConnection<H2, H1> {
    pub(crate) fn http2(future: H2) -> Self {
        Self::Http2 { future }
    }

    pub(crate) fn http1(future: Watched<H1>, plane: Arc<DataPlane>) -> Self {
        Self::Http1 { future, plane }
    }
}

impl<H2, H1> Future for ServingConnection<H2, H1>
where
    H2: Future<Output = ()>,
    H1: Future<Output = hyper::Result<()>>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.project() {
            ServingProjection::Http2 { future } => future.poll(cx),
            ServingProjection::Http1 { mut future, plane } => {
                match ready!(future.as_mut().poll(cx)) {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "client connection ended with an error");
                    }
                    // The limits are read back only for a cut's log, not on every poll.
                    Err(cut) => plane.cut_http1(cut, future.limits()),
                }
                Poll::Ready(())
            }
        }
    }
}
