//! Measures the shop and the load together: the realistic shop (default latencies) behind
//! the test stand-in router, the default 200 requests/s load, and the March-15 misroute
//! (web, cart, checkout → legacy-web) switched on halfway. Prints one line per second
//! and the affected-shopper shares before and after the switch.
//!
//! `cargo run --release -p keel-demo --example realistic_run -- [seconds, default 10]`

#[path = "../tests/support/router.rs"]
mod router;

use std::time::Duration;

use keel_demo::load::{Answerer, LoadConfig, Outcome, ShopperLoad};
use keel_demo::shop::{ServiceKind, Shop, ShopConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args().nth(1).map_or(Ok(10), |s| s.parse())?;
    let shop = Shop::start(ShopConfig::default()).await?;
    let router = router::Router::start(&shop, true, Some(2)).await;
    let load = ShopperLoad::start(LoadConfig {
        duration: Duration::from_secs(seconds),
        ..LoadConfig::new(router.addr)
    })?;
    let stats = load.stats().clone();
    tokio::time::sleep(Duration::from_secs(seconds / 2)).await;
    router.set_generation(2);
    let switched = stats.started_at().elapsed();
    let done = load.finish().await?;

    println!("second  sent  ok%    mean     max      legacy%  wrong-app");
    for s in stats.seconds() {
        println!(
            "{:>6} {:>5} {:>5.1} {:>8.1?} {:>8.1?} {:>7.1} {:>9}",
            s.second,
            s.sent,
            100.0 * s.outcomes.success_rate().unwrap_or(0.0),
            s.mean_latency.unwrap_or_default(),
            s.max_latency,
            100.0 * s.answered.share(Answerer::Service(ServiceKind::LegacyWeb)),
            s.outcomes.get(Outcome::WrongApplication),
        );
    }
    // Whole seconds only: the second of the switch belongs to "after".
    let before = stats.affected_between(Duration::ZERO, Duration::from_secs(switched.as_secs()));
    let after = stats.affected_between(Duration::from_secs(switched.as_secs()), done.elapsed);
    println!("switched to the misrouted generation at {switched:.2?}");
    println!(
        "affected before: {before:?}  after: {after:?} ({:.0}%)",
        100.0 * after.share().unwrap_or(0.0)
    );
    println!("totals: {:?}", done.totals);
    println!("generations: {:?}", done.generations);
    Ok(())
}
