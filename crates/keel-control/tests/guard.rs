//! Guarded applies through the real controller (`Controller::new_guarded`) on a real
//! data plane on 127.0.0.1:0, under a bounded load of 200 requests/s: a 70% misroute
//! is reverted by itself after a full swap, a route answering 5xx is reverted during
//! its canary, a harmless change is promoted through every step without an alarm,
//! `--no-guard` is recorded and its alerts keep it from becoming known-good, a rollback
//! cancels a canary, and the admin API serves `/metrics` and `/alerts`.
//!
//! Times are printed; the only timing assertion is the requirement's bound (< 5 s).
//! The loaded tests take turns ([`LOADED`]).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_control::admin::{self, AdminState, AdminToken};
use keel_control::client::AdminClient;
use keel_control::{
    ApplyStatus, ControlError, GUARD_BYPASSED, GUARD_ORIGIN, GuardMode, GuardResult,
    RollbackRequest, Stage,
};
use keel_store::{EventQuery, EventRecord, GenerationState, Store, kind};
use support::eventually;
use support::shop::{Shop, Variant, load, sequential};

/// Requests per second of the test load.
const RPS: u32 = 200;
/// Load before an apply, so the baseline has a window of traffic.
const WARMUP: Duration = Duration::from_secs(2);

/// One loaded shop at a time: four 200 requests/s loads at once on a small machine
/// measure the machine (latency), not the change.
static LOADED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn events(shop: &Shop, event_kind: &str) -> Vec<EventRecord> {
    shop.store
        .events(EventQuery {
            kinds: vec![event_kind.to_string()],
            ..EventQuery::default()
        })
        .expect("events")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seventy_percent_misroute_is_reverted_by_itself_within_seconds() {
    let _exclusive = LOADED.lock().await;
    let shop = Shop::start("").await;
    let traffic = tokio::spawn(load(shop.addr, RPS, WARMUP + Duration::from_secs(6)));
    tokio::time::sleep(WARMUP).await;
    let started = Instant::now();
    // The gate refuses a 70% move of the web traffic: the operator forces it, as the
    // March-15 engineer would have.
    let outcome = shop
        .apply(Variant::Misroute, "", |mut r| {
            r.force = true;
            r
        })
        .await;
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:#?}");
    let guard = outcome.guard.expect("guarded");
    assert_eq!(
        (guard.mode, guard.result),
        (GuardMode::Full, GuardResult::Watching)
    );
    let reverted = eventually(Duration::from_secs(10), || async {
        (shop.primary() == 1).then(Instant::now)
    })
    .await
    .expect("the misroute was never reverted");
    let took = reverted - started;
    println!("70% misroute (full swap, 200 req/s): apply → automatic revert in {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // The swap comes first; the store follows right after.
    let rollback = eventually(Duration::from_secs(2), || async {
        events(&shop, kind::ROLLBACK).pop()
    })
    .await
    .expect("rollback event");
    let record = shop.store.generation(2).expect("store").expect("gen 2");
    assert_eq!(record.state, GenerationState::RolledBack);
    assert_eq!(shop.store.active().expect("store").map(|g| g.id), Some(1));
    assert_eq!(rollback.details["origin"], GUARD_ORIGIN);
    assert_eq!(rollback.details["from"], 2);
    let alert = eventually(Duration::from_secs(2), || async {
        events(&shop, kind::ALERT).into_iter().next()
    })
    .await
    .expect("alert event");
    assert_eq!(alert.generation, Some(2));
    // Responses are verified by default: the identity detector sees the first answer
    // from `legacy-web`, usually before the share detector has a window.
    match alert.details["detector"].as_str() {
        Some("identity") => {}
        Some("share") => assert!(alert.details["numbers"]["shift"].is_number(), "{alert:?}"),
        _ => panic!("{alert:?}"),
    }
    assert!(
        alert.details["preceding_change"]
            .as_str()
            .is_some_and(|c| c.contains("route web")),
        "{alert:?}"
    );
    assert!(alert.time_ms <= rollback.time_ms);
    let metrics = shop.controller.watcher().expect("watcher").metrics_text();
    assert!(
        metrics.contains("keel_rollbacks_total{trigger=\"automatic\"} 1"),
        "{metrics}"
    );
    assert!(
        eventually(Duration::from_secs(2), || async {
            shop.controller.status().guard.is_none().then_some(())
        })
        .await
        .is_some()
    );
    let report = traffic.await.expect("load");
    assert_eq!(report.transport_errors, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_returns_5xx_is_reverted_during_its_canary() {
    let _exclusive = LOADED.lock().await;
    let shop = Shop::start("").await;
    let traffic = tokio::spawn(load(shop.addr, RPS, WARMUP + Duration::from_secs(8)));
    tokio::time::sleep(WARMUP).await;
    let outcome = shop
        .apply(Variant::BrokenApi, "", |mut r| {
            r.canary = Some(10.0);
            r.watch = Some(Duration::from_secs(8));
            r
        })
        .await;
    assert_eq!(outcome.status, ApplyStatus::Refused, "{outcome:#?}");
    assert_eq!(outcome.refusals[0].stage, Stage::Guard);
    let reason = &outcome.refusals[0].message;
    assert!(reason.contains("errors detector fired"), "{reason}");
    let guard = outcome.guard.as_ref().expect("guard");
    assert_eq!(guard.result, GuardResult::RolledBack);
    assert_eq!(guard.at_permille, Some(100));
    println!(
        "5xx route (10% canary): detected after {:?} ms, reverted after {:?} ms: {reason}",
        guard.detected_after_ms, guard.reverted_after_ms
    );
    let active = shop.controller.plane().active().expect("active");
    assert_eq!(active.primary.id, 1);
    assert!(active.canary.is_none());
    let record = shop.store.generation(2).expect("store").expect("gen 2");
    assert_eq!(record.state, GenerationState::RolledBack);
    assert_eq!(
        record.activated_at_ms, None,
        "a canary never served everything"
    );
    let steps = events(&shop, kind::CANARY_STEP);
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps[0].details["permille"], 100);
    let rollback = events(&shop, kind::ROLLBACK);
    assert_eq!(rollback[0].details["origin"], GUARD_ORIGIN);
    assert_eq!(rollback[0].details["from_state"], "pending");
    traffic.await.expect("load");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_harmless_change_is_promoted_through_every_step_without_an_alarm() {
    let _exclusive = LOADED.lock().await;
    let instant = "[safety]\nknown_good_after = \"0s\"";
    let shop = Shop::start(instant).await;
    // 10 s on the canary slice, then 25%, 50% and 100% for 10/3 s each: 20 s. The load
    // lasts longer: a watch that runs out of traffic before its last stage has its
    // evidence ends unproven, not promoted, and a busy machine stretches the stages.
    let traffic = tokio::spawn(load(shop.addr, RPS, Duration::from_secs(30)));
    let outcome = shop
        .apply(Variant::Harmless, instant, |mut r| {
            r.canary = Some(10.0);
            r.watch = Some(Duration::from_secs(10));
            r
        })
        .await;
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:#?}");
    let guard = outcome.guard.as_ref().expect("guard");
    assert_eq!(guard.result, GuardResult::Promoted, "{guard:#?}");
    assert!(guard.watched_ms >= 19_000, "{guard:?}");
    assert_eq!(
        guard.stages.iter().map(|s| s.permille).collect::<Vec<_>>(),
        vec![100, 250, 500, 1000]
    );
    let active = shop.controller.plane().active().expect("active");
    assert_eq!(active.primary.id, 2);
    assert!(active.canary.is_none());
    assert_eq!(shop.controller.active().map(|c| c.id()), Some(2));
    assert_eq!(shop.store.active().expect("store").map(|g| g.id), Some(2));
    let steps: Vec<u64> = events(&shop, kind::CANARY_STEP)
        .iter()
        .filter_map(|e| e.details["permille"].as_u64())
        .collect();
    assert_eq!(steps, vec![100, 250, 500]);
    let promote = events(&shop, kind::PROMOTE);
    assert_eq!(promote.len(), 1);
    assert_eq!(promote[0].generation, Some(2));
    let report = traffic.await.expect("load");
    assert_eq!(report.count(200), report.sent, "{report:?}");
    let watcher = shop.controller.watcher().expect("watcher");
    assert!(
        watcher.alerts().recent(10).is_empty(),
        "{:#?}",
        watcher.alerts().recent(10)
    );
    assert!(events(&shop, kind::ALERT).is_empty());
    // No alert, no watch left: it becomes known-good.
    assert_eq!(
        shop.controller
            .promote_known_good()
            .await
            .expect("known-good"),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_guard_is_recorded_and_a_generation_with_alerts_never_becomes_known_good() {
    let _exclusive = LOADED.lock().await;
    let instant = "[safety]\nknown_good_after = \"0s\"";
    let shop = Shop::start(instant).await;
    // The gate needs evidence for the api route's host before it lets a change by.
    sequential(shop.addr, 10).await;
    let outcome = shop
        .apply(Variant::BrokenApi, instant, |mut r| {
            r.no_guard = true;
            r
        })
        .await;
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:#?}");
    let guard = outcome.guard.as_ref().expect("guard");
    assert_eq!(
        (guard.mode, guard.result),
        (GuardMode::Unguarded, GuardResult::Bypassed)
    );
    assert!(
        outcome.notes.iter().any(|n| n.contains("GUARD BYPASSED")),
        "{:?}",
        outcome.notes
    );
    let bypassed = events(&shop, GUARD_BYPASSED);
    assert_eq!(bypassed.len(), 1);
    assert_eq!(bypassed[0].generation, Some(2));
    let report = load(shop.addr, RPS, Duration::from_secs(3)).await;
    assert!(report.count(500) > 0, "{report:?}");
    let alert = eventually(Duration::from_secs(5), || async {
        events(&shop, kind::ALERT).into_iter().next()
    })
    .await
    .expect("the background watch alerts on the failing route");
    assert_eq!(alert.generation, Some(2));
    assert_eq!(alert.details["detector"], "errors");
    assert!(
        alert.details["preceding_change"]
            .as_str()
            .is_some_and(|c| c.contains("--no-guard")),
        "{alert:?}"
    );
    // Nothing reverts an unguarded generation, and its alerts keep it from known-good.
    assert_eq!(shop.primary(), 2);
    assert_eq!(
        shop.controller
            .promote_known_good()
            .await
            .expect("known-good"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_cancels_a_canary_and_other_applies_wait_for_it() {
    let shop = Arc::new(Shop::start("").await);
    let canary = tokio::spawn({
        let shop = shop.clone();
        async move {
            shop.apply(Variant::Harmless, "", |mut r| {
                r.canary = Some(10.0);
                r.watch = Some(Duration::from_secs(60));
                r
            })
            .await
        }
    });
    let on_canary = eventually(Duration::from_secs(10), || async {
        shop.controller
            .status()
            .guard
            .filter(|g| g.mode == GuardMode::Canary)
    })
    .await
    .expect("canary started");
    assert_eq!(
        (on_canary.generation, on_canary.baseline, on_canary.permille),
        (2, 1, 100)
    );
    let busy = shop
        .controller
        .apply(support::shop::request(shop.config(Variant::Good, "")))
        .await;
    assert!(
        matches!(busy, Err(ControlError::CanaryInProgress { generation: 2 })),
        "{busy:?}"
    );
    let rollback = shop
        .controller
        .rollback(RollbackRequest {
            author: "bob".into(),
            reason: "not now".into(),
            ..RollbackRequest::default()
        })
        .await
        .expect("rollback");
    assert_eq!((rollback.from, rollback.to), (2, 1));
    let outcome = canary.await.expect("apply task");
    assert_eq!(outcome.status, ApplyStatus::Refused, "{outcome:#?}");
    assert_eq!(outcome.refusals[0].stage, Stage::Guard);
    assert_eq!(
        outcome.guard.as_ref().map(|g| g.result),
        Some(GuardResult::Cancelled)
    );
    let active = shop.controller.plane().active().expect("active");
    assert!(active.canary.is_none());
    assert_eq!(active.primary.id, 1);
    let record = shop.store.generation(2).expect("store").expect("gen 2");
    assert_eq!(record.state, GenerationState::RolledBack);
    assert!(shop.controller.status().guard.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_open_and_alerts_need_the_token() {
    let shop = Shop::start("").await;
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", socket.local_addr().expect("addr"));
    let token = AdminToken::new("guard-test-token", "test").expect("token");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(admin::serve(
        socket,
        AdminState {
            controller: shop.controller.clone(),
            token: token.clone(),
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let anonymous = AdminClient::new(&url, None).expect("client");
    let metrics = anonymous.metrics().await.expect("metrics need no token");
    assert!(metrics.contains("keel_applies_total 1"), "{metrics}");
    assert!(metrics.contains("keel_active_generation"), "{metrics}");
    let refused = anonymous
        .alerts(10)
        .await
        .expect_err("alerts need the token");
    assert_eq!(refused.status(), Some(401));
    let client = AdminClient::new(&url, Some(token)).expect("client");
    let alerts = client.alerts(10).await.expect("alerts");
    assert_eq!(alerts, serde_json::json!({ "alerts": [] }));
    let _ = stop.send(());
}

/// A change never chooses its own judge: a canary of a config that drops the promotion
/// steps (`promote_steps = [100]`, one jump from the slice to everything) still stops at
/// every step of the config it replaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_stops_at_the_promotion_steps_of_the_config_it_replaces() {
    let shop = Shop::start("").await;
    let outcome = shop
        .apply(
            Variant::Harmless,
            "[safety]\npromote_steps = [100]",
            |mut r| {
                r.canary = Some(10.0);
                r.watch = Some(Duration::from_secs(1));
                r
            },
        )
        .await;
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:#?}");
    let guard = outcome.guard.as_ref().expect("guard");
    assert_eq!(
        guard.stages.iter().map(|s| s.permille).collect::<Vec<_>>(),
        vec![100, 250, 500, 1000],
        "{guard:#?}"
    );
}
