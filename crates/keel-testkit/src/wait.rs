//! Waiting for something that happens on another task, thread or process, without a
//! sleep of a guessed length: the one `eventually` of Keel's test suites.
//!
//! A check is polled until it settles: a `bool` that is true, or an `Option` that is
//! `Some` (whose value is handed back). [`eventually`] says whether it settled within its
//! bound; [`wait_until`] panics, naming what it waited for, when it did not. Both poll
//! every [`POLL_EVERY`]; their `_every` forms take the interval, for costly checks.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Longest a single wait in a test should take (10 s): generous for a loaded 2-core CI
/// machine, short enough that a hung test fails in reasonable time.
pub const WAIT: Duration = Duration::from_secs(10);

/// How often a check is polled (10 ms).
pub const POLL_EVERY: Duration = Duration::from_millis(10);

/// What a check returns: whether it settled, and with what.
pub trait Settled {
    /// What a settled check hands back (`()` for a `bool`).
    type Value;
    /// The value, once settled.
    fn settled(self) -> Option<Self::Value>;
}

impl Settled for bool {
    type Value = ();
    fn settled(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Settled for Option<T> {
    type Value = T;
    fn settled(self) -> Option<T> {
        self
    }
}

/// Polls `check` every [`POLL_EVERY`] until it settles or `within` has passed, and
/// checks once more at the end: `None` if it never settled.
pub async fn eventually<S, F, Fut>(within: Duration, check: F) -> Option<S::Value>
where
    S: Settled,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    eventually_every(within, POLL_EVERY, check).await
}

/// [`eventually`], polling every `every` instead of [`POLL_EVERY`]: for a check that
/// costs more than a look at memory (one that spawns a process, say).
pub async fn eventually_every<S, F, Fut>(
    within: Duration,
    every: Duration,
    mut check: F,
) -> Option<S::Value>
where
    S: Settled,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    let deadline = Instant::now() + within;
    loop {
        let past = Instant::now() >= deadline;
        if let Some(value) = check().await.settled() {
            return Some(value);
        }
        if past {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// [`eventually`] for a check that needs no `await`: whether `condition` held within
/// `within`.
pub async fn eventually_holds(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    eventually(within, || std::future::ready(condition()))
        .await
        .is_some()
}

/// [`eventually`], panicking with `what` if `check` does not settle within `within`.
pub async fn wait_until<S, F, Fut>(within: Duration, what: &str, check: F) -> S::Value
where
    S: Settled,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    wait_until_every(within, POLL_EVERY, what, check).await
}

/// [`wait_until`], polling every `every` (see [`eventually_every`]).
pub async fn wait_until_every<S, F, Fut>(
    within: Duration,
    every: Duration,
    what: &str,
    check: F,
) -> S::Value
where
    S: Settled,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    match eventually_every(within, every, check).await {
        Some(value) => value,
        None => panic!("timed out after {within:?} waiting for: {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

    #[tokio::test]
    async fn a_check_that_settles_hands_back_its_value() {
        let polls = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&polls);
        let value = eventually(WAIT, || {
            let n = counted.fetch_add(1, SeqCst);
            async move { (n >= 3).then_some(n) }
        })
        .await;
        assert_eq!(value, Some(3));
    }

    #[tokio::test]
    async fn a_check_that_never_settles_is_none_after_its_bound() {
        let started = Instant::now();
        let bound = Duration::from_millis(50);
        assert!(!eventually_holds(bound, || false).await);
        assert!(started.elapsed() >= bound);
    }

    #[tokio::test]
    async fn a_costly_check_is_polled_at_its_own_interval() {
        let polls = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&polls);
        let settled = eventually_every(
            Duration::from_millis(100),
            Duration::from_millis(40),
            || {
                counted.fetch_add(1, SeqCst);
                async { false }
            },
        )
        .await;
        assert_eq!(settled, None);
        // At 0, 40, 80 ms and once more at the end (fewer on a slow machine): not every 10 ms.
        let polls = polls.load(SeqCst);
        assert!((2..=5).contains(&polls), "{polls} polls");
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for: the impossible")]
    async fn wait_until_names_what_it_waited_for() {
        wait_until(Duration::from_millis(20), "the impossible", || async {
            false
        })
        .await;
    }
}
