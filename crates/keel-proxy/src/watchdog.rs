//! The HTTP/1 client connection watchdog: a connection whose next request head does not
//! arrive within the listener's `header_read_timeout` is closed (slowloris clients, and
//! keep-alive connections left idle).
//!
//! hyper can do this itself, but it makes a tokio timer for every request head it
//! waits for: a boxed `Sleep`, a clock read, and a timer-wheel insertion and removal
//! per keep-alive request, for a bound that practically never fires. Here a connection
//! keeps one word — since when it has been waiting for a head, or "a request is in
//! flight" — written with a plain store when a request starts and when its response
//! ends, from the coarse clock of [`crate::deadline`]. The connection's task holds one
//! [`Alarm`], re-armed only when it has gone off: about once per timeout period.
//!
//! The wait starts when the connection opens and when a response body is finished, so
//! a long download or upload never counts against it. Bounded by the coarse clock, the
//! cut comes up to two ticks (20 ms) late, never early.

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

/// Since when a connection has been waiting for its next request head.
#[derive(Debug)]
pub(crate) struct HeadClock {
    /// A [`coarse_now_ms`] reading, or [`IN_FLIGHT`].
    waiting_since: AtomicU64,
}

impl HeadClock {
    /// Waiting from now (the connection just opened).
    pub(crate) fn new() -> Self {
        Self {
            waiting_since: AtomicU64::new(coarse_now_ms()),
        }
    }

    /// A request head has arrived: nothing is awaited until its response is done.
    #[inline]
    pub(crate) fn request_started(&self) {
        self.waiting_since.store(IN_FLIGHT, Relaxed);
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

/// No request head arrived in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadTimeout;

pin_project_lite::pin_project! {
    /// `connection`, closed (resolved to `Err(HeadTimeout)`) once it has waited longer
    /// than `limit` for a request head.
    pub(crate) struct Watched<F> {
        #[pin]
        connection: F,
        conn: Arc<ConnInfo>,
        limit_ms: u64,
        alarm: Alarm,
        // The coarse time the alarm is set for; 0 when not set.
        alarm_ms: u64,
    }
}

/// Watches `connection`'s request heads against `limit`.
pub(crate) fn watch_heads<F: Future>(
    connection: F,
    conn: Arc<ConnInfo>,
    limit: Duration,
) -> Watched<F> {
    Watched {
        connection,
        conn,
        limit_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
        alarm: Alarm::default(),
        alarm_ms: 0,
    }
}

impl<F: Future> Future for Watched<F> {
    type Output = Result<F::Output, HeadTimeout>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.connection.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let since = this.conn.head_clock.waiting_since.load(Relaxed);
        if since == IN_FLIGHT {
            // An alarm set for an earlier wait may still go off: the wake-up finds the
            // request in flight and does nothing.
            return Poll::Pending;
        }
        let due = since.saturating_add(*this.limit_ms);
        let now = coarse_now_ms();
        if now >= due {
            return Poll::Ready(Err(HeadTimeout));
        }
        // Waits only move forward, so an alarm still ahead is never later than `due`:
        // it goes off early at worst, and is re-armed then.
        if *this.alarm_ms == 0 || *this.alarm_ms <= now {
            this.alarm.arm(coarse_instant(due), cx.waker());
            *this.alarm_ms = due;
        }
        Poll::Pending
    }
}
