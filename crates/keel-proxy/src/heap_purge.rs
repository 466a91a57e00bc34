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
//! since the last wave; the purge then runs on that tick and the next
//! [`PURGE_ROUNDS`]` - 1`, so that memory freed a little later (the listener sweeps
//! ended connections' task handles every 5 s) is purged too. Steady traffic, however
//! heavy, never triggers it: nothing is measured on the request path.

use std::hint::black_box;
use std::time::Duration;

/// How often a serving thread checks whether a wave has ended (seconds).
pub(crate) const PURGE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// A fall in live tasks smaller than this (tasks) is not a wave: what so few connections
/// held is not worth a purge.
pub(crate) const WAVE_MIN_TASKS: usize = 256;
/// Checks (one per [`PURGE_CHECK_INTERVAL`]) that purge after a wave is seen: covers the
/// listener's 5 s sweep of ended connections' task handles.
pub(crate) const PURGE_ROUNDS: u8 = 7;
/// Bytes of the allocation that takes a fresh page: above mimalloc's medium-object bound
/// (64 KiB), so it never comes from a page's free list.
const PAGE_NUDGE_BYTES: usize = 128 * 1024;
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
    /// Purges still to run for the last wave.
    rounds_left: u8,
}

impl WaveWatch {
    /// Takes this check's live task count; true when the thread should purge now.
    pub(crate) fn check(&mut self, alive: usize) -> bool {
        self.high_water = self.high_water.max(alive);
        let fallen = self.high_water - alive;
        if fallen >= WAVE_MIN_TASKS && alive <= self.high_water / 2 {
            self.high_water = alive;
            self.rounds_left = PURGE_ROUNDS;
        }
        if self.rounds_left == 0 {
            return false;
        }
        self.rounds_left -= 1;
        true
    }
}

/// Allocates and frees what makes mimalloc purge this thread's freed, expired memory
/// (see the module doc). Safe under any allocator.
pub(crate) fn purge_this_thread() {
    drop(black_box(Vec::<u8>::with_capacity(PAGE_NUDGE_BYTES)));
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
        if watch.check(metrics.num_alive_tasks()) {
            purge_this_thread();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds counts in; returns the checks (by index) that purged.
    fn purges(counts: &[usize]) -> Vec<usize> {
        let mut watch = WaveWatch::default();
        counts
            .iter()
            .enumerate()
            .filter(|(_, n)| watch.check(**n))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn a_wave_ending_purges_for_the_rounds_then_stops() {
        let mut counts = vec![1, 3001, 3001, 2];
        counts.extend([2; 10]);
        let expected: Vec<usize> = (3..3 + usize::from(PURGE_ROUNDS)).collect();
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
        let out = purges(&[1, 3000, 2500, 2000, 1400, 900, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        // Half gone at index 4: purge rounds start there; the rest falls by 1400,
        // another wave, which starts the rounds again at index 6.
        assert_eq!(out.first(), Some(&4));
        assert_eq!(out.last(), Some(&(6 + usize::from(PURGE_ROUNDS) - 1)));
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
    fn purging_is_only_allocations() {
        // Safe to run anywhere, any number of times.
        purge_this_thread();
        purge_this_thread();
    }
}
