//! The keys of long-lived traffic: a route's `upgrades` and `tunnel_idle_timeout`, and
//! `[safety] rolled_back_tunnels` / `tunnel_drain`: defaults, spans of mistakes, and
//! the semantic diff.

use std::time::Duration;

use keel_config::{RolledBackTunnels, UpgradeProtocol, codes, defaults, parse, semantic_diff};

const BASE: &str = "[listeners.web]\naddr = \"127.0.0.1:8080\"\n\n[services.s]\n\n[pools.p]\nservice = \"s\"\nbackends = [\"127.0.0.1:9001\"]\n\n[[routes]]\nname = \"r\"\nservice = \"s\"\npool = \"p\"\n";

#[test]
fn a_route_passes_no_upgrade_unless_it_lists_one() {
    let plain = parse(BASE);
    assert!(plain.diagnostics.is_empty(), "{:#?}", plain.diagnostics);
    let route = &plain.config.routes[0];
    assert!(route.upgrades.is_none());
    assert_eq!(
        route.tunnel_idle_timeout.value,
        defaults::TUNNEL_IDLE_TIMEOUT
    );

    let live = parse(&format!(
        "{BASE}upgrades = [\"WebSocket\", \"websocket\"]\ntunnel_idle_timeout = \"90s\"\n"
    ));
    assert!(live.diagnostics.is_empty(), "{:#?}", live.diagnostics);
    let route = &live.config.routes[0];
    let upgrades = route.upgrades.as_ref().map(|u| u.value.clone());
    assert_eq!(upgrades, Some(vec![UpgradeProtocol::WebSocket]));
    assert_eq!(route.tunnel_idle_timeout.value, Duration::from_secs(90));
}

#[test]
fn unknown_upgrades_and_a_zero_idle_timeout_are_reported_where_they_stand() {
    let source =
        format!("{BASE}upgrades = [\"websocket\", \"h2c\"]\ntunnel_idle_timeout = \"0s\"\n");
    let parsed = parse(&source);
    assert!(parsed.has_errors());
    assert_eq!(parsed.diagnostics.len(), 2, "{:#?}", parsed.diagnostics);
    for diagnostic in &parsed.diagnostics {
        assert_eq!(diagnostic.code, codes::INVALID_VALUE);
    }
    let pointed: Vec<&str> = parsed
        .diagnostics
        .iter()
        .filter_map(|d| d.span.map(|span| &source[span.start..span.end]))
        .collect();
    assert_eq!(pointed, ["\"h2c\"", "\"0s\""]);
    assert!(parsed.diagnostics[0].message.contains("h2c"));
}

#[test]
fn rolled_back_tunnels_default_to_drain_after_thirty_seconds() {
    let plain = parse(BASE);
    assert_eq!(
        plain.config.safety.rolled_back_tunnels,
        RolledBackTunnels::Drain
    );
    assert_eq!(plain.config.safety.tunnel_drain, defaults::TUNNEL_DRAIN);
    let keep = parse(&format!(
        "[safety]\nrolled_back_tunnels = \"keep\"\ntunnel_drain = \"5s\"\n\n{BASE}"
    ));
    assert!(keep.diagnostics.is_empty(), "{:#?}", keep.diagnostics);
    assert_eq!(
        keep.config.safety.rolled_back_tunnels,
        RolledBackTunnels::Keep
    );
    assert_eq!(keep.config.safety.tunnel_drain, Duration::from_secs(5));
    let bad = parse(&format!(
        "[safety]\nrolled_back_tunnels = \"close\"\n\n{BASE}"
    ));
    assert_eq!(bad.diagnostics.len(), 1, "{:#?}", bad.diagnostics);
    assert_eq!(bad.diagnostics[0].code, codes::INVALID_VALUE);
}

#[test]
fn the_semantic_diff_names_the_new_keys() {
    let old = parse(BASE).config;
    let new = parse(&format!(
        "[safety]\nrolled_back_tunnels = \"keep\"\n\n{BASE}upgrades = [\"websocket\"]\ntunnel_idle_timeout = \"1m\"\n"
    ))
    .config;
    let diff = semantic_diff(&old, &new);
    let route: Vec<(&str, Option<&str>, Option<&str>)> = diff.routes[0]
        .fields
        .iter()
        .map(|f| (f.field.as_str(), f.old.as_deref(), f.new.as_deref()))
        .collect();
    assert!(
        route.contains(&("upgrades", Some("none"), Some("websocket"))),
        "{route:?}"
    );
    assert!(
        route.iter().any(|f| f.0 == "tunnel_idle_timeout"),
        "{route:?}"
    );
    assert!(
        diff.settings
            .iter()
            .any(|f| f.field == "[safety] rolled_back_tunnels"),
        "{:?}",
        diff.settings
    );
}
