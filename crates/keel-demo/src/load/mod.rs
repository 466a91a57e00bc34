//! The shopper load: simulated shoppers at a capped, open-loop request rate against one
//! address (Keel's listener), every answer classified and counted live.
//!
//! ```text
//! let load = ShopperLoad::start(LoadConfig { rate: 200, duration, ..LoadConfig::new(proxy) })?;
//! load.snapshot()            // any time: rps, success rate, who answered, generations, affected
//! load.stats().affected_between(t0, t1)
//! let last = load.finish().await?;   // or load.stop() first to end early
//! ```
//!
//! Every request carries `Host: shop.example.com` and the shopper's `cart_id` cookie, so
//! a proxy can route by host and path and keep a shopper's cart on one backend by
//! hashing `cookie:cart_id`. See [`outcome`] for how answers are judged and
//! [`scheduler`](self) for how the rate is kept.

mod config;
mod exchange;
mod generations;
mod outcome;
mod scheduler;
mod shopper;
mod snapshot;
mod stats;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::*;
pub use generations::{GENERATION_SLOTS, GenerationLabel};
pub use outcome::{ANSWERER_SLOTS, Answerer, Outcome, classify, verify_cart};
pub use snapshot::{
    AffectedShare, AnswerCounts, GenerationCount, LoadSnapshot, OutcomeCounts, SecondStats, Totals,
};
pub use stats::LoadStats;

/// A running shopper load. Dropping it stops sending at once and abandons answers in flight.
#[derive(Debug)]
pub struct ShopperLoad {
    stats: Arc<LoadStats>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl ShopperLoad {
    /// Validate `config` and start sending. Must run inside a Tokio runtime.
    pub fn start(config: LoadConfig) -> Result<ShopperLoad, LoadError> {
        config.validate()?;
        let target = exchange::Target::new(&config).map_err(LoadError::Invalid)?;
        let stats = Arc::new(LoadStats::new(Instant::now(), config.seconds_to_keep()));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(scheduler::run(config, target, Arc::clone(&stats), stopped));
        Ok(ShopperLoad {
            stats,
            stop,
            task: Some(task),
        })
    }

    /// The live statistics; clone the `Arc` to read them from elsewhere (a view, a scene).
    pub fn stats(&self) -> &Arc<LoadStats> {
        &self.stats
    }

    /// Everything a live view shows, now.
    pub fn snapshot(&self) -> LoadSnapshot {
        self.stats.snapshot()
    }

    /// Stop sending new requests; answers in flight are still collected.
    pub fn stop(&self) {
        // No receiver means the load already ended: nothing to stop.
        let _ = self.stop.send(true);
    }

    /// Wait until the load has sent its last request and collected every answer, and
    /// return the final snapshot.
    pub async fn finish(mut self) -> Result<LoadSnapshot, LoadError> {
        if let Some(task) = self.task.take() {
            task.await.map_err(|e| LoadError::Task(e.to_string()))?;
        }
        Ok(self.stats.snapshot())
    }
}

impl Drop for ShopperLoad {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
