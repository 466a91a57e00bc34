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
