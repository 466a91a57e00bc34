//! Measures how fast a bad config is detected and reverted under a bounded ~200
//! requests/s load, on loopback, with a real data plane and hyper backends — and, with
//! `--clean SECS`, that a harmless change runs that long without a single alert.
//!
//! ```text
//! cargo run --release -p keel-watch --example detect -- [--runs N] [--rps R] [--clean SECS]
//! ```
//! Run through `bench/detect.sh`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use keel_watch::{GuardOutcome, GuardPlan, Watcher, guarded_apply};
use support::{Backends, Proxy, Variant, load, shop_config};

struct Args {
    runs: usize,
    rps: u32,
    clean: Option<u64>,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        runs: 5,
        rps: 200,
        clean: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .parse::<u64>()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--runs" => out.runs = value()?.clamp(1, 100) as usize,
            "--rps" => out.rps = value()?.clamp(10, 2_000) as u32,
            "--clean" => out.clean = Some(value()?.clamp(1, 600)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(out)
}

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    variant: Variant,
    verify: bool,
    canary_permille: Option<u32>,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "70% misroute, full swap (share)",
        variant: Variant::Misroute,
        verify: false,
        canary_permille: None,
    },
    Scenario {
        name: "70% misroute, 10% canary (share)",
        variant: Variant::Misroute,
        verify: false,
        canary_permille: Some(100),
    },
    Scenario {
        name: "70% misroute, 10% canary, verify_responses (identity)",
        variant: Variant::Misroute,
        verify: true,
        canary_permille: Some(100),
    },
    Scenario {
        name: "route answering 5xx, 10% canary (errors)",
        variant: Variant::BrokenApi,
        verify: false,
        canary_permille: Some(100),
    },
];

/// One guarded apply of a bad config; returns (detector, detected, reverted).
async fn run(scenario: Scenario, rps: u32) -> Result<(String, Duration, Duration), String> {
    let backends = Backends::start().await;
    let config = shop_config(&backends, Variant::Good, scenario.verify, None);
    let proxy = Proxy::start(&config).await;
    let baseline = proxy.compile(1, config);
    proxy.plane.activate(baseline.clone());
    let (watcher, _) = Watcher::start(proxy.plane.clone(), &[]);
    load(proxy.addr, rps, Duration::from_secs(2)).await;
    let bad = proxy.compile(
        2,
        shop_config(&backends, scenario.variant, scenario.verify, None),
    );
    let traffic = tokio::spawn(load(proxy.addr, rps, Duration::from_secs(8)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let plan = GuardPlan {
        canary_permille: scenario.canary_permille,
        watch: Duration::from_secs(30),
        promote_steps: vec![25, 50, 100],
        step_watch: Duration::from_secs(10),
    };
    let outcome = guarded_apply(&watcher, baseline, bad, &plan, scenario.name).await;
    let _ = traffic.await;
    match outcome {
        GuardOutcome::RolledBack {
            alert,
            detected_after,
            reverted_after,
            ..
        } => Ok((
            alert.detector.as_str().to_string(),
            detected_after,
            reverted_after,
        )),
        other => Err(format!("not rolled back: {other:?}")),
    }
}

async fn clean(seconds: u64, rps: u32) -> Result<(), String> {
    let backends = Backends::start().await;
    let config = shop_config(&backends, Variant::Good, true, None);
    let proxy = Proxy::start(&config).await;
    let baseline = proxy.compile(1, config);
    proxy.plane.activate(baseline.clone());
    let (watcher, _) = Watcher::start(proxy.plane.clone(), &[]);
    load(proxy.addr, rps, Duration::from_secs(2)).await;
    let next = proxy.compile(2, shop_config(&backends, Variant::Harmless, true, None));
    let total = Duration::from_secs(seconds);
    let traffic = tokio::spawn(load(proxy.addr, rps, total + Duration::from_secs(1)));
    let plan = GuardPlan {
        canary_permille: Some(100),
        watch: total.mul_f64(0.4),
        promote_steps: vec![25, 50, 100],
        step_watch: total.mul_f64(0.2),
    };
    let outcome = guarded_apply(
        &watcher,
        baseline,
        next,
        &plan,
        "route web: timeout 10s → 9s",
    )
    .await;
    let report = traffic.await.map_err(|e| e.to_string())?;
    let alerts = watcher.alerts().recent(100);
    println!(
        "clean run: {seconds} s at {rps} req/s, {} requests, {} answered 200, outcome {outcome:?}, alerts {}",
        report.sent,
        report.count(200),
        alerts.len()
    );
    if !matches!(outcome, GuardOutcome::Promoted { .. }) || !alerts.is_empty() {
        return Err(format!("false positive: {alerts:#?}"));
    }
    Ok(())
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("detect: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(seconds) = args.clean {
        return match clean(seconds, args.rps).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("detect: {error}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    println!(
        "{} runs per scenario at {} req/s (time from apply to alarm / to revert, ms)",
        args.runs, args.rps
    );
    let mut failed = false;
    for scenario in SCENARIOS {
        let mut reverted = Vec::new();
        let mut detected = Vec::new();
        let mut detectors = Vec::new();
        for _ in 0..args.runs {
            match run(scenario, args.rps).await {
                Ok((detector, d, r)) => {
                    detectors.push(detector);
                    detected.push(millis(d));
                    reverted.push(millis(r));
                }
                Err(error) => {
                    eprintln!("{}: {error}", scenario.name);
                    failed = true;
                }
            }
        }
        if reverted.is_empty() {
            continue;
        }
        reverted.sort_by(f64::total_cmp);
        detected.sort_by(f64::total_cmp);
        detectors.sort();
        detectors.dedup();
        println!(
            "{:<58} detector {:<9} alarm median {:>7.1}  revert min {:>7.1} median {:>7.1} max {:>7.1}",
            scenario.name,
            detectors.join(","),
            detected[detected.len() / 2],
            reverted[0],
            reverted[reverted.len() / 2],
            reverted[reverted.len() - 1],
        );
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
