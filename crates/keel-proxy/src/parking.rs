//! Idle HTTP/1 keep-alive connections that hold no buffers.
//!
//! hyper keeps a connection's read buffer (8 KiB at least), write buffer (8 KiB) and
//! the box its request future runs in for as long as the connection lives, so an idle
//! keep-alive connection cost about 16 kB: fifteen to twenty-five times what nginx and
//! HAProxy spend on one (bench/runs/2026-12-07-memory.md). Here hyper runs only while
//! requests keep coming. Once it is between messages (the last request had no body, its
//! response is handed over and flushed) and no request has come for [`PARK_AFTER_MS`]
//! (the watchdog wakes the connection then), the connection is "parked": hyper's
//! graceful shutdown closes its idle state at once, [`into_parts`] gives back the socket
//! and any bytes it read ahead, and everything else it held is freed. A parked
//! connection is its socket, its [`ConnInfo`] and a small task.
//!
//! The next request head is read here, into a buffer the size of what has arrived,
//! and handed to a new hyper connection (through [`Progress`]) once it is complete or
//! too large to hold here; hyper then parses it, answers `431` to one too large, and
//! reads any body from the socket itself. A client that sent part of a head holds only
//! that much. The connection watchdog (`crate::watchdog`) bounds the wait for a head
//! whether hyper or this module is waiting.
//!
//! What hyper would do with the bytes is unchanged: nothing is parsed here beyond
//! looking for the blank line that ends a head. A request with a body is left to
//! hyper until the next body-less one, since only then is hyper known to be between
//! messages. A `101` ends the loop: hyper hands the socket to the tunnel (see
//! `crate::upgrade`). Plain and TLS streams are parked alike: the wait for a head polls
//! the stream with room for one read and gives that room back whenever the read has to
//! wait, so any `AsyncRead` works. (A TLS connection keeps what rustls holds of its
//! own; hyper's buffers it gives back like a plain one.)
//!
//! [`into_parts`]: hyper::server::conn::http1::Connection::into_parts

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::oneshot;

use crate::body::ResponseBody;
use crate::coarse_clock::coarse_now_ms;
use crate::progress::Progress;
use crate::request::ConnInfo;

/// How long an HTTP/1 connection stays idle, its answer flushed, before it is parked
/// (20 ms: two ticks of the coarse clock, so parking happens 20 to 40 ms after the
/// answer). A client sending requests back to back keeps its hyper connection, so the
/// busy path costs what it did; a browser between two clicks, idle for seconds, holds
/// none of hyper's buffers. Shorter is cheaper in memory: while a wave of clients
/// connects, the connections answered within the last `PARK_AFTER_MS` still hold
/// hyper's buffers (about 17 kB each), and the allocator keeps those pages once they
/// are freed. At 100 ms that added 0.5 to 1 kB to every connection of a 4,000
/// connection wave (bench/runs/2026-12-07-xeon-1280k-l2/2026-12-08-memory.md). What a
/// client requesting every few tens of milliseconds pays instead is a new hyper
/// connection per request, a few microseconds.
pub(crate) const PARK_AFTER_MS: u64 = 20;

/// Bytes read from the socket at a time while waiting for a request head (4 KiB): a
/// typical head arrives in one read. A connection left waiting for the rest of a head
/// gives back what it did not fill.
const HEAD_READ_CHUNK: usize = 4096;

/// What a parked connection knows of the hyper connection that served its last request.
#[derive(Debug)]
pub(crate) struct Parking {
    /// A request has arrived since the current hyper connection started.
    request_seen: AtomicBool,
    /// The last request had no body, so once answered hyper is between messages.
    bodyless: AtomicBool,
    /// Everything hyper wrote has reached the socket (its write buffer is empty).
    flushed: AtomicBool,
}

impl Parking {
    pub(crate) fn new() -> Self {
        Self {
            request_seen: AtomicBool::new(false),
            bodyless: AtomicBool::new(false),
            flushed: AtomicBool::new(true),
        }
    }

    /// A request head has arrived; `bodyless` when it announces no body.
    #[inline]
    pub(crate) fn request_started(&self, bodyless: bool) {
        self.request_seen.store(true, Relaxed);
        self.bodyless.store(bodyless, Relaxed);
    }

    /// hyper handed bytes to the socket: its buffer may hold more.
    #[inline]
    pub(crate) fn wrote(&self) {
        self.flushed.store(false, Relaxed);
    }

    /// hyper flushed the socket, which it does only with its write buffer empty.
    #[inline]
    pub(crate) fn flushed(&self) {
        self.flushed.store(true, Relaxed);
    }

    /// Whether hyper is between messages, with nothing left to write: its last request
    /// had no body and that request's response is done and flushed, and the connection
    /// has been idle since `idle_since` (a coarse clock reading) for [`PARK_AFTER_MS`].
    #[inline]
    fn may_park(&self, idle_since: Option<u64>) -> bool {
        idle_since.is_some_and(|since| coarse_now_ms().saturating_sub(since) >= PARK_AFTER_MS)
            && self.request_seen.load(Relaxed)
            && self.bodyless.load(Relaxed)
            && self.flushed.load(Relaxed)
    }

    fn hyper_started(&self) {
        self.request_seen.store(false, Relaxed);
    }
}

/// The listener's request to finish, seen once.
pub(crate) struct Drain {
    signal: oneshot::Receiver<()>,
    asked: bool,
}

impl Drain {
    pub(crate) fn new(signal: oneshot::Receiver<()>) -> Self {
        Self {
            signal,
            asked: false,
        }
    }

    /// Whether the connection has been asked to finish (a dropped sender asks too).
    fn poll_asked(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.asked && Pin::new(&mut self.signal).poll(cx).is_ready() {
            self.asked = true;
        }
        self.asked
    }
}

/// The client stream as hyper reads and writes it.
type ClientIo<IO> = Progress<TokioIo<IO>>;

/// How one hyper connection ended.
enum Served<IO> {
    /// Between messages: the stream, and what hyper had read but not parsed.
    Parked { stream: IO, unread: Vec<u8> },
    /// The connection is over.
    Ended(hyper::Result<()>),
}

/// How the wait for the next request head ended.
enum Next {
    /// A complete head, one too large to hold here, or a partial head before the end
    /// of the stream: hyper takes it from here.
    Head,
    /// The client closed, or the socket failed, with nothing sent.
    Closed,
    /// The listener is draining and no request has started.
    Draining,
}

/// Serves an HTTP/1 connection, parking it between requests (see the module doc).
///
/// `max_head` is the listener's `max_header_bytes`: a head still incomplete at that size
/// goes to hyper, which answers it `431`.
#[allow(clippy::manual_async_fn)] // On purpose: see above.
pub(crate) fn serve_http1<IO, S>(
    mut stream: IO,
    service: S,
    conn: Arc<ConnInfo>,
    http1: &http1::Builder,
    max_head: usize,
    mut drain: Drain,
) -> impl Future<Output = hyper::Result<()>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = ResponseBody> + Clone + Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // An `async` block, not an `async fn`: an `async fn` keeps each argument twice in
    // the connection's task (as passed, and as moved into its body) for the whole
    // life of the connection, parked ones included.
    async move {
        let mut head = Vec::new();
        loop {
            // Counted parked for as long as the wait lasts, however it ends.
            let parked = conn.open.counts().parked();
            let next = next_head(&mut stream, &mut head, max_head, &mut drain).await;
            drop(parked);
            match next {
                Next::Head => {}
                Next::Closed | Next::Draining => return Ok(()),
            }
            let unread = Bytes::from(std::mem::take(&mut head));
            let io = Progress::resumed(TokioIo::new(stream), conn.clone(), unread);
            // Boxed: hyper's connection lives only while a request is served, and the task
            // of a parked connection stays as small as the wait for the next head.
            let served = Box::pin(serve_until_idle(
                io,
                service.clone(),
                &conn,
                http1,
                &mut drain,
            ));
            match served.await {
                Served::Parked {
                    stream: parked,
                    unread: ahead,
                } => {
                    stream = parked;
                    // Pipelined bytes: a whole next head goes to hyper at once, part of one
                    // waits here for the rest.
                    head = ahead;
                }
                Served::Ended(result) => return result,
            }
        }
    }
}

/// Runs one hyper connection until it is between messages (then parks it) or ends.
async fn serve_until_idle<IO, S>(
    io: ClientIo<IO>,
    service: S,
    conn: &ConnInfo,
    http1: &http1::Builder,
    drain: &mut Drain,
) -> Served<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = ResponseBody> + Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    conn.parking.hyper_started();
    // With upgrades: a `101` from a route that allows it hands the socket to a tunnel
    // (see `crate::upgrade`), and this connection is then over.
    let mut connection = http1.serve_connection(io, service).with_upgrades();
    let mut told_to_finish = false;
    let mut parking = false;
    // hyper's own end of a connection flushes what it has written, then shuts the
    // socket down, which `Progress::resumed` leaves to this function.
    let result = poll_fn(|cx| {
        if !told_to_finish && drain.poll_asked(cx) {
            told_to_finish = true;
            Pin::new(&mut connection).graceful_shutdown();
        }
        loop {
            let polled = Pin::new(&mut connection).poll(cx);
            if polled.is_ready()
                || parking
                || told_to_finish
                || !conn.parking.may_park(conn.exchange_clock.waiting_since())
            {
                return polled;
            }
            // Between messages with nothing left to write: hyper's graceful shutdown
            // ends an idle connection at once, and writes nothing.
            parking = true;
            Pin::new(&mut connection).graceful_shutdown();
        }
    })
    .await;
    let Some(parts) = connection.into_parts() else {
        // Upgraded: the socket is the tunnel's now.
        return Served::Ended(result);
    };
    let (io, ahead) = parts.io.into_parts();
    if parking && !told_to_finish && result.is_ok() {
        return Served::Parked {
            stream: io.into_inner(),
            unread: unread_bytes(parts.read_buf, ahead),
        };
    }
    let mut stream = io.into_inner();
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
    Served::Ended(result)
}

/// What hyper read but did not parse, then what it was never handed, in a buffer of
/// their own: hyper's bytes share the allocation of its whole read buffer.
fn unread_bytes(read_buf: Bytes, ahead: Bytes) -> Vec<u8> {
    let mut joined = Vec::with_capacity(read_buf.len() + ahead.len());
    joined.extend_from_slice(&read_buf);
    joined.extend_from_slice(&ahead);
    joined
}

/// Waits for the next request head, holding only the bytes that have arrived: each
/// read gets [`HEAD_READ_CHUNK`] of room, given back while the stream has nothing.
async fn next_head<IO: AsyncRead + Unpin>(
    stream: &mut IO,
    head: &mut Vec<u8>,
    max_head: usize,
    drain: &mut Drain,
) -> Next {
    loop {
        if head_complete(head) || head.len() >= max_head {
            return Next::Head;
        }
        let read = poll_fn(|cx| {
            head.reserve(HEAD_READ_CHUNK);
            // Straight into the spare room: no zeroed buffer, no copy.
            let polled = std::pin::pin!(stream.read_buf(&mut *head)).poll(cx);
            if polled.is_pending() {
                // A connection that waits holds only the bytes it has.
                head.shrink_to_fit();
                if head.is_empty() && drain.poll_asked(cx) {
                    return Poll::Ready(None);
                }
            }
            polled.map(Some)
        })
        .await;
        match read {
            None => return Next::Draining,
            Some(Ok(0)) if head.is_empty() => return Next::Closed,
            // hyper answers a head cut short as it always has.
            Some(Ok(0)) => return Next::Head,
            Some(Ok(_)) => {}
            Some(Err(_)) => return Next::Closed,
        }
    }
}

/// Whether `bytes` hold the blank line that ends a request head (CRLF or bare LF line
/// ends, as hyper accepts both).
fn head_complete(bytes: &[u8]) -> bool {
    bytes
        .windows(2)
        .enumerate()
        .any(|(at, pair)| pair == b"\n\n" || (pair == b"\n\r" && bytes.get(at + 2) == Some(&b'\n')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_its_blank_line() {
        assert!(head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(head_complete(b"GET / HTTP/1.1\nHost: a\n\n"));
        assert!(head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r"));
        assert!(!head_complete(b""));
    }

    #[test]
    fn unread_bytes_keep_their_order_and_leave_hypers_buffer() {
        let hyper_buffer = Bytes::from(vec![b'a'; 8192]).slice(8000..8010);
        let joined = unread_bytes(hyper_buffer, Bytes::from_static(b"bc"));
        assert_eq!(&joined[..], b"aaaaaaaaaabc");
        assert!(joined.capacity() < 8192);
        assert!(unread_bytes(Bytes::new(), Bytes::new()).is_empty());
    }
}
