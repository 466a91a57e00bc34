//! Guarded applies on a real data plane under a bounded ~200 requests/s load: a
//! misrouting config and a failing route are reverted, a harmless change is promoted
//! without an alert. Times are printed; the only timing assertion is the requirement's
//! own generous bound (< 5 s). Measured numbers come from `bench/detect.sh`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use keel_watch::{Detector, GuardOutcome, GuardPlan, Watcher, guarded_apply};
use support::{Backends, Proxy, Variant, load, shop_config};

/// Requests per second of the test load.
const RPS: u32 = 200;

struct Shop {
    backends: Backends,
    proxy: Proxy,
    watcher: Arc<Watcher>,
    baseline: Arc<keel_proxy::Generation>,
}

/// A shop serving generation 1 with `verify` identity checks, its baseline learned
/// under 2 s of load.
async fn shop(verify: bool) -> Shop {
    let backends = Backends::start().await;
    let config = shop_config(&backends, Variant::Good, verify, None);
    let proxy = Proxy::start(&config).await;
    let baseline = proxy.compile(1, config);
    proxy.plane.activate(baseline.clone());
    let (watcher, errors) = Watcher::start(proxy.plane.clone(), &[]);
    assert!(errors.is_empty());
    let warmup = load(proxy.addr, RPS, Duration::from_secs(2)).await;
    assert_eq!(warmup.count(200), warmup.sent, "{warmup:?}");
    Shop {
        backends,
        proxy,
        watcher,
        baseline,
    }
}

fn plan(canary_permille: Option<u32>, watch: Duration, step_watch: Duration) -> GuardPlan {
    GuardPlan {
        canary_permille,
        watch,
        promote_steps: vec![25, 50, 100],
        step_watch,
    }
}

/// What a guarded apply that was rolled back reports, plus the load still running.
struct Reverted {
    alert: keel_watch::Alert,
    detected_after: Duration,
    reverted_after: Duration,
    at_permille: Option<u32>,
    traffic: tokio::task::JoinHandle<keel_testkit::LoadReport>,
}

/// Compiles `variant` as generation 2 and applies it under load half a second into
/// `load_for`, watched by `plan`; panics unless the guard rolled it back.
async fn apply_bad(
    shop: &Shop,
    variant: Variant,
    verify: bool,
    plan: GuardPlan,
    load_for: Duration,
    change: &str,
) -> Reverted {
    let bad = shop
        .proxy
        .compile(2, shop_config(&shop.backends, variant, verify, None));
    let traffic = tokio::spawn(load(shop.proxy.addr, RPS, load_for));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcome = guarded_apply(&shop.watcher, shop.baseline.clone(), bad, &plan, change).await;
    let GuardOutcome::RolledBack {
        alert,
        detected_after,
        reverted_after,
        at_permille,
    } = outcome
    else {
        panic!("not rolled back: {outcome:?}");
    };
    Reverted {
        alert,
        detected_after,
        reverted_after,
        at_permille,
        traffic,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seventy_percent_misroute_is_reverted_within_seconds() {
    let shop = shop(false).await;
    let Reverted {
        alert,
        detected_after,
        reverted_after,
        at_permille,
        traffic,
    } = apply_bad(
        &shop,
        Variant::Misroute,
        false,
        plan(None, Duration::from_secs(20), Duration::from_secs(5)),
        Duration::from_secs(6),
        "route web: pool web → split web 30 / legacy 70",
    )
    .await;
    println!(
        "misroute (full swap, share detector): detected after {detected_after:?}, reverted after {reverted_after:?}: {}",
        alert.summary
    );
    assert_eq!(alert.detector, Detector::Share);
    assert_eq!(alert.generation, 2);
    assert_eq!(alert.baseline_generation, Some(1));
    assert_eq!(
        alert.preceding_change.as_deref(),
        Some("route web: pool web → split web 30 / legacy 70")
    );
    assert_eq!(at_permille, None);
    assert!(
        reverted_after < Duration::from_secs(5),
        "{reverted_after:?}"
    );
    let active = shop.proxy.plane.active().expect("active");
    assert_eq!(active.primary.id, 1);
    let report = traffic.await.expect("load");
    assert_eq!(report.transport_errors, 0, "{report:?}");
    assert_eq!(shop.watcher.alerts().recent(10).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misroute_to_servers_of_another_service_trips_identity_during_the_canary() {
    let shop = shop(true).await;
    let Reverted {
        alert,
        reverted_after,
        at_permille,
        traffic,
        ..
    } = apply_bad(
        &shop,
        Variant::Misroute,
        true,
        plan(Some(100), Duration::from_secs(20), Duration::from_secs(5)),
        Duration::from_secs(6),
        "route web: pool web → split web 30 / legacy 70",
    )
    .await;
    println!(
        "misroute (10% canary, identity detector): reverted after {reverted_after:?}: {}",
        alert.summary
    );
    assert_eq!(alert.detector, Detector::Identity);
    assert_eq!(at_permille, Some(100));
    assert!(
        reverted_after < Duration::from_secs(5),
        "{reverted_after:?}"
    );
    let active = shop.proxy.plane.active().expect("active");
    assert!(active.canary.is_none());
    assert_eq!(active.primary.id, 1);
    traffic.await.expect("load");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_returns_5xx_is_reverted_during_its_canary() {
    let shop = shop(false).await;
    let Reverted {
        alert,
        reverted_after,
        at_permille,
        traffic,
        ..
    } = apply_bad(
        &shop,
        Variant::BrokenApi,
        false,
        plan(Some(100), Duration::from_secs(20), Duration::from_secs(5)),
        Duration::from_secs(8),
        "route api: pool api → api-broken",
    )
    .await;
    println!(
        "5xx route (10% canary, error detector): reverted after {reverted_after:?}: {}",
        alert.summary
    );
    assert_eq!(alert.detector, Detector::Errors);
    assert_eq!(at_permille, Some(100));
    // Either the route itself, or the generation with the route named as the worst.
    assert!(
        alert.subject == "route api" || alert.numbers["worst_route"]["route"] == "api",
        "{alert:?}"
    );
    assert_eq!(shop.proxy.plane.active().expect("active").primary.id, 1);
    traffic.await.expect("load");
}

/// Promotes a harmless change through canary and steps under load; no alert at all.
async fn harmless_change_is_promoted(total: Duration) {
    let shop = shop(true).await;
    let next = shop.proxy.compile(
        2,
        shop_config(&shop.backends, Variant::Harmless, true, None),
    );
    let traffic = tokio::spawn(load(shop.proxy.addr, RPS, total + Duration::from_secs(1)));
    // Canary 40% of the time, then three steps.
    let canary_watch = total.mul_f64(0.4);
    let step_watch = total.mul_f64(0.2);
    let outcome = guarded_apply(
        &shop.watcher,
        shop.baseline.clone(),
        next,
        &plan(Some(100), canary_watch, step_watch),
        "route web: timeout 10s → 9s",
    )
    .await;
    assert!(
        matches!(outcome, GuardOutcome::Promoted { .. }),
        "{outcome:?}; alerts: {:#?}",
        shop.watcher.alerts().recent(10)
    );
    let report = traffic.await.expect("load");
    assert_eq!(report.count(200), report.sent, "{report:?}");
    assert!(shop.watcher.alerts().recent(10).is_empty());
    let active = shop.proxy.plane.active().expect("active");
    assert_eq!(active.primary.id, 2);
    assert!(active.canary.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_harmless_change_is_promoted_without_an_alert_over_20_seconds() {
    harmless_change_is_promoted(Duration::from_secs(20)).await;
}

/// The two-minute clean run of the requirement: ignored by `cargo test --workspace` to keep
/// the everyday run short, always run by `.ci/run` (`cargo test -p keel-watch --test guard
/// -- --ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "two minutes of load; run with --ignored"]
async fn a_harmless_change_is_promoted_without_an_alert_over_2_minutes() {
    harmless_change_is_promoted(Duration::from_secs(120)).await;
}
