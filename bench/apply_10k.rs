//! Apply and rollback latency for a 10,000-route config, on a real SQLite store.
//!
//! Run: `cargo bench -p keel-control --bench apply_10k`
//!
//! Prints, over several applies that alternate between two 10,000-route configs (they
//! differ in one split's weights) and as many rollbacks: the check time (parse, lints,
//! shadowing, tests), compile, persist (one SQLite transaction with fsync), the swap
//! (one atomic pointer store) and end to end. Targets: check < 1 s, swap < 10 ms.

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_control::{ApplyRequest, ApplyStatus, Controller, Hooks, RollbackRequest};
use keel_proxy::{DataPlane, DataPlaneOptions};
use keel_store::SqliteStore;

/// Routes in the config.
const ROUTES: usize = 10_000;
/// Pools the routes spread over.
const POOLS: usize = 100;
/// Measured applies (and as many rollbacks).
const ROUNDS: usize = 10;

fn config(heavy_weight: u32) -> String {
    let mut text = String::from(
        "[listeners.web]\naddr = \"127.0.0.1:18080\"\n\n[safety]\nknown_good_after = \"0s\"\n\n[services.app]\nallow_no_identity = true\n\n",
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
        let host = route % 500;
        let _ = write!(
            text,
            "[[routes]]\nname = \"r{route}\"\nhost = \"h{host}.example.com\"\npath_prefix = \"/api/v{route}/\"\nservice = \"app\"\n"
        );
        if route == 0 {
            let _ = writeln!(
                text,
                "split = [{{ pool = \"p0\", weight = {heavy_weight} }}, {{ pool = \"p1\", weight = 10 }}]\nretries = 0\n"
            );
        } else {
            let _ = writeln!(text, "pool = \"p{}\"\nretries = 0\n", route % POOLS);
        }
    }
    text.push_str(
        "[[routes]]\nname = \"catch-all\"\nservice = \"app\"\npool = \"p0\"\nretries = 0\n",
    );
    text
}

fn stats(name: &str, mut values: Vec<Duration>) {
    values.sort();
    let median = values[values.len() / 2];
    let max = values[values.len() - 1];
    println!(
        "{name:<28} median {:>10.3} ms   max {:>10.3} ms",
        ms(median),
        ms(max)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path()).expect("store"));
    let plane = DataPlane::new(DataPlaneOptions {
        sample_size: 0,
        sample_window: Duration::from_secs(60),
        access_log: None,
        generation_header: true,
    })
    .expect("plane");
    let controller = Controller::new(store, plane, Hooks::default());
    let texts = [config(90), config(30)];
    println!(
        "config: {ROUTES} routes, {POOLS} pools, {} KiB",
        texts[0].len() / 1024
    );
    let request = |text: &String| ApplyRequest {
        config_text: text.clone(),
        author: "bench".into(),
        ..ApplyRequest::default()
    };
    let first = controller.apply(request(&texts[0])).await.expect("apply");
    assert_eq!(first.status, ApplyStatus::Applied, "{:?}", first.refusals);
    controller.promote_known_good().await.expect("known-good");

    let (mut check, mut compile, mut persist, mut swap, mut total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut rollback_swap, mut rollback_total) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let started = Instant::now();
        let outcome = controller
            .apply(request(&texts[1 - round % 2]))
            .await
            .expect("apply");
        total.push(started.elapsed());
        assert_eq!(
            outcome.status,
            ApplyStatus::Applied,
            "{:?}",
            outcome.refusals
        );
        let t = outcome.timings;
        check.push(Duration::from_micros(t.check_us));
        compile.push(Duration::from_micros(t.compile_us));
        persist.push(Duration::from_micros(t.persist_us));
        swap.push(Duration::from_micros(t.swap_us));

        let started = Instant::now();
        let rolled = controller
            .rollback(RollbackRequest::default())
            .await
            .expect("rollback");
        rollback_total.push(started.elapsed());
        assert!(rolled.persisted);
        rollback_swap.push(Duration::from_micros(rolled.swap_us));
    }
    println!("apply ({ROUNDS} runs)");
    stats("  check (keel-check)", check);
    stats("  compile", compile);
    stats("  persist (SQLite, fsync)", persist);
    stats("  swap", swap);
    stats("  end to end", total);
    println!("rollback ({ROUNDS} runs)");
    stats("  swap", rollback_swap);
    stats("  end to end (swap + persist)", rollback_total);
}
