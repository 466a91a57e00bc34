//! The parser against whole config files: the example parses clean, and a file with
//! many mistakes reports each of them, with its position, in one pass.

use std::time::Duration;

use keel_config::{Balance, HashKey, HostMatch, PathMatch, Report, Target, codes, parse};

/// The human report of `diagnostics` found in `source`, as `keel check` prints it.
fn rendered(source: &str, diagnostics: Vec<keel_config::Diagnostic>) -> String {
    let mut report = Report::new("keel.toml", source);
    report.extend(diagnostics);
    report.render_human()
}

fn example() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/keel.toml"
    ))
    .expect("example config")
}

#[test]
fn the_example_parses_without_findings() {
    let parsed = parse(&example());
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let config = parsed.config;
    assert_eq!(config.listeners["web"].addr.value.port(), 8080);
    let pool = &config.pools["checkout-v2"];
    assert_eq!(
        pool.balance,
        Balance::ConsistentHash(HashKey::Cookie("cart_id".into()))
    );
    assert_eq!(pool.backends[1].weight, 2);
    assert_eq!(
        pool.health.as_ref().map(|h| h.interval),
        Some(Duration::from_secs(2))
    );
    let route = &config.routes[0];
    assert_eq!(
        route.host.as_ref().map(|h| h.value.clone()),
        Some(HostMatch::Exact("shop.example.com".into()))
    );
    assert!(
        matches!(route.path.as_ref().map(|p| &p.value), Some(PathMatch::Prefix(p)) if p == "/checkout")
    );
    assert!(
        matches!(route.target().map(|t| &t.value), Some(Target::Pool(p)) if p.value == "checkout-v2")
    );
    assert_eq!(config.tests.len(), 2);
    assert_eq!(config.intents[0].min_share, Some(0.9));
}

#[test]
fn every_mistake_is_reported_at_once_with_its_position() {
    let source = r#"
[listeners.web]
addr = "127.0.0.1:80800"

[pools.a]
service = "x"
balanse = "round_robin"
backends = [{ addr = "127.0.0.1:9001" }]
health = { interval = "2 seconds" }

[[routes]]
name = "r"
service = "x"
pool = "a"
timeout = 5

[[routes]]
name = "r"
service = "x"
pool = "a"
path = "/a"
path_prefix = "/b"
"#;
    let parsed = parse(source);
    let codes_found: Vec<&str> = parsed.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes_found,
        vec![
            codes::INVALID_VALUE,    // bad port
            codes::UNKNOWN_KEY,      // balanse
            codes::INVALID_VALUE,    // bad duration
            codes::WRONG_TYPE,       // timeout = 5
            codes::DUPLICATE_NAME,   // second "r"
            codes::CONFLICTING_KEYS, // path + path_prefix
        ],
        "{:#?}",
        parsed.diagnostics
    );
    let text = rendered(source, parsed.diagnostics);
    assert!(text.contains("keel.toml:3:8"), "{text}");
    assert!(text.contains("did you mean `balance`?"), "{text}");
    assert!(text.contains("keel.toml:9:23"), "{text}");
}

#[test]
fn syntax_errors_point_at_the_broken_line() {
    let parsed = parse("[listeners.web]\naddr = \"127.0.0.1:8080\n");
    assert_eq!(parsed.diagnostics[0].code, codes::SYNTAX);
    let span = parsed.diagnostics[0].span.expect("span");
    assert_eq!(
        keel_config::line_col("[listeners.web]\naddr = \"127.0.0.1:8080\n", span.start).0,
        2
    );
}

#[test]
fn split_targets_and_wildcards_parse() {
    let parsed = parse(
        r#"
[listeners.web]
addr = "127.0.0.1:8080"
[[routes]]
name = "s"
host = "*.Example.com"
path_regex = "/items/[0-9]+"
service = "x"
split = [{ pool = "a", weight = 90 }, { pool = "b", weight = 10 }]
"#,
    );
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let route = &parsed.config.routes[0];
    assert_eq!(
        route.host.as_ref().map(|h| h.value.clone()),
        Some(HostMatch::Suffix(".example.com".into()))
    );
    match route.path.as_ref().map(|p| &p.value) {
        Some(PathMatch::Regex(r)) => {
            assert!(r.is_match("/items/42"));
            assert!(!r.is_match("/items/42/x"));
        }
        other => panic!("expected a regex, got {other:?}"),
    }
    assert_eq!(
        route
            .target_pools()
            .iter()
            .map(|(_, w)| *w)
            .collect::<Vec<_>>(),
        vec![90, 10]
    );
}

#[test]
fn idle_spin_takes_microseconds_and_is_bounded() {
    const BASE: &str = "[listeners.web]\naddr = \"127.0.0.1:8080\"\n";
    let default = parse(BASE);
    assert_eq!(
        default.config.server.idle_spin,
        keel_config::defaults::IDLE_SPIN
    );
    let set = parse(&format!("{BASE}[server]\nidle_spin = \"50us\"\n"));
    assert!(set.diagnostics.is_empty(), "{:#?}", set.diagnostics);
    assert_eq!(set.config.server.idle_spin, Duration::from_micros(50));
    let off = parse(&format!("{BASE}[server]\nidle_spin = \"0s\"\n"));
    assert_eq!(off.config.server.idle_spin, Duration::ZERO);

    let source = format!("{BASE}[server]\nidle_spin = \"2ms\"\n");
    let too_long = parse(&source);
    assert_eq!(too_long.diagnostics.len(), 1, "{:#?}", too_long.diagnostics);
    assert_eq!(too_long.diagnostics[0].code, codes::INVALID_VALUE);
    let text = rendered(&source, too_long.diagnostics);
    assert!(text.contains("keel.toml:4:13"), "{text}");
    assert!(text.contains("longer than the 1ms allowed"), "{text}");
}

#[test]
fn body_idle_timeout_defaults_to_a_minute_and_zero_turns_it_off() {
    const BASE: &str = "[listeners.web]\naddr = \"127.0.0.1:8080\"\n";
    let default = parse(BASE);
    assert_eq!(
        default.config.server.body_idle_timeout,
        keel_config::defaults::BODY_IDLE_TIMEOUT
    );
    let set = parse(&format!("{BASE}[server]\nbody_idle_timeout = \"5m\"\n"));
    assert!(set.diagnostics.is_empty(), "{:#?}", set.diagnostics);
    assert_eq!(
        set.config.server.body_idle_timeout,
        Duration::from_secs(300)
    );
    let off = parse(&format!("{BASE}[server]\nbody_idle_timeout = \"0s\"\n"));
    assert_eq!(off.config.server.body_idle_timeout, Duration::ZERO);
    let bad = parse(&format!("{BASE}[server]\nbody_idle_timeout = 60\n"));
    assert_eq!(bad.diagnostics.len(), 1, "{:#?}", bad.diagnostics);
}

#[test]
fn a_pool_speaks_http1_unless_told_and_h2_keys_need_http2() {
    const BASE: &str = "[listeners.web]\naddr = \"127.0.0.1:8080\"\n\n[pools.p]\nservice = \"s\"\nbackends = [\"127.0.0.1:9001\"]\n";
    let default = parse(BASE);
    let pool = &default.config.pools["p"];
    assert_eq!(pool.protocol.value, keel_config::UpstreamProtocol::Http1);
    assert_eq!(
        pool.max_streams_per_connection,
        keel_config::defaults::MAX_STREAMS_PER_CONNECTION
    );

    let h2c = parse(&format!(
        "{BASE}protocol = \"h2c\"\nmax_streams_per_connection = 8\n"
    ));
    assert!(h2c.diagnostics.is_empty(), "{:#?}", h2c.diagnostics);
    assert_eq!(
        h2c.config.pools["p"].protocol.value,
        keel_config::UpstreamProtocol::H2c
    );
    assert_eq!(h2c.config.pools["p"].max_streams_per_connection, 8);

    let source = format!("{BASE}protocol = \"http3\"\n");
    let unknown = parse(&source);
    let text = rendered(&source, unknown.diagnostics);
    assert!(text.contains("unknown protocol `http3`"), "{text}");
    assert!(text.contains("keel.toml:7:12"), "{text}");

    let source = format!("{BASE}max_streams_per_connection = 8\n");
    let http1 = parse(&source);
    let text = rendered(&source, http1.diagnostics);
    assert!(text.contains("only applies to HTTP/2 pools"), "{text}");

    let zero = parse(&format!(
        "{BASE}protocol = \"h2c\"\nmax_streams_per_connection = 0\n"
    ));
    assert_eq!(zero.diagnostics.len(), 1, "{:#?}", zero.diagnostics);
}

#[test]
fn max_connections_defaults_to_no_limit_and_is_bounded() {
    const BASE: &str = "[listeners.web]\naddr = \"127.0.0.1:8080\"\n\n[pools.p]\nservice = \"s\"\nbackends = [\"127.0.0.1:9001\"]\n";
    let default = parse(BASE);
    assert_eq!(
        default.config.pools["p"].max_connections,
        keel_config::defaults::MAX_CONNECTIONS
    );
    assert_eq!(
        keel_config::defaults::MAX_CONNECTIONS,
        0,
        "0 means no limit"
    );
    let set = parse(&format!("{BASE}max_connections = 64\n"));
    assert!(set.diagnostics.is_empty(), "{:#?}", set.diagnostics);
    assert_eq!(set.config.pools["p"].max_connections, 64);

    let source = format!("{BASE}max_connections = -1\n");
    let negative = parse(&source);
    assert_eq!(negative.diagnostics.len(), 1, "{:#?}", negative.diagnostics);
    let text = rendered(&source, negative.diagnostics);
    assert!(text.contains("keel.toml:7:19"), "{text}");
    assert!(text.contains("between 0 and 1000000"), "{text}");
}

#[test]
fn a_pools_idle_timeout_defaults_to_a_minute_and_must_be_above_zero() {
    const BASE: &str = "[listeners.web]\naddr = \"127.0.0.1:8080\"\n\n[pools.p]\nservice = \"s\"\nbackends = [\"127.0.0.1:9001\"]\n";
    let default = parse(BASE);
    assert_eq!(
        default.config.pools["p"].idle_timeout.value,
        keel_config::defaults::UPSTREAM_IDLE_TIMEOUT
    );
    let set = parse(&format!("{BASE}idle_timeout = \"4s\"\n"));
    assert!(set.diagnostics.is_empty(), "{:#?}", set.diagnostics);
    assert_eq!(
        set.config.pools["p"].idle_timeout.value,
        Duration::from_secs(4)
    );

    let source = format!("{BASE}idle_timeout = \"0s\"\n");
    let zero = parse(&source);
    assert_eq!(zero.diagnostics.len(), 1, "{:#?}", zero.diagnostics);
    assert_eq!(zero.diagnostics[0].code, codes::INVALID_VALUE);
    let text = rendered(&source, zero.diagnostics);
    assert!(text.contains("keel.toml:7:16"), "{text}");
    assert!(text.contains("max_idle_per_backend = 0"), "{text}");
}

#[test]
fn a_route_may_set_its_own_body_idle_timeout() {
    const BASE: &str = "[listeners.web]\naddr = \"127.0.0.1:8080\"\n\n[services.s]\n\n[pools.p]\nservice = \"s\"\nbackends = [\"127.0.0.1:9001\"]\n\n[[routes]]\nname = \"r\"\nservice = \"s\"\npool = \"p\"\n";
    let unset = parse(BASE);
    assert!(unset.diagnostics.is_empty(), "{:#?}", unset.diagnostics);
    assert!(unset.config.routes[0].body_idle_timeout.is_none());
    let never = parse(&format!("{BASE}body_idle_timeout = \"0s\"\n"));
    assert!(never.diagnostics.is_empty(), "{:#?}", never.diagnostics);
    let bound = never.config.routes[0].body_idle_timeout.as_ref();
    assert_eq!(bound.map(|b| b.value), Some(Duration::ZERO));
    let set = parse(&format!("{BASE}body_idle_timeout = \"10m\"\n"));
    let bound = set.config.routes[0].body_idle_timeout.as_ref();
    assert_eq!(bound.map(|b| b.value), Some(Duration::from_secs(600)));
    let bad = parse(&format!("{BASE}body_idle_timeout = \"forever\"\n"));
    assert_eq!(bad.diagnostics.len(), 1, "{:#?}", bad.diagnostics);
    assert_eq!(bad.diagnostics[0].code, codes::INVALID_VALUE);
}

#[test]
fn a_pools_tls_table_is_read_and_its_unreadable_files_are_errors_at_their_keys() {
    const BASE: &str = "[listeners.web]\naddr = \"127.0.0.1:8080\"\n\n[pools.p]\nservice = \"s\"\nbackends = [\"127.0.0.1:9001\"]\n";
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), "CA").expect("write");
    let source = format!(
        "{BASE}protocol = \"h2\"\ntls = {{ server_name = \"payments.internal\", ca = \"ca.pem\" }}\n"
    );
    let mut good = parse(&source);
    assert!(good.diagnostics.is_empty(), "{:#?}", good.diagnostics);
    let read = keel_config::backend_tls::read_backend_tls_files(&mut good.config.pools, dir.path());
    assert!(read.is_empty(), "{read:#?}");
    let tls = good.config.pools["p"].tls.as_ref().expect("tls");
    assert_eq!(
        tls.files.as_ref().and_then(|f| f.ca_pem.clone()),
        Some(b"CA".to_vec())
    );

    let source = format!("{BASE}tls = {{ ca = \"missing.pem\" }}\n");
    let mut missing = parse(&source);
    let findings =
        keel_config::backend_tls::read_backend_tls_files(&mut missing.config.pools, dir.path());
    let text = rendered(&source, findings);
    assert!(text.contains("K123"), "{text}");
    assert!(text.contains("keel.toml:7:14"), "{text}");
    assert!(
        missing.config.pools["p"]
            .tls
            .as_ref()
            .is_some_and(|t| t.files.is_none())
    );

    let source = format!("{BASE}tls = {{ cert = \"keel.pem\" }}\n");
    let half = parse(&source);
    let text = rendered(&source, half.diagnostics);
    assert!(text.contains("needs both `cert` and `key`"), "{text}");

    let source = format!("{BASE}protocol = \"h2\"\n");
    let bare_h2 = parse(&source);
    let text = rendered(&source, bare_h2.diagnostics);
    assert!(text.contains("HTTP/2 over TLS"), "{text}");
}
