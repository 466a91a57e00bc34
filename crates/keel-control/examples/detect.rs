//! Measures how fast a bad config is detected and reverted under a bounded ~200
//! requests/s load, on loopback, through the product's own path: `keel serve`'s guarded
//! [`keel_control::Controller`] (gate, swap, watch, automatic revert, store) on a real
//! data plane with hyper backends. With `--clean SECS`, a harmless change runs that long
//! through a canary and the promotion steps without a single alert.
//!
//! ```text
//! cargo run --release -p keel-control --example detect -- [--runs N] [--rps R] [--clean SECS]
//! ```
//! Run through `bench/detect.sh`.

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../tests/support/shop.rs"]
mod shop;

use std::time::Duration;

use keel_control::{ApplyOutcome, GuardResult};
use shop::{Shop, Variant, load};

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
    canary_percent: Option<f64>,
    /// The candidate checks every response of service `web` for its identity.
    verify: bool,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "70% misroute, full swap, forced (share)",
        variant: Variant::Misroute,
        canary_percent: None,
        verify: false,
    },
    Scenario {
        name: "70% misroute, 10% canary, forced (share)",
        variant: Variant::Misroute,
        canary_percent: Some(10.0),
        verify: false,
    },
    Scenario {
        name: "70% misroute, 10% canary, verify_responses (identity)",
        variant: Variant::Misroute,
        canary_percent: Some(10.0),
        verify: true,
    },
    Scenario {
        name: "route answering 5xx, 10% canary (errors)",
        variant: Variant::BrokenApi,
        canary_percent: Some(10.0),
        verify: false,
    },
];

/// Service `web` of the test shop, and the same with `verify_responses`.
const WEB_IDENTITY: &str = "identity = { header = \"x-service\", equals = \"web\" }\n";

/// The detector, time to the alarm and time to the revert of one reverted apply.
fn reverted(outcome: &ApplyOutcome) -> Result<(String, u64, u64), String> {
    let guard = outcome
        .guard
        .as_ref()
        .ok_or_else(|| "the apply was not guarded".to_string())?;
    if guard.result != GuardResult::RolledBack {
        return Err(format!(
            "not rolled back: {}",
            guard.reason.as_deref().unwrap_or("no alarm")
        ));
    }
    let detector = guard
        .alert
        .as_ref()
        .and_then(|a| a["detector"].as_str())
        .unwrap_or("?")
        .to_string();
    Ok((
        detector,
        guard.detected_after_ms.unwrap_or(0),
        guard.reverted_after_ms.unwrap_or(0),
    ))
}

/// One guarded apply of a bad config through the controller.
async fn run(scenario: Scenario, rps: u32) -> Result<(String, u64, u64), String> {
    let shop = Shop::start("").await;
    load(shop.addr, rps, Duration::from_secs(2)).await;
    let traffic = tokio::spawn(load(shop.addr, rps, Duration::from_secs(8)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut text = shop.config(scenario.variant, "");
    if scenario.verify {
        text = text.replace(
            WEB_IDENTITY,
            &format!("{WEB_IDENTITY}verify_responses = true\n"),
        );
        if !text.contains("verify_responses") {
            return Err("the shop's service web has no identity to verify".to_string());
        }
    }
    let mut request = shop::request(text);
    // The gate refuses the misroute: forced, as on March 15.
    request.force = true;
    request.canary = scenario.canary_percent;
    request.watch = Some(Duration::from_secs(30));
    request.wait = true;
    request.message = scenario.name.to_string();
    let outcome = shop
        .controller
        .apply(request)
        .await
        .map_err(|e| e.to_string())?;
    let _ = traffic.await;
    reverted(&outcome)
}

async fn clean(seconds: u64, rps: u32) -> Result<(), String> {
    let shop = Shop::start("").await;
    load(shop.addr, rps, Duration::from_secs(2)).await;
    let total = Duration::from_secs(seconds);
    let traffic = tokio::spawn(load(shop.addr, rps, total + Duration::from_secs(1)));
    // A canary plan watches the slice for `watch`, then each of the three promotion steps
    // for a third of it: 2 × watch in all.
    let outcome = shop
        .apply(Variant::Harmless, "", |mut request| {
            request.canary = Some(10.0);
            request.watch = Some(total / 2);
            request
        })
        .await;
    let report = traffic.await.map_err(|e| e.to_string())?;
    let watcher = shop
        .controller
        .watcher()
        .ok_or_else(|| "no watcher".to_string())?;
    let alerts = watcher.alerts().recent(100);
    let result = outcome.guard.as_ref().map(|g| g.result);
    println!(
        "clean run: {seconds} s at {rps} req/s, {} requests, {} answered 200, guard {}, alerts {}",
        report.sent,
        report.count(200),
        if result == Some(GuardResult::Promoted) {
            "promoted"
        } else {
            "NOT promoted"
        },
        alerts.len()
    );
    if result != Some(GuardResult::Promoted) || !alerts.is_empty() {
        let texts: Vec<String> = alerts.iter().map(keel_watch::Alert::text).collect();
        return Err(format!("false positive: {}", texts.join("\n")));
    }
    Ok(())
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
        "{} runs per scenario at {} req/s through keel-control's guard (time from apply to alarm / to revert, ms)",
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
                    detected.push(d);
                    reverted.push(r);
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
        reverted.sort_unstable();
        detected.sort_unstable();
        detectors.sort();
        detectors.dedup();
        println!(
            "{:<54} detector {:<9} alarm median {:>6}  revert min {:>6} median {:>6} max {:>6}",
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
