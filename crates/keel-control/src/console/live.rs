//! `GET /ui/events`: the Now and Topology pages' server-sent event stream. One `now`
//! event (a [`Tracker`] snapshot) right away and then every [`LIVE_INTERVAL`]; at most
//! [`MAX_LIVE_STREAMS`] streams at once. A stream ends at the first tick after its
//! session ended or expired, or after the admin listener began shutting down.
//!
//! Every stream shares one [`SharedLive`]: an event built less than half an interval ago
//! is sent again rather than built anew, so the work is one event per interval however
//! many pages are open (`bench/console_tick.rs` measures one event).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body::Frame;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Interval, MissedTickBehavior};

use std::sync::Mutex;
use std::time::Instant;

use super::snapshot::Tracker;
use super::{ConsoleState, session_of};

/// Time between two events of a stream (1 second).
pub const LIVE_INTERVAL: Duration = Duration::from_secs(1);
/// Most event streams open at once, over every session (16; the admin listener takes
/// 64 connections in all).
pub const MAX_LIVE_STREAMS: usize = 16;

pub(super) async fn events(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let Some((session, _)) = session_of(&state, &headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            "sign in at /ui/login to watch the console\n",
        )
            .into_response();
    };
    let Ok(permit) = state.streams.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "10")],
            format!("{MAX_LIVE_STREAMS} console pages are open already; close one\n"),
        )
            .into_response();
    };
    let mut tick = tokio::time::interval(LIVE_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let body = LiveBody {
        state,
        session,
        tick,
        _permit: permit,
    };
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::new(body),
    )
        .into_response()
}

struct LiveBody {
    state: ConsoleState,
    session: String,
    tick: Interval,
    _permit: OwnedSemaphorePermit,
}

impl http_body::Body for LiveBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        ready!(this.tick.poll_tick(cx));
        if this.state.stopping.load(Ordering::Relaxed)
            || this.state.sessions.get(&this.session).is_none()
        {
            return Poll::Ready(None);
        }
        let event = this.state.live.event(&this.state.admin.controller);
        Poll::Ready(Some(Ok(Frame::data(event))))
    }
}

/// The one tracker every stream shares, and the last event it built.
#[derive(Debug, Default)]
pub(super) struct SharedLive {
    inner: Mutex<(Tracker, Option<(Instant, Bytes)>)>,
}

impl SharedLive {
    /// The current `now` event: the last one if it is younger than half an interval,
    /// else a new one.
    fn event(&self, controller: &crate::Controller) -> Bytes {
        // A panic while building an event leaves a tracker that is still usable.
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (tracker, last) = &mut *guard;
        if let Some((at, event)) = last.as_ref()
            && at.elapsed() < LIVE_INTERVAL / 2
        {
            return event.clone();
        }
        let snapshot = tracker.tick(controller);
        let event = Bytes::from(format!("event: now\ndata: {snapshot}\n\n"));
        *last = Some((Instant::now(), event.clone()));
        event
    }
}
