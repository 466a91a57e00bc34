//! Thread-per-core serving: client connections run on a fixed set of OS threads, each
//! with its own single-threaded tokio runtime (own scheduler, own reactor, own timers).
//!
//! Why not one work-stealing runtime: with several workers, the reactor is polled by
//! whichever worker happens to park, the tasks it wakes land in that worker's queue,
//! and idle workers are woken to steal them. A request and the backend connection it
//! drives then hop between threads, and every hop is a cross-thread wake-up (a futex
//! or an eventfd write, a VM exit on a guest). Measured on the `peers.sh` bench, two
//! work-stealing workers used less CPU than two threads could and served 0.52–0.69 of
//! HAProxy's and nginx's two-thread rate.
//!
//! Here a connection is accepted once (by the listener's task, wherever it runs) and
//! handed to the next serving thread in turn, so the threads get equal shares of the
//! connections (the kernel's `SO_REUSEPORT` hash gives uneven ones at a few dozen
//! connections). With a single serving thread the listener's task runs on it, and a
//! connection stays where it was accepted. From then on the connection, its requests
//! and the backend connections they use stay on that thread: each serving thread has its
//! own idle queue in every backend pool (see [`crate::upstream`]).
//!
//! A serving thread that runs out of work may spin briefly before it sleeps (see
//! [`crate::idle_spin`]).

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::idle_spin;

/// The number of serving threads started in this process (0 when none): the upstream
/// pools keep at least that many idle queues per backend.
static SERVING_THREADS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The index of the serving thread this is, `None` on any other thread.
    static SERVING_INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

/// How many serving threads this process started (0 when none).
pub(crate) fn serving_thread_count() -> usize {
    SERVING_THREADS.load(Relaxed)
}

/// This thread's serving index, if it is a serving thread.
#[inline]
pub(crate) fn serving_index() -> Option<usize> {
    SERVING_INDEX.with(Cell::get)
}

/// A fixed set of threads, each running a single-threaded tokio runtime that serves
/// client connections. Dropping it stops the threads (their remaining tasks are
/// cancelled) and waits for them.
pub struct ServingThreads {
    runtimes: Vec<Handle>,
    /// Which thread gets the next connection.
    next: AtomicUsize,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ServingThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingThreads")
            .field("threads", &self.runtimes.len())
            .finish()
    }
}

impl ServingThreads {
    /// Starts `count` serving threads (at least one), named `keel-serve-N`, each
    /// spinning up to `idle_spin` before it sleeps (`[server] idle_spin`).
    ///
    /// Start them before any configuration is compiled, so the backend pools get an
    /// idle queue per serving thread.
    pub fn start(count: usize, idle_spin: Duration) -> std::io::Result<Self> {
        let count = count.max(1);
        SERVING_THREADS.fetch_max(count, Relaxed);
        let mut serving = Self {
            runtimes: Vec::with_capacity(count),
            next: AtomicUsize::new(0),
            stops: Vec::with_capacity(count),
            threads: Vec::with_capacity(count),
        };
        for index in 0..count {
            let mut builder = tokio::runtime::Builder::new_current_thread();
            builder.enable_all();
            // With the spin off, the scheduler's parks run no hooks at all.
            if !idle_spin.is_zero() {
                builder
                    .on_thread_park(move || idle_spin::before_sleep(idle_spin))
                    .on_thread_unpark(idle_spin::after_wake);
            }
            let runtime = builder.build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            serving.runtimes.push(runtime.handle().clone());
            serving.stops.push(stop);
            let thread = std::thread::Builder::new()
                .name(format!("keel-serve-{index}"))
                .spawn(move || {
                    SERVING_INDEX.with(|slot| slot.set(Some(index)));
                    // Runs the connections spawned onto this runtime until told to stop.
                    let _ = runtime.block_on(stopped);
                })?;
            serving.threads.push(thread);
        }
        Ok(serving)
    }

    /// How many serving threads there are.
    pub fn len(&self) -> usize {
        self.runtimes.len()
    }

    /// Always false: there is at least one serving thread.
    pub fn is_empty(&self) -> bool {
        self.runtimes.is_empty()
    }

    /// Runs `task` on the next serving thread in turn.
    pub(crate) fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let index = self.next.fetch_add(1, Relaxed) % self.runtimes.len();
        self.runtimes[index].spawn(task)
    }
}

impl Drop for ServingThreads {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
