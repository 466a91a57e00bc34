//! Route deadlines without a timer per request.
//!
//! Every forwarded request is bounded by its route's timeout, but almost every request
//! is answered long before it: a tokio timer per request (a `Sleep` made, inserted into
//! the timer wheel, removed again, twice per request) cost about a thousand instructions
//! of a proxied request's thirty thousand, for a deadline that practically never fires.
//!
//! Here a request whose answer is not ready at its first poll writes its deadline and
//! its task's waker into a slot of this thread's shard, and empties the slot when it
//! ends; one sweeper thread looks at all slots every [`DEADLINE_TICK`] and wakes the
//! requests whose deadline has passed. A deadline therefore fires up to one tick late,
//! never early. The shard locks are taken by their own thread and, for a moment per
//! tick, by the sweeper: in practice never contended.
//!
//! The sweeper also ticks the coarse clock of [`crate::coarse_clock`]. An [`Alarm`] is
//! the registry's slot on its own, for callers that re-arm one deadline many times (the
//! watchdog of [`crate::watchdog`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::serving::serving_index;

/// How often the sweeper looks for passed deadlines (10 ms): the most a route timeout
/// can fire late.
pub(crate) const DEADLINE_TICK: Duration = Duration::from_millis(10);

/// Shards of the deadline registry (64): threads beyond that share.
const SHARDS: usize = 64;

/// The deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

enum Slot {
    Vacant,
    Armed { at: Instant, waker: Waker },
    Fired,
}

#[derive(Default)]
struct Shard {
    slots: Vec<Slot>,
    vacant: Vec<usize>,
}

struct Registry {
    shards: Box<[Mutex<Shard>]>,
}

impl Registry {
    fn get() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            let sweeper = std::thread::Builder::new()
                .name("keel-deadlines".into())
                .spawn(sweep);
            if let Err(error) = sweeper {
                // Without the sweeper no deadline would fire: nothing else may rely on
                // this registry.
                tracing::error!(%error, "cannot start the deadline sweeper thread");
            }
            Registry {
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            }
        })
    }

    fn shard(&self, index: usize) -> MutexGuard<'_, Shard> {
        // A panic while holding a shard leaves slots that are still consistent.
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Starts the sweeper thread if it is not running yet.
pub(crate) fn start_sweeper() {
    Registry::get();
}

/// This thread's shard: a serving thread's own index; other threads are numbered in
/// the order they first arm a deadline.
fn my_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = serving_index().unwrap_or_else(|| NEXT.fetch_add(1, Relaxed)) % SHARDS;
    }
    SHARD.with(|shard| *shard)
}

/// The sweeper thread's loop: every tick, fire every armed slot whose time has come.
fn sweep() {
    let registry = Registry::get();
    let mut due = Vec::new();
    loop {
        std::thread::sleep(DEADLINE_TICK);
        let now = crate::coarse_clock::tick();
        for index in 0..SHARDS {
            let mut shard = registry.shard(index);
            for slot in &mut shard.slots {
                if matches!(slot, Slot::Armed { at, .. } if *at <= now)
                    && let Slot::Armed { waker, .. } = std::mem::replace(slot, Slot::Fired)
                {
                    due.push(waker);
                }
            }
            drop(shard);
            // Woken outside the lock: a wake may run the task's thread's scheduler code.
            due.drain(..).for_each(Waker::wake);
        }
    }
}

/// One slot of the registry, re-armable: wakes the task that armed it once its time
/// has passed (within a tick). Vacated on drop.
#[derive(Debug, Default)]
pub(crate) struct Alarm {
    // (shard, slot) once armed.
    slot: Option<(usize, usize)>,
}

impl Alarm {
    /// Arms the alarm for `at` (replacing any earlier time) and the task of `waker`.
    pub(crate) fn arm(&mut self, at: Instant, waker: &Waker) {
        let armed = Slot::Armed {
            at,
            waker: waker.clone(),
        };
        match self.slot {
            Some((index, slot)) => Registry::get().shard(index).slots[slot] = armed,
            None => {
                let index = my_shard();
                let mut shard = Registry::get().shard(index);
                let slot = match shard.vacant.pop() {
                    Some(slot) => {
                        shard.slots[slot] = armed;
                        slot
                    }
                    None => {
                        shard.slots.push(armed);
                        shard.slots.len() - 1
                    }
                };
                self.slot = Some((index, slot));
            }
        }
    }

    /// Whether the time it was armed for has passed. Keeps the waker current.
    fn fired(&self, waker: &Waker) -> bool {
        let Some((index, slot)) = self.slot else {
            return false;
        };
        let mut shard = Registry::get().shard(index);
        match &mut shard.slots[slot] {
            Slot::Fired => true,
            Slot::Armed { waker: armed, .. } => {
                if !armed.will_wake(waker) {
                    armed.clone_from(waker);
                }
                false
            }
            // Only the alarm empties its own slot, and only when dropped.
            Slot::Vacant => false,
        }
    }

    fn is_armed(&self) -> bool {
        self.slot.is_some()
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Some((index, slot)) = self.slot {
            let mut shard = Registry::get().shard(index);
            shard.slots[slot] = Slot::Vacant;
            shard.vacant.push(slot);
        }
    }
}

pin_project_lite::pin_project! {
    /// `inner`, bounded by `at`: resolves to `Err(Elapsed)` if `inner` is still pending
    /// once `at` has passed (noticed within [`DEADLINE_TICK`]).
    pub(crate) struct Deadline<F> {
        #[pin]
        inner: F,
        at: Instant,
        alarm: Alarm,
    }
}

/// Bounds `inner` by `at` (see [`Deadline`]).
pub(crate) fn within<F: Future>(at: tokio::time::Instant, inner: F) -> Deadline<F> {
    Deadline {
        inner,
        at: at.into_std(),
        alarm: Alarm::default(),
    }
}

impl<F: Future> Future for Deadline<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.inner.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        if !this.alarm.is_armed() {
            this.alarm.arm(*this.at, cx.waker());
        } else if this.alarm.fired(cx.waker()) {
            return Poll::Ready(Err(Elapsed));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pending_future_times_out_after_its_deadline_not_before() {
        let started = tokio::time::Instant::now();
        let at = started + Duration::from_millis(50);
        let result = within(at, std::future::pending::<()>()).await;
        assert_eq!(result, Err(Elapsed));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(50),
            "fired early: {waited:?}"
        );
    }

    #[tokio::test]
    async fn a_ready_future_wins_and_frees_its_slot() {
        let at = tokio::time::Instant::now() + Duration::from_secs(60);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let answer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(7).ok();
        });
        assert_eq!(within(at, rx).await.map(Result::ok), Ok(Some(7)));
        answer.await.ok();
        // The slot was emptied on drop and is handed out again.
        let shard = Registry::get().shard(my_shard());
        assert!(
            shard.slots.iter().all(
                |slot| !matches!(slot, Slot::Armed { at: when, .. } if *when == at.into_std())
            ),
            "a finished request left its deadline armed"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_deadlines_across_threads_all_fire() {
        let at = tokio::time::Instant::now() + Duration::from_millis(30);
        let waits: Vec<_> = (0..50)
            .map(|_| tokio::spawn(within(at, std::future::pending::<()>())))
            .collect();
        for wait in waits {
            assert_eq!(wait.await.ok(), Some(Err(Elapsed)));
        }
    }
}
