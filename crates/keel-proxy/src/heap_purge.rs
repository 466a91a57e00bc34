//! Giving a wave's memory back: each serving thread watches how many tasks it runs and,
//! once a wave of connections has ended, makes the allocator purge what the wave freed.
//!
//! Why: Keel's allocator (mimalloc v2, `crates/keel/src/main.rs`) returns freed pages to
//! the kernel only after a delay (10 ms), and only when the thread that owns them next
//! allocates or frees pages. A wave of connections ends on a thread that then idles, so
//! that moment never comes: measured with `bench/memory.sh`, RSS a minute after an idle
//! wave closed stayed 42 % above the start. Purging at once (`MIMALLOC_PURGE_DELAY=0`)
//! gets it back but costs 3–15 % CPU per request, and `mi_collect` is a foreign call the
//! workspace's `forbid(unsafe_code)` rules out. So after a wave the thread itself does,
//! with ordinary safe allocations, what mimalloc waits for:
//!
//! - one allocation above mimalloc's medium-object bound (64 KiB): it always takes a
//!   fresh page from the thread's segments, and taking a page purges the expired free
//!   spans of the segment it comes from;
//! - enough allocations above mimalloc's small-object bound (1 KiB) to reach its
//!   `generic_collect` count (10,000 by default): every such allocation takes mimalloc's
//!   generic path, and the 10,000th collects the thread's heap (frees its empty pages,
//!   which purges their segments, takes in blocks other threads freed, purges expired
//!   arena memory). Each is freed at once and about 0.3 ms in all on a loaded 2-core
//!   guest.
//!
//! Under any other allocator these are plain allocations that change nothing.
//!
//! When: every [`PURGE_CHECK_INTERVAL`] the thread reads its runtime's live task count
//! (connections, backend connections, this watcher). A wave has ended when the count
//! has fallen by at least [`WAVE_MIN_TASKS`] and to at most half of its high-water mark
//! since the last wave; the purge then runs on that check and on later ones, further and
//! further apart, up to [`PURGE_LAST_CHECK`] (memory freed later, or whose purge mimalloc
//! put off, is purged too). Steady traffic, however
//! heavy, never triggers it: nothing is measured on the request path.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Waves seen by any serving thread so far: the threads that do not serve connections
/// (the control plane's) purge after each as well.
static WAVES: AtomicU64 = AtomicU64::new(0);

/// How often a serving thread checks whether a wave has ended (seconds).
pub(crate) const PURGE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// A fall in live tasks smaller than this (tasks) is not a wave: what so few connections
/// held is not worth a purge.
pub(crate) const WAVE_MIN_TASKS: usize = 256;
/// The last check after a wave (counted in checks, one per [`PURGE_CHECK_INTERVAL`])
/// that purges: the purges run at checks 0, 1, 2, 4, 8, 16, 32 and 64 after the wave is
/// seen. Why a minute, thinning out: mimalloc pushes a segment's purge back by 1 ms for
/// every span freed before the purge is due, and the listener frees ended connections'
/// task handles only every 5 s, so what a wave frees can come due seconds later.
pub(crate) const PURGE_LAST_CHECK: u32 = 64;
/// Bytes of each allocation that takes a fresh page: above mimalloc's medium-object bound
/// (64 KiB), so it never comes from a page's free list (a 128 KiB page: two slices).
const PAGE_NUDGE_BYTES: usize = 96 * 1024;
/// How many such pages are held at once (128: 16 MiB of address space, of which each
/// touches one 4 KiB page), so that they are taken from the free spans of every segment
/// the thread has, not just the first.
const PAGE_NUDGE_COUNT: usize = 128;
/// Bytes of each allocation counted towards the heap collect: above mimalloc's
/// small-object bound (1 KiB), so it takes the generic path.
const GENERIC_NUDGE_BYTES: usize = 2 * 1024;
/// mimalloc's `generic_collect` default (allocations on the generic path between two
/// collects of the thread's heap).
const GENERIC_COLLECT_CALLS: usize = 10_000;

/// Decides, one check at a time, when a serving thread purges.
#[derive(Debug, Default)]
pub(crate) struct WaveWatch {
    /// The most live tasks seen since the last wave.
    high_water: usize,
    /// Checks since the last wave was seen (`None`: no purge to come).
    since_wave: Option<u32>,
    /// The count of waves (all threads') this watch last acted on.
    waves_seen: u64,
}

impl WaveWatch {
    /// Takes this check's live task count (`None` on a thread that serves no
    /// connections, which follows the waves others see in `waves`); true when the
    /// thread should purge now.
    pub(crate) fn check(&mut self, alive: Option<usize>, waves: &AtomicU64) -> bool {
        if let Some(alive) = alive {
            self.high_water = self.high_water.max(alive);
            let fallen = self.high_water - alive;
            if fallen >= WAVE_MIN_TASKS && alive <= self.high_water / 2 {
                self.high_water = alive;
                self.waves_seen = waves.fetch_add(1, Relaxed) + 1;
                self.since_wave = Some(0);
            }
        }
        let now = waves.load(Relaxed);
        if now != self.waves_seen {
            self.waves_seen = now;
            self.since_wave = Some(0);
        }
        let Some(since) = self.since_wave else {
            return false;
        };
        self.since_wave = (since < PURGE_LAST_CHECK).then_some(since + 1);
        since == 0 || since.is_power_of_two()
    }
}

/// Allocates and frees what makes mimalloc purge this thread's freed, expired memory
/// (see the module doc). Safe under any allocator.
pub(crate) fn purge_this_thread() {
    let pages: Vec<Vec<u8>> = (0..PAGE_NUDGE_COUNT)
        .map(|_| black_box(Vec::with_capacity(PAGE_NUDGE_BYTES)))
        .collect();
    drop(black_box(pages));
    for _ in 0..GENERIC_COLLECT_CALLS {
        drop(black_box(Vec::<u8>::with_capacity(GENERIC_NUDGE_BYTES)));
    }
}

/// Runs on a serving thread's runtime until it stops: checks for the end of a wave every
/// [`PURGE_CHECK_INTERVAL`] and purges after one.
pub(crate) async fn watch_waves() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let mut watch = WaveWatch::default();
    let mut ticks = tokio::time::interval(PURGE_CHECK_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if watch.check(Some(metrics.num_alive_tasks()), &WAVES) {
            purge_this_thread();
        }
    }
}

/// Runs on a runtime that serves no connections (the control plane's, with one worker)
/// until it stops: purges that worker's heap after each wave a serving thread sees, on
/// the same schedule. Part of `[server] purge_after_wave`.
pub async fn follow_waves() {
    let mut watch = WaveWatch::default();
    let mut ticks = tokio::time::interval(PURGE_CHECK_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if watch.check(None, &WAVES) {
            purge_this_thread();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds counts in; returns the checks (by index) that purged.
    fn purges(counts: &[usize]) -> Vec<usize> {
        let waves = AtomicU64::new(0);
        let mut watch = WaveWatch::default();
        counts
            .iter()
            .enumerate()
            .filter(|(_, n)| watch.check(Some(**n), &waves))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn a_wave_ending_purges_further_and_further_apart_then_stops() {
        let mut counts = vec![1, 3001, 3001, 2];
        counts.extend([2; 100]);
        let expected: Vec<usize> = [0, 1, 2, 4, 8, 16, 32, 64].iter().map(|c| 3 + c).collect();
        assert_eq!(purges(&counts), expected);
    }

    #[test]
    fn steady_or_small_changes_never_purge() {
        assert!(purges(&[500; 20]).is_empty());
        assert!(purges(&[1, 200, 1, 200, 1, 200, 1]).is_empty());
        // A large fall that leaves more than half the high-water mark is not a wave.
        assert!(purges(&[2000, 1200, 1100, 1500]).is_empty());
    }

    #[test]
    fn a_wave_that_closes_gradually_is_seen_once_half_has_gone() {
        let out = purges(&[1, 3000, 2500, 2000, 1400, 900, 0, 0, 0, 0, 0]);
        // Half gone at index 4: purges start there; the rest falls by 1400, another
        // wave, which starts them again at index 6.
        assert_eq!(out, vec![4, 5, 6, 7, 8, 10]);
    }

    #[test]
    fn the_next_wave_is_measured_from_what_was_left() {
        let mut counts = vec![3000, 10];
        counts.extend([10; 8]);
        counts.extend([400, 10]);
        let out = purges(&counts);
        assert!(out.contains(&11), "second wave not seen: {out:?}");
    }

    #[test]
    fn a_follower_purges_after_the_waves_a_serving_thread_sees() {
        let waves = AtomicU64::new(0);
        let (mut serving, mut follower) = (WaveWatch::default(), WaveWatch::default());
        assert!(!follower.check(None, &waves));
        assert!(!serving.check(Some(3000), &waves));
        assert!(!follower.check(None, &waves));
        assert!(serving.check(Some(1), &waves));
        let followed: Vec<bool> = (0..5).map(|_| follower.check(None, &waves)).collect();
        assert_eq!(followed, vec![true, true, true, false, true]);
        // The serving thread's own wave is not taken for a second one.
        assert!(serving.check(Some(1), &waves));
        assert!(serving.check(Some(1), &waves));
        assert!(!serving.check(Some(1), &waves));
    }

    #[test]
    fn purging_is_only_allocations() {
        // Safe to run anywhere, any number of times.
        purge_this_thread();
        purge_this_thread();
    }
}
