//! The demo's `keel.toml`, generated from where the shop and Keel actually listen, and
//! the March-15 misconfiguration derived from it.
//!
//! The good config is what a careful team would run: every service declares its identity
//! (`x-service`), web, cart and checkout have every response verified, every pool has a
//! fast health check (500 ms, so the demo is lively), the cart pool hashes `cookie:cart_id`
//! so a shopper's cart stays on one backend, the retired `legacy-web` fleet is marked
//! `legacy = true`, each route has a `[[tests]]` entry and three `[[intents]]` say what
//! must never change. [`march_15_config`] is the same file after the incident's edit: the
//! web, cart and checkout routes aimed at the `legacy-web` pool. Its tests and intents are
//! left as they were, as the author of such an edit would leave them — which is exactly
//! why `keel check` refuses it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use crate::shop::{CART_COOKIE, HEALTH_PATH, SERVICE_HEADER, SHOP_HOST, ServiceKind, Shop};

/// Name the demo's config is written and reported under (`keel-demo.toml`).
pub const CONFIG_FILE_NAME: &str = "keel-demo.toml";
/// Name the March-15 edit is reported under (`keel-demo-march-15.toml`).
pub const MARCH_15_FILE_NAME: &str = "keel-demo-march-15.toml";
/// Health check interval of every pool (500 milliseconds): a flip shows within a second.
pub const HEALTH_INTERVAL: Duration = Duration::from_millis(500);
/// Health check timeout of every pool (250 milliseconds).
pub const HEALTH_TIMEOUT: Duration = Duration::from_millis(250);
/// `[safety] watch` of the demo (10 seconds): how long every apply is watched after its swap.
pub const SAFETY_WATCH: Duration = Duration::from_secs(10);
/// `[safety] known_good_after` of the demo (5 seconds), so generation 1 is known-good
/// before the first scene even with a short warm-up.
pub const KNOWN_GOOD_AFTER: Duration = Duration::from_secs(5);
/// `[safety] max_shift` of the demo (0.25): an apply may move at most a quarter of a host's
/// traffic to another service without `--force`.
pub const MAX_SHIFT: f64 = 0.25;
/// Least share of `/cart` traffic that must reach the cart service (0.95).
pub const CART_MIN_SHARE: f64 = 0.95;
/// Least share of `/checkout` traffic that must reach the checkout service (0.95).
pub const CHECKOUT_MIN_SHARE: f64 = 0.95;
/// Most share of the shop's traffic the retired legacy fleet may get (0.05).
pub const LEGACY_MAX_SHARE: f64 = 0.05;
/// The routes the March-15 edit moves to the `legacy-web` pool.
pub const MISROUTED_ROUTES: [&str; 5] = ["storefront", "static", "cart", "checkout", "fallback"];

/// Where everything listens: Keel's listener and admin API, and every shop backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoAddrs {
    /// Keel's client listener (what the shoppers connect to).
    pub listener: SocketAddr,
    /// Keel's admin API.
    pub admin: SocketAddr,
    /// The backends of each service, in [`ServiceKind::ALL`] order.
    pub backends: Vec<(ServiceKind, Vec<SocketAddr>)>,
}

impl DemoAddrs {
    /// The addresses of a running shop, with Keel's two sockets.
    pub fn new(shop: &Shop, listener: SocketAddr, admin: SocketAddr) -> DemoAddrs {
        DemoAddrs {
            listener,
            admin,
            backends: ServiceKind::ALL
                .into_iter()
                .map(|service| (service, shop.addrs(service)))
                .collect(),
        }
    }

    fn of(&self, service: ServiceKind) -> &[SocketAddr] {
        self.backends
            .iter()
            .find(|(s, _)| *s == service)
            .map_or(&[], |(_, addrs)| addrs.as_slice())
    }
}

/// One route of the demo config.
struct RouteSpec {
    name: &'static str,
    /// `path = …` or `path_prefix = …`, already written as TOML.
    path: Option<&'static str>,
    methods: &'static str,
    service: ServiceKind,
    retries: Option<u32>,
    /// The request line of its route test.
    test: &'static str,
}

const ROUTES: [RouteSpec; 6] = [
    RouteSpec {
        name: "storefront",
        path: Some(r#"path = "/""#),
        methods: r#"["GET", "HEAD"]"#,
        service: ServiceKind::Web,
        retries: None,
        test: "GET https://shop.example.com/",
    },
    RouteSpec {
        name: "static",
        path: Some(r#"path_prefix = "/static/""#),
        methods: r#"["GET", "HEAD"]"#,
        service: ServiceKind::Web,
        retries: None,
        test: "GET https://shop.example.com/static/app.css",
    },
    RouteSpec {
        name: "catalog",
        path: Some(r#"path_prefix = "/catalog""#),
        methods: r#"["GET", "HEAD"]"#,
        service: ServiceKind::Catalog,
        retries: None,
        test: "GET https://shop.example.com/catalog/items/7",
    },
    RouteSpec {
        name: "cart",
        path: Some(r#"path_prefix = "/cart""#),
        methods: r#"["GET", "HEAD", "POST"]"#,
        service: ServiceKind::Cart,
        // Adding to a cart twice is not idempotent.
        retries: Some(0),
        test: "POST https://shop.example.com/cart/items",
    },
    RouteSpec {
        name: "checkout",
        path: Some(r#"path_prefix = "/checkout""#),
        methods: r#"["GET", "POST"]"#,
        service: ServiceKind::Checkout,
        // Never place an order twice.
        retries: Some(0),
        test: "POST https://shop.example.com/checkout",
    },
    RouteSpec {
        name: "fallback",
        path: None,
        methods: "",
        service: ServiceKind::Web,
        retries: Some(0),
        test: "DELETE https://shop.example.com/anything",
    },
];

/// The demo's good config.
pub fn good_config(addrs: &DemoAddrs) -> String {
    render(addrs, false)
}

/// The March-15 edit of [`good_config`]: the web, cart and checkout routes (every route
/// in [`MISROUTED_ROUTES`]) sent to the `legacy-web` pool, nothing else changed.
pub fn march_15_config(addrs: &DemoAddrs) -> String {
    render(addrs, true)
}

fn render(addrs: &DemoAddrs, misrouted: bool) -> String {
    let mut out = String::new();
    let w = &mut out;
    if misrouted {
        line(
            w,
            "# The March-15 edit: the storefront, cart and checkout routes now go to the legacy pool.",
        );
    } else {
        line(
            w,
            "# keel demo: the simulated shop behind Keel. Generated from the addresses of this run.",
        );
    }
    line(w, "");
    line(w, "[listeners.shop]");
    line(w, &format!("addr = \"{}\"", addrs.listener));
    line(w, "");
    line(w, "[admin]");
    line(w, &format!("addr = \"{}\"", addrs.admin));
    line(w, "");
    for service in ServiceKind::ALL {
        line(w, &format!("[services.{}]", service.name()));
        line(
            w,
            &format!(
                "identity = {{ header = \"{SERVICE_HEADER}\", equals = \"{}\" }}",
                service.name()
            ),
        );
        if verified(service) {
            line(w, "verify_responses = true");
        }
        line(w, "");
    }
    for service in ServiceKind::ALL {
        line(w, &format!("[pools.{}]", service.name()));
        line(w, &format!("service = \"{}\"", service.name()));
        if service == ServiceKind::Cart {
            line(w, "balance = \"consistent_hash\"");
            line(w, &format!("hash_key = \"cookie:{CART_COOKIE}\""));
        }
        if service == ServiceKind::LegacyWeb {
            line(w, "legacy = true");
        }
        let backends: Vec<String> = addrs
            .of(service)
            .iter()
            .map(|addr| format!("{{ addr = \"{addr}\" }}"))
            .collect();
        line(w, &format!("backends = [{}]", backends.join(", ")));
        line(
            w,
            &format!(
                "health = {{ path = \"{HEALTH_PATH}\", interval = \"{}ms\", timeout = \"{}ms\" }}",
                HEALTH_INTERVAL.as_millis(),
                HEALTH_TIMEOUT.as_millis()
            ),
        );
        line(w, "");
    }
    for route in &ROUTES {
        line(w, "[[routes]]");
        line(w, &format!("name = \"{}\"", route.name));
        if let Some(path) = route.path {
            line(w, &format!("host = \"{SHOP_HOST}\""));
            line(w, path);
        }
        if !route.methods.is_empty() {
            line(w, &format!("methods = {}", route.methods));
        }
        line(w, &format!("service = \"{}\"", route.service.name()));
        let pool = if misrouted && MISROUTED_ROUTES.contains(&route.name) {
            ServiceKind::LegacyWeb
        } else {
            route.service
        };
        line(w, &format!("pool = \"{}\"", pool.name()));
        if let Some(retries) = route.retries {
            line(w, &format!("retries = {retries}"));
        }
        line(w, "");
    }
    for route in &ROUTES {
        line(w, "[[tests]]");
        line(w, &format!("request = \"{}\"", route.test));
        line(
            w,
            &format!(
                "expect = {{ route = \"{}\", pool = \"{}\", service = \"{}\" }}",
                route.name,
                route.service.name(),
                route.service.name()
            ),
        );
        line(w, "");
    }
    intent(
        w,
        Some("/cart"),
        ServiceKind::Cart,
        "min_share",
        CART_MIN_SHARE,
    );
    intent(
        w,
        Some("/checkout"),
        ServiceKind::Checkout,
        "min_share",
        CHECKOUT_MIN_SHARE,
    );
    intent(
        w,
        None,
        ServiceKind::LegacyWeb,
        "max_share",
        LEGACY_MAX_SHARE,
    );
    line(w, "[safety]");
    line(w, &format!("max_shift = {MAX_SHIFT}"));
    line(w, &format!("watch = \"{}s\"", SAFETY_WATCH.as_secs()));
    line(
        w,
        &format!("known_good_after = \"{}s\"", KNOWN_GOOD_AFTER.as_secs()),
    );
    out
}

/// Services whose every proxied response must carry their identity.
fn verified(service: ServiceKind) -> bool {
    matches!(
        service,
        ServiceKind::Web | ServiceKind::Cart | ServiceKind::Checkout
    )
}

fn intent(w: &mut String, prefix: Option<&str>, service: ServiceKind, bound: &str, share: f64) {
    line(w, "[[intents]]");
    line(w, &format!("host = \"{SHOP_HOST}\""));
    if let Some(prefix) = prefix {
        line(w, &format!("path_prefix = \"{prefix}\""));
    }
    line(w, &format!("service = \"{}\"", service.name()));
    line(w, &format!("{bound} = {share}"));
    line(w, "");
}

fn line(out: &mut String, text: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_config::Severity;

    fn addrs() -> DemoAddrs {
        let mut port = 9100;
        let mut next = || {
            port += 1;
            SocketAddr::from(([127, 0, 0, 1], port))
        };
        DemoAddrs {
            listener: next(),
            admin: next(),
            backends: ServiceKind::ALL
                .into_iter()
                .map(|s| (s, vec![next(), next()]))
                .collect(),
        }
    }

    #[test]
    fn the_good_config_passes_check_without_warnings() {
        let text = good_config(&addrs());
        let loaded = keel_check::load(CONFIG_FILE_NAME, &text);
        let findings: Vec<String> = loaded
            .report
            .diagnostics
            .iter()
            .filter(|d| d.severity != Severity::Note)
            .map(|d| format!("{} {}", d.code, d.message))
            .collect();
        assert!(findings.is_empty(), "{findings:#?}\n{text}");
        let config = loaded.config.expect("usable config");
        assert_eq!(config.routes.len(), ROUTES.len());
        assert_eq!(config.tests.len(), ROUTES.len());
        assert!(config.pools["legacy-web"].legacy);
    }

    #[test]
    fn the_march_15_edit_is_refused_by_policy_not_by_a_hard_error() {
        let text = march_15_config(&addrs());
        let loaded = keel_check::load(MARCH_15_FILE_NAME, &text);
        let errors: Vec<&str> = loaded
            .report
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.code)
            .collect();
        for code in [
            keel_config::codes::SERVICE_MISMATCH,
            keel_config::codes::TEST_FAILED,
            keel_config::codes::INTENT_VIOLATED,
        ] {
            assert!(errors.contains(&code), "{code} missing from {errors:?}");
        }
        // Forcing must be possible: the scene forces it past the gate.
        assert!(errors.iter().all(|code| !keel_check::is_hard(code)));
        assert!(loaded.config_ignoring_policy().is_some());
    }
}
