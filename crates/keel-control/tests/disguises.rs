//! March 15 in everyday disguises (issues 27 and 29), each through the real controller
//! (`Controller::new_guarded`) serving a real data plane on 127.0.0.1:0 over a real
//! SQLite store, with a bounded load counting wrong answers per service
//! (`keel_testkit::load_by_service`): a success given by another application.
//!
//! The shop and its load are `support/disguise_shop.rs`. The loaded tests take turns
//! ([`LOADED`]); the only waits are `eventually` loops.

mod support;

use std::sync::Arc;
use std::time::Duration;

use keel_control::{ApplyRequest, ApplyStatus, Controller, GuardResult, Stage};
use keel_store::{EventQuery, SqliteStore, Store, kind};
use keel_testkit::{IdentifiedShop, load_by_service, toml_list};
use support::disguise_shop::{
    Harness, LOADED, RPS, WARMUP, base, forced, known_good, refusal_text, request, serve,
    shop_request,
};
use support::eventually;

/// Issue 27 item 8: a pool without health checks whose addresses an edit replaces with
/// servers that answer as `legacy`. It used to pass ("0.0% change service") and serve
/// the wrong application for the whole watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn march_15_in_a_pool_without_health_checks_is_refused_before_the_swap() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let traffic = shop.load(WARMUP + Duration::from_secs(2));
    tokio::time::sleep(WARMUP).await;
    let text = shop
        .base("")
        .replacen(&shop.backends.toml_addrs("web"), &shop.stray(), 1);
    let outcome = shop.apply(request(text)).await;
    assert_eq!(outcome.status, ApplyStatus::Refused, "{outcome:#?}");
    assert!(outcome.refusals.iter().all(|r| r.stage == Stage::Probe));
    let reasons = refusal_text(&outcome);
    assert!(
        reasons.contains(
            "of pool `web` (service `web`) answers as `legacy`: the identity of service `legacy`"
        ),
        "{reasons}"
    );
    assert_eq!(shop.primary(), 1);
    let answers = traffic.await.expect("load");
    println!("pool without health checks: {answers:?}");
    assert_eq!(answers.total_wrong(), 0, "{answers:?}");
    assert!(answers.right("web") > 0, "{answers:?}");
}

/// Issue 29 row 1: `identity.equals` rewritten to the value the new servers answer
/// with, in the same edit that points the pool at them. Two services with one identity
/// is an error (K110); renaming the other service's identity too does not help: a new
/// backend answering as another service's *old* identity is named, also for a canary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_rewritten_to_the_new_servers_value_is_refused_naming_its_owner() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let traffic = shop.load(WARMUP + Duration::from_secs(2));
    tokio::time::sleep(WARMUP).await;
    let disguised = shop
        .base("")
        .replacen(&shop.backends.toml_addrs("checkout"), &shop.stray(), 1)
        .replace(r#"equals = "checkout""#, r#"equals = "legacy""#);
    let outcome = shop.apply(request(disguised.clone())).await;
    assert_eq!(outcome.status, ApplyStatus::Refused, "{outcome:#?}");
    assert!(
        outcome
            .refusals
            .iter()
            .any(|r| r.code.as_deref() == Some("K110")
                && r.message.contains("`checkout` and `legacy`")
                || r.code.as_deref() == Some("K110")
                    && r.message.contains("`legacy` and `checkout`")),
        "{outcome:#?}"
    );
    // The other service's identity renamed as well: K110 is quiet, the probes are not.
    let renamed = disguised.replacen(
        r#"[services.legacy]
identity = { header = "x-service", equals = "legacy" }"#,
        r#"[services.legacy]
identity = { header = "x-service", equals = "legacy-v2" }"#,
        1,
    );
    let outcome = shop
        .apply(ApplyRequest {
            canary: Some(10.0),
            ..request(renamed)
        })
        .await;
    assert_eq!(outcome.status, ApplyStatus::Refused, "{outcome:#?}");
    let reasons = refusal_text(&outcome);
    assert!(
        reasons.contains(
            "of pool `checkout` (service `checkout`) answers as `legacy`: the identity of service `legacy` in the active config"
        ),
        "{reasons}"
    );
    // The gate counts checkout's traffic (30% of the host) as changing application.
    assert!(
        outcome
            .refusals
            .iter()
            .any(|r| r.stage == Stage::Gate
                && r.message.contains("service checkout changes identity")),
        "{reasons}"
    );
    assert!(outcome.refusals.iter().any(|r| r.stage == Stage::Probe));
    assert_eq!(shop.primary(), 1);
    let answers = traffic.await.expect("load");
    assert_eq!(answers.total_wrong(), 0, "{answers:?}");
}

/// Issue 29 row 2: the identity removed from the service in the edit that replaces its
/// pool. A service without an identity is an error (K111) unless it says so; said so
/// (`allow_no_identity`), the new servers are still asked, with the header the service
/// used to prove itself with, and they answer as another service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_removed_with_the_pool_replaced_is_refused() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let traffic = shop.load(WARMUP + Duration::from_secs(2));
    tokio::time::sleep(WARMUP).await;
    let without = |allowance: &str| {
        shop.base("")
            .replacen(&shop.backends.toml_addrs("checkout"), &shop.stray(), 1)
            .replace(
                "[services.checkout]\nidentity = { header = \"x-service\", equals = \"checkout\" }",
                &format!("[services.checkout]\n{allowance}"),
            )
    };
    let outcome = shop.apply(request(without(""))).await;
    assert_eq!(outcome.status, ApplyStatus::Refused, "{outcome:#?}");
    assert!(
        outcome.refusals.iter().any(|r| r.stage == Stage::Check
            && r.code.as_deref() == Some(keel_config::codes::NO_IDENTITY)
            && r.message.contains("service `checkout` has no identity")),
        "{outcome:#?}"
    );
    let outcome = shop
        .apply(request(without("allow_no_identity = true\n")))
        .await;
    assert_eq!(outcome.status, ApplyStatus::Refused, "{outcome:#?}");
    let reasons = refusal_text(&outcome);
    assert!(
        reasons.contains("answers as `legacy`: the identity of service `legacy`"),
        "{reasons}"
    );
    assert_eq!(shop.primary(), 1);
    let answers = traffic.await.expect("load");
    assert_eq!(answers.total_wrong(), 0, "{answers:?}");
}

/// Issue 29 row 3: one of three health-checked backends replaced by a server of another
/// service. Unforced it is refused by the probe; forced, the first probes of the new
/// generation are its own evidence (overridden in its record), not an alert filed on
/// the generation that was serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_backends_first_probe_is_evidence_against_the_new_generation() {
    let _exclusive = LOADED.lock().await;
    let health = "health = { path = \"/healthz\", interval = \"200ms\", timeout = \"500ms\" }";
    let shop = Harness::start(health).await;
    let traffic = shop.load(WARMUP + Duration::from_secs(6));
    tokio::time::sleep(WARMUP).await;
    let checkout = shop.backends.addrs("checkout");
    let legacy = &shop.backends.addrs("legacy")[2..];
    let text = shop.base(health).replacen(
        &format!("\"{}\"]", checkout[2]),
        &format!("\"{}\"]", legacy[0]),
        1,
    );
    let refused = shop.apply(request(text.clone())).await;
    assert_eq!(refused.status, ApplyStatus::Refused, "{refused:#?}");
    assert_eq!(refused.refusals[0].stage, Stage::Probe, "{refused:#?}");
    assert!(
        refused.refusals[0]
            .message
            .contains(&format!("backend {} of pool `checkout`", legacy[0])),
        "{refused:#?}"
    );
    let forced = shop
        .apply(ApplyRequest {
            wait: true,
            ..forced(text)
        })
        .await;
    assert_eq!(forced.status, ApplyStatus::Applied, "{forced:#?}");
    let id = forced.generation.expect("generation");
    assert!(
        forced
            .overridden
            .iter()
            .any(|r| r.stage == Stage::Probe && r.message.contains("answers as `legacy`")),
        "{forced:#?}"
    );
    assert_eq!(
        shop.alerts_on(1),
        0,
        "evidence of generation {id} filed on 1"
    );
    let answers = traffic.await.expect("load");
    // The misidentified backend never got traffic (its pool checks health).
    assert_eq!(answers.total_wrong(), 0, "{answers:?}");
}

/// Issue 27 item 9: a forced split sending 20% of route `main` (service `web`) to the
/// pool of service `legacy`, below `[safety] max_shift`. The route says which
/// application must answer it: the identity detector alerts and the guard reverts, and
/// no wrong answer reaches a client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_twenty_percent_split_to_another_service_is_reverted() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let traffic = shop.load(WARMUP + Duration::from_secs(5));
    tokio::time::sleep(WARMUP).await;
    let split = shop.base("").replace(
        "service = \"web\"\npool = \"web\"\n",
        "service = \"web\"\nsplit = [{ pool = \"web\", weight = 80 }, { pool = \"legacy\", weight = 20 }]\n",
    );
    let outcome = shop.apply(forced(split)).await;
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:#?}");
    assert!(
        outcome
            .overridden
            .iter()
            .any(|r| r.code.as_deref() == Some("K102"))
    );
    let reverted = eventually(Duration::from_secs(10), || async {
        (shop.primary() == 1).then_some(())
    })
    .await;
    assert!(reverted.is_some(), "a 20% misroute was never reverted");
    let alert = eventually(Duration::from_secs(5), || async {
        shop.store
            .events(EventQuery {
                kinds: vec![kind::ALERT.to_string()],
                ..EventQuery::default()
            })
            .expect("events")
            .into_iter()
            .find(|e| e.generation == Some(2))
    })
    .await
    .expect("an alert on generation 2");
    assert_eq!(alert.details["detector"], "identity", "{alert:?}");
    let answers = traffic.await.expect("load");
    println!("forced 20% split: {answers:?}");
    assert_eq!(answers.total_wrong(), 0, "{answers:?}");
}

/// A declared migration (`also_served_by`) is not a misroute: K102 is quiet, the split
/// applies unforced and the watch ends without an alarm, answered partly by `legacy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_migration_may_split_to_another_service() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let traffic = shop.load(WARMUP + Duration::from_secs(6));
    tokio::time::sleep(WARMUP).await;
    let split = shop.base("").replace(
        "service = \"web\"\npool = \"web\"\n",
        "service = \"web\"\nalso_served_by = [\"legacy\"]\nsplit = [{ pool = \"web\", weight = 80 }, { pool = \"legacy\", weight = 20 }]\n",
    );
    let outcome = shop
        .apply(ApplyRequest {
            wait: true,
            ..request(split)
        })
        .await;
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:#?}");
    assert!(!outcome.forced, "{outcome:#?}");
    let guard = outcome.guard.expect("guarded");
    assert_eq!(guard.result, GuardResult::Promoted, "{guard:?}");
    assert_eq!(shop.primary(), 2);
    let answers = traffic.await.expect("load");
    // Declared: the load counts legacy's answers to web requests, and they are allowed.
    assert!(answers.wrong("web") > 0, "{answers:?}");
    assert_eq!(shop.alerts_on(2), 0);
}

/// Issue 29: "a change never chooses its own judge". A forced 20% misroute whose new
/// file also turns the detectors off is watched by the old config's detectors, and
/// reverted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_turns_the_detectors_off_is_still_judged_by_the_old_ones() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let traffic = shop.load(WARMUP + Duration::from_secs(5));
    tokio::time::sleep(WARMUP).await;
    let split = shop.base("").replace(
        "service = \"web\"\npool = \"web\"\n",
        "service = \"web\"\nsplit = [{ pool = \"web\", weight = 80 }, { pool = \"legacy\", weight = 20 }]\n",
    );
    let laxer = format!("{split}\n[detectors]\nenabled = false\nshare_shift = 0.9\n");
    let outcome = shop.apply(forced(laxer)).await;
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:#?}");
    let guard = outcome.guard.expect("guarded");
    assert_eq!(guard.result, GuardResult::Watching, "{guard:?}");
    let reverted = eventually(Duration::from_secs(10), || async {
        (shop.primary() == 1).then_some(())
    })
    .await;
    assert!(
        reverted.is_some(),
        "a change with detectors off was never reverted"
    );
    let answers = traffic.await.expect("load");
    assert_eq!(answers.total_wrong(), 0, "{answers:?}");
}

/// Issue 29 row 4: a widened `path_prefix` (`/checkout-legacy` → `/checkout/cart`) hands
/// all of the `cart` route to `legacy`: 10% of the host, under `max_shift`. The gate
/// judges each route and service, and refuses with the witness requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widened_prefix_under_the_hosts_average_is_refused_with_witnesses() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let traffic = shop.load(WARMUP + Duration::from_secs(2));
    tokio::time::sleep(WARMUP).await;
    let widened = shop.base("").replacen(
        "path_prefix = \"/checkout-legacy\"",
        "path_prefix = \"/checkout/cart\"",
        1,
    );
    let outcome = shop.apply(request(widened)).await;
    assert_eq!(outcome.status, ApplyStatus::Refused, "{outcome:#?}");
    let reasons = refusal_text(&outcome);
    assert!(
        outcome.refusals.iter().all(|r| r.stage == Stage::Gate),
        "{reasons}"
    );
    assert!(
        !reasons.contains("sampled requests to shop.example.com would change service"),
        "{reasons}"
    );
    assert!(reasons.contains("route cart: 100.0% of its"), "{reasons}");
    assert!(
        reasons.contains("route cart would be shadowed: 100.0% of its"),
        "{reasons}"
    );
    assert!(
        reasons.contains("e.g. GET shop.example.com/checkout/cart"),
        "{reasons}"
    );
    assert!(reasons.contains("service checkout: "), "{reasons}");
    assert_eq!(shop.primary(), 1);
    let answers = traffic.await.expect("load");
    assert_eq!(answers.total_wrong(), 0, "{answers:?}");
}

/// Route `main` split between `web` and `legacy` (a declared migration) at `legacy`
/// percent.
fn migrated(shop: &Harness, legacy: u32) -> String {
    shop.base("").replace(
        "service = \"web\"\npool = \"web\"\n",
        &format!(
            "service = \"web\"\nalso_served_by = [\"legacy\"]\nsplit = [{{ pool = \"web\", weight = {} }}, {{ pool = \"legacy\", weight = {legacy} }}]\n",
            100 - legacy
        ),
    )
}

/// Issue 29, salami: applies that each move 15% of route `main` pass one by one (each
/// under `max_shift` against the generation before), but the gate also measures the
/// movement since the newest known-good generation older than `drift_window` (here the
/// first one), and refuses once the sum is too large.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salami_applies_add_up_against_the_known_good_generation() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let traffic = shop.load(WARMUP + Duration::from_secs(14));
    tokio::time::sleep(WARMUP).await;
    assert_eq!(known_good(&shop).await, 1);
    let first = shop
        .apply(ApplyRequest {
            wait: true,
            ..request(migrated(&shop, 15))
        })
        .await;
    assert_eq!(first.status, ApplyStatus::Applied, "{first:#?}");
    assert_eq!(known_good(&shop).await, 2);
    // 15% more of `main`: 15% against generation 2, 30% against generation 1.
    let second = shop.apply(request(migrated(&shop, 30))).await;
    assert_eq!(second.status, ApplyStatus::Refused, "{second:#?}");
    let reasons = refusal_text(&second);
    assert!(
        second.refusals.iter().all(|r| r
            .message
            .starts_with("cumulative since generation 1 (known good; [safety] drift_window = 1h)")),
        "{reasons}"
    );
    assert!(reasons.contains("route main: 30.0% of its"), "{reasons}");
    assert_eq!(shop.primary(), 2);
    let answers = traffic.await.expect("load");
    assert!(answers.right("web") > 0, "{answers:?}");
}

/// Issue 29: a second apply while the first is still watched would end that watch and
/// lose its baseline. It is refused unless forced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_while_another_is_watched_needs_force() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let traffic = shop.load(WARMUP + Duration::from_secs(2));
    tokio::time::sleep(WARMUP).await;
    let harmless = shop.base("").replace(
        "[[routes]]\nname = \"main\"",
        "[[routes]]\nname = \"main\"\ntimeout = \"9s\"",
    );
    let first = shop.apply(request(harmless.clone())).await;
    assert_eq!(first.status, ApplyStatus::Applied, "{first:#?}");
    assert_eq!(first.guard.map(|g| g.result), Some(GuardResult::Watching));
    let again = harmless.replace("timeout = \"9s\"", "timeout = \"8s\"");
    let second = shop.apply(request(again.clone())).await;
    assert_eq!(second.status, ApplyStatus::Refused, "{second:#?}");
    assert_eq!(second.refusals[0].stage, Stage::Guard);
    assert!(
        second.refusals[0]
            .message
            .starts_with("generation 2 is still being watched"),
        "{second:#?}"
    );
    let forced = shop.apply(forced(again)).await;
    assert_eq!(forced.status, ApplyStatus::Applied, "{forced:#?}");
    let _ = traffic.await;
}

/// Issue 29, a quiet time: on a fresh start (empty sample) the widened prefix used to
/// pass ("sample empty… allows"). No evidence is not good evidence: refused, naming the
/// host and routes; `--force` applies and records the override.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_without_sampled_traffic_for_its_host_is_refused() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let widened = shop.base("").replacen(
        "path_prefix = \"/checkout-legacy\"",
        "path_prefix = \"/checkout/cart\"",
        1,
    );
    let outcome = shop.apply(request(widened.clone())).await;
    assert_eq!(outcome.status, ApplyStatus::Refused, "{outcome:#?}");
    let reasons = refusal_text(&outcome);
    assert!(
        reasons.starts_with(
            "no sampled traffic for shop.example.com (route legacy-checkout changes): the gate has no evidence"
        ),
        "{reasons}"
    );
    let forced = shop.apply(forced(widened)).await;
    assert_eq!(forced.status, ApplyStatus::Applied, "{forced:#?}");
    assert!(
        forced
            .overridden
            .iter()
            .any(|r| r.message.starts_with("no sampled traffic"))
    );
}

/// Issue 29 row 5: the widened prefix forced past the gate. The host's service mix moves
/// 10 points (under `share_shift`), but the `cart` route loses all of its traffic: the
/// share detector's route-loss rule alarms and the guard reverts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_widened_prefix_is_reverted_when_its_route_starves() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let traffic = shop.load(WARMUP + Duration::from_secs(8));
    tokio::time::sleep(WARMUP).await;
    let widened = shop.base("").replacen(
        "path_prefix = \"/checkout-legacy\"",
        "path_prefix = \"/checkout/cart\"",
        1,
    );
    let outcome = shop.apply(forced(widened)).await;
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:#?}");
    let reverted = eventually(Duration::from_secs(10), || async {
        (shop.primary() == 1).then_some(())
    })
    .await;
    assert!(reverted.is_some(), "a starved route was never reverted");
    let alert = eventually(Duration::from_secs(5), || async {
        shop.store
            .events(EventQuery {
                kinds: vec![kind::ALERT.to_string()],
                ..EventQuery::default()
            })
            .expect("events")
            .into_iter()
            .find(|e| e.generation == Some(2))
    })
    .await
    .expect("an alert on generation 2");
    assert_eq!(alert.details["numbers"]["kind"], "route_loss", "{alert:?}");
    assert_eq!(alert.details["numbers"]["route"], "cart", "{alert:?}");
    let answers = traffic.await.expect("load");
    println!("forced widened prefix: {answers:?}");
    // Until the alarm, cart requests were answered by legacy; a bounded few.
    assert!(answers.wrong("checkout") < 150, "{answers:?}");
}

/// Issue 29 row 10: a forced change, then a second apply (forced, a harmless tweak) at
/// once. The second watch used to compare with the first change's generation, the one
/// under suspicion, and nothing was ever reverted. It inherits the first watch's
/// baseline instead, so the starved route is still seen, and the guard goes back to
/// where the watched change came from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_apply_during_a_watch_keeps_the_watchs_baseline() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let traffic = shop.load(WARMUP + Duration::from_secs(8));
    tokio::time::sleep(WARMUP).await;
    let widened = shop.base("").replacen(
        "path_prefix = \"/checkout-legacy\"",
        "path_prefix = \"/checkout/cart\"",
        1,
    );
    let first = shop.apply(forced(widened.clone())).await;
    assert_eq!(first.status, ApplyStatus::Applied, "{first:#?}");
    let tweak = widened.replace(
        "[[routes]]\nname = \"main\"",
        "[[routes]]\nname = \"main\"\ntimeout = \"9s\"",
    );
    let second = shop.apply(forced(tweak)).await;
    assert_eq!(second.status, ApplyStatus::Applied, "{second:#?}");
    let guard = second.guard.expect("guarded");
    assert_eq!(guard.baseline, Some(1), "{guard:?}");
    let reverted = eventually(Duration::from_secs(10), || async {
        (shop.primary() == 1).then_some(())
    })
    .await;
    assert!(reverted.is_some(), "the starved route was never reverted");
    let answers = traffic.await.expect("load");
    assert!(answers.wrong("checkout") < 150, "{answers:?}");
}

/// Issue 29 row 7: traffic that comes back after the watch's clock. The watch of a
/// change lasts until each route that had traffic before has seen `min_requests` (up to
/// the watch time again), so a starved route whose traffic returns late is still caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_waits_for_evidence_past_its_clock() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let warmup = shop.load(WARMUP);
    let _ = warmup.await;
    let widened = shop.base("").replacen(
        "path_prefix = \"/checkout-legacy\"",
        "path_prefix = \"/checkout/cart\"",
        1,
    );
    let watch = Duration::from_secs(4);
    let outcome = shop
        .apply(ApplyRequest {
            watch: Some(watch),
            ..forced(widened)
        })
        .await;
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:#?}");
    // Quiet until past the watch's clock, then the shoppers come back. Meanwhile the
    // status says what the watch still waits for.
    tokio::time::sleep(watch + Duration::from_millis(500)).await;
    let guard = shop.controller.status().guard.expect("still watched");
    assert_eq!(guard.generation, 2);
    assert!(
        guard.waiting_for.iter().any(|w| w.requests < w.needed),
        "{guard:#?}"
    );
    let traffic = shop.load(Duration::from_secs(4));
    let reverted = eventually(Duration::from_secs(10), || async {
        (shop.primary() == 1).then_some(())
    })
    .await;
    assert!(
        reverted.is_some(),
        "the watch ended by the clock without evidence"
    );
    let answers = traffic.await.expect("load");
    assert!(answers.wrong("checkout") < 150, "{answers:?}");
}

/// Issue 29 row 8: `keel serve --adopt-config --force` with a file that points checkout at
/// the legacy servers. Forced past the probes and the missing sample, the adopted
/// generation is still watched by the guard against the stored generation it replaced,
/// and the first wrong answer reverts to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_generation_is_watched_by_the_guard() {
    let _exclusive = LOADED.lock().await;
    let backends = IdentifiedShop::start(&[("web", 2), ("legacy", 4), ("checkout", 3)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("keel.toml");
    let text = base(&backends, "");
    std::fs::write(&file, &text).expect("write");
    {
        let store = SqliteStore::open(dir.path()).expect("store");
        let prepared = keel_control::boot::prepare(&store, Some(&file)).expect("prepare");
        let (_, report) = Controller::start_guarded(Arc::new(store), prepared)
            .await
            .expect("first start");
        assert_eq!(report.generation, 1, "{:?}", report.notes);
    }
    let stray = toml_list(&backends.addrs("legacy")[2..]);
    let misrouted = text.replacen(&backends.toml_addrs("checkout"), &stray, 1);
    std::fs::write(&file, misrouted).expect("write");
    let store = SqliteStore::open(dir.path()).expect("store");
    let prepared =
        keel_control::boot::prepare_adopting_forced(&store, &file, true).expect("prepare");
    let (controller, report) = Controller::start_guarded(Arc::new(store), prepared)
        .await
        .expect("adopting start");
    assert_eq!(report.generation, 2, "{:?}", report.notes);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("is watched by the guard against generation 1")),
        "{:?}",
        report.notes
    );
    let (addr, _stop) = serve(controller.plane().clone()).await;
    let traffic = tokio::spawn(load_by_service(RPS, Duration::from_secs(3), move |n| {
        shop_request(addr, n)
    }));
    let reverted = eventually(Duration::from_secs(10), || async {
        (controller.plane().active().map(|a| a.primary.id) == Some(1)).then_some(())
    })
    .await;
    assert!(
        reverted.is_some(),
        "the adopted misroute was never reverted"
    );
    let answers = traffic.await.expect("load");
    assert!(answers.wrong("checkout") < 50, "{answers:?}");
}

/// Issue 29 row 7, after a restart: the traffic sample persisted in the state dir is
/// read back at start, so the gate judges the widened prefix on the requests of before
/// (not "no sampled traffic"), and so does `--adopt-config`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traffic_sample_survives_a_restart_and_the_gate_judges_on_it() {
    let _exclusive = LOADED.lock().await;
    let backends = IdentifiedShop::start(&[("web", 2), ("legacy", 4), ("checkout", 3)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("keel.toml");
    let text = base(&backends, "");
    std::fs::write(&file, &text).expect("write");
    {
        let store = SqliteStore::open(dir.path()).expect("store");
        let prepared = keel_control::boot::prepare(&store, Some(&file)).expect("prepare");
        let (controller, _) = Controller::start_guarded_in(Arc::new(store), prepared, dir.path())
            .await
            .expect("first start");
        let (addr, _stop) = serve(controller.plane().clone()).await;
        let _ = load_by_service(RPS, WARMUP, move |n| shop_request(addr, n)).await;
        controller.save_sample().await.expect("persist the sample");
    }
    let persisted = std::fs::read_to_string(dir.path().join(keel_control::SAMPLE_FILE_NAME))
        .expect("the sample file");
    assert!(persisted.lines().count() > 100, "{persisted}");

    let widened = text.replacen(
        "path_prefix = \"/checkout-legacy\"",
        "path_prefix = \"/checkout/cart\"",
        1,
    );
    let store = SqliteStore::open(dir.path()).expect("store");
    let prepared = keel_control::boot::prepare(&store, Some(&file)).expect("prepare");
    let (controller, _) = Controller::start_guarded_in(Arc::new(store), prepared, dir.path())
        .await
        .expect("restart");
    let outcome = controller
        .apply(request(widened.clone()))
        .await
        .expect("apply");
    assert_eq!(outcome.status, ApplyStatus::Refused, "{outcome:#?}");
    let reasons = refusal_text(&outcome);
    assert!(!reasons.contains("no sampled traffic"), "{reasons}");
    assert!(
        outcome
            .refusals
            .iter()
            .any(|r| r.stage == Stage::Gate && r.message.contains("cart")),
        "{reasons}"
    );
    assert!(
        outcome
            .notes
            .iter()
            .any(|n| n.contains("persisted before the last restart")),
        "{:?}",
        outcome.notes
    );
    drop(controller);

    std::fs::write(&file, &widened).expect("write");
    let store = SqliteStore::open(dir.path()).expect("store");
    let prepared = keel_control::boot::prepare_adopting(&store, &file).expect("prepare");
    let (_, report) = Controller::start_guarded_in(Arc::new(store), prepared, dir.path())
        .await
        .expect("adopting start");
    assert_eq!(report.generation, 1, "{:?}", report.notes);
    assert!(
        report.notes.iter().any(|n| n.contains("was refused")
            && n.contains("on the traffic sample persisted before the restart")
            && !n.contains("no traffic sample after a restart")),
        "{:?}",
        report.notes
    );
}

/// Issue 29 row 5: the widened prefix that a route test and an intent refuse (K107,
/// K108), forced past them. Live, the intent only counts routes whose own prefix starts
/// with its prefix (the capturing route is out of its scope and the starved one gets no
/// traffic), so what catches it is the route-loss rule: the guard reverts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_forced_past_its_tests_and_intents_is_reverted_live() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let traffic = shop.load(WARMUP + Duration::from_secs(8));
    tokio::time::sleep(WARMUP).await;
    let widened = shop.base("").replacen(
        "path_prefix = \"/checkout-legacy\"",
        "path_prefix = \"/checkout/cart\"",
        1,
    ) + "\n[[tests]]\nrequest = \"GET http://shop.example.com/checkout/cart\"\nexpect = { route = \"cart\" }\n\
           \n[[intents]]\nhost = \"shop.example.com\"\npath_prefix = \"/checkout/cart\"\nservice = \"checkout\"\nmin_share = 0.9\n";
    let refused = shop.apply(request(widened.clone())).await;
    assert_eq!(refused.status, ApplyStatus::Refused, "{refused:#?}");
    let codes: Vec<&str> = refused
        .refusals
        .iter()
        .filter_map(|r| r.code.as_deref())
        .collect();
    assert!(
        codes.contains(&keel_config::codes::TEST_FAILED)
            && codes.contains(&keel_config::codes::INTENT_VIOLATED),
        "{refused:#?}"
    );
    let forced = shop.apply(forced(widened)).await;
    assert_eq!(forced.status, ApplyStatus::Applied, "{forced:#?}");
    let reverted = eventually(Duration::from_secs(10), || async {
        (shop.primary() == 1).then_some(())
    })
    .await;
    assert!(reverted.is_some(), "the forced change was never reverted");
    let answers = traffic.await.expect("load");
    println!("forced past tests and intents: {answers:?}");
    assert!(answers.wrong("checkout") < 150, "{answers:?}");
}

/// A route for another host, put first: the checkout pool's extra text ends that table
/// and starts this route, so it comes before the shop's routes.
const LEGACY_SITE: &str = "\n[[routes]]\nname = \"legacy-site\"\nhost = \"legacy.example.com\"\nservice = \"legacy\"\npool = \"legacy\"\n";

/// Issue 29 row 11: a host wildcard that captures another host (`legacy.example.com` →
/// `*.example.com`), forced. Every shop request goes to legacy, whose route declares
/// `legacy`, so no response is misidentified; the share detector sees the service mix of
/// all hosts move and the shop's routes starve, and the guard reverts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_wildcard_capturing_another_host_is_reverted() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start(LEGACY_SITE).await;
    let traffic = shop.load(WARMUP + Duration::from_secs(8));
    tokio::time::sleep(WARMUP).await;
    let wildcard = shop.base(LEGACY_SITE).replacen(
        "host = \"legacy.example.com\"",
        "host = \"*.example.com\"",
        1,
    );
    let refused = shop.apply(request(wildcard.clone())).await;
    assert_eq!(refused.status, ApplyStatus::Refused, "{refused:#?}");
    assert!(
        refused.refusals.iter().any(|r| r.stage == Stage::Gate),
        "{refused:#?}"
    );
    let forced = shop.apply(forced(wildcard)).await;
    assert_eq!(forced.status, ApplyStatus::Applied, "{forced:#?}");
    let reverted = eventually(Duration::from_secs(10), || async {
        (shop.primary() == 1).then_some(())
    })
    .await;
    assert!(reverted.is_some(), "the wildcard was never reverted");
    let answers = traffic.await.expect("load");
    println!("host wildcard capturing the shop: {answers:?}");
    assert!(answers.total_wrong() < 150, "{answers:?}");
}

/// Issue 29 row 7, the follow-up: a misroute applied without the guard (`--no-guard`,
/// forced past the gate) is not the yardstick of the next change. A harmless follow-up
/// is judged against the known-good generation before it, whose observed shares show
/// the route the misroute starves, and the guard reverts to that known-good generation,
/// not to the misroute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_judges_against_the_known_good_generation_not_the_last_one() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let traffic = shop.load(WARMUP + Duration::from_secs(10));
    tokio::time::sleep(WARMUP).await;
    assert_eq!(known_good(&shop).await, 1);
    let widened = shop.base("").replacen(
        "path_prefix = \"/checkout-legacy\"",
        "path_prefix = \"/checkout/cart\"",
        1,
    );
    let unguarded = shop
        .apply(ApplyRequest {
            no_guard: true,
            ..forced(widened.clone())
        })
        .await;
    assert_eq!(unguarded.status, ApplyStatus::Applied, "{unguarded:#?}");
    assert_eq!(shop.primary(), 2);
    let tweak = widened.replacen(
        "[[routes]]\nname = \"main\"",
        "[[routes]]\nname = \"main\"\ntimeout = \"9s\"",
        1,
    );
    let follow_up = shop.apply(forced(tweak)).await;
    assert_eq!(follow_up.status, ApplyStatus::Applied, "{follow_up:#?}");
    let guard = follow_up.guard.expect("guarded");
    assert_eq!(guard.baseline, Some(1), "{guard:#?}");
    let reverted = eventually(Duration::from_secs(10), || async {
        (shop.primary() == 1).then_some(())
    })
    .await;
    assert!(
        reverted.is_some(),
        "the follow-up was judged against the misroute it sits on"
    );
    let answers = traffic.await.expect("load");
    println!("follow-up over an unguarded misroute: {answers:?}");
}
