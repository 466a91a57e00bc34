//! `[certificates.NAME]` and a listener's `tls` table: the shape parses into the model,
//! and each mistake is reported at the key that holds it.

use std::time::Duration;

use keel_config::{TlsVersion, codes, parse, semantic_diff};

const ROUTES: &str = r#"
[services.web]
[pools.web]
service = "web"
backends = [{ addr = "127.0.0.1:9001" }]
[[routes]]
name = "all"
service = "web"
pool = "web"
"#;

fn with_tls(tls: &str) -> String {
    format!(
        "[listeners.https]\naddr = \"127.0.0.1:8443\"\ntls = {tls}\n\
         [certificates.shop]\ncert = \"certs/shop.pem\"\nkey = \"certs/shop.key\"\n\
         [certificates.api]\ncert = \"certs/api.pem\"\nkey = \"certs/api.key\"\n{ROUTES}"
    )
}

#[test]
fn a_tls_listener_names_its_certificates_default_and_version() {
    let parsed = parse(&with_tls(
        r#"{ certificates = ["shop", "api"], default = "api", min_version = "1.3" }"#,
    ));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let config = parsed.config;
    let tls = config.listeners["https"].tls.as_ref().expect("tls table");
    let names: Vec<&str> = tls.certificates.iter().map(|c| c.value.as_str()).collect();
    assert_eq!(names, ["shop", "api"]);
    assert_eq!(tls.default.value, "api");
    assert_eq!(tls.min_version.value, TlsVersion::Tls13);
    assert_eq!(config.certificates["shop"].cert.value, "certs/shop.pem");
    assert_eq!(config.certificates["api"].key.value, "certs/api.key");
    assert_eq!(
        config.safety.cert_expiry_warning,
        Duration::from_secs(21 * 24 * 3600)
    );
}

#[test]
fn one_certificate_is_its_own_default_and_the_version_defaults_to_1_2() {
    let parsed = parse(&with_tls(r#"{ certificates = ["shop"] }"#));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let tls = parsed.config.listeners["https"].tls.clone().expect("tls");
    assert_eq!(tls.default.value, "shop");
    assert_eq!(tls.min_version.value, TlsVersion::Tls12);
}

#[test]
fn each_tls_mistake_is_reported_where_it_is_written() {
    let cases = [
        (
            r#"{ certificates = ["shop", "api"] }"#,
            codes::MISSING_KEY,
            "missing `default`",
        ),
        (
            r#"{ certificates = ["shop"], default = "api" }"#,
            codes::INVALID_VALUE,
            "not among this listener's certificates",
        ),
        (
            r#"{ certificates = ["shop"], min_version = "1.1" }"#,
            codes::INVALID_VALUE,
            "TLS 1.1 is broken",
        ),
        (
            r#"{ certificates = ["shop"], min_version = "2" }"#,
            codes::INVALID_VALUE,
            "unknown TLS version",
        ),
        (
            r#"{ certificates = [] }"#,
            codes::INVALID_VALUE,
            "at least one",
        ),
        (
            r#"{ certificates = ["shop", "shop"] }"#,
            codes::DUPLICATE_NAME,
            "listed twice",
        ),
        (
            r#"{ certificates = ["shop"], sni = true }"#,
            codes::UNKNOWN_KEY,
            "unknown key `sni`",
        ),
    ];
    for (tls, code, message) in cases {
        let source = with_tls(tls);
        let parsed = parse(&source);
        let found = parsed
            .diagnostics
            .iter()
            .find(|d| d.code == code && d.message.contains(message));
        let Some(found) = found else {
            panic!("{tls}: no {code} `{message}` in {:#?}", parsed.diagnostics);
        };
        // Every finding points into the `tls = { ... }` line.
        let span = found.span.expect("a span");
        let line_start = source.find("tls = ").expect("tls line");
        let line_end = line_start + source[line_start..].find('\n').expect("end");
        assert!(
            span.start >= line_start && span.end <= line_end,
            "{tls}: span {span:?} outside the tls line"
        );
    }
}

#[test]
fn a_certificate_needs_both_files() {
    let source = format!(
        "[listeners.web]\naddr = \"127.0.0.1:8080\"\n[certificates.shop]\ncert = \"shop.pem\"\n{ROUTES}"
    );
    let parsed = parse(&source);
    assert!(
        parsed
            .diagnostics
            .iter()
            .any(|d| d.code == codes::MISSING_KEY && d.message.contains("`key`")),
        "{:#?}",
        parsed.diagnostics
    );
}

#[test]
fn the_semantic_diff_lists_certificate_and_listener_tls_changes() {
    let old = parse(&with_tls(r#"{ certificates = ["shop"] }"#)).config;
    let new_source = with_tls(r#"{ certificates = ["shop", "api"], default = "api" }"#)
        .replace("certs/shop.pem", "certs/shop-2027.pem");
    let new = parse(&new_source).config;
    let diff = semantic_diff(&old, &new);
    let rendered = diff.render_human();
    assert_eq!(diff.certificates.len(), 1, "{rendered}");
    assert_eq!(diff.certificates[0].name, "shop");
    assert!(rendered.contains("certs/shop.pem"), "{rendered}");
    assert!(rendered.contains("certs/shop-2027.pem"), "{rendered}");
    assert_eq!(diff.listeners.len(), 1, "{rendered}");
    assert!(rendered.contains("default api"), "{rendered}");
}

#[test]
fn hsts_parses_with_its_default_and_refuses_what_it_cannot_say() {
    let parsed = parse(&with_tls(
        r#"{ certificates = ["shop", "api"], default = "shop", hsts = { include_subdomains = true } }"#,
    ));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let tls = parsed.config.listeners["https"].tls.clone().expect("tls");
    let hsts = tls.hsts.expect("hsts").value;
    assert_eq!(hsts.max_age, keel_config::defaults::HSTS_MAX_AGE);
    assert_eq!(hsts.header_value(), "max-age=31536000; includeSubDomains");
    for (bad, what) in [
        (r#"hsts = { max_age = "500ms" }"#, "whole seconds"),
        (r#"hsts = { maxage = "1h" }"#, "unknown key `maxage`"),
        (r#"hsts = true"#, "hsts"),
    ] {
        let parsed = parse(&with_tls(&format!(
            r#"{{ certificates = ["shop", "api"], default = "shop", {bad} }}"#
        )));
        let text = format!("{:#?}", parsed.diagnostics);
        assert!(parsed.has_errors() && text.contains(what), "{bad}: {text}");
    }
}

#[test]
fn a_route_names_its_listeners_and_may_require_sni() {
    let text = with_tls(r#"{ certificates = ["shop", "api"], default = "shop" }"#).replace(
        "pool = \"web\"\n",
        "pool = \"web\"\nlistener = [\"https\"]\nrequire_sni = true\n",
    );
    let parsed = parse(&text);
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let route = &parsed.config.routes[0];
    assert_eq!(route.listeners[0].value, "https");
    assert!(route.require_sni);
    for bad in ["listener = []", "listener = [1]", "require_sni = \"yes\""] {
        let text = with_tls(r#"{ certificates = ["shop", "api"], default = "shop" }"#)
            .replace("pool = \"web\"\n", &format!("pool = \"web\"\n{bad}\n"));
        assert!(parse(&text).has_errors(), "{bad}");
    }
}
