//! Redirect routes (`redirect = { scheme, host, port, path_prefix, status }`, a route
//! without service or pool) and the route-test key that judges them
//! (`expect.location`): values, the default status, the `Location` the rule builds, and
//! mistakes reported where they stand (`file:line:col` comes from these spans).

use keel_config::{RedirectRequest, RedirectScheme, codes, defaults, line_col, parse};

const HEAD: &str = "[listeners.web]\naddr = \"127.0.0.1:8080\"\n\n[services.s]\n\n[pools.p]\nservice = \"s\"\nbackends = [\"127.0.0.1:9001\"]\n\n";

fn with_route(route: &str) -> String {
    format!("{HEAD}[[routes]]\nname = \"r\"\n{route}\n")
}

#[test]
fn a_redirect_route_needs_no_service_or_pool_and_defaults_to_308() {
    let parsed = parse(&with_route(
        "listener = \"web\"\nredirect = { scheme = \"https\" }",
    ));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let route = &parsed.config.routes[0];
    assert!(route.service().is_none() && route.target().is_none());
    assert!(route.answers_itself() && route.respond().is_none());
    let redirect = &route.redirect().expect("a redirect").value;
    assert_eq!(redirect.status.value, defaults::REDIRECT_STATUS);
    assert_eq!(redirect.status.value, 308);
    assert_eq!(
        redirect.scheme.as_ref().map(|s| s.value),
        Some(RedirectScheme::Https)
    );
    assert!(redirect.host.is_none() && redirect.port.is_none());
}

#[test]
fn every_key_is_read_and_the_prefix_the_route_matched_is_replaced() {
    let parsed = parse(&with_route(
        "path_prefix = \"/old\"\nredirect = { scheme = \"https\", host = \"WWW.Example.com\", port = 8443, path_prefix = \"/new\", status = 301 }",
    ));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let redirect = &parsed.config.routes[0].redirect().expect("redirect").value;
    assert_eq!(redirect.status.value, 301);
    assert_eq!(
        redirect.host.as_ref().map(|h| h.value.as_str()),
        Some("www.example.com")
    );
    assert_eq!(redirect.port.as_ref().map(|p| p.value), Some(8443));
    let location = redirect.location(&RedirectRequest {
        scheme: RedirectScheme::Http,
        authority: Some("shop.example.com"),
        path_and_query: "/old/cart?id=7",
    });
    assert_eq!(
        location.as_deref(),
        Some("https://www.example.com:8443/new/cart?id=7")
    );
    assert_eq!(
        redirect.describe(),
        "301 to https://www.example.com:8443/new"
    );
}

#[test]
fn redirect_mistakes_are_reported_where_they_stand() {
    let cases = [
        (
            "redirect = { scheme = \"https\" }\nservice = \"s\"",
            codes::CONFLICTING_KEYS,
            "\"s\"",
        ),
        (
            "redirect = { scheme = \"https\" }\npool = \"p\"",
            codes::CONFLICTING_KEYS,
            "\"p\"",
        ),
        (
            "redirect = { scheme = \"https\" }\nrespond = { status = 200 }",
            codes::CONFLICTING_KEYS,
            "{ status = 200 }",
        ),
        (
            "redirect = { status = 301 }",
            codes::MISSING_KEY,
            "{ status = 301 }",
        ),
        (
            "redirect = { scheme = \"https\", status = 303 }",
            codes::INVALID_VALUE,
            "303",
        ),
        (
            "redirect = { scheme = \"https\", status = 200 }",
            codes::INVALID_VALUE,
            "200",
        ),
        (
            "redirect = { scheme = \"ftp\" }",
            codes::INVALID_VALUE,
            "\"ftp\"",
        ),
        (
            "redirect = { host = \"*.example.com\" }",
            codes::INVALID_VALUE,
            "\"*.example.com\"",
        ),
        (
            "redirect = { host = \"a.com/x\" }",
            codes::INVALID_VALUE,
            "\"a.com/x\"",
        ),
        (
            "redirect = { scheme = \"https\", port = 0 }",
            codes::INVALID_VALUE,
            "0",
        ),
        (
            "redirect = { path_prefix = \"new\" }",
            codes::INVALID_VALUE,
            "\"new\"",
        ),
        (
            "path_regex = \"/a+\"\nredirect = { path_prefix = \"/b\" }",
            codes::INVALID_VALUE,
            "\"/b\"",
        ),
        (
            "redirect = { scheme = \"https\", colour = 1 }",
            codes::UNKNOWN_KEY,
            "colour",
        ),
    ];
    for (route, code, at) in cases {
        let source = with_route(route);
        let parsed = parse(&source);
        let Some(found) = parsed.diagnostics.iter().find(|d| d.code == code) else {
            panic!("{route}: no {code} in {:#?}", parsed.diagnostics);
        };
        let span = found.span.expect("a position");
        assert_eq!(&source[span.start..span.end], at, "{route}");
        assert!(parsed.config.routes.is_empty(), "{route}: route refused");
    }
    // The conflict points at the key's line and column.
    let source = with_route("redirect = { scheme = \"https\" }\nservice = \"s\"");
    let parsed = parse(&source);
    let span = parsed.diagnostics[0].span.expect("position");
    assert_eq!(line_col(&source, span.start), (13, 11));
}

#[test]
fn route_tests_take_an_expected_location_and_keep_the_urls_scheme_port_and_query() {
    let parsed = parse(&format!(
        "{}[[tests]]\nrequest = \"GET http://shop.example.com:8080/x?q=1\"\nexpect = {{ status = 308, location = \"https://shop.example.com/x?q=1\" }}\n",
        with_route("redirect = { scheme = \"https\" }")
    ));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let test = &parsed.config.tests[0];
    assert_eq!(test.scheme, RedirectScheme::Http);
    assert_eq!(test.port, Some(8080));
    assert_eq!(test.query.as_deref(), Some("q=1"));
    assert_eq!(test.path, "/x");
    assert_eq!(
        test.expect.location.as_deref(),
        Some("https://shop.example.com/x?q=1")
    );
}
