//! A small shop config and a deterministic sample shared by the integration tests, and the
//! two-route config the policy suites (`rate_lint.rs`, `refusals.rs`) replay on.

#![allow(dead_code, unreachable_pub)]

use keel_config::Config;
use keel_route::RequestShape;

/// The shop before any change: checkout and cart on `checkout-v2` (a 4-backend
/// consistent-hash pool), everything else on `web`; a `legacy` pool of another service.
pub const SHOP: &str = r#"
[listeners.web]
addr = "127.0.0.1:8080"

[services.web]
[services.checkout]
[services.legacy-web]

[pools.web]
service = "web"
backends = [{ addr = "127.0.0.1:9101" }, { addr = "127.0.0.1:9102" }]

[pools.web-canary]
service = "web"
backends = [{ addr = "127.0.0.1:9111" }]

[pools.checkout-v2]
service = "checkout"
balance = "consistent_hash"
hash_key = "cookie:cart_id"
backends = [
  { addr = "127.0.0.1:9001" },
  { addr = "127.0.0.1:9002" },
  { addr = "127.0.0.1:9003" },
  { addr = "127.0.0.1:9004" },
]

[pools.legacy]
service = "legacy-web"
legacy = true
backends = [{ addr = "127.0.0.1:9201" }]

[[routes]]
name = "checkout"
host = "shop.example.com"
path_prefix = "/checkout"
service = "checkout"
pool = "checkout-v2"

[[routes]]
name = "cart"
host = "shop.example.com"
path_prefix = "/cart"
service = "checkout"
pool = "checkout-v2"

[[routes]]
name = "web"
service = "web"
pool = "web"
"#;

/// Parses a config that must have no findings.
pub fn config(source: &str) -> Config {
    let parsed = keel_config::parse(source);
    assert!(
        parsed.diagnostics.is_empty(),
        "test config has findings: {:#?}",
        parsed.diagnostics
    );
    parsed.config
}

/// A two-route config on one pool `web`: `shop` (host shop.example.com, then
/// `route_extra`, e.g. a `deny` or `rate_limit` line) and the catch-all `rest`, with
/// `safety` (a `[safety]` table, or nothing) before the routes. Must parse without
/// errors (warnings allowed).
pub fn two_routes(safety: &str, route_extra: &str) -> Config {
    let text = format!(
        "[listeners.web]\naddr = \"127.0.0.1:8080\"\n\n[services.web]\n\n\
         [pools.web]\nservice = \"web\"\nbackends = [\"127.0.0.1:9001\"]\n\n\
         {safety}\
         [[routes]]\nname = \"shop\"\nhost = \"shop.example.com\"\nservice = \"web\"\npool = \"web\"\n{route_extra}\n\n\
         [[routes]]\nname = \"rest\"\nservice = \"web\"\npool = \"web\"\n"
    );
    let parsed = keel_config::parse(&text);
    assert!(!parsed.has_errors(), "{:#?}", parsed.diagnostics);
    parsed.config
}

/// `SHOP` with `from` replaced by `to` (which must occur exactly once).
pub fn edit(from: &str, to: &str) -> Config {
    assert_eq!(SHOP.matches(from).count(), 1, "edit anchor `{from}`");
    config(&SHOP.replacen(from, to, 1))
}

/// 120 requests: to shop.example.com 25 checkout (keyed), 12 cart, 63 pages; then 20
/// to blog.example.com.
pub fn sample() -> Vec<RequestShape> {
    let mut sample = Vec::new();
    for i in 0..100 {
        let request = match i % 100 {
            0..25 => {
                let mut r = RequestShape::new("POST", "shop.example.com", "/checkout/pay");
                r.hash_key = Some(format!("cart-{i}"));
                r
            }
            25..37 => RequestShape::new("GET", "shop.example.com", "/cart"),
            _ => RequestShape::new("GET", "shop.example.com", &format!("/products/{i}")),
        };
        sample.push(request);
    }
    for i in 0..20 {
        sample.push(RequestShape::new(
            "GET",
            "blog.example.com",
            &format!("/posts/{i}"),
        ));
    }
    sample
}

/// Asserts two expected request counts are equal to 1e-9.
#[track_caller]
pub fn assert_close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "expected {expected}, got {actual}"
    );
}
