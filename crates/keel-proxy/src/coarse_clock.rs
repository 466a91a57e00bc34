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

/// A [`coarse_now_ms`] reading that may be absent, in one atomic word: absent is stored
/// as 0 and a reading as itself plus one, so that no reading doubles as a state.
#[derive(Debug)]
pub(crate) struct AtomicStamp(AtomicU64);

impl AtomicStamp {
    pub(crate) const fn new(stamp: Option<u64>) -> Self {
        Self(AtomicU64::new(Self::pack(stamp)))
    }

    const fn pack(stamp: Option<u64>) -> u64 {
        match stamp {
            Some(ms) => ms.saturating_add(1),
            None => 0,
        }
    }

    #[inline]
    pub(crate) fn load(&self) -> Option<u64> {
        self.0.load(Relaxed).checked_sub(1)
    }

    #[inline]
    pub(crate) fn store(&self, stamp: Option<u64>) {
        self.0.store(Self::pack(stamp), Relaxed);
    }
}
