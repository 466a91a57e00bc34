//! `keel check` on a generated 10,000-route config: prints the time of one full
//! `load` (parse, lints, shadow analysis, catch-all, route tests, intents), then lets
//! criterion measure it properly.
//!
//! Run: `cargo bench -p keel-check --bench check_10k`. Target: under 1 s.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;

#[path = "support/synth.rs"]
mod synth;

/// Routes in the generated config.
const ROUTES: usize = 10_000;

fn main() {
    let source = synth::config(ROUTES);
    let started = Instant::now();
    let loaded = keel_check::load("synth-10k.toml", &source);
    let elapsed = started.elapsed();
    let report = &loaded.report;
    println!(
        "keel check, {ROUTES} routes ({} KiB): {:.3} s — {} errors, {} warnings, {} findings",
        source.len() / 1024,
        elapsed.as_secs_f64(),
        report.count(keel_config::Severity::Error),
        report.count(keel_config::Severity::Warning),
        report.diagnostics.len()
    );
    let stages = Instant::now();
    let parsed = keel_config::parse(&source);
    let parse_time = stages.elapsed();
    let table = keel_route::RouteTable::compile(&parsed.config);
    if let Ok(table) = table {
        let shadow_started = Instant::now();
        let analysis = keel_check::shadow::analyze(&parsed.config, &table);
        println!(
            "  parse: {:.3} s, shadow analysis: {:.3} s ({} shadowed routes, {} representative requests, work {})",
            parse_time.as_secs_f64(),
            shadow_started.elapsed().as_secs_f64(),
            analysis.findings.len(),
            analysis.representatives,
            analysis.work
        );
    }

    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    criterion.bench_function("check_10k_routes", |b| {
        b.iter(|| keel_check::load("synth-10k.toml", black_box(&source)))
    });
    criterion.final_summary();
}
