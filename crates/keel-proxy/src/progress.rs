//! The client socket as hyper sees it: each write that moves bytes is noted in the
//! connection's [`HeadClock`](crate::watchdog::HeadClock), the watchdog's measure of
//! whether a response body still moves; writes and flushes are noted for
//! [`Parking`](crate::parking::Parking), which parks a connection only with nothing
//! left to write; and bytes read before hyper started (a request head read while the
//! connection was parked) are served to hyper first.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};

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
    /// Bytes read from the socket before hyper started, served before the socket's.
    unread: Bytes,
    /// The socket's last read found nothing to read.
    read_blocked: bool,
    /// hyper's shutdown of the socket is left to the caller, who may serve the socket
    /// on (see [`crate::parking`]).
    keep_open: bool,
}

impl<T> Progress<T> {
    /// Notes `io`'s writes in `conn`'s clock.
    pub(crate) fn new(io: T, conn: Arc<ConnInfo>) -> Self {
        Self {
            io,
            conn,
            unread: Bytes::new(),
            read_blocked: false,
            keep_open: false,
        }
    }

    /// Like [`Progress::new`], but hyper reads `unread` before `io`, and its shutdown
    /// of the socket does nothing: the caller ends the socket, or serves it on.
    pub(crate) fn resumed(io: T, conn: Arc<ConnInfo>, unread: Bytes) -> Self {
        Self {
            io,
            conn,
            unread,
            read_blocked: false,
            keep_open: true,
        }
    }

    /// The socket, the bytes hyper was never handed, and whether the socket's last read
    /// found nothing.
    pub(crate) fn into_parts(self) -> (T, Bytes, bool) {
        (self.io, self.unread, self.read_blocked)
    }

    /// Notes a write that moved bytes, and passes its result on.
    #[inline]
    fn noted(&self, written: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            self.conn.head_clock.wrote();
            self.conn.parking.wrote();
        }
        written
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Progress<T> {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.unread.is_empty() {
            let n = this.unread.len().min(buf.remaining());
            buf.put_slice(&this.unread[..n]);
            this.unread.advance(n);
            if this.unread.is_empty() {
                // Let the allocation go now rather than with the connection.
                this.unread = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        this.read_blocked = read.is_pending();
        read
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
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.io).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            this.conn.parking.flushed();
        }
        flushed
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.keep_open {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
