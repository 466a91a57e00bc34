//! The blast-radius gate through the real controller on a real sample: real requests
//! go through a real data plane on 127.0.0.1:0 first, then configs are dry-run or
//! applied against what that traffic would do.
//!
//! The sample holds all 100 requests: 20 `/cart`, 10 `/checkout/pay`, 20 `/api/items`,
//! 50 `/products/N`, all for shop.example.com.

mod support;

use keel_control::{ApplyStatus, GuardMode, Stage};
use keel_store::{GenerationState, Store};
use serde_json::Value;
use support::shop::{Shop, Variant, dry_run, sequential};

const REQUESTS: u64 = 100;
const CART: f64 = 20.0;
const CHECKOUT: f64 = 10.0;

async fn shop_with_traffic() -> Shop {
    let shop = Shop::start("").await;
    let report = sequential(shop.addr, REQUESTS).await;
    assert_eq!(report.count(200), REQUESTS, "{report:?}");
    assert_eq!(
        shop.controller.plane().sample().snapshot().len(),
        REQUESTS as usize
    );
    shop
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cart_and_checkout_to_legacy_moves_exactly_their_sampled_share() {
    let shop = shop_with_traffic().await;
    let outcome = shop.apply(Variant::LegacyCheckout, "", dry_run).await;
    assert_eq!(outcome.status, ApplyStatus::Refused, "{outcome:#?}");
    assert_eq!(outcome.refusals[0].stage, Stage::Gate);
    let gate = outcome.gate.as_ref().expect("gate report");
    let report = &gate["report"];
    assert_eq!(report["total"], REQUESTS);
    assert_eq!(
        number(&report["changes_service"]["requests"]),
        CART + CHECKOUT
    );
    assert_eq!(number(&report["changes_service"]["share"]), 0.3);
    assert_eq!(report["hosts"][0]["host"], "shop.example.com");
    assert_eq!(number(&report["hosts"][0]["changes_service"]["share"]), 0.3);
    // The matrix: exactly two service-changing rows, cart 20 and checkout 10.
    let movements = report["movements"].as_array().expect("movements");
    let rows: Vec<(String, f64, String)> = movements
        .iter()
        .map(|m| {
            (
                m["from"]["route"].as_str().unwrap_or("").to_string(),
                number(&m["requests"]),
                m["to"]["pool"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("cart".to_string(), CART, "legacy".to_string()),
            ("checkout".to_string(), CHECKOUT, "legacy".to_string())
        ]
    );
    assert!(movements.iter().all(|m| m["change"] == "service"));
    assert_eq!(movements[0]["examples"][0]["path"], "/cart");
    assert_eq!(gate["gate"]["allowed"], false);
    let text = keel_control::impact_text(gate).expect("text");
    assert!(
        text.starts_with("REFUSED by the blast-radius gate"),
        "{text}"
    );
    assert!(text.contains("Movement matrix"), "{text}");
    assert!(
        outcome.refusals[0]
            .message
            .contains("30.0% of the 100 sampled requests to shop.example.com"),
        "{:?}",
        outcome.refusals
    );
    // A dry run changes nothing and records nothing.
    assert_eq!(shop.primary(), 1);
    assert_eq!(shop.store.generations(10).expect("store").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reformatted_config_moves_nothing() {
    let shop = shop_with_traffic().await;
    let outcome = shop.apply(Variant::Reformatted, "", dry_run).await;
    assert_eq!(outcome.status, ApplyStatus::DryRun, "{outcome:#?}");
    let gate = outcome.gate.as_ref().expect("gate report");
    assert_eq!(gate["report"]["total"], REQUESTS);
    assert_eq!(number(&gate["report"]["moved"]["requests"]), 0.0);
    assert_eq!(number(&gate["report"]["changes_service"]["requests"]), 0.0);
    assert_eq!(gate["report"]["movements"], serde_json::json!([]));
    assert_eq!(gate["gate"]["allowed"], true);
    let applied = shop.apply(Variant::Reformatted, "", |r| r).await;
    assert_eq!(applied.status, ApplyStatus::Applied, "{applied:#?}");
    assert_eq!(shop.primary(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_shadows_another_shows_the_requests_it_takes() {
    let shop = shop_with_traffic().await;
    let outcome = shop.apply(Variant::ShadowCart, "", dry_run).await;
    // Same service and pool, but the route `cart` loses all of its live traffic: the
    // gate judges the worst case per route and refuses, naming the witness requests.
    assert_eq!(outcome.status, ApplyStatus::Refused, "{outcome:#?}");
    assert_eq!(outcome.refusals[0].stage, Stage::Gate);
    assert!(
        outcome.refusals[0]
            .message
            .starts_with("route cart would be shadowed: 100.0% of its"),
        "{outcome:#?}"
    );
    assert!(
        outcome.refusals[0]
            .message
            .contains("would match route sale instead; e.g. GET shop.example.com/cart"),
        "{outcome:#?}"
    );
    let report = &outcome.gate.as_ref().expect("gate report")["report"];
    assert_eq!(number(&report["moved"]["requests"]), CART);
    assert_eq!(number(&report["changes_service"]["requests"]), 0.0);
    let movement = &report["movements"][0];
    assert_eq!(movement["change"], "route");
    assert_eq!(movement["from"]["route"], "cart");
    assert_eq!(movement["to"]["route"], "sale");
    assert_eq!(number(&movement["requests"]), CART);
    assert_eq!(movement["examples"][0]["path"], "/cart");
    assert_eq!(report["movements"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_refuses_above_max_shift_and_force_applies_with_the_report_recorded() {
    let shop = shop_with_traffic().await;
    let refused = shop.apply(Variant::LegacyCheckout, "", |r| r).await;
    assert_eq!(refused.status, ApplyStatus::Refused, "{refused:#?}");
    assert_eq!(refused.refusals[0].stage, Stage::Gate);
    assert_eq!(shop.primary(), 1);
    let rejected = shop
        .store
        .generation(refused.generation.expect("recorded"))
        .expect("store")
        .expect("record");
    assert_eq!(rejected.state, GenerationState::Rejected);
    let impact = rejected.impact_report.expect("impact report stored");
    assert_eq!(impact["gate"]["allowed"], false);
    assert_eq!(
        number(&impact["report"]["changes_service"]["requests"]),
        30.0
    );

    let forced = shop
        .apply(Variant::LegacyCheckout, "", |mut r| {
            r.force = true;
            r.message = "legacy fleet takes checkout during the migration".into();
            r
        })
        .await;
    assert_eq!(forced.status, ApplyStatus::Applied, "{forced:#?}");
    assert!(forced.forced);
    assert_eq!(forced.overridden[0].stage, Stage::Gate);
    let id = forced.generation.expect("id");
    assert_eq!(shop.primary(), id);
    let record = shop.store.generation(id).expect("store").expect("record");
    assert!(record.forced);
    assert_eq!(record.state, GenerationState::Active);
    let impact = record.impact_report.expect("impact report stored");
    assert_eq!(impact["gate"]["allowed"], false);
    assert!(
        impact["text"]
            .as_str()
            .is_some_and(|t| t.contains("Movement matrix"))
    );
    // Applied under the guard: watched after the swap.
    assert_eq!(forced.guard.as_ref().map(|g| g.mode), Some(GuardMode::Full));
    let metrics = shop.controller.watcher().expect("watcher").metrics_text();
    assert!(metrics.contains("keel_rejections_total 1"), "{metrics}");
    assert!(metrics.contains("keel_applies_total 2"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_empty_sample_the_gate_refuses_for_lack_of_evidence() {
    // Issue 29: a fresh start used to let the March-15 edit by ("sample empty… allows").
    let shop = Shop::start("").await;
    let outcome = shop.apply(Variant::LegacyCheckout, "", |r| r).await;
    assert_eq!(outcome.status, ApplyStatus::Refused, "{outcome:#?}");
    assert_eq!(outcome.refusals[0].stage, Stage::Gate);
    assert!(
        outcome.refusals[0].message.starts_with(
            "no sampled traffic for shop.example.com (routes cart, checkout change): the gate has no evidence"
        ),
        "{outcome:#?}"
    );
    assert!(
        outcome.notes.iter().any(|n| n.contains("sample is empty")),
        "{:?}",
        outcome.notes
    );
    assert_eq!(outcome.gate.as_ref().expect("report")["report"]["total"], 0);
    // A change that moves no route (only a timeout) needs no evidence.
    let harmless = shop.apply(Variant::Harmless, "", |r| r).await;
    assert_eq!(harmless.status, ApplyStatus::Applied, "{harmless:#?}");
    // --force applies without evidence, and says what it overrode.
    let forced = shop
        .apply(Variant::LegacyCheckout, "", |mut r| {
            r.force = true;
            r
        })
        .await;
    assert_eq!(forced.status, ApplyStatus::Applied, "{forced:#?}");
    assert!(
        forced
            .overridden
            .iter()
            .any(|r| r.message.starts_with("no sampled traffic"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_refused_by_check_still_records_its_blast_radius() {
    let shop = shop_with_traffic().await;
    // Route web splits 70% to the legacy pool while declaring service web: K102.
    let refused = shop.apply(Variant::Misroute, "", |r| r).await;
    assert_eq!(refused.status, ApplyStatus::Refused, "{refused:#?}");
    assert_eq!(refused.refusals[0].stage, Stage::Check);
    assert_eq!(refused.refusals[0].code.as_deref(), Some("K102"));
    let record = shop
        .store
        .generation(refused.generation.expect("recorded"))
        .expect("store")
        .expect("record");
    let impact = record.impact_report.expect("impact report stored");
    // 50 of the 100 sampled requests take route web: 70% of them, 35, change service.
    assert_eq!(
        number(&impact["report"]["changes_service"]["requests"]),
        35.0
    );
    assert_eq!(impact["gate"]["allowed"], false);
}
