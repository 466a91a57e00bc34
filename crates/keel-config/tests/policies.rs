//! A route's policy keys: `allow` / `deny` address lists, their values, and the
//! mistakes reported where they stand.

use keel_config::{AccessMode, codes, parse};

const BASE: &str = "[listeners.web]\naddr = \"127.0.0.1:8080\"\n\n[services.s]\n\n[pools.p]\nservice = \"s\"\nbackends = [\"127.0.0.1:9001\"]\n\n[[routes]]\nname = \"r\"\nservice = \"s\"\npool = \"p\"\n";

#[test]
fn a_route_without_a_list_serves_every_client() {
    let parsed = parse(BASE);
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    assert!(parsed.config.routes[0].access.is_none());
}

#[test]
fn an_allow_list_keeps_its_blocks_once_in_file_order() {
    let parsed = parse(&format!(
        "{BASE}allow = [\"10.0.0.0/8\", \"2001:db8::/32\", \"10.0.0.0/8\", \"192.0.2.7\"]\n"
    ));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let access = &parsed.config.routes[0]
        .access
        .as_ref()
        .expect("an access rule")
        .value;
    assert_eq!(access.mode, AccessMode::Allow);
    let blocks: Vec<String> = access.blocks.iter().map(|b| b.value.to_string()).collect();
    assert_eq!(blocks, ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]);
    assert!(access.admits("10.2.3.4".parse().expect("ip")));
    assert!(!access.admits("127.0.0.1".parse().expect("ip")));
}

#[test]
fn bad_blocks_are_reported_where_they_stand() {
    let source = format!("{BASE}deny = [\"10.1.2.3/8\", \"::1/129\", \"shop\", 7]\n");
    let parsed = parse(&source);
    assert!(parsed.has_errors());
    let pointed: Vec<(&str, &str)> = parsed
        .diagnostics
        .iter()
        .filter_map(|d| d.span.map(|span| (d.code, &source[span.start..span.end])))
        .collect();
    assert_eq!(
        pointed,
        [
            (codes::INVALID_VALUE, "\"10.1.2.3/8\""),
            (codes::INVALID_VALUE, "\"::1/129\""),
            (codes::INVALID_VALUE, "\"shop\""),
            (codes::WRONG_TYPE, "7"),
        ]
    );
    assert!(
        parsed.diagnostics[0].message.contains("10.0.0.0/8"),
        "the message names the block meant: {}",
        parsed.diagnostics[0].message
    );
    assert!(
        parsed.config.routes.is_empty(),
        "a route with a bad list is not kept"
    );
}

#[test]
fn a_route_takes_allow_or_deny_not_both() {
    let source = format!("{BASE}allow = [\"10.0.0.0/8\"]\ndeny = [\"10.9.0.0/16\"]\n");
    let parsed = parse(&source);
    assert_eq!(parsed.diagnostics.len(), 1, "{:#?}", parsed.diagnostics);
    let diagnostic = &parsed.diagnostics[0];
    assert_eq!(diagnostic.code, codes::CONFLICTING_KEYS);
    let span = diagnostic.span.expect("span");
    assert_eq!(&source[span.start..span.end], "[\"10.9.0.0/16\"]");
}

#[test]
fn the_semantic_diff_names_an_address_rule_change() {
    let old = parse(BASE).config;
    let new = parse(&format!("{BASE}deny = [\"0.0.0.0/0\", \"::/0\"]\n")).config;
    let diff = keel_config::semantic_diff(&old, &new);
    let route: Vec<(&str, Option<&str>, Option<&str>)> = diff.routes[0]
        .fields
        .iter()
        .map(|f| (f.field.as_str(), f.old.as_deref(), f.new.as_deref()))
        .collect();
    assert_eq!(
        route,
        [(
            "client addresses",
            Some("any client"),
            Some("deny 0.0.0.0/0,::/0")
        )]
    );
}

#[test]
fn header_rules_are_read_lower_case_in_file_order() {
    let parsed = parse(&format!(
        "{BASE}request_headers = {{ set = {{ \"X-Shop\" = \"eu\" }}, remove = [\"X-Debug\", \"x-debug\"] }}\nresponse_headers = {{ remove = [\"server\"] }}\n"
    ));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let route = &parsed.config.routes[0];
    let request = &route.request_headers.as_ref().expect("rules").value;
    assert_eq!(request.describe(), "set x-shop=eu; remove x-debug");
    let response = &route.response_headers.as_ref().expect("rules").value;
    assert_eq!(response.describe(), "remove server");
}

#[test]
fn header_rule_mistakes_are_reported_where_they_stand() {
    let source = format!(
        "{BASE}request_headers = {{ set = {{ \"bad name\" = \"1\", \"x-ok\" = \"a\\nb\" }}, remove = [\"X-Forwarded-For\", \"host\"] }}\nresponse_headers = {{ remove = [\"x-request-id\", \"Keel-Error\"], add = 1 }}\n"
    );
    let parsed = parse(&source);
    let pointed: Vec<(&str, &str)> = parsed
        .diagnostics
        .iter()
        .filter_map(|d| d.span.map(|span| (d.code, &source[span.start..span.end])))
        .collect();
    assert_eq!(
        pointed,
        [
            (codes::INVALID_VALUE, "\"bad name\""),
            (codes::INVALID_VALUE, "\"a\\nb\""),
            (codes::INVALID_VALUE, "\"X-Forwarded-For\""),
            (codes::INVALID_VALUE, "\"host\""),
            (codes::INVALID_VALUE, "\"Keel-Error\""),
            (codes::UNKNOWN_KEY, "add"),
        ],
        "{:#?}",
        parsed.diagnostics
    );
    assert!(
        parsed.diagnostics[2].message.contains("x-forwarded-for"),
        "{}",
        parsed.diagnostics[2].message
    );
    let help = parsed.diagnostics[2].help.as_deref().unwrap_or("");
    assert!(help.contains("Keel writes"), "the error says why: {help}");
}

#[test]
fn compress_keeps_its_codings_once_in_file_order() {
    let parsed = parse(&format!(
        "{BASE}compress = [\"br\", \"gzip\", \"x-gzip\"]\n"
    ));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let codings: Vec<&str> = parsed.config.routes[0]
        .compress
        .as_ref()
        .expect("codings")
        .value
        .iter()
        .map(|c| c.token())
        .collect();
    assert_eq!(codings, ["br", "gzip"]);
    assert!(parse(BASE).config.routes[0].compress.is_none());
}

#[test]
fn unknown_codings_are_reported_where_they_stand() {
    let source = format!("{BASE}compress = [\"gzip\", \"zstd\", 3]\n");
    let parsed = parse(&source);
    let pointed: Vec<(&str, &str, usize, usize)> = parsed
        .diagnostics
        .iter()
        .filter_map(|d| {
            let span = d.span?;
            let (line, col) = keel_config::line_col(&source, span.start);
            Some((d.code, &source[span.start..span.end], line, col))
        })
        .collect();
    assert_eq!(
        pointed,
        [
            (codes::INVALID_VALUE, "\"zstd\"", 14, 21),
            (codes::WRONG_TYPE, "3", 14, 29),
        ]
    );
    assert!(
        parsed.diagnostics[0]
            .message
            .contains("unknown content coding `zstd`")
    );
    assert!(parsed.config.routes.is_empty());
    let empty = parse(&format!("{BASE}compress = []\n"));
    assert!(empty.has_errors(), "an empty list compresses nothing");
    let fixed = parse(
        "[listeners.web]\naddr = \"127.0.0.1:8080\"\n\n[[routes]]\nname = \"r\"\n\
         respond = { status = 200 }\ncompress = [\"gzip\"]\n",
    );
    assert!(
        fixed
            .diagnostics
            .iter()
            .any(|d| d.code == codes::CONFLICTING_KEYS),
        "{:#?}",
        fixed.diagnostics
    );
}

#[test]
fn a_refusal_intent_needs_no_service_and_a_share_intent_still_does() {
    let parsed = parse(&format!(
        "{BASE}\n[[intents]]\nhost = \"Shop.Example.com:443\"\npath_prefix = \"/api\"\nmax_refused = 0.01\n"
    ));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let intent = &parsed.config.intents[0];
    assert_eq!(intent.host, "shop.example.com");
    assert_eq!(intent.max_refused, Some(0.01));
    assert!(intent.service.is_none());
    let share = parse(&format!(
        "{BASE}\n[[intents]]\nhost = \"shop.example.com\"\nmin_share = 0.5\n"
    ));
    assert!(
        share
            .diagnostics
            .iter()
            .any(|d| d.code == codes::MISSING_KEY),
        "{:#?}",
        share.diagnostics
    );
    assert!(share.config.intents.is_empty());
    let none = parse(&format!(
        "{BASE}\n[[intents]]\nhost = \"shop.example.com\"\nservice = \"s\"\n"
    ));
    assert!(
        none.diagnostics
            .iter()
            .any(|d| d.message.contains("`max_refused`")),
        "{:#?}",
        none.diagnostics
    );
    let out_of_range = parse(&format!(
        "{BASE}\n[[intents]]\nhost = \"shop.example.com\"\nmax_refused = 1.5\n"
    ));
    assert!(out_of_range.has_errors());
}
