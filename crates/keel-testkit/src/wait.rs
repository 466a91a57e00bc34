//! Waiting for a condition without sleeping a guessed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] looks again (20 ms).
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Polls `check` until it returns `Some` or `within` has passed (then `None`).
pub async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if started.elapsed() > within {
            return None;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
