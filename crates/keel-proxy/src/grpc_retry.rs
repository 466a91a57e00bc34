//! What lets a gRPC call be sent again after a backend answered UNAVAILABLE before any
//! response byte (see [`crate::grpc`]).
//!
//! A gRPC call is a POST with a body, so the head copy that retries idempotent requests
//! (see [`crate::resend`]) is not enough. The client's body is streamed to the backend
//! as always, and copied as it passes, up to [`RETRY_BUFFER_BYTES`]: a unary call's
//! message is usually far smaller. The call can be sent again only if the copy holds the
//! whole body (the client had sent all of it, and it fit); a streaming call whose body
//! is still open, or a large one, is not retried. Nothing waits for the body before
//! sending, so a bidirectional stream is never held back.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// Most request body bytes copied to send a gRPC call again (64 KiB); a larger call is
/// not retried.
pub(crate) const RETRY_BUFFER_BYTES: usize = 64 * 1024;

/// The copy of a body, filled as it streams.
#[derive(Default)]
struct Copy {
    data: Vec<Bytes>,
    len: usize,
    trailers: Option<HeaderMap>,
    /// The body ended and all of it is here.
    complete: bool,
    /// Longer than [`RETRY_BUFFER_BYTES`], or broken: it cannot be sent again.
    unusable: bool,
}

/// A handle on the copy of a request body, kept by the request while it is out.
#[derive(Clone, Default)]
pub(crate) struct BodyCopy(Arc<Mutex<Copy>>);

impl BodyCopy {
    /// The client's body, streamed through and copied into this.
    pub(crate) fn wrap(&self, body: Incoming) -> CopiedBody {
        let copy = self.clone();
        if body.is_end_stream() {
            copy.lock().complete = true;
        }
        CopiedBody {
            body,
            copy,
            received: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The whole body again, if all of it was copied.
    pub(crate) fn replay(&self) -> Option<Replay> {
        let copy = self.lock();
        (copy.complete && !copy.unusable).then(|| Replay {
            data: copy.data.iter().cloned().collect(),
            trailers: copy.trailers.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Copy> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The client's body on its way to a backend, copied as it passes.
pub struct CopiedBody {
    body: Incoming,
    copy: BodyCopy,
    received: Arc<AtomicBool>,
}

impl std::fmt::Debug for CopiedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopiedBody").finish_non_exhaustive()
    }
}

impl CopiedBody {
    /// The flag set once the client has sent all of its body.
    pub(crate) fn received(&self) -> Arc<AtomicBool> {
        self.received.clone()
    }

    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                let mut copy = self.copy.lock();
                if let Some(data) = frame.data_ref() {
                    copy.len += data.len();
                    if copy.len > RETRY_BUFFER_BYTES {
                        copy.unusable = true;
                        copy.data.clear();
                    } else if !copy.unusable {
                        copy.data.push(data.clone());
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    copy.trailers = Some(trailers.clone());
                }
                if self.body.is_end_stream() {
                    copy.complete = true;
                    self.received.store(true, Ordering::Release);
                }
            }
            Poll::Ready(None) => {
                self.copy.lock().complete = true;
                self.received.store(true, Ordering::Release);
            }
            Poll::Ready(Some(Err(_))) => self.copy.lock().unusable = true,
            Poll::Pending => {}
        }
        polled
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A copied body, sent again: its data, then its trailers.
#[derive(Debug)]
pub struct Replay {
    data: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Replay {
    pub(crate) fn next_frame(&mut self) -> Option<Frame<Bytes>> {
        match self.data.pop_front() {
            Some(data) => Some(Frame::data(data)),
            None => self.trailers.take().map(Frame::trailers),
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        self.data.is_empty() && self.trailers.is_none()
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        let len: usize = self.data.iter().map(Bytes::len).sum();
        if self.trailers.is_none() {
            SizeHint::with_exact(len as u64)
        } else {
            let mut hint = SizeHint::new();
            hint.set_lower(len as u64);
            hint
        }
    }
}
