//! The HTTP/1 client connection watchdog: a connection whose next request head does not
//! arrive within the listener's `header_read_timeout` is closed (slowloris clients, and
//! keep-alive connections left idle), and so is one whose response body moves no byte
//! for `body_idle_timeout` (a backend that stops sending mid-body, or a client that
//! stops reading: either would hold a client connection and a backend connection for
//! good, as nginx's `proxy_read_timeout` and `send_timeout` prevent there).
//!
//! hyper can bound heads itself, but it makes a tokio timer for every request head it
//! waits for: a boxed `Sleep`, a clock read, and a timer-wheel insertion and removal
//! per keep-alive request, for a bound that practically never fires. Here a connection
//! keeps three words — since when it has been waiting for a head (or "a request is in
//! flight"), when its response started, and when it last wrote to the client — written
//! with plain stores from the coarse clock of [`crate::deadline`]: when a request
//! starts, when its response starts, at each write to the client socket (see
//! [`Progress`]), and when the response ends. The connection's task holds
//! one [`Alarm`], re-armed only when it has gone off or a bound comes due sooner: about
//! once per timeout period.
//!
//! The head wait starts when the connection opens and when a response body is finished,
//! so a long download or upload never counts against it; a slow one is cut only if it
//! stalls. Between a request's head and its response's, the route's timeout is the
//! bound. Bounded by the coarse clock, a cut comes up to two ticks (20 ms) late, never
//! early.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::deadline::{Alarm, coarse_instant, coarse_now_ms};
use crate::request::ConnInfo;

/// `HeadClock::waiting_since` while a request is being served.
const IN_FLIGHT: u64 = u64::MAX;
/// `HeadClock::body_started` before the response of the request in flight has started.
const NO_BODY: u64 = 0;

/// Since when a connection has been waiting for its next request head, and since when
/// its response has been moving.
#[derive(Debug)]
pub(crate) struct HeadClock {
    /// A [`coarse_now_ms`] reading, or [`IN_FLIGHT`].
    waiting_since: AtomicU64,
    /// When the response in flight started (a [`coarse_now_ms`] reading), or
    /// [`NO_BODY`]; read only while in flight.
    body_started: AtomicU64,
    /// When the connection last wrote a byte to the client.
    last_write: AtomicU64,
}

impl HeadClock {
    /// Waiting from now (the connection just opened).
    pub(crate) fn new() -> Self {
        Self {
            waiting_since: AtomicU64::new(coarse_now_ms()),
            body_started: AtomicU64::new(NO_BODY),
            last_write: AtomicU64::new(0),
        }
    }

    /// A request head has arrived: no head is awaited until its response is done, and
    /// the route's timeout bounds the wait for the response's head.
    #[inline]
    pub(crate) fn request_started(&self) {
        self.waiting_since.store(IN_FLIGHT, Relaxed);
        self.body_started.store(NO_BODY, Relaxed);
    }

    /// The response has started: from now on its body may not stall.
    #[inline]
    pub(crate) fn response_started(&self) {
        // The coarse clock reads 0 until its first tick: that is not `NO_BODY`.
        self.body_started.store(coarse_now_ms().max(1), Relaxed);
    }

    /// Bytes went to the client.
    #[inline]
    fn wrote(&self) {
        self.last_write.store(coarse_now_ms(), Relaxed);
    }

    #[inline]
    fn response_done(&self) {
        self.waiting_since.store(coarse_now_ms(), Relaxed);
    }
}

/// Held by a response body: when it is dropped (its last byte handed to hyper, or the
/// exchange abandoned), the connection starts waiting for its next request head.
#[derive(Debug)]
pub(crate) struct ResponseDone(pub(crate) Arc<ConnInfo>);

impl Drop for ResponseDone {
    fn drop(&mut self) {
        self.0.head_clock.response_done();
    }
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// No request head arrived in time.
    NoHead,
    /// The response body moved no byte in time.
    BodyStalled,
}

/// The bounds a connection is watched against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WatchLimits {
    /// `header_read_timeout`.
    pub(crate) head: Duration,
    /// `body_idle_timeout`; zero for never.
    pub(crate) body_idle: Duration,
}

pin_project_lite::pin_project! {
    /// `connection`, closed (resolved to `Err(Cut)`) once it has waited longer than its
    /// limits allow for a request head or for its response body to move.
    pub(crate) struct Watched<F> {
        #[pin]
        connection: F,
        conn: Arc<ConnInfo>,
        head_ms: u64,
        // `u64::MAX` when bodies may stall for good.
        body_idle_ms: u64,
        alarm: Alarm,
        // The coarse time the alarm is set for; 0 when not set.
        alarm_ms: u64,
    }
}

/// Watches `connection`'s request heads and response bodies against `limits`.
pub(crate) fn watch<F: Future>(
    connection: F,
    conn: Arc<ConnInfo>,
    limits: WatchLimits,
) -> Watched<F> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Watched {
        connection,
        conn,
        head_ms: ms(limits.head),
        body_idle_ms: if limits.body_idle.is_zero() {
            u64::MAX
        } else {
            ms(limits.body_idle)
        },
        alarm: Alarm::default(),
        alarm_ms: 0,
    }
}

impl<F: Future> Future for Watched<F> {
    type Output = Result<F::Output, Cut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.connection.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let clock = &this.conn.head_clock;
        let since = clock.waiting_since.load(Relaxed);
        let (due, cut) = if since != IN_FLIGHT {
            (since.saturating_add(*this.head_ms), Cut::NoHead)
        } else {
            let started = clock.body_started.load(Relaxed);
            if started == NO_BODY || *this.body_idle_ms == u64::MAX {
                // An alarm set for an earlier wait may still go off: the wake-up finds
                // nothing due and does nothing.
                return Poll::Pending;
            }
            // A write before the response started (an interim `100 Continue`) is older
            // than the start, and does not count.
            let moved = started.max(clock.last_write.load(Relaxed));
            (moved.saturating_add(*this.body_idle_ms), Cut::BodyStalled)
        };
        let now = coarse_now_ms();
        if now >= due {
            return Poll::Ready(Err(cut));
        }
        // Waits and body moves only go forward, so an alarm still ahead and not later
        // than `due` goes off early at worst, and is re-armed then. One later than `due`
        // (set for a longer bound) is brought forward.
        if *this.alarm_ms == 0 || *this.alarm_ms <= now || *this.alarm_ms > due {
            this.alarm.arm(coarse_instant(due), cx.waker());
            *this.alarm_ms = due;
        }
        Poll::Pending
    }
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
