//! The byte copy inside a tunnel: both directions moved with no buffer held while the
//! tunnel waits.
//!
//! `tokio::io::copy_bidirectional` gives each direction an 8 KiB buffer for the
//! tunnel's whole life, and a WebSocket tunnel waits far more than it carries: 1,000
//! open tunnels held 16 MiB of buffers that were empty nearly all the time. Here each
//! read lands in a chunk on the stack of the poll ([`READ_CHUNK_BYTES`], never zeroed)
//! and is written to the other side straight from there. Only what the other side does
//! not take at once is copied to the heap, into a buffer the size of those bytes, and
//! that buffer is freed as soon as it has been written out. A tunnel whose both sides
//! keep up, or that carries nothing, holds no buffer at all.
//!
//! The semantics are `copy_bidirectional`'s:
//! - **back-pressure**: nothing more is read from a side while bytes read from it wait
//!   for the other side to take them, so a slow reader slows its writer down through
//!   TCP instead of growing a buffer here;
//! - **flush**: a writer that buffers (a TLS stream) is flushed whenever its reader has
//!   nothing more for now;
//! - **half-close**: one side's end of stream is passed on as a shutdown of the other
//!   side's write half (after its waiting bytes), while the other direction goes on;
//! - the copy ends when both directions have ended, or at the first error of either.

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes one read takes from a side (the size of the chunk on the poll's
/// stack): a TLS record's worth of plaintext, twice tokio's copy buffer, so a busy
/// tunnel moves its bytes in as few reads and writes as before.
pub(crate) const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Copies `a` to `b` and `b` to `a` until both directions have ended (see the module
/// docs). Returns the first error of either side.
pub(crate) async fn splice<A, B>(a: &mut A, b: &mut B) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut a_to_b = Direction::default();
    let mut b_to_a = Direction::default();
    poll_fn(|cx| {
        let forth = a_to_b.poll_copy(cx, &mut *a, &mut *b)?;
        let back = b_to_a.poll_copy(cx, &mut *b, &mut *a)?;
        if forth.is_ready() && back.is_ready() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Where one direction of the copy is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Reading and writing.
    #[default]
    Copying,
    /// The reader ended: the writer's waiting bytes are flushed, then its write half
    /// is shut down.
    ShuttingDown,
    /// Over: the writer has been shut down.
    Done,
}

/// One direction of the copy: what its writer has not taken yet, and where it is.
#[derive(Debug, Default)]
struct Direction {
    /// Bytes read but not yet written, from `written` on; empty with no allocation
    /// whenever the writer has taken everything (a `Vec` of capacity 0 holds none).
    waiting: Vec<u8>,
    /// How much of `waiting` has been written.
    written: usize,
    /// Bytes were written since the last flush.
    unflushed: bool,
    stage: Stage,
}

impl Direction {
    /// Moves what it can from `reader` to `writer`; ready once this direction is over.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            match self.stage {
                Stage::Done => return Poll::Ready(Ok(())),
                Stage::ShuttingDown => {
                    ready!(self.poll_write_waiting(cx, writer))?;
                    if self.unflushed {
                        ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                        self.unflushed = false;
                    }
                    ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                    self.stage = Stage::Done;
                    continue;
                }
                Stage::Copying => {}
            }
            // Back-pressure: nothing is read while the writer has bytes to take.
            ready!(self.poll_write_waiting(cx, writer))?;
            let mut chunk = [const { MaybeUninit::<u8>::uninit() }; READ_CHUNK_BYTES];
            let mut read = ReadBuf::uninit(&mut chunk);
            match Pin::new(&mut *reader).poll_read(cx, &mut read) {
                Poll::Pending => {
                    // Nothing more for now: what a buffering writer holds goes out.
                    if self.unflushed {
                        ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                        self.unflushed = false;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(())) => {}
            }
            let bytes = read.filled();
            if bytes.is_empty() {
                self.stage = Stage::ShuttingDown;
                continue;
            }
            let mut at = 0;
            while at < bytes.len() {
                match Pin::new(&mut *writer).poll_write(cx, &bytes[at..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(write_zero())),
                    Poll::Ready(Ok(n)) => {
                        at += n;
                        self.unflushed = true;
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => {
                        // The writer pushes back: keep the rest, exactly its size.
                        self.waiting = bytes[at..].to_vec();
                        self.written = 0;
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    /// Writes the waiting bytes, then frees their buffer and flushes the writer.
    fn poll_write_waiting<W>(
        &mut self,
        cx: &mut Context<'_>,
        writer: &mut W,
    ) -> Poll<io::Result<()>>
    where
        W: AsyncWrite + Unpin,
    {
        if self.waiting.is_empty() {
            return Poll::Ready(Ok(()));
        }
        while self.written < self.waiting.len() {
            let n = ready!(Pin::new(&mut *writer).poll_write(cx, &self.waiting[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(write_zero()));
            }
            self.written += n;
            self.unflushed = true;
        }
        self.waiting = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

/// A writer that takes no bytes will never take these.
fn write_zero() -> io::Error {
    io::Error::new(
        io::ErrorKind::WriteZero,
        "the other side of the tunnel took no bytes",
    )
}

#[cfg(test)]
mod tests {
    use std::task::Waker;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// Bytes a test pushes at a side that does not read: far more than loopback's
    /// socket buffers hold.
    const FLOOD_BYTES: usize = 64 * 1024 * 1024;
    /// How long a test waits for something that must not happen, or must.
    const WAIT: Duration = Duration::from_secs(3);

    /// Two ends of one loopback TCP connection.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (connected.expect("connect"), accepted.expect("accept").0)
    }

    /// A client and a server spliced through two connections, as a tunnel does.
    async fn spliced() -> (
        TcpStream,
        TcpStream,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let (client, mut near) = pair().await;
        let (mut far, server) = pair().await;
        let copy = tokio::spawn(async move { splice(&mut near, &mut far).await });
        (client, server, copy)
    }

    fn byte_at(at: usize) -> u8 {
        (at % 251) as u8
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_and_one_sides_end_does_not_end_the_other() {
        let (mut client, mut server, copy) = spliced().await;
        client.write_all(b"hello").await.expect("write");
        client.shutdown().await.expect("half-close");
        let mut got = Vec::new();
        tokio::time::timeout(WAIT, server.read_to_end(&mut got))
            .await
            .expect("the client's end reaches the server")
            .expect("read");
        assert_eq!(got, b"hello");
        // The client only closed its sending half: the answer still reaches it.
        server.write_all(b"answer").await.expect("write back");
        server.shutdown().await.expect("server half-close");
        let mut back = Vec::new();
        tokio::time::timeout(WAIT, client.read_to_end(&mut back))
            .await
            .expect("the answer and the end reach the client")
            .expect("read back");
        assert_eq!(back, b"answer");
        let ended = tokio::time::timeout(WAIT, copy)
            .await
            .expect("the splice ends");
        assert!(matches!(ended, Ok(Ok(()))), "{ended:?}");
    }

    #[tokio::test]
    async fn a_side_that_does_not_read_stops_the_other_from_sending() {
        let (mut client, mut server, _copy) = spliced().await;
        let flood: Vec<u8> = (0..FLOOD_BYTES).map(byte_at).collect();
        let sending = tokio::spawn(async move { client.write_all(&flood).await.map(|()| client) });
        tokio::time::sleep(WAIT).await;
        assert!(
            !sending.is_finished(),
            "64 MiB were taken from a client whose server reads nothing: the splice buffers"
        );
        let mut got = vec![0u8; FLOOD_BYTES];
        tokio::time::timeout(4 * WAIT, server.read_exact(&mut got))
            .await
            .expect("all of it arrives once the server reads")
            .expect("read");
        assert!(
            got.iter()
                .enumerate()
                .all(|(at, &byte)| byte == byte_at(at)),
            "bytes arrived out of order or changed"
        );
        assert!(sending.await.expect("join").is_ok());
    }

    #[tokio::test]
    async fn a_direction_holds_only_the_bytes_its_writer_has_not_taken_and_frees_them() {
        let (mut sender, mut reader) = pair().await;
        let (mut writer, mut receiver) = pair().await;
        // Fill the writer's way until it pushes back.
        let filler = vec![7u8; 256 * 1024];
        let mut filled = 0usize;
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), writer.write(&filler)).await
        {
            filled += n;
        }
        sender
            .write_all(&[9u8; READ_CHUNK_BYTES])
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut direction = Direction::default();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(
            direction
                .poll_copy(&mut cx, &mut reader, &mut writer)
                .is_pending()
        );
        assert!(!direction.waiting.is_empty(), "the untaken bytes wait");
        assert!(direction.waiting.capacity() <= READ_CHUNK_BYTES);
        // The far end reads everything: the waiting bytes go, and their buffer with them.
        let mut drained = vec![0u8; filled + READ_CHUNK_BYTES];
        let drive = poll_fn(
            |cx| match direction.poll_copy(cx, &mut reader, &mut writer) {
                Poll::Pending if direction.waiting.capacity() == 0 => Poll::Ready(Ok(())),
                Poll::Pending => Poll::Pending,
                Poll::Ready(result) => Poll::Ready(result),
            },
        );
        let (driven, read) = tokio::join!(
            tokio::time::timeout(WAIT, drive),
            tokio::time::timeout(WAIT, receiver.read_exact(&mut drained)),
        );
        assert!(matches!(driven, Ok(Ok(()))), "{driven:?}");
        assert!(matches!(read, Ok(Ok(_))), "{read:?}");
        assert!(drained[filled..].iter().all(|&byte| byte == 9));
        assert_eq!(
            direction.waiting.capacity(),
            0,
            "an idle direction holds no buffer"
        );
    }
}
