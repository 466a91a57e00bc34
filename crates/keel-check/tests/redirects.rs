//! Redirect routes through `load`, the path `serve` and `apply` take: K125 (a redirect
//! loop), K217 (a redirect that takes a later route's requests for good), K218 (https
//! to a host no certificate covers), route tests with `expect.location`, and the
//! listener a test URL's scheme and port reach, so that a redirect limited to one
//! listener neither fails the tests of another nor counts as shadowing a route its new
//! URL leads back to.

use keel_check::{is_hard, load};
use keel_config::{Diagnostic, Severity, codes};

/// Two plain listeners (`old` is where clients used to come in), one identified
/// service, and a catch-all with a test.
const BASE: &str = r#"
[listeners.web]
addr = "127.0.0.1:8080"
[listeners.old]
addr = "127.0.0.1:8081"
[admin]
addr = "127.0.0.1:9901"
[services.web]
identity = { header = "x-service", equals = "web" }
[pools.web]
service = "web"
backends = ["127.0.0.1:9101"]
health = { path = "/healthz" }
"#;

const CATCH_ALL: &str = r#"
[[routes]]
name = "fallback"
service = "web"
pool = "web"
retries = 0
[[tests]]
request = "GET http://anything.example:8080/"
expect = { route = "fallback" }
"#;

fn with(extra: &str) -> Vec<Diagnostic> {
    load("keel.toml", &format!("{BASE}{extra}{CATCH_ALL}"))
        .report
        .diagnostics
}

fn codes_of(diagnostics: &[Diagnostic]) -> Vec<&'static str> {
    diagnostics.iter().map(|d| d.code).collect()
}

#[test]
fn a_redirect_to_another_listener_that_leads_back_is_clean() {
    // Every request on `old` goes to port 8080, where `fallback` takes it: it is moved,
    // not taken, so nothing is shadowed; the tests come in on the listener of their port.
    let found = with(
        "[[routes]]\nname = \"move\"\nlistener = \"old\"\nredirect = { scheme = \"http\", port = 8080, status = 301 }\n\
         [[tests]]\nrequest = \"GET http://shop.example:8081/cart?id=7\"\nexpect = { route = \"move\", status = 301, location = \"http://shop.example:8080/cart?id=7\" }\n",
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn k125_a_redirect_that_brings_its_requests_back_to_itself() {
    let found = with(
        "[[routes]]\nname = \"loop\"\nhost = \"a.example\"\nredirect = { path_prefix = \"/x\" }\n",
    );
    let d = found
        .iter()
        .find(|d| d.code == codes::REDIRECT_LOOP)
        .unwrap_or_else(|| panic!("no K125 in {found:#?}"));
    assert_eq!(d.severity, Severity::Error);
    assert!(!is_hard(d.code), "a policy error: --force may override");
    assert!(
        d.notes.iter().any(|n| n.contains("http://a.example/x/")),
        "{d:#?}"
    );
    // Back to its own listener by its port.
    let found = with(
        "[[routes]]\nname = \"up\"\nlistener = \"old\"\nredirect = { scheme = \"http\", host = \"a.example\", port = 8081 }\n",
    );
    assert!(
        codes_of(&found).contains(&codes::REDIRECT_LOOP),
        "{found:#?}"
    );
    // Sent elsewhere: no loop.
    let found = with(
        "[[routes]]\nname = \"away\"\nlistener = \"old\"\nhost = \"a.example\"\nredirect = { host = \"b.example\", port = 8080 }\n",
    );
    assert!(
        !codes_of(&found).contains(&codes::REDIRECT_LOOP),
        "{found:#?}"
    );
}

#[test]
fn k217_a_redirect_that_takes_a_later_routes_requests_for_good() {
    let found = with(
        "[[routes]]\nname = \"moved\"\npath_prefix = \"/old\"\nredirect = { path_prefix = \"/new\" }\n\
         [[routes]]\nname = \"legacy\"\npath_prefix = \"/old/shop\"\nservice = \"web\"\npool = \"web\"\nretries = 0\n",
    );
    let d = found
        .iter()
        .find(|d| d.code == codes::REDIRECT_SHADOWS)
        .unwrap_or_else(|| panic!("no K217 in {found:#?}"));
    assert_eq!(d.severity, Severity::Warning);
    assert!(d.message.contains("`moved`") && d.message.contains("`legacy`"));
    // `fallback` is partly taken too, but /old/x → /new/x lands on it again: no K202
    // naming `moved` for it.
    assert!(
        !found
            .iter()
            .any(|d| d.code == codes::PARTLY_SHADOWED && d.message.contains("`fallback`")),
        "{found:#?}"
    );
}

#[test]
fn k218_https_to_a_host_no_certificate_covers() {
    let found = with(
        "[[routes]]\nname = \"up\"\nlistener = \"old\"\nredirect = { scheme = \"https\", host = \"www.example.com\" }\n",
    );
    let d = found
        .iter()
        .find(|d| d.code == codes::REDIRECT_TLS_UNCOVERED)
        .unwrap_or_else(|| panic!("no K218 in {found:#?}"));
    assert_eq!(d.severity, Severity::Warning);
    assert!(
        d.message.contains("https://www.example.com"),
        "{}",
        d.message
    );
}

#[test]
fn route_tests_judge_a_redirects_status_and_location() {
    let found = with(
        "[[routes]]\nname = \"moved\"\nlistener = \"old\"\npath_prefix = \"/old\"\nredirect = { path_prefix = \"/new\", port = 8080, status = 307 }\n\
         [[tests]]\nrequest = \"GET http://shop.example:8081/old/a?b=c\"\nexpect = { status = 308, location = \"http://shop.example:8080/old/a?b=c\" }\n",
    );
    let failed: Vec<&Diagnostic> = found
        .iter()
        .filter(|d| d.code == codes::TEST_FAILED)
        .collect();
    assert_eq!(failed.len(), 1, "{found:#?}");
    let notes = failed[0].notes.join("\n");
    assert!(
        notes.contains("expected status 308, got 307 (the redirect of route `moved`)"),
        "{notes}"
    );
    assert!(
        notes.contains(
            "expected location `http://shop.example:8080/old/a?b=c`, got `http://shop.example:8080/new/a?b=c`"
        ),
        "{notes}"
    );
    // On the other listener the redirect is passed over, as the data plane passes it.
    let found = with(
        "[[routes]]\nname = \"moved\"\nlistener = \"old\"\nredirect = { path_prefix = \"/new\", port = 8080 }\n\
         [[tests]]\nrequest = \"GET http://shop.example:8080/old\"\nexpect = { route = \"fallback\" }\n",
    );
    assert!(
        !codes_of(&found).contains(&codes::TEST_FAILED),
        "{found:#?}"
    );
}

#[test]
fn the_examples_of_docs_lints_fire() {
    let found = with(
        "[[routes]]\nname = \"shop-home\"\nhost = \"shop.example.com\"\nredirect = { path_prefix = \"/shop\" }\n",
    );
    assert!(
        codes_of(&found).contains(&codes::REDIRECT_LOOP),
        "{found:#?}"
    );
    let found = with(
        "[[routes]]\nname = \"to-www\"\nredirect = { scheme = \"https\", host = \"www.example.com\" }\n",
    );
    assert!(
        codes_of(&found).contains(&codes::REDIRECT_TLS_UNCOVERED),
        "{found:#?}"
    );
    assert!(
        !codes_of(&found).contains(&codes::REDIRECT_LOOP),
        "{found:#?}"
    );
}
