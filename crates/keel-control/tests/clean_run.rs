//! The two-minute clean run of the requirement, through the product's own guard
//! (`Controller::new_guarded`, what `keel serve` runs): a harmless change goes through a
//! 10% canary and every promotion step under a bounded 200 requests/s load for two
//! minutes, and not one alert is raised. Ignored by everyday test runs to keep them
//! short; CI runs it with `cargo test -p keel-control --test clean_run -- --ignored`.
//! The same run at any length: `CLEAN=SECS bench/detect.sh`. A second run swaps the
//! harmless change in at once and watches it for a minute: the route- and service-loss
//! rules that judge half of a share run only when both windows saw all of the traffic
//! (a full swap), never on canary stages, so this is where they must stay quiet.

mod support;

use std::time::Duration;

use keel_control::{ApplyStatus, GuardResult};
use support::shop::{Shop, Variant, load};

/// Requests per second of the load.
const RPS: u32 = 200;
/// How long the full swap of the second run is watched (1 minute).
const FULL_SWAP_RUN: Duration = Duration::from_secs(60);

/// How long the change is watched in all: the canary slice for half, then three
/// promotion steps for a sixth each (2 minutes).
const CLEAN_RUN: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "two minutes of load; run with --ignored (CI does)"]
async fn a_harmless_change_is_promoted_without_an_alert_over_2_minutes() {
    let shop = Shop::start("").await;
    let warmup = load(shop.addr, RPS, Duration::from_secs(2)).await;
    assert_eq!(warmup.count(200), warmup.sent, "{warmup:?}");
    let traffic = tokio::spawn(load(shop.addr, RPS, CLEAN_RUN + Duration::from_secs(1)));
    let outcome = shop
        .apply(Variant::Harmless, "", |mut r| {
            r.canary = Some(10.0);
            r.watch = Some(CLEAN_RUN / 2);
            r
        })
        .await;
    let watcher = shop.controller.watcher().expect("watcher");
    let alerts: Vec<String> = watcher
        .alerts()
        .recent(100)
        .iter()
        .map(keel_watch::Alert::text)
        .collect();
    assert_eq!(
        outcome.status,
        ApplyStatus::Applied,
        "{outcome:#?}\n{alerts:#?}"
    );
    let guard = outcome.guard.as_ref().expect("guarded");
    assert_eq!(
        guard.result,
        GuardResult::Promoted,
        "{guard:#?}\n{alerts:#?}"
    );
    assert!(guard.watched_ms >= 119_000, "{guard:?}");
    assert!(alerts.is_empty(), "false positives: {alerts:#?}");
    let report = traffic.await.expect("load");
    println!(
        "clean run: {} requests in {CLEAN_RUN:?}, {} answered 200, no alert",
        report.sent,
        report.count(200)
    );
    assert_eq!(report.count(200), report.sent, "{report:?}");
    assert_eq!(shop.primary(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a minute of load; run with --ignored (CI does)"]
async fn a_harmless_full_swap_is_watched_for_a_minute_without_an_alert() {
    let shop = Shop::start("").await;
    // The baseline's whole window (10 s) on traffic, as in everyday serving.
    let warmup = load(shop.addr, RPS, Duration::from_secs(10)).await;
    assert_eq!(warmup.count(200), warmup.sent, "{warmup:?}");
    let traffic = tokio::spawn(load(shop.addr, RPS, FULL_SWAP_RUN + Duration::from_secs(1)));
    let outcome = shop
        .apply(Variant::Harmless, "", |mut r| {
            r.watch = Some(FULL_SWAP_RUN);
            r.wait = true;
            r
        })
        .await;
    let watcher = shop.controller.watcher().expect("watcher");
    let alerts: Vec<String> = watcher
        .alerts()
        .recent(100)
        .iter()
        .map(keel_watch::Alert::text)
        .collect();
    let guard = outcome.guard.as_ref().expect("guarded");
    assert_eq!(
        guard.result,
        GuardResult::Promoted,
        "{guard:#?}\n{alerts:#?}"
    );
    assert!(guard.watched_ms >= 59_000, "{guard:?}");
    assert!(alerts.is_empty(), "false positives: {alerts:#?}");
    let report = traffic.await.expect("load");
    println!(
        "full swap: {} requests in {FULL_SWAP_RUN:?}, {} answered 200, no alert",
        report.sent,
        report.count(200)
    );
    assert_eq!(shop.primary(), 2);
}
