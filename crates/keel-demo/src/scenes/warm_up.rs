//! The warm-up: shoppers through Keel with the good config, long enough for the health
//! checks to settle, the traffic sample to fill (the gate replays it) and the first
//! generation to become known-good.

use std::time::{Duration, Instant};

use super::{Act, Play, SceneResult, eventually, percent};
use crate::load::DEFAULT_RATE;

/// Longest wait for every backend to pass its health check (10 seconds).
pub const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Least share of ok answers expected during the warm-up (0.98).
pub const MIN_WARM_UP_SUCCESS: f64 = 0.98;

pub(super) async fn run(play: &mut Play<'_>) -> SceneResult {
    let mut result = SceneResult::new(Act::WarmUp);
    let narrator = play.narrator;
    let generation = play.stand.first_generation;
    narrator.say(format!(
        "A normal morning: shoppers browse, add to cart and check out through Keel at about {DEFAULT_RATE} requests/s."
    ));
    narrator.say(format!(
        "Keel serves generation {generation}: the good config, with route tests and intents (see {}).",
        play.stand.state_dir.join(crate::config::CONFIG_FILE_NAME).display()
    ));
    let controller = &play.stand.controller;
    let healthy = eventually(READY_DEADLINE, Duration::from_millis(50), || {
        let health = controller.status().health;
        health.backends > 0
            && health
                .pools
                .iter()
                .flat_map(|p| &p.backends)
                .all(|b| b.state == "healthy")
    })
    .await;
    let health = controller.status().health;
    result.expect(
        narrator,
        healthy,
        format!(
            "every backend passes its health check ({} of {} serving)",
            health.serving, health.backends
        ),
    );
    let started = Instant::now();
    tokio::time::sleep(play.observe).await;
    // The first second fills while connections open: judge the whole seconds after it.
    let from = Duration::from_secs(1).max(play.offset(started));
    let (success, answers) = play.success_between(from, play.offset(Instant::now()));
    result.expect(
        narrator,
        success.is_some_and(|s| s >= MIN_WARM_UP_SUCCESS),
        format!(
            "shoppers are served: {} ok over {answers} answers (expected at least {})",
            success.map_or_else(|| "nothing".to_owned(), percent),
            percent(MIN_WARM_UP_SUCCESS)
        ),
    );
    result
}
