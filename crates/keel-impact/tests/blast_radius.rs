//! Issue 5: "if I apply this config, where does my real traffic go?" — the replay
//! against whole configs, each scenario from the issue.

mod common;

use common::{SHOP, assert_close, config, edit, sample};
use keel_impact::{Change, Failure, Ring, blast_radius};
use keel_route::RequestShape;

/// The March-15 edit: /cart and /checkout now go to the legacy pool, while both routes
/// still *say* service "checkout".
fn march_15() -> keel_config::Config {
    config(
        &SHOP
            .replace(
                "path_prefix = \"/checkout\"\nservice = \"checkout\"\npool = \"checkout-v2\"",
                "path_prefix = \"/checkout\"\nservice = \"checkout\"\npool = \"legacy\"",
            )
            .replace(
                "path_prefix = \"/cart\"\nservice = \"checkout\"\npool = \"checkout-v2\"",
                "path_prefix = \"/cart\"\nservice = \"checkout\"\npool = \"legacy\"",
            ),
    )
}

#[test]
fn sending_cart_and_checkout_to_legacy_moves_exactly_their_sampled_share() {
    let report = blast_radius(&config(SHOP), &march_15(), &sample()).expect("report");
    assert_eq!(report.total, 120);
    assert_close(report.moved.requests, 37.0);
    assert_close(report.changes_service.requests, 37.0);
    assert_close(report.changes_service.share, 37.0 / 120.0);

    let shop = report
        .hosts
        .iter()
        .find(|h| h.host == "shop.example.com")
        .expect("shop host");
    assert_eq!(shop.requests, 100);
    assert_close(shop.changes_service.share, 0.37);
    assert_eq!(shop.flows.len(), 1);
    assert_eq!(shop.flows[0].from.pool, "checkout-v2");
    assert_eq!(shop.flows[0].to.pool, "legacy");
    // The pool's service, not the route's declared "checkout".
    assert_eq!(shop.flows[0].to.service, "legacy-web");
    let blog = report
        .hosts
        .iter()
        .find(|h| h.host == "blog.example.com")
        .expect("blog host");
    assert_eq!(blog.changes_service.requests, 0.0);
    assert_close(report.max_host_shift(), 0.37);

    assert_eq!(report.movements.len(), 2);
    let checkout = &report.movements[0];
    assert_eq!(
        (checkout.from.route.as_str(), checkout.to.route.as_str()),
        ("checkout", "checkout")
    );
    assert_eq!(checkout.to.service, "legacy-web");
    assert_eq!(checkout.change, Change::Service);
    assert_close(checkout.amount.requests, 25.0);
    assert_eq!(
        checkout.examples.len(),
        1,
        "requests that differ only by sticky key are one example"
    );
    let cart = &report.movements[1];
    assert_eq!(cart.from.route, "cart");
    assert_close(cart.amount.requests, 12.0);

    let text = report.render_human();
    assert!(
        text.contains(
            "37.0% of requests to shop.example.com would move from checkout (pool checkout-v2) \
             to legacy-web (pool legacy)"
        ),
        "{text}"
    );
    assert!(text.contains("Movement matrix"), "{text}");
    assert!(
        text.contains("e.g. POST shop.example.com/checkout/pay"),
        "{text}"
    );

    let json = report.to_json();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["movements"][0]["to"]["pool"], "legacy");
    assert_eq!(json["movements"][0]["to"]["service"], "legacy-web");
    assert_eq!(json["movements"][0]["change"], "service");
    assert_eq!(json["movements"][0]["requests"], 25.0);
    assert_eq!(json["hosts"][0]["changes_service"]["share"], 0.37);
    // Keyed checkout requests leave a hashing pool for one that does not hash.
    let sticky = report.sticky.expect("sticky section");
    assert_close(sticky.no_longer_sticky, 25.0);
}

#[test]
fn a_reformatted_config_with_the_same_meaning_moves_nothing() {
    // Same routes in the same order; tables reordered, keys reordered, backends listed
    // in another order, inline tables, comments and blank lines.
    let reformatted = r#"
# the same shop, written by someone else
[pools.legacy]
legacy = true
backends = [ { addr = "127.0.0.1:9201" } ]
service = "legacy-web"

[pools."checkout-v2"]
hash_key = "cookie:cart_id"
balance  = "consistent_hash"
service  = "checkout"
backends = [{ addr = "127.0.0.1:9004" }, { addr = "127.0.0.1:9002" }, { weight = 1, addr = "127.0.0.1:9003" }, "127.0.0.1:9001"]

[pools.web-canary]
backends = ["127.0.0.1:9111"]
service = "web"

[pools.web]
backends = ["127.0.0.1:9102", "127.0.0.1:9101"]
service = "web"

[services]
legacy-web = {}
checkout = {}
web = {}

[listeners.web]
addr = "127.0.0.1:8080"

[[routes]]
pool = "checkout-v2"
service = "checkout"
path_prefix = "/checkout"
host = "Shop.Example.com"
name = "checkout"

[[routes]]
name = "cart"
host = "shop.example.com"
service = "checkout"
split = [{ pool = "checkout-v2", weight = 7 }]
path_prefix = "/cart"



[[routes]]
service = "web"
name = "web"
pool = "web"
"#;
    let report = blast_radius(&config(SHOP), &config(reformatted), &sample()).expect("report");
    assert!(report.is_unchanged(), "{}", report.render_human());
    assert_eq!(report.moved.requests, 0.0);
    assert!(report.movements.is_empty());
    let sticky = report.sticky.as_ref().expect("keyed checkout requests");
    assert_close(sticky.requests, 25.0);
    assert_eq!(sticky.changed.requests, 0.0);
    assert!(report.hosts.iter().all(|h| h.changes_service.share == 0.0));
    assert!(
        report
            .render_human()
            .contains("no sampled request changes route, pool, service or backend")
    );
}

#[test]
fn an_added_route_that_shadows_another_shows_the_requests_it_takes() {
    // A new route before "cart" that catches all of /cart, to the same pool; and one
    // before "checkout" that takes /checkout/api to another pool of the same service.
    let new = edit(
        "[[routes]]\nname = \"cart\"",
        "[[routes]]\nname = \"cart-v2\"\nhost = \"shop.example.com\"\npath_prefix = \"/ca\"\n\
         service = \"checkout\"\npool = \"checkout-v2\"\n\n[[routes]]\nname = \"cart\"",
    );
    let mut traffic = sample();
    traffic.push(RequestShape::new("GET", "shop.example.com", "/cart/items"));
    let report = blast_radius(&config(SHOP), &new, &traffic).expect("report");
    assert_eq!(report.movements.len(), 1, "{}", report.render_human());
    let moved = &report.movements[0];
    assert_eq!(moved.from.route, "cart");
    assert_eq!(moved.to.route, "cart-v2");
    assert_eq!(moved.change, Change::Route);
    assert_close(moved.amount.requests, 13.0);
    assert_eq!(
        moved.examples,
        vec![
            RequestShape::new("GET", "shop.example.com", "/cart"),
            RequestShape::new("GET", "shop.example.com", "/cart/items"),
        ]
    );
    // Same pool, same service: no host changes service.
    assert_eq!(report.changes_service.requests, 0.0);
    assert_eq!(report.max_host_shift(), 0.0);
}

#[test]
fn a_shadowing_route_to_another_service_moves_what_it_catches() {
    let new = edit(
        "[[routes]]\nname = \"checkout\"",
        "[[routes]]\nname = \"catch-all\"\nhost = \"shop.example.com\"\n\
         service = \"legacy-web\"\npool = \"legacy\"\n\n[[routes]]\nname = \"checkout\"",
    );
    let report = blast_radius(&config(SHOP), &new, &sample()).expect("report");
    // Every shop request now lands on legacy; blog keeps going to web.
    assert_close(report.changes_service.requests, 100.0);
    let shop = &report.hosts[0];
    assert_eq!(shop.host, "shop.example.com");
    assert_close(shop.changes_service.share, 1.0);
    assert_eq!(shop.flows.len(), 2);
    assert_close(shop.flows[0].amount.share, 0.63);
    assert_eq!(shop.flows[0].from.pool, "web");
    assert_close(shop.flows[1].amount.share, 0.37);
    assert!(report.movements.iter().all(|m| m.to.route == "catch-all"));
}

#[test]
fn splits_count_as_expected_shares() {
    let old = edit(
        "name = \"web\"\nservice = \"web\"\npool = \"web\"",
        "name = \"web\"\nservice = \"web\"\n\
         split = [{ pool = \"web\", weight = 90 }, { pool = \"legacy\", weight = 10 }]",
    );
    let new = edit(
        "name = \"web\"\nservice = \"web\"\npool = \"web\"",
        "name = \"web\"\nservice = \"web\"\n\
         split = [{ pool = \"web\", weight = 50 }, { pool = \"legacy\", weight = 50 }]",
    );
    let report = blast_radius(&old, &new, &sample()).expect("report");
    // 83 requests hit the web route: each moves 0.4 from web to legacy.
    assert_eq!(report.movements.len(), 1);
    let movement = &report.movements[0];
    assert_eq!(
        (movement.from.pool.as_str(), movement.to.pool.as_str()),
        ("web", "legacy")
    );
    assert_close(movement.amount.requests, 0.4 * 83.0);
    assert_close(report.moved.requests, 33.2);
    let host = |name: &str| {
        report
            .hosts
            .iter()
            .find(|h| h.host == name)
            .map(|h| h.changes_service.share)
    };
    assert_close(host("shop.example.com").unwrap_or(-1.0), 0.4 * 0.63);
    assert_close(host("blog.example.com").unwrap_or(-1.0), 0.4);
    let web = report
        .services
        .iter()
        .find(|s| s.service == "web")
        .expect("web service");
    assert_close(web.old.requests, 0.9 * 83.0);
    assert_close(web.new.requests, 0.5 * 83.0);
    assert!(report.render_human().contains("33.2 requests"));

    // A canary arm of the same service changes pool, not service.
    let canary = edit(
        "name = \"web\"\nservice = \"web\"\npool = \"web\"",
        "name = \"web\"\nservice = \"web\"\n\
         split = [{ pool = \"web\", weight = 9 }, { pool = \"web-canary\", weight = 1 }]",
    );
    let report = blast_radius(&config(SHOP), &canary, &sample()).expect("report");
    assert_close(report.moved.requests, 8.3);
    assert_eq!(report.movements[0].change, Change::Pool);
    assert_eq!(report.changes_service.requests, 0.0);
}

#[test]
fn requests_that_start_failing_are_counted_by_reason() {
    // checkout-v2 keeps its name but loses every backend's weight; "web" is renamed to
    // only match /products, so the blog gets no route.
    let new = config(
        &SHOP
            .replace(
                "{ addr = \"127.0.0.1:9001\" }",
                "{ addr = \"127.0.0.1:9001\", weight = 0 }",
            )
            .replace(
                "{ addr = \"127.0.0.1:9002\" }",
                "{ addr = \"127.0.0.1:9002\", weight = 0 }",
            )
            .replace(
                "{ addr = \"127.0.0.1:9003\" }",
                "{ addr = \"127.0.0.1:9003\", weight = 0 }",
            )
            .replace(
                "{ addr = \"127.0.0.1:9004\" }",
                "{ addr = \"127.0.0.1:9004\", weight = 0 }",
            )
            .replace(
                "name = \"web\"\nservice",
                "name = \"web\"\npath_prefix = \"/products\"\nservice",
            ),
    );
    let report = blast_radius(&config(SHOP), &new, &sample()).expect("report");
    let starting = &report.failing.starting;
    assert_close(starting.amount.requests, 37.0 + 20.0);
    assert_close(starting.empty_pool, 37.0);
    assert_close(starting.no_route, 20.0);
    assert_eq!(report.failing.examples.len(), 3);
    let to_empty = report
        .movements
        .iter()
        .find(|m| m.from.route == "checkout")
        .expect("checkout movement");
    assert_eq!(to_empty.change, Change::Fails);
    assert_eq!(to_empty.to.failure, Some(Failure::EmptyPool));
    // Failing is a change of service: the blog loses all of its traffic.
    let blog = report
        .hosts
        .iter()
        .find(|h| h.host == "blog.example.com")
        .expect("blog");
    assert_close(blog.changes_service.share, 1.0);
    let text = report.render_human();
    assert!(
        text.contains("Requests that start failing: 57 requests"),
        "{text}"
    );
    assert!(text.contains("nowhere (no route matches: 404)"), "{text}");

    // And back: the same change reversed shows them recovering.
    let back = blast_radius(&new, &config(SHOP), &sample()).expect("report");
    assert_close(back.failing.recovering.amount.requests, 57.0);
    assert_eq!(back.failing.starting.amount.requests, 0.0);
}

#[test]
fn removing_one_backend_of_n_moves_about_one_nth_of_sticky_sessions() {
    let new = edit("  { addr = \"127.0.0.1:9004\" },\n", "");
    let traffic: Vec<RequestShape> = (0..2_000)
        .map(|i| {
            let mut r = RequestShape::new("POST", "shop.example.com", "/checkout/pay");
            r.hash_key = Some(format!("session-{i}"));
            r
        })
        .chain((0..100).map(|_| RequestShape::new("POST", "shop.example.com", "/checkout/pay")))
        .collect();
    let report = blast_radius(&config(SHOP), &new, &traffic).expect("report");
    assert!(
        report.movements.is_empty(),
        "routes and pools are unchanged"
    );
    assert!(!report.is_unchanged(), "but sessions move");
    let sticky = report.sticky.as_ref().expect("sticky");
    assert_close(sticky.requests, 2_000.0);
    assert_close(sticky.without_key, 100.0);
    let share = sticky.changed.share;
    assert!(
        (0.17..0.33).contains(&share),
        "moved {share}, expected about 1/4"
    );

    // Exactly the sessions that sat on the removed backend move, as the ring says.
    let old_pool = &config(SHOP).pools["checkout-v2"];
    let ring = Ring::of_pool(old_pool);
    let on_removed = (0..2_000)
        .filter(|i| {
            let hash = Ring::hash_key(format!("session-{i}").as_bytes());
            ring.lookup(hash) == Some(3)
        })
        .count();
    assert_close(sticky.changed.requests, on_removed as f64);
    assert_eq!(sticky.pools.len(), 1);
    assert_eq!(sticky.pools[0].from_pool, "checkout-v2");
    assert!(
        report
            .render_human()
            .contains(&format!("{on_removed} of 2000 keyed requests"))
    );
}

#[test]
fn a_changed_hash_key_moves_every_sticky_session() {
    let new = edit(
        "hash_key = \"cookie:cart_id\"",
        "hash_key = \"header:x-user\"",
    );
    let report = blast_radius(&config(SHOP), &new, &sample()).expect("report");
    let sticky = report.sticky.expect("sticky");
    assert_close(sticky.changed.requests, 25.0);
    assert_close(sticky.changed.share, 1.0);
}

#[test]
fn a_config_that_does_not_compile_is_an_error_not_a_panic() {
    let broken = keel_config::parse(&SHOP.replace("pool = \"web\"\n", "pool = \"nope\"\n")).config;
    let error = blast_radius(&config(SHOP), &broken, &sample()).expect_err("unknown pool");
    assert!(error.to_string().contains("new config"), "{error}");
    assert!(error.to_string().contains("nope"), "{error}");
}

#[test]
fn the_report_is_reproducible() {
    let a = blast_radius(&config(SHOP), &march_15(), &sample()).expect("report");
    let b = blast_radius(&config(SHOP), &march_15(), &sample()).expect("report");
    assert_eq!(a.to_json(), b.to_json());
    assert_eq!(a.render_human(), b.render_human());
}

#[test]
fn an_access_log_is_a_traffic_file() {
    // Two logged requests and one hand-written one, replayed through the March-15 edit.
    let log = concat!(
        r#"{"time":"2024-03-15T09:59:58Z","request_id":"a1","method":"POST","host":"Shop.Example.com:443","path":"/checkout/pay?step=2","status":200,"duration_ms":31,"bytes":90,"route":"checkout","pool":"checkout-v2","backend":"127.0.0.1:9001","generation":6,"retries":0,"hash_key":"cart-9"}"#,
        "\n",
        r#"{"time":"2024-03-15T09:59:59Z","request_id":"a2","method":"GET","host":"shop.example.com","path":"/","status":200,"duration_ms":4,"bytes":2048,"route":"web","pool":"web","backend":"127.0.0.1:9101","generation":6,"retries":0}"#,
        "\n",
        "GET https://shop.example.com/cart\n",
    );
    let traffic = keel_impact::parse_traffic(log, "access.log").expect("valid log");
    assert_eq!(traffic.formats.access_log, 2);
    let report = blast_radius(&config(SHOP), &march_15(), &traffic.requests).expect("report");
    assert_eq!(report.hosts.len(), 1, "ports and case do not split a host");
    assert_close(report.hosts[0].changes_service.share, 2.0 / 3.0);
    assert_close(report.changes_service.requests, 2.0);
}
