//! The coarse clock: a millisecond count that the deadline sweeper of
//! [`crate::deadline`] stores every [`DEADLINE_TICK`], so that timekeeping that
//! tolerates a tick of error (idle pooled connections, the client connection watchdog,
//! tunnels, parking) reads one atomic instead of the clock.
//!
//! A reading is behind the real time by up to one tick, never ahead. Reading the clock
//! the first time starts the sweeper, which is what moves it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[cfg(doc)]
use crate::deadline::DEADLINE_TICK;

struct CoarseClock {
    /// The instant reading 0 stands for.
    origin: Instant,
    /// Milliseconds from `origin` to the sweeper's latest tick.
    now_ms: AtomicU64,
}

fn clock() -> &'static CoarseClock {
    static CLOCK: OnceLock<CoarseClock> = OnceLock::new();
    CLOCK.get_or_init(|| {
        // The sweeper ticks this clock: without it every reading would stay 0.
        crate::deadline::start_sweeper();
        CoarseClock {
            origin: Instant::now(),
            now_ms: AtomicU64::new(0),
        }
    })
}

/// Moves the clock to now, and returns now. Called by the sweeper once a tick.
pub(crate) fn tick() -> Instant {
    let clock = clock();
    let now = Instant::now();
    let ms = u64::try_from(now.duration_since(clock.origin).as_millis()).unwrap_or(u64::MAX);
    clock.now_ms.store(ms, Relaxed);
    now
}

/// Milliseconds since an arbitrary origin, as of the sweeper's latest tick: behind the
/// real time by up to one [`DEADLINE_TICK`], never ahead. One atomic load.
#[inline]
pub(crate) fn coarse_now_ms() -> u64 {
    clock().now_ms.load(Relaxed)
}

/// The instant a [`coarse_now_ms`] reading stands for.
pub(crate) fn coarse_instant(ms: u64) -> Instant {
    clock().origin + Duration::from_millis(ms)
}
