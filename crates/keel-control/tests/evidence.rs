//! Issue 29, "judge by evidence", its last two rules, through the real controller serving
//! the identified shop of `support/disguise_shop.rs` with a bounded load counting wrong
//! answers per service:
//!
//! * an unproven watch must not vouch: a watch that runs out of time without traffic on
//!   the routes that had it before ends `unproven`, says so in `GET /status` (through the
//!   real admin API) and the store, and the generation is never promoted known-good, until
//!   a later watch of it (a rollback to it) has the evidence;
//! * judge the worst case live: a forced change that takes most, but not all, of a route's
//!   traffic, or most of a small service's, is reverted by the guard.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use keel_control::admin::{AdminState, AdminToken};
use keel_control::client::AdminClient;
use keel_control::{ApplyRequest, ApplyStatus, GuardResult, RollbackRequest};
use keel_store::{EventQuery, Store, kind};
use support::disguise_shop::{Harness, LOADED, WARMUP, forced, request};
use support::eventually;

/// Load before a change judged on partial losses: the baseline's frozen window must hold
/// enough of a 10 % route (8 s at 150 requests/s: 120 of its requests) for a partial loss
/// to be sure within seconds.
const LONG_WARMUP: Duration = Duration::from_secs(8);

/// The admin API's token in these tests.
const TOKEN: &str = "evidence-test-token-0123456789";

/// Serves the admin API of `shop` on 127.0.0.1:0; the client talks to it over TCP.
async fn admin(shop: &Harness) -> AdminClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = AdminState {
        controller: shop.controller.clone(),
        token: AdminToken::new(TOKEN, "test").expect("token"),
    };
    tokio::spawn(keel_control::admin::serve(
        listener,
        state,
        std::future::pending(),
    ));
    AdminClient::new(
        &format!("http://{addr}"),
        Some(AdminToken::new(TOKEN, "test").expect("token")),
    )
    .expect("client")
}

/// The shop's config with route `main` given another timeout: moves no request.
fn harmless(shop: &Harness, timeout: &str) -> String {
    shop.base("").replacen(
        "[[routes]]\nname = \"main\"",
        &format!("[[routes]]\nname = \"main\"\ntimeout = \"{timeout}\""),
        1,
    )
}

/// Events of `kind` the store filed on `generation`.
fn events(shop: &Harness, of: &str, generation: u64) -> Vec<keel_store::EventRecord> {
    shop.store
        .events(EventQuery {
            kinds: vec![of.to_string()],
            generation: Some(generation),
            ..EventQuery::default()
        })
        .expect("events")
}

/// A harmless change applied just as the shoppers leave: its watch runs out of its
/// extra time without a request on the routes that had traffic before. It serves on,
/// `unproven` (the apply's verdict, the store, `GET /status`), and the known-good timer
/// refuses it. A rollback to it while the shoppers are back is watched with evidence,
/// which proves it, and then it may become known-good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unproven_watch_does_not_vouch_for_its_generation() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let client = admin(&shop).await;
    let _ = shop.load(WARMUP).await;
    let watch = Duration::from_secs(1);
    let outcome = shop
        .apply(ApplyRequest {
            wait: true,
            watch: Some(watch),
            ..request(harmless(&shop, "9s"))
        })
        .await;
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:#?}");
    let guard = outcome.guard.expect("guarded");
    assert_eq!(guard.result, GuardResult::Unproven, "{guard:#?}");
    assert!(guard.watched_ms >= 1_900, "{guard:#?}");
    let reason = guard.reason.unwrap_or_default();
    assert!(
        reason.starts_with(
            "generation 2 is unproven: its watch (against generation 1) ended without evidence from"
        ) && reason.contains("route main (0 of 20 requests)"),
        "{reason}"
    );
    assert_eq!(shop.primary(), 2, "an unproven generation keeps serving");

    let stored = events(&shop, kind::UNPROVEN, 2);
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(stored[0].details["baseline"], 1, "{stored:#?}");
    assert!(
        stored[0].details["waiting_for"]
            .as_array()
            .is_some_and(|w| w.iter().any(|r| r["route"] == "main")),
        "{stored:#?}"
    );

    let status = client.status().await.expect("GET /status");
    let unproven = status.unproven.expect("the status says unproven");
    assert_eq!((unproven.generation, unproven.baseline), (2, 1));
    assert!(
        unproven
            .waiting_for
            .iter()
            .any(|w| w.route == "main" && w.requests < w.needed),
        "{unproven:#?}"
    );
    // known_good_after is 1 s: long past, and still refused.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        shop.controller.promote_known_good().await.expect("promote"),
        None
    );
    let status = client.status().await.expect("GET /status");
    assert!(!status.active.expect("active").known_good);

    // The shoppers come back. Generation 3 (another harmless tweak) is watched with its
    // evidence; a forced rollback to 2 is watched the same way and proves it.
    let traffic = shop.load(Duration::from_secs(12));
    tokio::time::sleep(WARMUP).await;
    let third = shop
        .apply(ApplyRequest {
            wait: true,
            watch: Some(watch),
            ..request(harmless(&shop, "8s"))
        })
        .await;
    assert_eq!(
        third.guard.map(|g| g.result),
        Some(GuardResult::Promoted),
        "{:#?}",
        third.notes
    );
    let back = shop
        .controller
        .rollback(RollbackRequest {
            to: Some(2),
            force: true,
            wait: true,
            watch: Some(Duration::from_secs(2)),
            author: "alice".into(),
            reason: "prove generation 2 on real traffic".into(),
            ..RollbackRequest::default()
        })
        .await
        .expect("rollback");
    assert_eq!(
        back.guard.as_ref().map(|g| g.result),
        Some(GuardResult::Promoted),
        "{back:#?}"
    );
    assert_eq!(events(&shop, kind::PROVEN, 2).len(), 1);
    let vouched = eventually(Duration::from_secs(5), || async {
        shop.controller.promote_known_good().await.ok().flatten()
    })
    .await;
    assert_eq!(vouched, Some(2));
    assert!(client.status().await.expect("status").unproven.is_none());
    let answers = traffic.await.expect("load");
    assert_eq!(answers.total_wrong(), 0, "{answers:?}");
}

/// The shop's mix with the `cart` route's requests spread over two paths: three in five
/// are `/checkout/cart/saved`, the rest `/checkout/cart` (both route `cart`, service
/// `checkout`).
fn saved_carts(addr: SocketAddr, n: u64) -> (Request<Empty<Bytes>>, &'static str) {
    let (path, service) = match n % 10 {
        0 | 1 => ("/checkout/pay".to_string(), "checkout"),
        2 if (n / 10) % 5 < 3 => ("/checkout/cart/saved".to_string(), "checkout"),
        2 => ("/checkout/cart".to_string(), "checkout"),
        3 => ("/legacy/old".to_string(), "legacy"),
        _ => (format!("/products/{}", n % 97), "web"),
    };
    let request = Request::builder()
        .uri(format!("http://{addr}{path}"))
        .header("host", "shop.example.com")
        .body(Empty::new())
        .expect("request");
    (request, service)
}

/// Issue 29: a route that loses a large part of its traffic, not all. The legacy route's
/// prefix widened to `/checkout/cart/saved` takes 60 % of route `cart` (6 % of the host:
/// under `share_shift`, and short of the starvation rule's 80 %). Forced past the gate,
/// the guard's partial-loss rule (half of a route's share, both windows on all traffic)
/// reverts it. (On its first 200 requests the candidate may show `cart` starved by chance,
/// a few percent of runs: then the starvation rule is the one that fires.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_change_that_takes_most_of_a_route_is_reverted() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let traffic = shop.load_with(LONG_WARMUP + Duration::from_secs(12), saved_carts);
    tokio::time::sleep(LONG_WARMUP).await;
    let widened = shop.base("").replacen(
        "path_prefix = \"/checkout-legacy\"",
        "path_prefix = \"/checkout/cart/saved\"",
        1,
    );
    let refused = shop.apply(request(widened.clone())).await;
    assert_eq!(refused.status, ApplyStatus::Refused, "{refused:#?}");
    let outcome = shop
        .apply(ApplyRequest {
            watch: Some(Duration::from_secs(10)),
            ..forced(widened)
        })
        .await;
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:#?}");
    let reverted = eventually(Duration::from_secs(12), || async {
        (shop.primary() == 1).then_some(())
    })
    .await;
    assert!(
        reverted.is_some(),
        "a route that lost 60% was never reverted"
    );
    let alert = shop
        .first_alert_on(outcome.generation.expect("generation"))
        .await
        .expect("an alert on the forced generation");
    assert_eq!(alert.details["numbers"]["kind"], "route_loss", "{alert:?}");
    assert_eq!(alert.details["numbers"]["route"], "cart", "{alert:?}");
    println!("alarm: {}", alert.summary);
    let answers = traffic.await.expect("load");
    println!("60% of a route taken: {answers:?}");
    // Until the alarm, saved carts were answered by legacy: 9 a second.
    assert!(answers.wrong("checkout") < 150, "{answers:?}");
}

/// Issue 29: a service that loses most of its live traffic, spread so that no route
/// starves. Route `checkout` (20 % of the host) re-pointed at the legacy pool and
/// declaring `legacy`: its answers prove the service it declares (no identity alarm),
/// the route keeps its requests (no route loss), the host's mix moves 20 points (not
/// more than `share_shift`), but service `checkout` goes from 30 % to 10 % of requests.
/// Forced past the gate, the guard's service-loss rule reverts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_change_that_takes_most_of_a_service_is_reverted() {
    let _exclusive = LOADED.lock().await;
    let shop = Harness::start("").await;
    let traffic = shop.load(LONG_WARMUP + Duration::from_secs(8));
    tokio::time::sleep(LONG_WARMUP).await;
    let repointed = shop.base("").replacen(
        "path_prefix = \"/checkout\"\nservice = \"checkout\"\npool = \"checkout\"",
        "path_prefix = \"/checkout\"\nservice = \"legacy\"\npool = \"legacy\"",
        1,
    );
    assert_ne!(repointed, shop.base(""));
    let refused = shop.apply(request(repointed.clone())).await;
    assert_eq!(refused.status, ApplyStatus::Refused, "{refused:#?}");
    let outcome = shop
        .apply(ApplyRequest {
            watch: Some(Duration::from_secs(8)),
            ..forced(repointed)
        })
        .await;
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:#?}");
    let reverted = eventually(Duration::from_secs(10), || async {
        (shop.primary() == 1).then_some(())
    })
    .await;
    assert!(
        reverted.is_some(),
        "a service that lost two thirds was never reverted"
    );
    let alert = shop
        .first_alert_on(outcome.generation.expect("generation"))
        .await
        .expect("an alert on the forced generation");
    assert_eq!(
        alert.details["numbers"]["kind"], "service_loss",
        "{alert:?}"
    );
    assert_eq!(alert.details["numbers"]["service"], "checkout", "{alert:?}");
    let answers = traffic.await.expect("load");
    println!("two thirds of a service taken: {answers:?}");
    assert!(answers.wrong("checkout") < 150, "{answers:?}");
}
