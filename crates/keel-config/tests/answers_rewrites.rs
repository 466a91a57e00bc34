//! Fixed answers (`respond = { .. }`, a route without service or pool), path rewrites
//! (`rewrite = { path_prefix }`) and the route-test keys that judge them (`client`,
//! `expect.rewritten_path`): values, defaults, and mistakes reported where they stand.

use keel_config::{codes, defaults, parse};

const HEAD: &str = "[listeners.web]\naddr = \"127.0.0.1:8080\"\n\n[services.s]\n\n[pools.p]\nservice = \"s\"\nbackends = [\"127.0.0.1:9001\"]\n\n";

fn with_route(route: &str) -> String {
    format!("{HEAD}[[routes]]\nname = \"r\"\n{route}\n")
}

#[test]
fn a_fixed_answer_route_needs_no_service_or_pool() {
    let parsed = parse(&with_route(
        "path = \"/status.txt\"\nrespond = { status = 503, body = \"down\\n\", content_type = \"text/plain\" }",
    ));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let route = &parsed.config.routes[0];
    assert!(route.service().is_none() && route.target().is_none());
    let answer = &route.respond().expect("a fixed answer").value;
    assert_eq!(answer.status.value, 503);
    assert_eq!(answer.body, "down\n");
    assert_eq!(answer.content_type, "text/plain");

    let parsed = parse(&with_route("respond = { status = 204 }"));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let answer = &parsed.config.routes[0].respond().expect("answer").value;
    assert_eq!(answer.body, "");
    assert_eq!(answer.content_type, defaults::FIXED_ANSWER_CONTENT_TYPE);
}

#[test]
fn fixed_answer_mistakes_are_reported_where_they_stand() {
    let cases = [
        (
            "respond = { status = 200 }\nservice = \"s\"",
            codes::CONFLICTING_KEYS,
            "\"s\"",
        ),
        (
            "respond = { body = \"x\" }",
            codes::MISSING_KEY,
            "{ body = \"x\" }",
        ),
        ("respond = { status = 101 }", codes::INVALID_VALUE, "101"),
        ("respond = { status = 700 }", codes::INVALID_VALUE, "700"),
        (
            "respond = { status = 200, content_type = \"a\\nb\" }",
            codes::INVALID_VALUE,
            "\"a\\nb\"",
        ),
        (
            "respond = { status = 200, colour = 1 }",
            codes::UNKNOWN_KEY,
            "colour",
        ),
        ("path = \"/x\"", codes::MISSING_KEY, ""),
    ];
    for (route, code, at) in cases {
        let source = with_route(route);
        let parsed = parse(&source);
        let found = parsed.diagnostics.iter().find(|d| d.code == code);
        let Some(found) = found else {
            panic!("{route}: no {code} in {:#?}", parsed.diagnostics);
        };
        if !at.is_empty() {
            let span = found.span.expect("a position");
            assert_eq!(&source[span.start..span.end], at, "{route}");
        }
    }
    let big = format!(
        "respond = {{ status = 200, body = \"{}\" }}",
        "x".repeat(defaults::MAX_FIXED_ANSWER_BODY + 1)
    );
    assert!(parse(&with_route(&big)).has_errors());
}

#[test]
fn a_rewrite_replaces_the_prefix_its_route_matched() {
    let parsed = parse(&with_route(
        "path_prefix = \"/api\"\nservice = \"s\"\npool = \"p\"\nrewrite = { path_prefix = \"/v2\" }",
    ));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let rewrite = &parsed.config.routes[0]
        .rewrite
        .as_ref()
        .expect("rewrite")
        .value;
    assert_eq!(
        rewrite.apply("/api", "/api/users?id=1").as_deref(),
        Some("/v2/users?id=1")
    );
}

#[test]
fn rewrite_mistakes_are_reported_where_they_stand() {
    let cases = [
        // Only a prefix match says what to replace.
        (
            "path = \"/api\"\nrewrite = { path_prefix = \"/v2\" }",
            "{ path_prefix = \"/v2\" }",
        ),
        (
            "path_prefix = \"/api\"\nrewrite = { path_prefix = \"v2\" }",
            "\"v2\"",
        ),
        (
            "path_prefix = \"/api\"\nrewrite = { path_prefix = \"/v 2\" }",
            "\"/v 2\"",
        ),
        (
            "path_prefix = \"/api\"\nrewrite = { path_prefix = \"/v2?x=1\" }",
            "\"/v2?x=1\"",
        ),
    ];
    for (route, at) in cases {
        let source = with_route(&format!("{route}\nservice = \"s\"\npool = \"p\""));
        let parsed = parse(&source);
        let found = parsed
            .diagnostics
            .iter()
            .find(|d| d.code == codes::INVALID_VALUE)
            .unwrap_or_else(|| panic!("{route}: {:#?}", parsed.diagnostics));
        let span = found.span.expect("a position");
        assert_eq!(&source[span.start..span.end], at, "{route}");
    }
    let both = with_route(
        "path_prefix = \"/a\"\nrespond = { status = 200 }\nrewrite = { path_prefix = \"/b\" }",
    );
    assert!(
        parse(&both)
            .diagnostics
            .iter()
            .any(|d| d.code == codes::CONFLICTING_KEYS)
    );
}

#[test]
fn route_tests_take_a_client_and_a_rewritten_path() {
    let source = format!(
        "{}\n[[tests]]\nrequest = \"GET http://shop/api/x\"\nclient = \"203.0.113.9\"\nexpect = {{ status = 403, rewritten_path = \"/v2/x\" }}\n",
        with_route("path_prefix = \"/api\"\nservice = \"s\"\npool = \"p\"")
    );
    let parsed = parse(&source);
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let test = &parsed.config.tests[0];
    assert_eq!(test.client, Some("203.0.113.9".parse().expect("ip")));
    assert_eq!(test.expect.rewritten_path.as_deref(), Some("/v2/x"));
    assert!(parse(&source.replace("203.0.113.9", "shop")).has_errors());
}

#[test]
fn a_rate_limit_reads_its_rule_with_defaults_and_reports_mistakes() {
    let forward = "service = \"s\"\npool = \"p\"\n";
    let parsed = parse(&with_route(&format!(
        "{forward}rate_limit = {{ requests = 100, per = \"1m\", burst = 50, key = \"cookie:session\" }}"
    )));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let limit = &parsed.config.routes[0]
        .rate_limit
        .as_ref()
        .expect("limit")
        .value;
    assert_eq!((limit.requests, limit.burst), (100, 50));
    assert_eq!(limit.per, std::time::Duration::from_secs(60));
    assert_eq!(limit.key, keel_config::RateKey::Cookie("session".into()));
    assert_eq!(limit.describe(), "100/1m burst 50 by cookie:session");

    let parsed = parse(&with_route(&format!(
        "{forward}rate_limit = {{ requests = 10 }}"
    )));
    let limit = &parsed.config.routes[0]
        .rate_limit
        .as_ref()
        .expect("limit")
        .value;
    assert_eq!(
        limit.burst, 10,
        "the burst defaults to one period's requests"
    );
    assert_eq!(limit.per, defaults::RATE_LIMIT_PER);
    assert_eq!(limit.key, keel_config::RateKey::ClientIp);

    for (rule, at) in [
        ("{ requests = 0 }", "0"),
        ("{ requests = 5, per = \"0s\" }", "\"0s\""),
        ("{ requests = 5, key = \"ip\" }", "\"ip\""),
        ("{ requests = 5, key = \"header:a b\" }", "\"header:a b\""),
    ] {
        let source = with_route(&format!("{forward}rate_limit = {rule}"));
        let parsed = parse(&source);
        let found = parsed
            .diagnostics
            .iter()
            .find(|d| d.code == codes::INVALID_VALUE)
            .unwrap_or_else(|| panic!("{rule}: {:#?}", parsed.diagnostics));
        let span = found.span.expect("a position");
        assert_eq!(&source[span.start..span.end], at, "{rule}");
    }
    assert!(
        parse(&with_route(&format!(
            "{forward}rate_limit = {{ per = \"1s\" }}"
        )))
        .has_errors()
    );
}

#[test]
fn trusted_proxies_and_proxy_protocol_are_read() {
    let parsed = parse(&format!(
        "{}[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
        with_route("service = \"s\"\npool = \"p\"")
    ));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let blocks: Vec<String> = parsed
        .config
        .server
        .trusted_proxies
        .iter()
        .map(|b| b.value.to_string())
        .collect();
    assert_eq!(blocks, ["10.0.0.0/8", "::1/128"]);
    assert!(!parsed.config.listeners["web"].proxy_protocol);
    let parsed = parse(&with_route("service = \"s\"\npool = \"p\"").replace(
        "addr = \"127.0.0.1:8080\"",
        "addr = \"127.0.0.1:8080\"\nproxy_protocol = true",
    ));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    assert!(parsed.config.listeners["web"].proxy_protocol);
    let bad = format!(
        "{}[server]\ntrusted_proxies = [\"proxy.internal\"]\n",
        with_route("service = \"s\"\npool = \"p\"")
    );
    assert!(parse(&bad).has_errors());
}
