//! One test per lint id: a TOML snippet on top of a clean config triggers it through
//! `load`, the path `serve` and `apply` take. The clean config itself has no finding,
//! so every test fails if its lint stops firing.

use keel_check::{is_hard, load};
use keel_config::{Diagnostic, Severity, codes};

/// A config with no finding at all: identities, health checks, a catch-all, full
/// coverage.
const CLEAN: &str = r#"
[listeners.web]
addr = "127.0.0.1:8080"
[admin]
addr = "127.0.0.1:9901"
[services.web]
identity = { header = "x-service", equals = "web" }
[services.api]
identity = { header = "x-service", equals = "api" }
[pools.web]
service = "web"
backends = ["127.0.0.1:9101"]
health = { path = "/healthz" }
[pools.api]
service = "api"
backends = ["127.0.0.1:9201"]
health = { path = "/healthz" }
"#;

const CATCH_ALL: &str = r#"
[[routes]]
name = "fallback"
service = "web"
pool = "web"
retries = 0
[[tests]]
request = "GET http://anything.example/"
expect = { route = "fallback" }
"#;

fn with(extra: &str) -> Vec<Diagnostic> {
    load("keel.toml", &format!("{CLEAN}{extra}{CATCH_ALL}"))
        .report
        .diagnostics
}

fn has(diagnostics: &[Diagnostic], code: &str) -> bool {
    diagnostics.iter().any(|d| d.code == code)
}

#[track_caller]
fn assert_fires(extra: &str, code: &str) -> Diagnostic {
    let diagnostics = with(extra);
    match diagnostics.iter().find(|d| d.code == code) {
        Some(d) => d.clone(),
        None => panic!("{code} did not fire; got {diagnostics:#?}"),
    }
}

#[test]
fn the_clean_config_has_no_finding() {
    let diagnostics = with("");
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
}

#[test]
fn k006_duplicate_route_names() {
    let extra = "[[routes]]\nname = \"a\"\nservice = \"web\"\npool = \"web\"\nretries = 0\n[[routes]]\nname = \"a\"\nservice = \"web\"\npool = \"web\"\n";
    let d = assert_fires(extra, codes::DUPLICATE_NAME);
    assert!(
        has(&with(extra), codes::SKIPPED),
        "semantic lints are skipped"
    );
    assert_eq!(d.severity, Severity::Error);
}

#[test]
fn k101_unknown_pool_or_service() {
    let d = assert_fires(
        "[[routes]]\nname = \"a\"\nservice = \"web\"\npool = \"wbe\"\nretries = 0\n",
        codes::UNKNOWN_REFERENCE,
    );
    assert!(d.help.unwrap_or_default().contains("did you mean `web`"));
    assert_fires(
        "[pools.x]\nservice = \"nope\"\nbackends = [\"127.0.0.1:9301\"]\nhealth = {}\n",
        codes::UNKNOWN_REFERENCE,
    );
    // The routing table cannot be built, so route analysis says it was skipped.
    assert!(has(
        &with("[[routes]]\nname = \"a\"\nservice = \"nope\"\npool = \"web\"\n"),
        codes::SKIPPED
    ));
}

#[test]
fn k102_route_aimed_at_another_services_pool() {
    let d = assert_fires(
        "[[routes]]\nname = \"checkout\"\nhost = \"shop.example.com\"\nservice = \"api\"\nsplit = [{ pool = \"api\", weight = 30 }, { pool = \"web\", weight = 70 }]\nretries = 0\n",
        codes::SERVICE_MISMATCH,
    );
    assert!(d.notes[0].starts_with("70%"), "{:?}", d.notes);
}

#[test]
fn k103_pool_without_backends() {
    assert_fires(
        "[pools.empty]\nservice = \"web\"\nbackends = []\nhealth = {}\n",
        codes::EMPTY_POOL,
    );
}

#[test]
fn k104_split_of_zero_weights() {
    assert_fires(
        "[[routes]]\nname = \"z\"\nhost = \"z.example.com\"\nservice = \"web\"\nsplit = [{ pool = \"web\", weight = 0 }]\nretries = 0\n",
        codes::ZERO_SPLIT,
    );
}

#[test]
fn k105_one_server_two_identities() {
    assert_fires(
        "[pools.api2]\nservice = \"api\"\nbackends = [\"127.0.0.1:9101\"]\nhealth = {}\n",
        codes::TWO_IDENTITIES,
    );
}

#[test]
fn k106_listener_conflicts() {
    assert_fires(
        "[listeners.admin-clash]\naddr = \"0.0.0.0:9901\"\n",
        codes::LISTENER_CONFLICT,
    );
    assert_fires(
        "[listeners.twin]\naddr = \"127.0.0.1:8080\"\n",
        codes::LISTENER_CONFLICT,
    );
}

#[test]
fn k107_failing_route_test() {
    let d = assert_fires(
        "[[tests]]\nrequest = \"GET https://shop.example.com/api\"\nexpect = { service = \"api\" }\n",
        codes::TEST_FAILED,
    );
    assert!(
        d.notes.iter().any(|n| n.contains("expected service `api`")),
        "{:?}",
        d.notes
    );
    let data = d.data.expect("structured detail");
    assert_eq!(data["got"]["route"], "fallback");
}

#[test]
fn k108_violated_intent() {
    let d = assert_fires(
        "[[routes]]\nname = \"api\"\nhost = \"shop.example.com\"\npath_prefix = \"/api\"\nservice = \"api\"\nsplit = [{ pool = \"api\", weight = 1 }]\nretries = 0\n\
         [[intents]]\nhost = \"shop.example.com\"\npath_prefix = \"/api\"\nservice = \"web\"\nmin_share = 0.5\n",
        codes::INTENT_VIOLATED,
    );
    assert_eq!(d.data.expect("detail")["share"], 0.0);
}

#[test]
fn k201_fully_shadowed_by_a_union() {
    let extra = "[[routes]]\nname = \"get\"\nhost = \"a.example.com\"\nmethods = [\"GET\"]\nservice = \"web\"\npool = \"web\"\n\
                 [[routes]]\nname = \"post\"\nhost = \"a.example.com\"\nmethods = [\"POST\"]\nservice = \"web\"\npool = \"web\"\nretries = 0\n\
                 [[routes]]\nname = \"both\"\nhost = \"a.example.com\"\npath_prefix = \"/x\"\nmethods = [\"GET\", \"POST\"]\nservice = \"web\"\npool = \"web\"\nretries = 0\n";
    let d = assert_fires(extra, codes::FULLY_SHADOWED);
    assert!(d.message.contains("`both`"), "{}", d.message);
    let data = d.data.expect("witnesses");
    assert_eq!(data["witnesses"].as_array().map(Vec::len), Some(2));
}

#[test]
fn k202_partly_shadowed_with_a_witness() {
    let d = assert_fires(
        "[[routes]]\nname = \"api-get\"\npath_prefix = \"/api\"\nmethods = [\"GET\"]\nservice = \"web\"\npool = \"web\"\n\
         [[routes]]\nname = \"api-v2\"\nhost = \"a.example.com\"\npath_prefix = \"/api/v2\"\nservice = \"api\"\npool = \"api\"\nretries = 0\n",
        codes::PARTLY_SHADOWED,
    );
    let witness = &d.data.expect("witness")["witnesses"][0];
    assert_eq!(witness["route"], "api-get");
    assert_eq!(witness["request"]["method"], "GET");
    assert_eq!(witness["request"]["host"], "a.example.com");
}

#[test]
fn k203_may_shadow_through_a_regex() {
    assert_fires(
        "[[routes]]\nname = \"items\"\npath_regex = \"/items/[0-9]+\"\nservice = \"web\"\npool = \"web\"\nretries = 0\n\
         [[routes]]\nname = \"item-digit\"\npath_regex = \"/items/[0-9]\"\nservice = \"web\"\npool = \"web\"\nretries = 0\n",
        codes::MAY_SHADOW,
    );
}

#[test]
fn k111_service_without_identity() {
    assert_fires("[services.bare]\n", codes::NO_IDENTITY);
}

#[test]
fn k205_pool_without_health_check() {
    assert_fires(
        "[pools.blind]\nservice = \"web\"\nbackends = [\"127.0.0.1:9102\"]\n",
        codes::NO_HEALTH_CHECK,
    );
}

#[test]
fn k206_retries_on_non_idempotent_methods() {
    let d = assert_fires(
        "[[routes]]\nname = \"cart\"\nhost = \"a.example.com\"\nmethods = [\"GET\", \"POST\"]\nservice = \"web\"\npool = \"web\"\nretries = 2\n",
        codes::UNSAFE_RETRIES,
    );
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("never reached a backend"))
    );
}

#[test]
fn k207_route_timeout_below_connect_timeout() {
    assert_fires(
        "[pools.slow]\nservice = \"web\"\nbackends = [\"127.0.0.1:9103\"]\nhealth = {}\nconnect_timeout = \"3s\"\n\
         [[routes]]\nname = \"slow\"\nhost = \"slow.example.com\"\nservice = \"web\"\npool = \"slow\"\ntimeout = \"1s\"\nretries = 0\n",
        codes::TIMEOUT_BELOW_CONNECT,
    );
}

#[test]
fn k208_no_catch_all_says_what_unmatched_requests_get() {
    let source = format!(
        "{CLEAN}[[routes]]\nname = \"only\"\nhost = \"a.example.com\"\nservice = \"web\"\npool = \"web\"\nretries = 0\n"
    );
    let diagnostics = load("keel.toml", &source).report.diagnostics;
    let d = diagnostics
        .iter()
        .find(|d| d.code == codes::NO_CATCH_ALL)
        .expect("K208");
    assert!(d.notes[0].contains("404"), "{:?}", d.notes);
    assert!(d.notes[0].contains("keel-error: no-route"));
    // Routes that together cover everything count as a catch-all.
    let covered = format!(
        "{CLEAN}[[routes]]\nname = \"get\"\nmethods = [\"GET\"]\nservice = \"web\"\npool = \"web\"\n\
         [[routes]]\nname = \"rest\"\nservice = \"web\"\npool = \"web\"\nretries = 0\n"
    );
    assert!(!has(
        &load("k", &covered).report.diagnostics,
        codes::NO_CATCH_ALL
    ));
}

#[test]
fn k209_most_traffic_to_a_legacy_pool() {
    assert_fires(
        "[pools.old]\nservice = \"web\"\nbackends = [\"127.0.0.1:9104\"]\nhealth = {}\ndraining = true\n\
         [[routes]]\nname = \"shift\"\nhost = \"a.example.com\"\nservice = \"web\"\nsplit = [{ pool = \"old\", weight = 60 }, { pool = \"web\", weight = 40 }]\nretries = 0\n",
        codes::SPLIT_TO_RETIRED_POOL,
    );
}

#[test]
fn k211_a_route_for_connect() {
    let d = assert_fires(
        "[[routes]]\nname = \"tunnel\"\nhost = \"a.example.com\"\nmethods = [\"CONNECT\"]\nservice = \"web\"\npool = \"web\"\nretries = 0\n",
        codes::CONNECT_ROUTE,
    );
    assert!(d.notes[0].contains("501"), "{:?}", d.notes);
}

#[test]
fn k212_an_admin_api_beyond_loopback_without_tls() {
    let exposed = CLEAN.replace("addr = \"127.0.0.1:9901\"", "addr = \"0.0.0.0:9901\"");
    assert_ne!(exposed, CLEAN);
    let diagnostics = load("keel.toml", &format!("{exposed}{CATCH_ALL}"))
        .report
        .diagnostics;
    let d = diagnostics
        .iter()
        .find(|d| d.code == codes::ADMIN_EXPOSED)
        .expect("K212");
    assert_eq!(d.severity, Severity::Warning);
    assert!(d.message.contains("0.0.0.0:9901"), "{}", d.message);
    assert!(!has(&with(""), codes::ADMIN_EXPOSED));
}

#[test]
fn k301_coverage_names_untested_routes() {
    let d = assert_fires(
        "[[routes]]\nname = \"untested\"\nhost = \"a.example.com\"\nservice = \"web\"\npool = \"web\"\nretries = 0\n",
        codes::COVERAGE,
    );
    assert_eq!(d.severity, Severity::Note);
    assert!(d.notes[0].contains("`untested`"));
}

#[test]
fn policy_errors_can_be_forced_but_hard_errors_cannot() {
    let policy = format!(
        "{CLEAN}[[routes]]\nname = \"x\"\nservice = \"api\"\npool = \"web\"\nretries = 0\n"
    );
    let loaded = load("k", &policy);
    assert!(loaded.config.is_none());
    assert!(!loaded.has_hard_errors());
    assert!(loaded.config_ignoring_policy().is_some());
    assert!(loaded.policy_errors().all(|d| !is_hard(d.code)));

    let hard = format!("{CLEAN}[pools.empty]\nservice = \"web\"\nbackends = []\nhealth = {{}}\n");
    let loaded = load("k", &hard);
    assert!(loaded.has_hard_errors());
    assert!(loaded.config_ignoring_policy().is_none());

    let clean = load("k", &format!("{CLEAN}{CATCH_ALL}"));
    assert!(clean.config.is_some());
}

#[test]
fn json_report_carries_positions_and_data() {
    let report = load(
        "keel.toml",
        &format!(
            "{CLEAN}[[routes]]\nname = \"a\"\nhost = \"a.example.com\"\nservice = \"web\"\npool = \"web\"\nretries = 0\n[[routes]]\nname = \"b\"\nhost = \"a.example.com\"\npath = \"/b\"\nservice = \"web\"\npool = \"web\"\nretries = 0\n{CATCH_ALL}"
        ),
    )
    .report;
    let json = report.to_json();
    assert_eq!(json["version"], 1);
    let diagnostics = json["diagnostics"].as_array().expect("array");
    let shadowed = diagnostics
        .iter()
        .find(|d| d["code"] == codes::FULLY_SHADOWED)
        .expect("K201 in JSON");
    assert_eq!(shadowed["severity"], "warning");
    assert_eq!(shadowed["file"], "keel.toml");
    assert!(shadowed["line"].as_u64().is_some_and(|l| l > 20));
    assert_eq!(shadowed["data"]["witnesses"][0]["route"], "a");
    assert_eq!(shadowed["data"]["witnesses"][0]["request"]["path"], "/b");
}

#[test]
fn k213_a_deny_that_matches_every_address() {
    let d = assert_fires(
        "[[routes]]\nname = \"closed\"\npath_prefix = \"/closed\"\nservice = \"web\"\npool = \"web\"\nretries = 0\ndeny = [\"10.0.0.0/8\", \"::/0\"]\n[[tests]]\nrequest = \"GET http://shop.example/closed\"\nexpect = { route = \"closed\" }\n",
        codes::ACCESS_REFUSES_ALL,
    );
    assert_eq!(d.severity, Severity::Warning);
    assert!(d.message.contains("every IPv6 client"), "{}", d.message);
    assert!(!is_hard(d.code));
}

/// An h2c pool of service `api`, for the protocol lints.
const H2C_POOL: &str = "[pools.rpc]\nservice = \"api\"\nbackends = [\"127.0.0.1:9301\"]\nhealth = { path = \"/healthz\" }\nprotocol = \"h2c\"\n";

#[test]
fn k214_upgrades_to_a_pool_that_cannot_carry_them() {
    let d = assert_fires(
        &format!(
            "{H2C_POOL}[[routes]]\nname = \"live\"\npath_prefix = \"/live\"\nservice = \"api\"\npool = \"rpc\"\nretries = 0\nupgrades = [\"websocket\"]\nheaders = {{ \"content-type\" = \"application/grpc\" }}\n[[tests]]\nrequest = \"GET http://shop.example/live\"\nheaders = {{ \"content-type\" = \"application/grpc\" }}\nexpect = {{ route = \"live\" }}\n"
        ),
        codes::UPGRADES_UNSERVABLE,
    );
    assert_eq!(d.severity, Severity::Warning);
    assert!(d.message.contains("HTTP/2"), "{}", d.message);
}

#[test]
fn k303_a_route_to_an_http2_pool_without_the_grpc_content_type() {
    let d = assert_fires(
        &format!(
            "{H2C_POOL}[[routes]]\nname = \"rpc\"\npath_prefix = \"/shop.Cart/\"\nservice = \"api\"\npool = \"rpc\"\nretries = 0\n[[tests]]\nrequest = \"POST http://shop.example/shop.Cart/Get\"\nexpect = {{ route = \"rpc\" }}\n"
        ),
        codes::GRPC_WITHOUT_HINT,
    );
    assert_eq!(d.severity, Severity::Note);
    assert!(!is_hard(d.code));
}
