//! The shopper load end to end over real sockets: load → stand-in router → shop backends.
//!
//! The router in `support/router.rs` plays Keel's part (path-prefix routing, sticky carts
//! by `cart_id`, `x-keel-generation`), so the load is tested as it will run behind Keel.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use keel_demo::load::{Answerer, GenerationLabel, LoadConfig, LoadSnapshot, Outcome, ShopperLoad};
use keel_demo::shop::{ServiceKind, Shop, ShopConfig};
use support::eventually;
use support::router::Router;
use tokio::net::TcpListener;

/// A quick test load: short think times so journeys finish within the run.
fn test_load(target: SocketAddr, rate: u32, duration: Duration) -> LoadConfig {
    LoadConfig {
        rate,
        duration,
        think_min: Duration::ZERO,
        think_max: Duration::from_millis(20),
        request_timeout: Duration::from_secs(2),
        ..LoadConfig::new(target)
    }
}

fn generation(snapshot: &LoadSnapshot, id: u64) -> (u64, u64) {
    snapshot
        .generations
        .iter()
        .find(|g| g.generation == GenerationLabel::Id(id))
        .map_or((0, 0), |g| (g.responses, g.bad))
}

#[tokio::test]
async fn a_correct_route_keeps_rate_carts_and_identities() {
    let shop = Shop::start(ShopConfig::fast()).await.expect("shop");
    let router = Router::start(&shop, true, None).await;
    let load =
        ShopperLoad::start(test_load(router.addr, 200, Duration::from_secs(2))).expect("load");
    let stats = load.stats().clone();
    let done = load.finish().await.expect("load finishes");
    let totals = &done.totals;

    assert!(done.finished);
    assert!(
        (300..=401).contains(&totals.sent),
        "~400 requests in 2 s at 200/s, got {}",
        totals.sent
    );
    assert_eq!(
        totals.outcomes.total(),
        totals.sent,
        "every request answered or failed"
    );
    assert_eq!(totals.outcomes.bad(), 0, "{:?}", totals.outcomes);
    for second in stats.seconds() {
        assert!(
            second.sent <= 201,
            "second {} sent {}",
            second.second,
            second.sent
        );
    }
    assert_eq!(generation(&done, 1), (totals.sent, 0));
    assert_eq!(
        totals
            .answered
            .get(Answerer::Service(ServiceKind::LegacyWeb)),
        0
    );
    for service in [ServiceKind::Web, ServiceKind::Catalog, ServiceKind::Cart] {
        assert!(
            totals.answered.share(Answerer::Service(service)) > 0.05,
            "{service}"
        );
    }
    assert!(totals.shoppers_finished > 0, "some journeys completed");
    assert_eq!(totals.shoppers_affected, 0);
    assert_eq!(done.affected_total.share(), Some(0.0));
    let served: u64 = (1..=3)
        .map(|n| shop.served(ServiceKind::Cart, n).unwrap_or(0))
        .sum();
    assert!(served > 0, "the cart backends saw the load");
}

#[tokio::test]
async fn the_legacy_app_on_the_cart_routes_is_counted_as_wrong_application() {
    let shop = Shop::start(ShopConfig::fast()).await.expect("shop");
    // Generation 1 is the March-15 misroute: web, cart and checkout go to legacy-web.
    let router = Router::start(&shop, true, Some(1)).await;
    let load =
        ShopperLoad::start(test_load(router.addr, 200, Duration::from_millis(1500))).expect("load");
    let done = load.finish().await.expect("load finishes");
    let totals = &done.totals;

    assert!(
        totals.outcomes.get(Outcome::WrongApplication) > 0,
        "{:?}",
        totals.outcomes
    );
    assert!(
        totals.outcomes.get(Outcome::Ok) > 0,
        "catalog still answers correctly"
    );
    assert_eq!(
        totals.outcomes.get(Outcome::LostCart),
        0,
        "a refused add is not a lost cart"
    );
    assert!(
        totals
            .answered
            .share(Answerer::Service(ServiceKind::LegacyWeb))
            > 0.2
    );
    // Every journey starts with GET / (misrouted), so every shopper is affected.
    assert_eq!(totals.shoppers_affected, totals.shoppers_started);
    assert_eq!(done.affected_total.share(), Some(1.0));
    let (responses, bad) = generation(&done, 1);
    assert_eq!(responses, totals.sent);
    assert_eq!(bad, totals.outcomes.bad());
}

#[tokio::test]
async fn a_bad_generation_shows_in_its_own_counts_and_window() {
    let shop = Shop::start(ShopConfig::fast()).await.expect("shop");
    let router = Router::start(&shop, true, Some(2)).await;
    let load =
        ShopperLoad::start(test_load(router.addr, 200, Duration::from_millis(2500))).expect("load");
    let stats = load.stats().clone();
    // Switch once the run is in its second second, so second 0 is wholly generation 1.
    let started = stats.started_at();
    assert!(
        eventually(Duration::from_secs(3), || started.elapsed()
            >= Duration::from_millis(1100))
        .await
    );
    router.set_generation(2);
    let switched = started.elapsed();
    let done = load.finish().await.expect("load finishes");

    let (good_responses, good_bad) = generation(&done, 1);
    let (bad_responses, bad_bad) = generation(&done, 2);
    assert!(
        good_responses > 100 && good_bad == 0,
        "generation 1: {good_responses} / {good_bad}"
    );
    assert!(
        bad_responses > 0 && bad_bad > 0,
        "generation 2: {bad_responses} / {bad_bad}"
    );

    let before = stats.affected_between(Duration::ZERO, Duration::from_secs(1));
    assert!(before.shoppers > 0);
    assert_eq!(before.affected, 0, "nobody affected before the change");
    let after = stats.affected_between(switched + Duration::from_secs(1), done.elapsed);
    assert!(
        after.affected > 0 && after.affected <= after.shoppers,
        "{after:?}"
    );
}

#[tokio::test]
async fn a_non_sticky_cart_route_loses_carts() {
    let shop = Shop::start(ShopConfig::fast()).await.expect("shop");
    let router = Router::start(&shop, false, None).await;
    let load =
        ShopperLoad::start(test_load(router.addr, 200, Duration::from_millis(1500))).expect("load");
    let done = load.finish().await.expect("load finishes");
    let outcomes = &done.totals.outcomes;
    assert!(outcomes.get(Outcome::LostCart) > 0, "{outcomes:?}");
    assert_eq!(outcomes.get(Outcome::WrongApplication), 0);
    assert!(done.totals.shoppers_affected > 0);
}

#[tokio::test]
async fn an_unreachable_target_is_all_transport_errors() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr")
    };
    let load =
        ShopperLoad::start(test_load(closed, 100, Duration::from_millis(500))).expect("load");
    let done = load.finish().await.expect("load finishes");
    assert!(
        done.totals.sent > 0 && done.totals.sent <= 51,
        "{}",
        done.totals.sent
    );
    assert_eq!(
        done.totals.outcomes.get(Outcome::TransportError),
        done.totals.sent
    );
    assert_eq!(done.totals.shoppers_affected, done.totals.shoppers_started);
    assert_eq!(generation(&done, 1), (0, 0));
    assert!(
        done.generations
            .iter()
            .all(|g| g.generation == GenerationLabel::Missing)
    );
}

#[tokio::test]
async fn a_silent_target_fills_the_in_flight_cap_and_ticks_are_skipped() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let config = LoadConfig {
        max_in_flight: 5,
        request_timeout: Duration::from_millis(300),
        ..test_load(addr, 100, Duration::from_millis(500))
    };
    let done = ShopperLoad::start(config)
        .expect("load")
        .finish()
        .await
        .expect("finishes");
    hold.abort();
    assert!(
        done.totals.sent >= 5 && done.totals.sent <= 15,
        "sent {}",
        done.totals.sent
    );
    assert!(done.totals.skipped > 0);
    assert_eq!(
        done.totals.sent + done.totals.skipped,
        50,
        "every tick accounted for"
    );
    assert_eq!(
        done.totals.outcomes.get(Outcome::TransportError),
        done.totals.sent
    );
}

#[tokio::test]
async fn the_request_budget_and_stop_end_the_load() {
    let shop = Shop::start(ShopConfig::fast()).await.expect("shop");
    let router = Router::start(&shop, true, None).await;
    let budget = LoadConfig {
        max_requests: Some(50),
        ..test_load(router.addr, 200, Duration::from_secs(10))
    };
    let done = ShopperLoad::start(budget)
        .expect("load")
        .finish()
        .await
        .expect("finishes");
    assert_eq!(done.totals.sent, 50);

    let load =
        ShopperLoad::start(test_load(router.addr, 200, Duration::from_secs(60))).expect("load");
    let stats = load.stats().clone();
    assert!(eventually(Duration::from_secs(3), || stats.totals().sent >= 20).await);
    load.stop();
    let done = tokio::time::timeout(Duration::from_secs(3), load.finish())
        .await
        .expect("stops promptly")
        .expect("finishes");
    assert!(done.finished);
    assert!(
        done.totals.sent < 200,
        "stopped early: {}",
        done.totals.sent
    );
}

#[test]
fn a_load_outside_loopback_is_refused() {
    let config = LoadConfig::new(SocketAddr::from(([192, 0, 2, 1], 80)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    assert!(ShopperLoad::start(config).is_err());
}
