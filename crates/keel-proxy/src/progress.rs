//! The client socket as the watchdog sees it: each write that moves bytes is noted in
//! the connection's [`HeadClock`](crate::watchdog::HeadClock), the watchdog's measure of
//! whether a response body still moves. On an HTTP/1 connection, each read also goes
//! through the connection's [`ChunkGuard`] before hyper sees it.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

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
/// connection's [`HeadClock`] each time bytes go out: the watchdog's measure of whether
/// a response body still moves. A write is the right measure in both directions: a
/// backend that stops sending leaves nothing to write, and a client that stops reading
/// leaves no room to write into, while a slow client reading a large body steadily
/// keeps its connection.
pub(crate) struct Progress<T> {
    io: T,
    conn: Arc<ConnInfo>,
    guard: ChunkGuard,
    /// A chunk size past the bound was read: every later read fails.
    refused: bool,
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
        }
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
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.refused {
            return Poll::Ready(Err(oversized_chunk()));
        }
        if this.guard.is_off() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        SCRATCH.with_borrow_mut(|scratch| {
            let want = buf.remaining().min(scratch.len());
            let mut read = hyper::rt::ReadBuf::new(&mut scratch[..want]);
            ready!(Pin::new(&mut this.io).poll_read(cx, read.unfilled()))?;
            let filled = read.filled();
            match this.guard.scan(filled) {
                Ok(()) => buf.put_slice(filled),
                Err(Oversized { before }) => {
                    // hyper gets what came before the chunk-size line, then a failed
                    // read: a broken request body (400), as for any bad chunking.
                    this.refused = true;
                    if before == 0 {
                        return Poll::Ready(Err(oversized_chunk()));
                    }
                    buf.put_slice(&filled[..before]);
                }
            }
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
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
