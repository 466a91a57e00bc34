//! The client socket as the watchdog sees it: each write that moves bytes is noted in
//! the connection's [`HeadClock`](crate::watchdog::HeadClock), the watchdog's measure of
//! whether a response body still moves.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::request::ConnInfo;

/// A client connection's socket, as hyper reads and writes it, noting in the
/// connection's [`HeadClock`] each time bytes go out: the watchdog's measure of whether
/// a response body still moves. A write is the right measure in both directions: a
/// backend that stops sending leaves nothing to write, and a client that stops reading
/// leaves no room to write into, while a slow client reading a large body steadily
/// keeps its connection.
pub(crate) struct Progress<T> {
    io: T,
    conn: Arc<ConnInfo>,
}

impl<T> Progress<T> {
    /// Notes `io`'s writes in `conn`'s clock.
    pub(crate) fn new(io: T, conn: Arc<ConnInfo>) -> Self {
        Self { io, conn }
    }

    /// Notes a write that moved bytes, and passes its result on.
    #[inline]
    fn noted(&self, written: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            self.conn.head_clock.wrote();
        }
        written
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Progress<T> {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Progress<T> {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        this.noted(written)
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.noted(written)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
