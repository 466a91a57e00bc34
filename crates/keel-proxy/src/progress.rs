//! The client socket as hyper sees it: each write that moves bytes is noted in the
//! connection's [`ExchangeClock`](crate::watchdog::ExchangeClock), the watchdog's measure of
//! whether a response body still moves; writes and flushes are noted for
//! [`Parking`](crate::parking::Parking), which parks a connection only with nothing
//! left to write; bytes read before hyper started (a request head read while the
//! connection was parked) are served to hyper first. On an HTTP/1 connection, every
//! byte hyper reads, those included, goes through the connection's [`ChunkGuard`]
//! first, until the connection is upgraded: a tunnel's bytes are not HTTP.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};

use bytes::Bytes;

use crate::chunk_guard::{ChunkGuard, MAX_CHUNK_SIZE, Oversized};
use crate::request::ConnInfo;

/// Bytes of one guarded read (64 KiB, hyper's largest read buffer by default).
const SCRATCH_BYTES: usize = 64 * 1024;

thread_local! {
    /// Where this thread's guarded reads land before they are handed to hyper: the
    /// workspace forbids `unsafe`, and hyper's read cursor shows no safe way to look at
    /// what was read into it. One buffer per thread, not per connection.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice());
}

/// A client connection's socket, as hyper reads and writes it, noting in the
/// connection's [`ExchangeClock`] each time bytes go out: the watchdog's measure of whether
/// a response body still moves. A write is the right measure in both directions: a
/// client that stops reading stops the writes; a backend that stops sending does too.
///
/// [`ExchangeClock`]: crate::watchdog::ExchangeClock
pub(crate) struct Progress<T> {
    io: T,
    conn: Arc<ConnInfo>,
    guard: ChunkGuard,
    /// A chunk size past the bound was read: every later read fails.
    refused: bool,
    /// Bytes read from the socket before hyper started, served before the socket's.
    unread: Bytes,
    /// hyper's shutdown of the socket is left to the caller, who may serve the socket
    /// on (see [`crate::parking`]); an upgraded connection's shutdown is its tunnel's.
    keep_open: bool,
}

impl<T> Progress<T> {
    /// Notes `io`'s writes in `conn`'s clock; on an `http1` connection, checks the
    /// chunk sizes of request bodies.
    pub(crate) fn new(io: T, conn: Arc<ConnInfo>, http1: bool) -> Self {
        let guard = if http1 {
            ChunkGuard::new()
        } else {
            ChunkGuard::off()
        };
        Self {
            io,
            conn,
            guard,
            refused: false,
            unread: Bytes::new(),
            keep_open: false,
        }
    }

    /// An HTTP/1 connection resumed between two requests: like [`Progress::new`], but
    /// hyper reads `unread` before `io` (through a new chunk guard, since `unread`
    /// starts a request), and its shutdown of the socket does nothing: the caller ends
    /// the socket, or serves it on.
    pub(crate) fn resumed(io: T, conn: Arc<ConnInfo>, unread: Bytes) -> Self {
        Self {
            unread,
            keep_open: true,
            ..Self::new(io, conn, true)
        }
    }

    /// The socket, and the bytes hyper was never handed.
    pub(crate) fn into_parts(self) -> (T, Bytes) {
        (self.io, self.unread)
    }

    /// Notes a write that moved bytes, and passes its result on.
    #[inline]
    fn noted(&self, written: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            self.conn.exchange_clock.wrote();
            self.conn.parking.wrote();
        }
        written
    }

    /// Whether the guard still reads this connection's bytes: not once it is upgraded.
    #[inline]
    fn guarded(&mut self) -> bool {
        if !self.guard.is_off() && self.conn.upgraded.load(Relaxed) {
            self.guard = ChunkGuard::off();
        }
        !self.guard.is_off()
    }

    /// Passes `filled` through the guard: how many of its bytes hyper may have, or the
    /// error to fail the read with.
    #[inline]
    fn scanned(&mut self, filled: &[u8]) -> std::io::Result<usize> {
        match self.guard.scan(filled) {
            Ok(()) => Ok(filled.len()),
            // hyper gets what came before the chunk-size line, then a failed read: a
            // broken request body (400), as for any bad chunking.
            Err(Oversized { before }) => {
                self.refused = true;
                if before == 0 {
                    Err(oversized_chunk())
                } else {
                    Ok(before)
                }
            }
        }
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
        if this.refused {
            return Poll::Ready(Err(oversized_chunk()));
        }
        let guarded = this.guarded();
        if !this.unread.is_empty() {
            let n = this.unread.len().min(buf.remaining());
            let unread = this.unread.split_to(n);
            let allowed = if guarded { this.scanned(&unread)? } else { n };
            buf.put_slice(&unread[..allowed]);
            if this.unread.is_empty() {
                // Let the allocation go now rather than with the connection.
                this.unread = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        if !guarded {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        SCRATCH.with_borrow_mut(|scratch| {
            let want = buf.remaining().min(scratch.len());
            let mut read = hyper::rt::ReadBuf::new(&mut scratch[..want]);
            ready!(Pin::new(&mut this.io).poll_read(cx, read.unfilled()))?;
            let filled = read.filled();
            let allowed = this.scanned(filled)?;
            buf.put_slice(&filled[..allowed]);
            Poll::Ready(Ok(()))
        })
    }
}

fn oversized_chunk() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("request chunk size larger than {MAX_CHUNK_SIZE} bytes"),
    )
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
        if this.keep_open && !this.conn.upgraded.load(Relaxed) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
