//! The client connection watchdog: a connection whose next request head does not
//! arrive within the listener's `header_read_timeout` is closed (slowloris clients, and
//! keep-alive connections left idle), and so is one whose response body moves no byte
//! for `body_idle_timeout` (a backend that stops sending mid-body, or a client that
//! stops reading: either would hold a client connection and a backend connection for
//! good, as nginx's `proxy_read_timeout` and `send_timeout` prevent there).
//!
//! hyper can bound heads itself, but it makes a tokio timer for every request head it
//! waits for: a boxed `Sleep`, a clock read, and a timer-wheel insertion and removal
//! per keep-alive request, for a bound that practically never fires. Here a connection
//! keeps an [`ExchangeClock`] of a few words — since when it has been waiting for a head
//! (or "a request is in flight"), when its response started, and when it last wrote to
//! the client — written
//! with plain stores from the coarse clock of [`crate::coarse_clock`]: when a request
//! starts, when its response starts, at each write to the client socket (see
//! [`Progress`](crate::progress::Progress)), and when the response ends. The
//! connection's task holds one [`Alarm`], re-armed only when it has gone off or a bound
//! comes due sooner: about once per timeout period. An idle HTTP/1 connection's alarm
//! also goes off once it may be parked (`crate::parking`), at most once per
//! `PARK_AFTER_MS` while requests keep coming.
//!
//! The head wait starts when the connection opens and when a response body is finished,
//! so a long download or upload never counts against it; a slow one is cut only if it
//! stalls. Between a request's head and its response's, the route's timeout is the
//! bound. Bounded by the coarse clock, a cut comes up to two ticks (20 ms) late, never
//! early.
//!
//! An HTTP/2 connection carries many exchanges at once, each served by its own task, so
//! its clock counts them instead: the connection is idle while no stream is open, and
//! after `header_read_timeout` of that it is closed with a `GOAWAY` (nginx closes idle
//! HTTP/2 connections by its `keepalive_timeout`). While some stream's response is
//! under way, a connection that writes nothing for `body_idle_timeout` is cut: the bound
//! is per connection, so one stalled stream among moving ones is not cut by it.
//!
//! A route may set its own body bound (`[[routes]] body_idle_timeout`, for answers quiet
//! on purpose, such as server-sent events): the handler writes it into the clock once
//! the request is routed. An HTTP/2 connection keeps the longest bound any of its routes
//! set, since its streams share one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::body_bound::{BodyIdleBound, RouteBound};
use crate::coarse_clock::{AtomicStamp, coarse_instant, coarse_now_ms};
use crate::deadline::Alarm;
use crate::parking::PARK_AFTER_MS;
use crate::request::ConnInfo;

/// Shortest time between two looks at an HTTP/2 connection with nothing due (1,000 ms).
const RECHECK_MIN_MS: u64 = 1_000;

/// The times of a connection's exchanges, as its watchdog bounds them: since when it
/// has waited for a request head, when its response body started and last wrote, how
/// many HTTP/2 streams and bodies are open, and the route's own body bound.
#[derive(Debug)]
pub(crate) struct ExchangeClock {
    /// Since when a head has been awaited (a [`coarse_now_ms`] reading); none while a
    /// request is in flight.
    waiting_since: AtomicStamp,
    /// When the response in flight started (a [`coarse_now_ms`] reading), none before;
    /// read only while in flight.
    body_started: AtomicStamp,
    /// When the connection last wrote a byte to the client.
    last_write: AtomicU64,
    /// HTTP/2: streams being served.
    streams: AtomicU32,
    /// HTTP/2: streams whose response has started.
    bodies: AtomicU32,
    /// A route's own body bound, if it set one. HTTP/1: the bound of the exchange in
    /// flight. HTTP/2: the longest any route on the connection has set.
    route_body_idle: RouteBound,
}

/// The protocol a client connection speaks, which decides how its clock is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// One exchange at a time.
    Http1,
    /// Many streams at once.
    Http2,
}

/// When the watchdog should look again, and what it cuts then if nothing has changed.
enum Due {
    At(u64, Cut),
    /// Nothing is bounded now, and the connection's own task will poll again when that
    /// changes (HTTP/1: its response starts or ends on this task).
    Nothing,
    /// Nothing is bounded now, but what changes it happens on other tasks (HTTP/2
    /// streams), which need not wake this one: look again later.
    LookAgain,
}

impl ExchangeClock {
    /// Waiting from now (the connection just opened).
    pub(crate) fn new() -> Self {
        Self {
            waiting_since: AtomicStamp::new(Some(coarse_now_ms())),
            body_started: AtomicStamp::new(None),
            last_write: AtomicU64::new(0),
            streams: AtomicU32::new(0),
            bodies: AtomicU32::new(0),
            route_body_idle: RouteBound::listeners(),
        }
    }

    /// A request head has arrived: no head is awaited until its response is done, and
    /// the route's timeout bounds the wait for the response's head.
    #[inline]
    fn request_started(&self) {
        self.waiting_since.store(None);
        self.body_started.store(None);
        self.route_body_idle.clear();
    }

    /// HTTP/1: since when (a [`coarse_now_ms`] reading) the connection has waited for
    /// its next request head, `None` while a request is in flight.
    #[inline]
    pub(crate) fn waiting_since(&self) -> Option<u64> {
        self.waiting_since.load()
    }

    /// The request's route sets its own body bound. On HTTP/2 a route can only
    /// lengthen the connection's bound: its streams share one.
    #[inline]
    pub(crate) fn route_body_idle(&self, bound: BodyIdleBound) {
        self.route_body_idle.lengthen_to(bound);
    }

    /// The response has started: from now on its body may not stall.
    #[inline]
    fn response_started(&self) {
        self.body_started.store(Some(coarse_now_ms()));
    }

    /// Bytes went to the client.
    #[inline]
    pub(crate) fn wrote(&self) {
        self.last_write.store(coarse_now_ms(), Relaxed);
    }

    #[inline]
    fn response_done(&self) {
        self.waiting_since.store(Some(coarse_now_ms()));
    }

    fn stream_started(&self) {
        self.streams.fetch_add(1, Relaxed);
    }

    fn stream_body_started(&self) {
        self.body_started.store(Some(coarse_now_ms()));
        self.bodies.fetch_add(1, Relaxed);
    }

    fn stream_done(&self, had_body: bool) {
        if had_body {
            self.bodies.fetch_sub(1, Relaxed);
        }
        if self.streams.fetch_sub(1, Relaxed) == 1 {
            self.waiting_since.store(Some(coarse_now_ms()));
        }
    }

    /// An HTTP/1 connection's next bound: its next head, or its response body's next
    /// move.
    #[inline]
    fn http1_due(&self, head_ms: u64, body_idle: BodyIdleBound) -> Due {
        if let Some(since) = self.waiting_since.load() {
            return Due::At(since.saturating_add(head_ms), Cut::NoHead);
        }
        let Some(started) = self.body_started.load() else {
            return Due::Nothing;
        };
        let BodyIdleBound::Ms(body_idle_ms) = self.route_body_idle.load().unwrap_or(body_idle)
        else {
            return Due::Nothing;
        };
        // A write before the response started (an interim `100 Continue`) is older
        // than the start, and does not count.
        let moved = started.max(self.last_write.load(Relaxed));
        Due::At(moved.saturating_add(body_idle_ms.get()), Cut::BodyStalled)
    }

    /// An HTTP/2 connection's next bound: its idle end with no stream open, or the next
    /// move of its bodies under way.
    fn http2_due(&self, head_ms: u64, body_idle: BodyIdleBound) -> Due {
        if self.streams.load(Relaxed) == 0 {
            // Set whenever no stream is open (HTTP/2 requests never mark one in flight).
            let since = self.waiting_since.load().unwrap_or(u64::MAX);
            return Due::At(since.saturating_add(head_ms), Cut::NoHead);
        }
        let body_idle = self
            .route_body_idle
            .load()
            .map_or(body_idle, |route| route.max(body_idle));
        let BodyIdleBound::Ms(body_idle_ms) = body_idle else {
            return Due::LookAgain;
        };
        if self.bodies.load(Relaxed) == 0 {
            return Due::LookAgain;
        }
        let moved = self
            .body_started
            .load()
            .unwrap_or(0)
            .max(self.last_write.load(Relaxed));
        Due::At(moved.saturating_add(body_idle_ms.get()), Cut::BodyStalled)
    }
}

/// One exchange on a client connection, as its watchdog times it: made when the request
/// arrives, told when the response starts, and dropped with the response body (its last
/// byte handed to hyper, or the exchange abandoned). An HTTP/1 connection then starts
/// waiting for its next request head; an HTTP/2 one counts one stream fewer.
#[derive(Debug)]
pub(crate) struct Exchange {
    conn: Arc<ConnInfo>,
    stream: Stream,
}

/// Where an HTTP/2 exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    /// Not HTTP/2.
    No,
    /// Waiting for its response.
    Open,
    /// Its response has started.
    Answering,
}

impl Exchange {
    /// A request has arrived on `conn`.
    #[inline]
    pub(crate) fn start(conn: Arc<ConnInfo>, protocol: Protocol) -> Self {
        let stream = match protocol {
            Protocol::Http1 => {
                conn.exchange_clock.request_started();
                Stream::No
            }
            Protocol::Http2 => {
                conn.exchange_clock.stream_started();
                Stream::Open
            }
        };
        Self { conn, stream }
    }

    /// The client connection it is on.
    #[inline]
    pub(crate) fn conn(&self) -> &Arc<ConnInfo> {
        &self.conn
    }

    /// The response has started: from now on its body may not stall.
    #[inline]
    pub(crate) fn response_started(&mut self) {
        match self.stream {
            Stream::No => self.conn.exchange_clock.response_started(),
            Stream::Open => {
                self.conn.exchange_clock.stream_body_started();
                self.stream = Stream::Answering;
            }
            Stream::Answering => {}
        }
    }
}

impl Drop for Exchange {
    #[inline]
    fn drop(&mut self) {
        match self.stream {
            Stream::No => self.conn.exchange_clock.response_done(),
            Stream::Open => self.conn.exchange_clock.stream_done(false),
            Stream::Answering => self.conn.exchange_clock.stream_done(true),
        }
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
        protocol: Protocol,
        head_ms: u64,
        body_idle: BodyIdleBound,
        alarm: Alarm,
        // The coarse time the alarm is set for.
        alarm_ms: Option<u64>,
    }
}

/// Watches `connection`'s request heads and response bodies against `limits`.
pub(crate) fn watch<F: Future>(
    connection: F,
    conn: Arc<ConnInfo>,
    protocol: Protocol,
    limits: WatchLimits,
) -> Watched<F> {
    Watched {
        connection,
        conn,
        protocol,
        head_ms: u64::try_from(limits.head.as_millis()).unwrap_or(u64::MAX),
        body_idle: BodyIdleBound::of(limits.body_idle),
        alarm: Alarm::default(),
        alarm_ms: None,
    }
}

impl<F> Watched<F> {
    /// The limits this watchdog bounds by, for the log of a cut (what it keeps of them:
    /// whole milliseconds).
    pub(crate) fn limits(&self) -> WatchLimits {
        WatchLimits {
            head: Duration::from_millis(self.head_ms),
            body_idle: match self.body_idle {
                BodyIdleBound::Ms(ms) => Duration::from_millis(ms.get()),
                BodyIdleBound::Never => Duration::ZERO,
            },
        }
    }
}

impl<F: Future> Future for Watched<F> {
    type Output = Result<F::Output, Cut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.connection.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let clock = &this.conn.exchange_clock;
        let next = match *this.protocol {
            Protocol::Http1 => clock.http1_due(*this.head_ms, *this.body_idle),
            Protocol::Http2 => clock.http2_due(*this.head_ms, *this.body_idle),
        };
        let (due, cut) = match next {
            Due::At(due, cut) => (due, Some(cut)),
            // An alarm set for an earlier wait may still go off: the wake-up finds
            // nothing due and does nothing. (No clock read: HTTP/1 polls land here
            // several times per request.)
            Due::Nothing => return Poll::Pending,
            Due::LookAgain => (
                coarse_now_ms().saturating_add((*this.head_ms).max(RECHECK_MIN_MS)),
                None,
            ),
        };
        let now = coarse_now_ms();
        if now >= due
            && let Some(cut) = cut
        {
            return Poll::Ready(Err(cut));
        }
        // An idle HTTP/1 connection is woken once it may park (see `crate::parking`); a
        // wake-up earlier than a bound only looks, and the alarm is then set again.
        let due = match (*this.protocol, cut) {
            (Protocol::Http1, Some(Cut::NoHead)) => {
                let park_at = due
                    .saturating_sub(*this.head_ms)
                    .saturating_add(PARK_AFTER_MS);
                if park_at > now { due.min(park_at) } else { due }
            }
            _ => due,
        };
        // Waits and body moves only go forward, so an alarm still ahead and not later
        // than `due` goes off early at worst, and is re-armed then. One later than `due`
        // (set for a longer bound) is brought forward.
        if this.alarm_ms.is_none_or(|set| set <= now || set > due) {
            this.alarm.arm(coarse_instant(due), cx.waker());
            *this.alarm_ms = Some(due);
        }
        Poll::Pending
    }
}
