//! What the console's live updates cost: the time to build one `now` event (the Now
//! page's snapshot) for a 10,000-route, 500-backend generation. One event is built per
//! `LIVE_INTERVAL` and shared by every open page, on the admin listener's task, reading
//! the data plane's counters with relaxed loads: so this time per interval is the
//! streams' whole cost, and nothing on the request path waits for it. Every route gets traffic
//! between two events, so every route is differenced: the most an event can cost.
//!
//! Run: `cargo bench -p keel-control --bench console_tick` (or add `--profile dev` for a
//! quick, pessimistic number without the release build).

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_control::console::{LIVE_INTERVAL, LiveTracker, MAX_LIVE_STREAMS};
use keel_control::{ApplyRequest, ApplyStatus, Controller, Hooks};
use keel_proxy::stats::Outcome;
use keel_proxy::{DataPlane, DataPlaneOptions};
use keel_store::MemoryStore;

/// Routes in the config.
const ROUTES: usize = 10_000;
/// Hosts the routes spread over.
const HOSTS: usize = 500;
/// Pools, two backends each: 500 backends.
const POOLS: usize = 250;
/// Events measured.
const EVENTS: usize = 50;

fn config() -> String {
    let mut text = String::from(
        "[listeners.web]\naddr = \"127.0.0.1:18080\"\n\n[services.app]\nallow_no_identity = true\n\n",
    );
    for pool in 0..POOLS {
        let _ = write!(
            text,
            "[pools.p{pool}]\nservice = \"app\"\nbackends = [{{ addr = \"127.0.0.{}:{}\" }}, {{ addr = \"127.0.0.{}:{}\" }}]\n\n",
            1 + pool % 200,
            10_000 + pool,
            1 + pool % 200,
            20_000 + pool
        );
    }
    for route in 0..ROUTES {
        let _ = writeln!(
            text,
            "[[routes]]\nname = \"r{route}\"\nhost = \"h{}.example.com\"\npath_prefix = \"/api/v{route}/\"\nservice = \"app\"\npool = \"p{}\"\nretries = 0\n",
            route % HOSTS,
            route % POOLS
        );
    }
    text
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let plane = DataPlane::new(DataPlaneOptions {
        sample_size: 0,
        sample_window: Duration::from_secs(60),
        access_log: None,
        generation_header: true,
    })
    .expect("plane");
    let controller = Controller::new(Arc::new(MemoryStore::new()), plane, Hooks::default());
    let outcome = controller
        .apply(ApplyRequest {
            config_text: config(),
            ..ApplyRequest::default()
        })
        .await
        .expect("apply");
    assert_eq!(
        outcome.status,
        ApplyStatus::Applied,
        "{:?}",
        outcome.refusals
    );
    let generation = controller.plane().active().expect("active").primary.clone();
    // Every route busy between two events: the most work an event can have.
    let traffic = || {
        for route in generation.stats.routes.iter() {
            route.targets[0][0].record(Outcome::Success);
            route.target_latency[0].observe(Duration::from_millis(3));
        }
    };
    let start = Instant::now();
    let _ = controller.status();
    println!(
        "status alone: {:.2} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    let mut tracker = LiveTracker::default();
    // The first event has no previous counters to difference; measure the steady state.
    let _ = tracker.tick(&controller);
    let mut times = Vec::with_capacity(EVENTS);
    let mut bytes = 0;
    for _ in 0..EVENTS {
        traffic();
        let start = Instant::now();
        let event = tracker.tick(&controller);
        times.push(start.elapsed());
        bytes = event.to_string().len();
    }
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    let per_second = median.as_secs_f64() / LIVE_INTERVAL.as_secs_f64();
    println!(
        "generation: {ROUTES} routes, {HOSTS} hosts, {} backends",
        POOLS * 2
    );
    println!(
        "one event: median {:.2} ms, worst {:.2} ms, {} bytes",
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3,
        bytes
    );
    println!(
        "{:.3} % of one core, for 1 to {MAX_LIVE_STREAMS} open pages (they share the event)",
        per_second * 100.0
    );
}
