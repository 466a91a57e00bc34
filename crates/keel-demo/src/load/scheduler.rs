//! The rate clock: one request per tick, never more, whatever the answers do.
//!
//! Open loop: tick `k` fires at `start + k / rate` and sends the next step of a shopper
//! whose think time is over, or of a newly arrived shopper if none is ready — answers
//! that slow down do not slow the clock, they raise the number of shoppers and requests
//! in flight. Missed ticks are skipped, never made up in a burst, so no second ever sees
//! more than `rate` requests (skipped ticks are counted, so a load that could not keep
//! its rate on a busy machine shows it). Two caps keep a stalled target from growing the load
//! without bound: a tick that finds `max_in_flight` requests pending, or needs a new
//! shopper past `max_shoppers`, sends nothing and is counted as skipped.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::config::LoadConfig;
use super::exchange::Target;
use super::shopper::Shopper;
use super::stats::LoadStats;

/// A shopper thinking, ordered by when they are ready.
struct Thinking(Shopper);

impl PartialEq for Thinking {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Thinking {}
impl PartialOrd for Thinking {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Thinking {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0.ready_at, self.0.id).cmp(&(other.0.ready_at, other.0.id))
    }
}

/// Run the load described by `config` until its duration or request budget is spent or
/// `stop` turns true; then collect the answers still in flight.
pub(crate) async fn run(
    config: LoadConfig,
    target: Target,
    stats: Arc<LoadStats>,
    mut stop: watch::Receiver<bool>,
) {
    let start = stats.started_at();
    let deadline = start + config.duration;
    let period = Duration::from_secs(1).div_f64(f64::from(config.rate));
    let mut clock = tokio::time::interval_at(start.into(), period);
    clock.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let target = Arc::new(target);
    let mut thinking: BinaryHeap<Reverse<Thinking>> = BinaryHeap::new();
    let mut in_flight: JoinSet<Shopper> = JoinSet::new();
    let mut next_id: u64 = 0;
    let mut sent: u64 = 0;
    let mut last_tick: Option<u64> = None;
    // Ticks due strictly before the deadline: 0, 1, …, ticks_due - 1.
    let ticks_due = ticks_before(config.duration, period);

    loop {
        tokio::select! {
            biased;
            changed = stop.changed() => {
                // A dropped sender means the handle is gone: stop as well.
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                returned(done, &mut thinking, &stats);
            }
            _ = clock.tick() => {
                let now = Instant::now();
                // Ticks the clock dropped because this task ran late (a busy machine) are
                // counted too, so that over a whole run sent + skipped = ticks due.
                let tick = tick_index(now.saturating_duration_since(start), period);
                let next_due = last_tick.map_or(0, |last| last + 1);
                stats.record_skipped(tick.min(ticks_due).saturating_sub(next_due));
                last_tick = Some(tick);
                if now >= deadline || config.max_requests.is_some_and(|max| sent >= max) {
                    break;
                }
                if in_flight.len() >= config.max_in_flight {
                    stats.record_skipped(1);
                    continue;
                }
                let ready = thinking.peek().is_some_and(|Reverse(t)| t.0.ready_at <= now);
                let mut shopper = if ready {
                    match thinking.pop() {
                        Some(Reverse(Thinking(shopper))) => shopper,
                        None => continue,
                    }
                } else if thinking.len() + in_flight.len() < config.max_shoppers {
                    next_id += 1;
                    stats.record_shopper_started();
                    Shopper::new(next_id, config.seed, config.checkout_probability, now)
                } else {
                    stats.record_skipped(1);
                    continue;
                };
                let Some(step) = shopper.next_step() else {
                    // Journeys always have steps; a shopper without any is simply done.
                    stats.record_shopper_finished();
                    continue;
                };
                stats.record_sent(now);
                sent += 1;
                let target = Arc::clone(&target);
                let stats = Arc::clone(&stats);
                let (think_min, think_max) = (config.think_min, config.think_max);
                in_flight.spawn(async move {
                    let answer = target.perform(&shopper, &step).await;
                    let done = Instant::now();
                    shopper.after(&step, answer.outcome);
                    stats.record_answer(done, shopper.id, &mut shopper.marks, &answer);
                    shopper.think(think_min, think_max, done);
                    shopper
                });
            }
        }
    }
    // Every request is bounded by the request timeout, so this ends.
    while let Some(done) = in_flight.join_next().await {
        returned(done, &mut thinking, &stats);
    }
    stats.mark_finished();
}

/// Which tick of the clock `elapsed` falls in (tick `k` is due at `k × period`).
fn tick_index(elapsed: Duration, period: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos() / period.as_nanos().max(1)).unwrap_or(u64::MAX)
}

/// How many ticks fall strictly before `duration`.
fn ticks_before(duration: Duration, period: Duration) -> u64 {
    let period = period.as_nanos().max(1);
    u64::try_from(duration.as_nanos().div_ceil(period)).unwrap_or(u64::MAX)
}

fn returned(
    done: Result<Shopper, tokio::task::JoinError>,
    thinking: &mut BinaryHeap<Reverse<Thinking>>,
    stats: &LoadStats,
) {
    match done {
        Ok(shopper) if shopper.has_steps() => thinking.push(Reverse(Thinking(shopper))),
        Ok(_) => stats.record_shopper_finished(),
        Err(error) => tracing::warn!(%error, "a shopper's request task failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_counted_from_zero_and_end_before_the_deadline() {
        let period = Duration::from_millis(5);
        assert_eq!(ticks_before(Duration::from_secs(2), period), 400);
        assert_eq!(ticks_before(Duration::from_millis(2_001), period), 401);
        assert_eq!(tick_index(Duration::ZERO, period), 0);
        assert_eq!(tick_index(Duration::from_micros(4_999), period), 0);
        assert_eq!(tick_index(Duration::from_millis(5), period), 1);
        assert_eq!(tick_index(Duration::from_millis(17), period), 3);
    }
}
