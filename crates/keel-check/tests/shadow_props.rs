//! Properties of the shadow analysis over random small routing tables (hosts, paths,
//! methods and headers from a small alphabet, so routes collide often):
//!
//! 1. a route reported fully shadowed (or matching nothing) is never the first match
//!    for any request of the alphabet — checked exhaustively, not sampled;
//! 2. every witness reproduces what it claims: `RouteTable::find` sends it to the named
//!    earlier route, and the shadowed route, alone in a table, matches it;
//! 3. a "no catch-all" witness matches no route.

use keel_check::shadow::{CatchAll, ShadowKind, analyze, catch_all};
use keel_config::{Config, parse};
use keel_route::{RequestShape, RouteTable};
use proptest::prelude::*;

const HOSTS: [Option<&str>; 6] = [
    None,
    Some("a.com"),
    Some("b.a.com"),
    Some("*.a.com"),
    Some("c.org"),
    Some("*.com"),
];
const PATHS: [Option<(&str, &str)>; 11] = [
    None,
    Some(("path", "/")),
    Some(("path", "/x")),
    Some(("path", "/x/y")),
    Some(("path_prefix", "/x")),
    Some(("path_prefix", "/x/")),
    Some(("path_prefix", "/")),
    Some(("path_prefix", "/xy")),
    Some(("path_regex", "/x/[a-z]+")),
    Some(("path_regex", "/(x|y)")),
    Some(("path_regex", "/x.*")),
];
const METHODS: [Option<&str>; 5] = [
    None,
    Some("[\"GET\"]"),
    Some("[\"POST\"]"),
    Some("[\"GET\", \"POST\"]"),
    Some("[\"PUT\"]"),
];
const HEADERS: [Option<&str>; 5] = [
    None,
    Some("{ h = \"1\" }"),
    Some("{ h = \"2\" }"),
    Some("{ g = \"1\" }"),
    Some("{ h = \"1\", g = \"1\" }"),
];

/// Every request of the alphabet (including hosts with ports, upper case, none).
fn all_requests() -> Vec<RequestShape> {
    let methods = ["GET", "POST", "PUT", "DELETE", "get"];
    let hosts = [
        "",
        "a.com",
        "b.a.com",
        "z.a.com",
        "c.org",
        "a.com:8080",
        "A.COM",
        "other.net",
        "x.com",
    ];
    let paths = [
        "/", "/x", "/x/", "/x/y", "/xy", "/x/ab", "/y", "/z", "/x/y/z",
    ];
    let headers: [&[(&str, &str)]; 6] = [
        &[],
        &[("h", "1")],
        &[("h", "2")],
        &[("h", "3")],
        &[("g", "1")],
        &[("h", "1"), ("g", "1")],
    ];
    let mut out = Vec::new();
    for m in methods {
        for h in hosts {
            for p in paths {
                for hs in headers {
                    let mut r = RequestShape {
                        method: m.to_string(),
                        host: h.to_string(),
                        path: p.to_string(),
                        ..RequestShape::default()
                    };
                    for (n, v) in hs {
                        r = r.with_header(n, v);
                    }
                    out.push(r);
                }
            }
        }
    }
    out
}

type RouteSpec = (usize, usize, usize, usize);

fn config_text(routes: &[RouteSpec]) -> String {
    let mut text = String::from(
        "[listeners.web]\naddr = \"127.0.0.1:8080\"\n[services.web]\nallow_no_identity = true\n[pools.web]\nservice = \"web\"\nbackends = [\"127.0.0.1:9001\"]\n",
    );
    for (i, (host, path, methods, headers)) in routes.iter().enumerate() {
        text.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\nservice = \"web\"\npool = \"web\"\n"
        ));
        if let Some(h) = HOSTS[*host] {
            text.push_str(&format!("host = \"{h}\"\n"));
        }
        if let Some((key, value)) = PATHS[*path] {
            text.push_str(&format!("{key} = \"{value}\"\n"));
        }
        if let Some(m) = METHODS[*methods] {
            text.push_str(&format!("methods = {m}\n"));
        }
        if let Some(h) = HEADERS[*headers] {
            text.push_str(&format!("headers = {h}\n"));
        }
    }
    text
}

fn route_spec() -> impl Strategy<Value = RouteSpec> {
    (
        0..HOSTS.len(),
        0..PATHS.len(),
        0..METHODS.len(),
        0..HEADERS.len(),
    )
}

fn compiled(routes: &[RouteSpec]) -> (Config, RouteTable) {
    let parsed = parse(&config_text(routes));
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let table = RouteTable::compile(&parsed.config).expect("compiles");
    (parsed.config, table)
}

/// A table holding only `route` of `config`.
fn alone(config: &Config, route: usize) -> RouteTable {
    let mut single = config.clone();
    single.routes = vec![config.routes[route].clone()];
    RouteTable::compile(&single).expect("compiles")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn fully_shadowed_routes_never_match_first(routes in prop::collection::vec(route_spec(), 1..7)) {
        let (config, table) = compiled(&routes);
        let requests = all_requests();
        for finding in analyze(&config, &table).findings {
            if matches!(finding.kind, ShadowKind::FullyShadowed | ShadowKind::MatchesNothing) {
                for request in &requests {
                    prop_assert_ne!(
                        table.find(request),
                        Some(finding.route),
                        "route r{} reported {:?} but {} reaches it",
                        finding.route, finding.kind, request
                    );
                }
            }
        }
    }

    #[test]
    fn witnesses_reproduce_their_shadowing(routes in prop::collection::vec(route_spec(), 1..7)) {
        let (config, table) = compiled(&routes);
        for finding in analyze(&config, &table).findings {
            if finding.kind != ShadowKind::MatchesNothing {
                prop_assert!(!finding.witnesses.is_empty(), "{finding:?}");
            }
            let own = alone(&config, finding.route);
            for witness in &finding.witnesses {
                prop_assert!(witness.winner < finding.route);
                prop_assert_eq!(table.find(&witness.request), Some(witness.winner), "{}", witness.request);
                prop_assert_eq!(own.find(&witness.request), Some(0), "r{} alone does not match {}", finding.route, witness.request);
            }
        }
        if let CatchAll::Missing(request) = catch_all(&config, &table) {
            prop_assert_eq!(table.find(&*request), None, "{}", request);
        }
    }

    #[test]
    fn a_proved_catch_all_leaves_no_request_unrouted(routes in prop::collection::vec(route_spec(), 1..7)) {
        let (config, table) = compiled(&routes);
        if matches!(catch_all(&config, &table), CatchAll::Covered | CatchAll::Route(_)) {
            for request in all_requests() {
                prop_assert!(table.find(&request).is_some(), "{} has no route", request);
            }
        }
    }
}

#[test]
fn the_alphabet_exercises_every_verdict() {
    // Guards the properties above against vacuity: each kind of finding does occur.
    let union = [(1, 0, 1, 0), (1, 0, 2, 0), (1, 4, 3, 0)];
    let (config, table) = compiled(&union);
    let kinds: Vec<ShadowKind> = analyze(&config, &table)
        .findings
        .iter()
        .map(|f| f.kind)
        .collect();
    assert_eq!(kinds, vec![ShadowKind::FullyShadowed]);

    let partial = [(0, 4, 1, 0), (1, 5, 0, 0)];
    let (config, table) = compiled(&partial);
    let kinds: Vec<ShadowKind> = analyze(&config, &table)
        .findings
        .iter()
        .map(|f| f.kind)
        .collect();
    assert_eq!(kinds, vec![ShadowKind::PartlyShadowed]);

    let regex = [(0, 10, 0, 0), (0, 8, 0, 0)];
    let (config, table) = compiled(&regex);
    let kinds: Vec<ShadowKind> = analyze(&config, &table)
        .findings
        .iter()
        .map(|f| f.kind)
        .collect();
    assert_eq!(kinds, vec![ShadowKind::MayBeFullyShadowed]);
}
