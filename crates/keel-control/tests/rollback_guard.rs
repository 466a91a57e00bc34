//! A rollback is guarded like an apply (issue 27, 1), through the real guarded controller
//! on a real data plane under a bounded load of 200 requests/s:
//!
//! * rolling back to a generation the guard reverted is refused without `force`, with the
//!   reasons (the revert, its alerts with their times); with `force` it is watched and
//!   reverted again, and judged bad;
//! * rolling back from an alarming generation to a known-good one is the way out: the
//!   target keeps serving whatever the detectors say about the move back; `/status` lists
//!   the open alert (blaming the generation that serves) first, and drops it after.

mod support;

use std::time::Duration;

use keel_control::{ControlError, GuardResult, RollbackRequest};
use keel_store::{EventQuery, Store, kind};
use support::eventually;
use support::shop::{Shop, Variant, load};

/// Requests per second of the test load.
const RPS: u32 = 200;
/// Load before an apply, so the baseline has a window of traffic.
const WARMUP: Duration = Duration::from_secs(2);

/// One loaded shop at a time.
static LOADED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_to_a_reverted_generation_needs_force_and_is_reverted_again() {
    let _exclusive = LOADED.lock().await;
    let shop = Shop::start("").await;
    let traffic = tokio::spawn(load(shop.addr, RPS, WARMUP + Duration::from_secs(16)));
    tokio::time::sleep(WARMUP).await;
    let outcome = shop
        .apply(Variant::Misroute, "", |mut r| {
            r.force = true;
            r
        })
        .await;
    assert_eq!(outcome.generation, Some(2), "{outcome:#?}");
    eventually(Duration::from_secs(10), || async {
        (shop.primary() == 1).then_some(())
    })
    .await
    .expect("the guard never reverted the misroute");
    // The alert and the revert reach the store right after the swap.
    eventually(Duration::from_secs(3), || async {
        let alerts = shop
            .store
            .events(EventQuery {
                kinds: vec![kind::ALERT.to_string()],
                generation: Some(2),
                ..EventQuery::default()
            })
            .ok()?;
        let rolled_back = shop.store.generation(2).ok()??.activated_at_ms.is_some()
            && shop.store.active().ok()??.id == 1;
        (!alerts.is_empty() && rolled_back).then_some(())
    })
    .await
    .expect("alert and rollback recorded");

    let refused = shop
        .controller
        .rollback(RollbackRequest {
            to: Some(2),
            reason: "try it again".into(),
            ..RollbackRequest::default()
        })
        .await;
    let Err(ControlError::DistrustedTarget { id: 2, reasons }) = &refused else {
        panic!("expected a refusal naming the distrust, got {refused:?}");
    };
    println!(
        "refused without --force:\n{}",
        refused.as_ref().expect_err("refused")
    );
    assert!(
        reasons.iter().any(|r| r.contains("applied with --force")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("reverted by the guard")),
        "{reasons:?}"
    );
    let alert_line = reasons
        .iter()
        .find(|r| r.contains("alert:"))
        .expect("the alerts are listed");
    // With their times: `2026-12-07T11:03:08.250Z alert: ...`.
    assert!(
        alert_line.as_bytes().get(10) == Some(&b'T') && alert_line.contains("Z alert:"),
        "{alert_line}"
    );
    assert_eq!(shop.primary(), 1, "a refused rollback swaps nothing");

    let forced = shop
        .controller
        .rollback(RollbackRequest {
            to: Some(2),
            reason: "try it again".into(),
            force: true,
            watch: Some(Duration::from_secs(10)),
            wait: true,
            ..RollbackRequest::default()
        })
        .await
        .expect("forced rollback");
    println!(
        "forced rollback 1 → 2: {:?}, notes {:?}",
        forced.guard, forced.notes
    );
    assert_eq!((forced.from, forced.to, forced.forced), (1, 2, true));
    assert_eq!(&forced.distrust, reasons);
    let text = forced
        .blast_radius
        .as_ref()
        .and_then(|b| b["text"].as_str())
        .unwrap_or_default();
    assert!(
        text.contains("Rollback from generation 1 to 2") && text.contains("sampled request"),
        "{text}"
    );
    let guard = forced.guard.expect("the rollback is guarded");
    assert_eq!(guard.result, GuardResult::RolledBack, "{guard:#?}");
    assert_eq!(shop.primary(), 1);
    assert_eq!(shop.controller.active().map(|a| a.id()), Some(1));
    let marks = shop
        .store
        .events(EventQuery {
            kinds: vec![kind::MARK_BAD.to_string()],
            generation: Some(2),
            ..EventQuery::default()
        })
        .expect("events");
    assert_eq!(marks.len(), 1, "{marks:?}");
    // Each rollback records what the generation it left served, from its own counters.
    let served = shop
        .store
        .events(EventQuery {
            kinds: vec![kind::TRAFFIC.to_string()],
            generation: Some(2),
            ..EventQuery::default()
        })
        .expect("events");
    assert!(
        !served.is_empty()
            && served
                .iter()
                .all(|e| e.details["requests_served"].as_u64() > Some(0)),
        "{served:?}"
    );
    assert_eq!(marks[0].details["origin"], keel_control::GUARD_ORIGIN);
    let reverts = shop
        .store
        .events(EventQuery {
            kinds: vec![kind::ROLLBACK.to_string()],
            ..EventQuery::default()
        })
        .expect("events");
    let origins: Vec<(u64, u64, String)> = reverts
        .iter()
        .map(|e| {
            (
                e.details["from"].as_u64().unwrap_or(0),
                e.details["to"].as_u64().unwrap_or(0),
                e.details["origin"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        origins,
        vec![
            (2, 1, "guard".to_string()),
            (1, 2, "cli".to_string()),
            (2, 1, "guard".to_string())
        ]
    );
    traffic.await.expect("load");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_from_an_alarming_generation_to_a_known_good_one_stays() {
    let _exclusive = LOADED.lock().await;
    let instant = "[safety]\nknown_good_after = \"0s\"";
    let shop = Shop::start(instant).await;
    let traffic = tokio::spawn(load(shop.addr, RPS, WARMUP + Duration::from_secs(14)));
    tokio::time::sleep(WARMUP).await;
    assert_eq!(
        shop.controller.promote_known_good().await.expect("promote"),
        Some(1)
    );
    // A route answering 5xx gets in unguarded: only the background watch alerts about it.
    let outcome = shop
        .apply(Variant::BrokenApi, instant, |mut r| {
            r.no_guard = true;
            r
        })
        .await;
    assert_eq!(outcome.generation, Some(2), "{outcome:#?}");
    let watcher = shop.controller.watcher().expect("watcher").clone();
    eventually(Duration::from_secs(8), || async {
        (!watcher.alerts().about(2, std::time::UNIX_EPOCH).is_empty()).then_some(())
    })
    .await
    .expect("the background watch alerts about the 5xx route");
    // `keel status` tells the truth about now: the open alert first, blaming generation 2.
    let status = shop.controller.status();
    let first = status.open_alerts.first().expect("open alerts in /status");
    assert_eq!((first.generation, first.serving.as_str()), (2, "active"));
    assert_eq!(first.detector, "errors");
    assert!(status.open_alerts_total >= 1);
    let back = shop
        .controller
        .rollback(RollbackRequest {
            watch: Some(Duration::from_secs(5)),
            wait: true,
            ..RollbackRequest::default()
        })
        .await
        .expect("rollback to the known-good generation");
    assert_eq!((back.from, back.to, back.forced), (2, 1, false));
    let guard = back.guard.expect("guarded");
    println!("rollback 2 → 1 (known-good): {guard:?}");
    assert!(
        matches!(guard.result, GuardResult::Promoted | GuardResult::Kept),
        "{guard:#?}"
    );
    assert_eq!(shop.primary(), 1, "the way out is not undone");
    // Generation 2's alerts are not about what serves any more.
    assert!(
        shop.controller
            .status()
            .open_alerts
            .iter()
            .all(|a| a.generation != 2),
        "{:?}",
        shop.controller.status().open_alerts
    );
    traffic.await.expect("load");
}
