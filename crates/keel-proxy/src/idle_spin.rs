//! How a serving thread waits once it has run out of work: it keeps the CPU for a few
//! microseconds (`[server] idle_spin`) before it sleeps in the kernel for more events.
//!
//! Why: a serving thread that drains its queue faster than its peers (clients and
//! backends) produce events sleeps after nearly every batch, and each sleep costs the
//! other side a wake-up: an inter-processor interrupt, a VM exit on a guest, a context
//! switch. It also hands the peers its answers in trickles of one or two, so they wake
//! and sleep once per trickle too. Waiting a moment lets the next events gather, so the
//! thread takes them in one batch without having slept, and answers in batches. On
//! `peers.sh`'s pinned preset (Keel alone on one CPU, wrk and the backends on the other,
//! 64 connections) a 20 µs spin measured 7.4 % more requests per second (seventh pass,
//! `bench/runs/2026-11-26-epyc-1024k-l2/2026-11-26-pass07.md`): the profile-guided build had been idle 7 % of the time there, sleeping
//! 0.1 times per request against HAProxy's 0.003.
//!
//! The spin is a delay, and it pays only while the peers have other work queued during
//! it. With few requests in flight each one waits it out: unconditionally, a closed loop
//! of 4 connections measured 35 % fewer requests per second. So a thread spins only while
//! at least 16 of its requests await backends (at 4 connections that never happens, at
//! 16 almost never; at 64, at about half the moments the thread runs out of work). An open
//! tunnel is not a request awaiting a backend: its answer, the `101`, is in ([`TunnelNotAwaiting`]).
//!
//! And only a thread that has its CPU to itself spins. Where the thread shares
//! its CPU (with the very clients and backends it waits for, say), the moment it spins
//! is a moment they could have run, and holding back the thread's answers can leave a
//! CPU idle: measured with two unpinned threads sharing two CPUs with wrk and the
//! backends, a plain spin cost 3–5 % (seventh pass). So every 10 ms a serving thread
//! reads how long it waited in the kernel's run queue (`/proc/thread-self/schedstat`):
//! alone on a CPU that is under 1 % of the time, shared it is 40–50 %, and above 5 % it
//! does not spin. While it spins it also yields (`sched_yield`), so anything else
//! runnable goes first, and a yield that comes back late ends the spin.
//!
//! The window adapts: it stays full while each sleep after it is no longer than the
//! window (events come faster than that), halves after each longer sleep, and drops to
//! nothing after a handover. So a thread whose requests are many but slow (backends
//! that answer in milliseconds) stops spinning for nothing. Timers that fall due during
//! a spin fire at most one window late.

use std::cell::Cell;
use std::io::Read;
use std::time::{Duration, Instant};

/// A yield that takes longer than this handed the CPU to another task (5 µs; a yield
/// with nothing else runnable returns within a microsecond).
const YIELD_HANDOFF: Duration = Duration::from_micros(5);
/// A window below this is not worth spinning for (1 µs): it becomes zero.
const MIN_WINDOW: Duration = Duration::from_micros(1);
/// How often a serving thread checks whether it has its CPU to itself (10 ms).
const SHARE_CHECK_INTERVAL: Duration = Duration::from_millis(10);
/// Run-queue wait above this share of the time means the CPU is shared (5 %).
const SHARED_WAIT_PERCENT: u128 = 5;
/// Fewest requests awaiting backends on a thread for it to spin (16 requests): with
/// fewer in flight, the backends and clients run dry while Keel waits.
const MIN_AWAITING: u32 = 16;

/// The spin window of one serving thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SpinWindow {
    /// The configured window, `[server] idle_spin`.
    limit: Duration,
    /// How long the next wait spins.
    current: Duration,
}

impl SpinWindow {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            current: limit,
        }
    }

    /// How long the next wait spins.
    fn current(&self) -> Duration {
        self.current
    }

    /// After a sleep in the kernel that lasted `slept`: events that come within a
    /// window are worth waiting for; a longer quiet halves the window.
    fn after_sleep(&mut self, slept: Duration) {
        self.current = if slept <= self.limit {
            self.limit
        } else {
            let half = self.current / 2;
            if half < MIN_WINDOW {
                Duration::ZERO
            } else {
                half
            }
        };
    }

    /// The spin gave the CPU to another task: the next wait sleeps at once.
    fn handed_off(&mut self) {
        self.current = Duration::ZERO;
    }
}

/// Whether a thread has its CPU to itself, from its run-queue wait between two checks.
#[derive(Clone, Copy, Debug)]
struct CpuShare {
    checked_at: Instant,
    /// Run-queue wait so far, in nanoseconds (`None`: unknown, which counts as shared).
    waited_ns: Option<u64>,
    shared: bool,
}

impl CpuShare {
    fn new(now: Instant, waited_ns: Option<u64>) -> Self {
        Self {
            checked_at: now,
            waited_ns,
            shared: waited_ns.is_none(),
        }
    }

    /// Whether the thread shares its CPU, judged again once an interval has passed.
    fn shared(&mut self, now: Instant, read: impl FnOnce() -> Option<u64>) -> bool {
        let elapsed = now.duration_since(self.checked_at);
        if elapsed >= SHARE_CHECK_INTERVAL {
            let waited_ns = read();
            self.shared = match (self.waited_ns, waited_ns) {
                (Some(before), Some(after)) => {
                    u128::from(after.saturating_sub(before)) * 100
                        > elapsed.as_nanos() * SHARED_WAIT_PERCENT
                }
                _ => true,
            };
            self.checked_at = now;
            self.waited_ns = waited_ns;
        }
        self.shared
    }
}

/// This thread's run-queue wait so far, in nanoseconds: the second field of
/// `/proc/thread-self/schedstat`. `None` where the kernel does not say.
fn run_queue_wait_ns() -> Option<u64> {
    let mut buffer = [0u8; 96];
    let mut file = std::fs::File::open("/proc/thread-self/schedstat").ok()?;
    let len = file.read(&mut buffer).ok()?;
    parse_wait_ns(buffer.get(..len)?)
}

/// The wait field of a schedstat line: `run_ns wait_ns timeslices`.
fn parse_wait_ns(line: &[u8]) -> Option<u64> {
    std::str::from_utf8(line)
        .ok()?
        .split_ascii_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// This thread's window, CPU share and when its current sleep began.
#[derive(Clone, Copy)]
struct Waiting {
    window: SpinWindow,
    cpu: CpuShare,
    sleep_from: Instant,
}

thread_local! {
    static WAITING: Cell<Option<Waiting>> = const { Cell::new(None) };
    /// Requests on this thread sent to a backend whose answer has not ended yet.
    static AWAITING: Cell<u32> = const { Cell::new(0) };
}

/// A request on this thread was sent to a backend.
#[inline]
pub(crate) fn backend_request_started() {
    AWAITING.with(|count| count.set(count.get().saturating_add(1)));
}

/// A request on this thread has its backend's answer in full (or gave up on it).
#[inline]
pub(crate) fn backend_request_finished() {
    AWAITING.with(|count| count.set(count.get().saturating_sub(1)));
}

/// A request of this thread that became a tunnel (a `101`): its backend's answer is in,
/// so it no longer counts as awaiting one, though its in-flight guard lives on with the
/// tunnel (least-request balancing counts open tunnels). Without this, 16 open
/// WebSocket tunnels, idle or not, made the thread spin before every sleep: a tunnel
/// waits far more than it carries, and the spin only pays while answers are due.
///
/// Made on the thread that started the request, and dropped there before the request's
/// in-flight guard (declare it after that guard: locals drop in reverse order).
pub(crate) struct TunnelNotAwaiting(());

impl TunnelNotAwaiting {
    /// Takes the request's count off this thread's awaiting requests.
    pub(crate) fn new() -> Self {
        backend_request_finished();
        Self(())
    }
}

impl Drop for TunnelNotAwaiting {
    /// Gives the count back, for the request's in-flight guard to take off as it drops.
    fn drop(&mut self) {
        backend_request_started();
    }
}

/// How long to spin before this sleep: the window, unless the CPU is shared or too few
/// requests await backends for the wait to cost them nothing.
fn spin_length(window: Duration, shared: bool, awaiting: u32) -> Duration {
    if shared || awaiting < MIN_AWAITING {
        Duration::ZERO
    } else {
        window
    }
}

/// Runs before a serving thread sleeps (tokio's `on_thread_park`): spins for this
/// thread's window if it has its CPU to itself, giving way to other tasks.
pub(crate) fn before_sleep(limit: Duration) {
    if limit.is_zero() {
        return;
    }
    let mut now = Instant::now();
    let (mut window, mut cpu) = WAITING.with(Cell::get).map_or_else(
        || {
            (
                SpinWindow::new(limit),
                CpuShare::new(now, run_queue_wait_ns()),
            )
        },
        |waiting| (waiting.window, waiting.cpu),
    );
    let shared = cpu.shared(now, run_queue_wait_ns);
    let until = now + spin_length(window.current(), shared, AWAITING.with(Cell::get));
    while now < until {
        std::thread::yield_now();
        let after = Instant::now();
        if after.duration_since(now) > YIELD_HANDOFF {
            window.handed_off();
            now = after;
            break;
        }
        now = after;
    }
    WAITING.with(|cell| {
        cell.set(Some(Waiting {
            window,
            cpu,
            sleep_from: now,
        }));
    });
}

/// Runs after a serving thread woke (tokio's `on_thread_unpark`): adapts the window
/// to how long the thread slept.
pub(crate) fn after_wake() {
    WAITING.with(|cell| {
        if let Some(mut waiting) = cell.get() {
            waiting.window.after_sleep(waiting.sleep_from.elapsed());
            cell.set(Some(waiting));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_micros(20);

    #[test]
    fn short_sleeps_keep_the_full_window() {
        let mut window = SpinWindow::new(LIMIT);
        window.after_sleep(Duration::ZERO);
        assert_eq!(window.current(), LIMIT);
        window.after_sleep(LIMIT);
        assert_eq!(window.current(), LIMIT);
    }

    #[test]
    fn long_sleeps_shrink_the_window_to_nothing() {
        let mut window = SpinWindow::new(LIMIT);
        let mut seen = Vec::new();
        for _ in 0..6 {
            window.after_sleep(Duration::from_millis(5));
            seen.push(window.current().as_micros());
        }
        assert_eq!(seen, [10, 5, 2, 1, 0, 0]);
    }

    #[test]
    fn a_burst_after_quiet_restores_the_window() {
        let mut window = SpinWindow::new(LIMIT);
        for _ in 0..8 {
            window.after_sleep(Duration::from_secs(1));
        }
        assert_eq!(window.current(), Duration::ZERO);
        window.after_sleep(Duration::from_micros(3));
        assert_eq!(window.current(), LIMIT);
    }

    #[test]
    fn a_handover_stops_the_next_spin() {
        let mut window = SpinWindow::new(LIMIT);
        window.handed_off();
        assert_eq!(window.current(), Duration::ZERO);
    }

    #[test]
    fn run_queue_wait_is_read_from_schedstat() {
        assert_eq!(parse_wait_ns(b"184144964 58390292 626\n"), Some(58_390_292));
        assert_eq!(parse_wait_ns(b"184144964\n"), None);
        assert_eq!(parse_wait_ns(b""), None);
        // This kernel says (Keel's CI and bench machines are Linux).
        assert!(run_queue_wait_ns().is_some());
    }

    #[test]
    fn a_thread_that_waits_for_its_cpu_counts_as_shared() {
        let start = Instant::now();
        let mut cpu = CpuShare::new(start, Some(1_000_000));
        assert!(!cpu.shared(start, || panic!("read before the interval")));
        // 10 ms later, 0.3 ms more wait: 3 %, alone.
        let later = start + SHARE_CHECK_INTERVAL;
        assert!(!cpu.shared(later, || Some(1_300_000)));
        // Another 10 ms, 4 ms more wait: 40 %, shared.
        let later = later + SHARE_CHECK_INTERVAL;
        assert!(cpu.shared(later, || Some(5_300_000)));
        // Unknown counts as shared.
        let later = later + SHARE_CHECK_INTERVAL;
        assert!(cpu.shared(later, || None));
        assert!(CpuShare::new(start, None).shared(start, || None));
    }

    #[test]
    fn a_thread_spins_about_its_window_then_adapts() {
        // On this test's own thread. The machine is shared with other tests, so the
        // spin may end early (a handover) or not start (a shared CPU); otherwise it
        // lasts the window.
        let limit = Duration::from_micros(200);
        for _ in 0..MIN_AWAITING {
            backend_request_started();
        }
        let started = Instant::now();
        before_sleep(limit);
        let spun = started.elapsed();
        let waiting = WAITING.with(Cell::get).expect("state recorded");
        if !waiting.cpu.shared && !waiting.window.current().is_zero() {
            assert_eq!(waiting.window.current(), limit);
            assert!(spun >= limit, "spun {spun:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
        after_wake();
        let window = WAITING.with(Cell::get).map(|w| w.window.current());
        assert!(window < Some(limit), "{window:?}");
    }

    #[test]
    fn only_a_thread_alone_with_many_requests_in_flight_spins() {
        assert_eq!(spin_length(LIMIT, false, MIN_AWAITING), LIMIT);
        assert_eq!(spin_length(LIMIT, false, 200), LIMIT);
        assert_eq!(spin_length(LIMIT, false, MIN_AWAITING - 1), Duration::ZERO);
        assert_eq!(spin_length(LIMIT, true, 200), Duration::ZERO);
        assert_eq!(spin_length(Duration::ZERO, false, 200), Duration::ZERO);
    }

    #[test]
    fn requests_in_flight_are_counted_per_thread() {
        std::thread::spawn(|| {
            backend_request_started();
            backend_request_started();
            backend_request_finished();
            assert_eq!(AWAITING.with(Cell::get), 1);
            backend_request_finished();
            // A guard dropped on another thread never takes a count below zero.
            backend_request_finished();
            assert_eq!(AWAITING.with(Cell::get), 0);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn an_open_tunnel_does_not_count_as_awaiting_an_answer() {
        std::thread::spawn(|| {
            // Two requests sent; one answered with a 101 that opened a tunnel.
            backend_request_started();
            backend_request_started();
            let tunnel = TunnelNotAwaiting::new();
            assert_eq!(AWAITING.with(Cell::get), 1, "the tunnel awaits no answer");
            // The tunnel closes: its guard, then the request's in-flight guard.
            drop(tunnel);
            backend_request_finished();
            assert_eq!(
                AWAITING.with(Cell::get),
                1,
                "the other request still awaits"
            );
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn zero_disables_the_spin() {
        std::thread::spawn(|| {
            before_sleep(Duration::ZERO);
            assert!(WAITING.with(Cell::get).is_none());
        })
        .join()
        .expect("thread");
    }
}
