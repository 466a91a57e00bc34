//! Routing a request picks the first matching route in file order, whatever the index.

use keel_config::parse;
use keel_route::{RequestShape, RouteTable};

const CONFIG: &str = r#"
[listeners.web]
addr = "127.0.0.1:8080"
[services.web]
[services.api]
[pools.web]
service = "web"
backends = ["127.0.0.1:9001"]
[pools.api]
service = "api"
backends = ["127.0.0.1:9002"]
[pools.api-canary]
service = "api"
backends = ["127.0.0.1:9003"]

[[routes]]
name = "wild-admin"
host = "*.example.com"
path = "/admin"
service = "web"
pool = "web"

[[routes]]
name = "api-beta"
host = "shop.example.com"
path_prefix = "/api"
headers = { "x-beta" = "1" }
service = "api"
split = [{ pool = "api", weight = 3 }, { pool = "api-canary", weight = 1 }]

[[routes]]
name = "api"
host = "shop.example.com"
path_prefix = "/api"
methods = ["GET"]
service = "api"
pool = "api"

[[routes]]
name = "items"
path_regex = "/items/[0-9]+"
service = "web"
pool = "web"

[[routes]]
name = "catch-all"
service = "web"
pool = "web"
"#;

fn table() -> RouteTable {
    let parsed = parse(CONFIG);
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    RouteTable::compile(&parsed.config).expect("compiles")
}

fn route_of(table: &RouteTable, request: &RequestShape) -> Option<String> {
    table
        .find(request)
        .map(|id| table.route(id).name.to_string())
}

#[test]
fn first_match_in_file_order_wins_across_indexes() {
    let t = table();
    // The wildcard route comes first, so it beats the exact-host routes below it.
    assert_eq!(
        route_of(&t, &RequestShape::new("GET", "shop.example.com", "/admin")).as_deref(),
        Some("wild-admin")
    );
    assert_eq!(
        route_of(
            &t,
            &RequestShape::new("GET", "SHOP.example.com:8443", "/api/x")
        )
        .as_deref(),
        Some("api")
    );
    let beta = RequestShape::new("POST", "shop.example.com", "/api/x").with_header("x-beta", "1");
    assert_eq!(route_of(&t, &beta).as_deref(), Some("api-beta"));
    assert_eq!(
        route_of(&t, &RequestShape::new("POST", "shop.example.com", "/api/x")).as_deref(),
        Some("catch-all")
    );
    assert_eq!(
        route_of(&t, &RequestShape::new("GET", "other.org", "/items/12")).as_deref(),
        Some("items")
    );
    assert_eq!(
        route_of(&t, &RequestShape::new("GET", "other.org", "/items/12a")).as_deref(),
        Some("catch-all")
    );
    // The bare domain is not covered by "*.example.com".
    assert_eq!(
        route_of(&t, &RequestShape::new("GET", "example.com", "/admin")).as_deref(),
        Some("catch-all")
    );
}

#[test]
fn splits_pick_pools_by_weight() {
    let t = table();
    let route = t.route(t.route_id("api-beta").expect("route"));
    let picks: Vec<usize> = (0..4).map(|roll| route.pick_pool(roll)).collect();
    assert_eq!(picks, vec![1, 1, 1, 2]);
    let shares: Vec<f64> = route.shares().map(|(_, s)| s).collect();
    assert_eq!(shares, vec![0.75, 0.25]);
}

#[test]
fn unknown_references_refuse_to_compile() {
    let parsed = parse(&CONFIG.replace("pool = \"api\"\n", "pool = \"nope\"\n"));
    assert!(RouteTable::compile(&parsed.config).is_err());
}
