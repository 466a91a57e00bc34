//! The live traffic sample: a bounded, uniform reservoir of recent request shapes, used
//! to replay real traffic through a proposed config (blast radius).
//!
//! Algorithm R over a rolling window: the n-th request of the window replaces a random
//! slot with probability `capacity / n`, so the sample is uniform over the window at
//! constant memory. When the window ends the count restarts and new shapes overwrite
//! the old ones. Selection costs one relaxed atomic add and a thread-local random
//! number; only selected requests (a shrinking fraction under load) build a shape.
//! Slots are `ArcSwapOption`s: writers never block readers or each other.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use keel_route::RequestShape;
use tokio::time::Instant;

/// How often, in requests, the window clock is read (every 1,024 requests).
const CLOCK_EVERY: u64 = 1024;

/// A uniform reservoir of recent request shapes.
pub struct TrafficSample {
    slots: Box<[ArcSwapOption<RequestShape>]>,
    seen: AtomicU64,
    window_started_ms: AtomicU64,
    window: Duration,
    origin: Instant,
}

impl std::fmt::Debug for TrafficSample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficSample")
            .field("capacity", &self.slots.len())
            .field("seen", &self.seen)
            .finish()
    }
}

impl TrafficSample {
    /// A reservoir of `capacity` shapes over a rolling `window` (capacity 0 disables it).
    pub fn new(capacity: usize, window: Duration) -> Self {
        Self {
            slots: (0..capacity).map(|_| ArcSwapOption::empty()).collect(),
            seen: AtomicU64::new(0),
            window_started_ms: AtomicU64::new(0),
            window,
            origin: Instant::now(),
        }
    }

    /// Offers one request; `shape` is only called when the request is kept.
    #[inline]
    pub fn offer(&self, shape: impl FnOnce() -> RequestShape) {
        let capacity = self.slots.len() as u64;
        if capacity == 0 {
            return;
        }
        let n = self.seen.fetch_add(1, Relaxed) + 1;
        if n.is_multiple_of(CLOCK_EVERY) {
            self.roll_window();
        }
        let slot = if n <= capacity {
            n - 1
        } else {
            fastrand::u64(..n)
        };
        if slot < capacity {
            self.slots[slot as usize].store(Some(std::sync::Arc::new(shape())));
        }
    }

    fn roll_window(&self) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let started = self.window_started_ms.load(Relaxed);
        let window = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(started) >= window
            && self
                .window_started_ms
                .compare_exchange(started, now, Relaxed, Relaxed)
                .is_ok()
        {
            self.seen.store(0, Relaxed);
        }
    }

    /// The shapes held now (at most `capacity`).
    pub fn snapshot(&self) -> Vec<RequestShape> {
        self.slots
            .iter()
            .filter_map(|slot| slot.load_full())
            .map(|shape| shape.as_ref().clone())
            .collect()
    }

    /// Requests seen in the current window.
    pub fn seen(&self) -> u64 {
        self.seen.load(Relaxed)
    }

    /// Most shapes kept.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_everything_until_full_then_stays_bounded_and_uniform() {
        let sample = TrafficSample::new(100, Duration::from_secs(3600));
        for i in 0..50 {
            sample.offer(|| RequestShape::new("GET", "h", &format!("/{i}")));
        }
        assert_eq!(sample.snapshot().len(), 50);
        for i in 50..20_000 {
            sample.offer(|| RequestShape::new("GET", "h", &format!("/{i}")));
        }
        let kept = sample.snapshot();
        assert_eq!(kept.len(), 100);
        // Uniform: about half the kept shapes come from the second half of the stream.
        let late = kept
            .iter()
            .filter(|s| s.path[1..].parse::<u32>().unwrap_or(0) >= 10_000)
            .count();
        assert!((25..=75).contains(&late), "late = {late}");
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let sample = TrafficSample::new(0, Duration::from_secs(1));
        sample.offer(|| unreachable!("never built"));
        assert!(sample.snapshot().is_empty());
    }
}
