//! Route tests (`[[tests]]`): every test request is routed with `RouteTable::find`, the
//! function the data plane uses, and compared with its expectation (K107); routes no
//! test reaches are listed as coverage (K301).
//!
//! An expectation holds when every field given holds:
//! - `route`: the first matching route has this name;
//! - `pool`: the route sends to this pool (for a split: an arm with weight above zero);
//! - `service`: the route declares this service and every pool it can send to (weight
//!   above zero) serves it, so a route aimed at another service's pool fails;
//! - `status = 404`: no route matches (Keel answers `404` with `keel-error: no-route`);
//!   `403`, `429`, a fixed answer's or a redirect's status, `rewritten_path` and a
//!   redirect's `location` are judged by the route's policies (see
//!   [`crate::policy_tests`]); any other status only requires that some route
//!   matches, since the backend's answer is not known before serving.
//!
//! A test request comes in on the listener its URL reaches (`https` on a TLS listener,
//! `http` on a plain one, the port when the URL names one) when exactly one does, so
//! routes limited to other listeners (a `to-https` redirect on the plain listener) are
//! passed over as the data plane passes them over.

use std::collections::HashSet;

use keel_config::{Config, Diagnostic, RouteTest, codes};
use keel_route::{RequestShape, RouteId, RouteTable};
use serde_json::{Value, json};

use crate::shadow::request_json;

/// Uncovered routes named (with a related span) in the coverage note.
const MAX_UNCOVERED_SHOWN: usize = 10;

/// The result of one route test.
#[derive(Clone, Debug)]
pub struct TestOutcome {
    /// Index into `config.tests`.
    pub test: usize,
    /// The request as routed.
    pub request: RequestShape,
    /// The route that matched, if any.
    pub route: Option<RouteId>,
    /// Why it failed; empty when it passed.
    pub failures: Vec<String>,
}

impl TestOutcome {
    /// True when every expectation held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The request a test sends.
pub fn test_request(test: &RouteTest) -> RequestShape {
    let mut request = RequestShape::new(&test.method, &test.host, &test.path);
    for (name, value) in &test.headers {
        request = request.with_header(name, value);
    }
    request
}

/// The request a test sends, on the listener its URL reaches in `config` when exactly
/// one does (by scheme, TLS for `https`, and port; see
/// [`crate::redirects::listeners_for`]); otherwise on no listener in particular, so
/// that routes limited to listeners are not passed over.
pub fn test_request_in(config: &Config, test: &RouteTest) -> RequestShape {
    let mut request = test_request(test);
    if let [listener] = crate::redirects::listeners_for(config, test.scheme, test.port)[..] {
        request.listener = Some(listener.to_string());
    }
    request
}

/// Runs every route test of `config` against `table`.
pub fn run_tests(config: &Config, table: &RouteTable) -> Vec<TestOutcome> {
    config
        .tests
        .iter()
        .enumerate()
        .map(|(index, test)| {
            let request = test_request_in(config, test);
            let route = table.find(&request);
            TestOutcome {
                test: index,
                failures: failures(config, table, test, route),
                request,
                route,
            }
        })
        .collect()
}

fn failures(
    config: &Config,
    table: &RouteTable,
    test: &RouteTest,
    route: Option<RouteId>,
) -> Vec<String> {
    let expect = &test.expect;
    let mut out = Vec::new();
    let Some(id) = route else {
        if expect.status != Some(404) {
            out.push(format!(
                "expected {}, got 404 (no route matches)",
                describe_expectation(test)
            ));
        }
        return out;
    };
    let compiled = table.route(id);
    let got_name = &*compiled.name;
    if expect.status == Some(404) {
        out.push(format!("expected 404 (no route), got route `{got_name}`"));
    }
    if let Some(configured) = config.routes.get(id) {
        crate::policy_tests::failures(configured, test, &mut out);
    }
    if let Some(name) = &expect.route {
        if config.route(name).is_none() {
            out.push(format!(
                "expected route `{name}`, but no route has that name"
            ));
        } else if name != got_name {
            out.push(format!("expected route `{name}`, got route `{got_name}`"));
        }
    }
    let live: Vec<(&str, &str)> = compiled
        .targets
        .iter()
        .filter(|(_, weight)| *weight > 0)
        .filter_map(|(pool, _)| config.pools.get_index(*pool))
        .map(|(name, pool)| (name.as_str(), pool.service.value.as_str()))
        .collect();
    if let Some(pool) = &expect.pool
        && !live.iter().any(|(name, _)| name == pool)
    {
        out.push(format!(
            "expected pool `{pool}`, got {}",
            describe_pools(config, table, id)
        ));
    }
    if let Some(service) = &expect.service {
        let declared = config
            .services
            .get_index(compiled.service.unwrap_or(usize::MAX))
            .map_or("none (Keel answers itself)", |(name, _)| name.as_str());
        if declared != service {
            out.push(format!(
                "expected service `{service}`, got route `{got_name}` of service `{declared}`"
            ));
        }
        for (pool, pool_service) in &live {
            if pool_service != service {
                out.push(format!(
                    "expected service `{service}`, but pool `{pool}` of route `{got_name}` serves `{pool_service}`"
                ));
            }
        }
    }
    out
}

/// `route `a`, service `b``: the fields a test expects.
fn describe_expectation(test: &RouteTest) -> String {
    let expect = &test.expect;
    let mut parts = Vec::new();
    if let Some(route) = &expect.route {
        parts.push(format!("route `{route}`"));
    }
    if let Some(pool) = &expect.pool {
        parts.push(format!("pool `{pool}`"));
    }
    if let Some(service) = &expect.service {
        parts.push(format!("service `{service}`"));
    }
    if let Some(status) = expect.status {
        parts.push(format!("status {status}"));
    }
    if let Some(path) = &expect.rewritten_path {
        parts.push(format!("rewritten path `{path}`"));
    }
    if let Some(location) = &expect.location {
        parts.push(format!("location `{location}`"));
    }
    parts.join(", ")
}

/// `pool `a` (70%), pool `b` (30%)`.
fn describe_pools(config: &Config, table: &RouteTable, id: RouteId) -> String {
    let route = table.route(id);
    let pools: Vec<String> = route
        .shares()
        .map(|(pool, share)| {
            let name = config
                .pools
                .get_index(pool)
                .map_or("?", |(n, _)| n.as_str());
            format!("pool `{name}` ({:.0}%)", share * 100.0)
        })
        .collect();
    pools.join(", ")
}

fn expected_json(test: &RouteTest) -> Value {
    json!({
        "route": test.expect.route,
        "pool": test.expect.pool,
        "service": test.expect.service,
        "status": test.expect.status,
        "location": test.expect.location,
    })
}

fn got_json(config: &Config, table: &RouteTable, route: Option<RouteId>) -> Value {
    let Some(id) = route else {
        return json!({ "route": null, "status": 404, "pools": [] });
    };
    let compiled = table.route(id);
    let pools: Vec<Value> = compiled
        .shares()
        .map(|(pool, share)| {
            let (name, p) = config
                .pools
                .get_index(pool)
                .map_or(("?", None), |(n, p)| (n.as_str(), Some(p)));
            json!({ "pool": name, "share": share, "service": p.map(|p| p.service.value.as_str()) })
        })
        .collect();
    json!({
        "route": &*compiled.name,
        "service": compiled.service.and_then(|s| config.services.get_index(s)).map(|(n, _)| n),
        "status": null,
        "pools": pools,
    })
}

/// K107 for every failing test and one K301 coverage note.
pub fn diagnostics(config: &Config, table: &RouteTable) -> Vec<Diagnostic> {
    let outcomes = run_tests(config, table);
    let mut out = Vec::new();
    for outcome in &outcomes {
        if outcome.passed() {
            continue;
        }
        let Some(test) = config.tests.get(outcome.test) else {
            continue;
        };
        let got = match outcome.route {
            Some(id) => format!(
                "got: route `{}` → {}",
                table.route(id).name,
                describe_pools(config, table, id)
            ),
            None => "got: 404, no route matches (keel-error: no-route)".to_string(),
        };
        let mut diagnostic = Diagnostic::error(
            codes::TEST_FAILED,
            format!("route test failed: {}", outcome.request),
        )
        .at(test.span, "this expectation does not hold");
        for failure in &outcome.failures {
            diagnostic = diagnostic.with_note(failure.clone());
        }
        if let Some(route) = outcome.route.and_then(|id| config.routes.get(id)) {
            diagnostic = diagnostic.with_related(route.name.span, "the route this request matches");
        }
        out.push(
            diagnostic
                .with_note(got)
                .with_help("fix the routes so the request goes where the test says, or fix the test if the expectation is wrong")
                .with_data(json!({
                    "request": request_json(&outcome.request),
                    "expected": expected_json(test),
                    "got": got_json(config, table, outcome.route),
                    "failures": outcome.failures,
                })),
        );
    }
    out.extend(coverage(config, &outcomes));
    out
}

fn coverage(config: &Config, outcomes: &[TestOutcome]) -> Option<Diagnostic> {
    if config.routes.is_empty() {
        return None;
    }
    let covered: HashSet<RouteId> = outcomes.iter().filter_map(|o| o.route).collect();
    let uncovered: Vec<&keel_config::Route> = config
        .routes
        .iter()
        .enumerate()
        .filter(|(id, _)| !covered.contains(id))
        .map(|(_, r)| r)
        .collect();
    let first = uncovered.first()?;
    let total = config.routes.len();
    let names: Vec<&str> = uncovered.iter().map(|r| r.name.value.as_str()).collect();
    let shown: Vec<String> = names
        .iter()
        .take(MAX_UNCOVERED_SHOWN)
        .map(|n| format!("`{n}`"))
        .collect();
    let more = names.len().saturating_sub(MAX_UNCOVERED_SHOWN);
    let mut diagnostic = Diagnostic::note(
        codes::COVERAGE,
        format!(
            "route coverage: {} of {total} routes exercised by a route test",
            total - uncovered.len()
        ),
    )
    .at(first.name.span, "no test reaches this route")
    .with_note(format!(
        "not exercised: {}{}",
        shown.join(", "),
        if more > 0 { format!(" and {more} more") } else { String::new() }
    ))
    .with_help("add [[tests]] with request = \"GET https://host/path\" and expect = { route = \"...\" } for these routes")
    .with_data(json!({ "routes": total, "uncovered": names }));
    for route in uncovered.iter().skip(1).take(MAX_UNCOVERED_SHOWN - 1) {
        diagnostic = diagnostic.with_related(route.name.span, "not exercised");
    }
    Some(diagnostic)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[listeners.web]
addr = "127.0.0.1:8080"
[services.web]
allow_no_identity = true
[services.checkout]
allow_no_identity = true
[pools.web]
service = "web"
backends = ["127.0.0.1:9001"]
[pools.checkout]
service = "checkout"
backends = ["127.0.0.1:9002"]
[pools.checkout-next]
service = "checkout"
backends = ["127.0.0.1:9003"]
[[routes]]
name = "checkout"
host = "shop.example.com"
path_prefix = "/checkout"
service = "checkout"
split = [{ pool = "checkout", weight = 9 }, { pool = "checkout-next", weight = 1 }, { pool = "web", weight = 0 }]
[[routes]]
name = "web"
host = "shop.example.com"
service = "web"
pool = "web"
"#;

    fn outcomes(tests: &str) -> Vec<TestOutcome> {
        let parsed = keel_config::parse(&format!("{CONFIG}{tests}"));
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let table = RouteTable::compile(&parsed.config).expect("compiles");
        run_tests(&parsed.config, &table)
    }

    #[test]
    fn split_arms_with_weight_satisfy_a_pool_expectation() {
        let out = outcomes(
            "[[tests]]\nrequest = \"GET https://shop.example.com/checkout\"\nexpect = { route = \"checkout\", pool = \"checkout-next\", service = \"checkout\" }\n\
             [[tests]]\nrequest = \"GET https://shop.example.com/checkout\"\nexpect = { pool = \"web\" }\n",
        );
        assert!(out[0].passed(), "{:?}", out[0].failures);
        assert!(!out[1].passed(), "a zero-weight arm gets no traffic");
    }

    #[test]
    fn failures_say_expected_and_got() {
        let out = outcomes(
            "[[tests]]\nrequest = \"GET https://shop.example.com/cart\"\nexpect = { route = \"checkout\" }\n\
             [[tests]]\nrequest = \"GET https://other.example.com/\"\nexpect = { status = 404 }\n\
             [[tests]]\nrequest = \"GET https://other.example.com/\"\nexpect = { route = \"web\" }\n",
        );
        assert_eq!(
            out[0].failures,
            vec!["expected route `checkout`, got route `web`"]
        );
        assert!(out[1].passed());
        assert_eq!(
            out[2].failures,
            vec!["expected route `web`, got 404 (no route matches)"]
        );
    }
}
