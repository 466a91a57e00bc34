//! Certificate lints through the one loader, on files made here with rcgen: unreadable
//! files point at their config key (`file:line:col`), a foreign key, an expired or
//! expiring certificate, a route host no certificate covers, and an unused certificate.

use std::path::Path;

use keel_check::load;
use keel_config::{Diagnostic, Severity, codes};

/// Writes `NAME.pem` / `NAME.key` for `names`, valid in `[from, until)` years.
fn write(dir: &Path, name: &str, names: &[&str], from: i32, until: i32) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(until, 1, 1);
    let cert = params.self_signed(&key).expect("self-signed");
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("cert");
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("key");
}

/// A config with listener `https` serving `listed`, certificate tables for `tables`,
/// a route for `host`, and `extra`; loaded from `dir/keel.toml`.
fn check(
    dir: &Path,
    listed: &[&str],
    tables: &[&str],
    host: &str,
    extra: &str,
) -> (String, Vec<Diagnostic>) {
    let quoted: Vec<String> = listed.iter().map(|n| format!("\"{n}\"")).collect();
    let mut text = format!(
        "[listeners.https]\naddr = \"127.0.0.1:8443\"\ntls = {{ certificates = [{}], default = \"{}\" }}\n",
        quoted.join(", "),
        listed[0]
    );
    for name in tables {
        text.push_str(&format!(
            "[certificates.{name}]\ncert = \"{name}.pem\"\nkey = \"{name}.key\"\n"
        ));
    }
    text.push_str(&format!(
        "[services.web]\nidentity = {{ header = \"x-service\", equals = \"web\" }}\n\
         [pools.web]\nservice = \"web\"\nbackends = [\"127.0.0.1:9001\"]\nhealth = {{ path = \"/healthz\" }}\n\
         [[routes]]\nname = \"shop\"\nhost = \"{host}\"\nservice = \"web\"\npool = \"web\"\n\
         [[routes]]\nname = \"rest\"\nservice = \"web\"\npool = \"web\"\n{extra}"
    ));
    let file = dir.join("keel.toml");
    let loaded = load(&file.to_string_lossy(), &text);
    (loaded.report.render_human(), loaded.report.diagnostics)
}

fn find<'a>(findings: &'a [Diagnostic], code: &str) -> Option<&'a Diagnostic> {
    findings.iter().find(|d| d.code == code)
}

#[test]
fn a_good_certificate_for_the_route_host_has_no_finding() {
    let dir = tempfile::tempdir().expect("dir");
    write(dir.path(), "shop", &["shop.example.com"], 2020, 2090);
    let (text, findings) = check(dir.path(), &["shop"], &["shop"], "shop.example.com", "");
    let tls_findings: Vec<&Diagnostic> = findings
        .iter()
        .filter(|d| d.code.starts_with("K12") || d.code.starts_with("K22"))
        .collect();
    assert!(tls_findings.is_empty(), "{text}");
}

#[test]
fn k123_an_unreadable_file_points_at_its_config_key() {
    let dir = tempfile::tempdir().expect("dir");
    let (text, findings) = check(dir.path(), &["shop"], &["shop"], "shop.example.com", "");
    let finding = find(&findings, codes::CERT_UNREADABLE).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(finding.severity, Severity::Error);
    // `cert = "shop.pem"` is on line 5 of the file; the value starts at column 8.
    assert!(text.contains("keel.toml:5:8"), "{text}");
    assert!(keel_check::is_hard(codes::CERT_UNREADABLE));
}

#[test]
fn k123_a_file_that_is_not_pem_is_reported() {
    let dir = tempfile::tempdir().expect("dir");
    write(dir.path(), "shop", &["shop.example.com"], 2020, 2090);
    std::fs::write(dir.path().join("shop.pem"), "not a certificate\n").expect("write");
    let (text, findings) = check(dir.path(), &["shop"], &["shop"], "shop.example.com", "");
    let finding = find(&findings, codes::CERT_UNREADABLE).unwrap_or_else(|| panic!("{text}"));
    assert!(finding.message.contains("no PEM"), "{text}");
}

#[test]
fn k122_a_key_of_another_certificate_is_an_error() {
    let dir = tempfile::tempdir().expect("dir");
    write(dir.path(), "shop", &["shop.example.com"], 2020, 2090);
    write(dir.path(), "other", &["other.example.com"], 2020, 2090);
    std::fs::copy(dir.path().join("other.key"), dir.path().join("shop.key")).expect("copy");
    let (text, findings) = check(dir.path(), &["shop"], &["shop"], "shop.example.com", "");
    let finding = find(&findings, codes::CERT_KEY_MISMATCH).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(finding.severity, Severity::Error);
    // The finding points at the key's line, and the key bytes never appear.
    assert!(text.contains("keel.toml:6:7"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
}

#[test]
fn k121_an_expired_certificate_is_an_error() {
    let dir = tempfile::tempdir().expect("dir");
    write(dir.path(), "shop", &["shop.example.com"], 2020, 2021);
    let (text, findings) = check(dir.path(), &["shop"], &["shop"], "shop.example.com", "");
    let finding = find(&findings, codes::CERT_EXPIRED).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(finding.severity, Severity::Error);
    assert!(finding.message.contains("expired"), "{text}");
}

#[test]
fn k220_a_certificate_expiring_within_the_warning_window_is_a_warning() {
    let dir = tempfile::tempdir().expect("dir");
    write(dir.path(), "shop", &["shop.example.com"], 2020, 2090);
    // Far from expiry with the default window: no warning.
    let (text, findings) = check(dir.path(), &["shop"], &["shop"], "shop.example.com", "");
    assert!(find(&findings, codes::CERT_EXPIRING).is_none(), "{text}");
    // A window of a century reaches 2090.
    let wide = "[safety]\ncert_expiry_warning = \"900000h\"\n";
    let (text, findings) = check(dir.path(), &["shop"], &["shop"], "shop.example.com", wide);
    let finding = find(&findings, codes::CERT_EXPIRING).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(finding.severity, Severity::Warning);
}

#[test]
fn k120_a_route_host_no_certificate_of_the_listener_covers_is_an_error() {
    let dir = tempfile::tempdir().expect("dir");
    write(dir.path(), "shop", &["shop.example.com"], 2020, 2090);
    write(dir.path(), "wild", &["*.example.org"], 2020, 2090);
    let listed = ["shop", "wild"];
    for covered in ["shop.example.com", "api.example.org", "*.example.org"] {
        let (text, findings) = check(dir.path(), &listed, &listed, covered, "");
        assert!(
            find(&findings, codes::CERT_NOT_COVERING).is_none(),
            "{covered}: {text}"
        );
    }
    for uncovered in ["api.example.com", "a.b.example.org", "*.example.com"] {
        let (text, findings) = check(dir.path(), &listed, &listed, uncovered, "");
        let finding = find(&findings, codes::CERT_NOT_COVERING)
            .unwrap_or_else(|| panic!("{uncovered}: {text}"));
        assert_eq!(finding.severity, Severity::Error);
        assert!(finding.message.contains(uncovered), "{text}");
    }
}

#[test]
fn k101_and_k221_unknown_and_unused_certificates() {
    let dir = tempfile::tempdir().expect("dir");
    write(dir.path(), "shop", &["shop.example.com"], 2020, 2090);
    write(dir.path(), "spare", &["spare.example.com"], 2020, 2090);
    let (text, findings) = check(
        dir.path(),
        &["shpo"],
        &["shop", "spare"],
        "shop.example.com",
        "",
    );
    let unknown = find(&findings, codes::UNKNOWN_REFERENCE).unwrap_or_else(|| panic!("{text}"));
    assert!(unknown.message.contains("did you mean `shop`"), "{text}");
    let unused: Vec<&Diagnostic> = findings
        .iter()
        .filter(|d| d.code == codes::CERT_UNUSED)
        .collect();
    assert_eq!(unused.len(), 2, "{text}");
}

#[test]
fn k101_a_route_limited_to_an_unknown_listener_and_k120_only_on_its_listeners() {
    let dir = tempfile::tempdir().expect("dir");
    write(dir.path(), "shop", &["shop.example.com"], 2020, 2090);
    let plain = "[listeners.http]\naddr = \"127.0.0.1:8080\"\n";
    // A route for a host no certificate covers, limited to the plain listener: the TLS
    // listener never answers for it.
    let limited = format!(
        "{plain}[[routes]]\nname = \"to-https\"\nhost = \"other.example.com\"\n\
         listener = \"http\"\nservice = \"web\"\npool = \"web\"\n"
    );
    let (text, findings) = check(
        dir.path(),
        &["shop"],
        &["shop"],
        "shop.example.com",
        &limited,
    );
    assert!(
        find(&findings, codes::CERT_NOT_COVERING).is_none(),
        "{text}"
    );
    assert!(
        find(&findings, codes::UNKNOWN_REFERENCE).is_none(),
        "{text}"
    );
    let on_tls = limited.replace("listener = \"http\"", "listener = [\"http\", \"https\"]");
    let (text, findings) = check(
        dir.path(),
        &["shop"],
        &["shop"],
        "shop.example.com",
        &on_tls,
    );
    assert!(
        find(&findings, codes::CERT_NOT_COVERING).is_some(),
        "{text}"
    );

    let typo = limited.replace("listener = \"http\"", "listener = \"htpp\"");
    let (text, findings) = check(dir.path(), &["shop"], &["shop"], "shop.example.com", &typo);
    let unknown = find(&findings, codes::UNKNOWN_REFERENCE).unwrap_or_else(|| panic!("{text}"));
    assert!(
        unknown.message.contains("unknown listener `htpp`"),
        "{text}"
    );
    assert!(text.contains("did you mean `http`"), "{text}");
    assert!(text.contains("keel.toml:"), "points at the key: {text}");
}

#[test]
fn a_certificate_replaced_at_the_same_path_is_a_change_in_the_diff_without_key_material() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("keel.toml");
    let text = "[listeners.https]\naddr = \"127.0.0.1:8443\"\n\
                tls = { certificates = [\"shop\"] }\n\
                [certificates.shop]\ncert = \"shop.pem\"\nkey = \"shop.key\"\n\
                [services.web]\n[pools.web]\nservice = \"web\"\nbackends = [\"127.0.0.1:9001\"]\n\
                [[routes]]\nname = \"shop\"\nservice = \"web\"\npool = \"web\"\n";
    let loaded = |_: ()| {
        load(&file.to_string_lossy(), text)
            .config_ignoring_policy()
            .expect("loads")
    };
    write(dir.path(), "shop", &["shop.example.com"], 2020, 2090);
    let before = loaded(());
    let same = keel_config::semantic_diff(&before, &loaded(()));
    assert!(same.is_empty(), "{}", same.render_human());

    write(
        dir.path(),
        "shop",
        &["shop.example.com", "www.shop.example.com"],
        2020,
        2091,
    );
    let after = loaded(());
    let diff = keel_config::semantic_diff(&before, &after);
    let text = diff.render_human();
    assert_eq!(diff.certificates.len(), 1, "{text}");
    let fields: Vec<&str> = diff.certificates[0]
        .fields
        .iter()
        .map(|f| f.field.as_str())
        .collect();
    for expected in ["SANs", "not_after", "sha256", "key bytes"] {
        assert!(
            fields.contains(&expected),
            "{expected} in {fields:?}\n{text}"
        );
    }
    assert!(text.contains("www.shop.example.com"), "{text}");
    assert!(text.contains("2091-01-01"), "{text}");
    let facts = after.certificates["shop"].facts.as_ref().expect("facts");
    assert_eq!(facts.key_type, "ECDSA P-256");
    assert!(text.contains(&facts.sha256), "{text}");
    let key = std::fs::read_to_string(dir.path().join("shop.key")).expect("key");
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!text.contains(&key_body[..32]), "no key material: {text}");
}

#[test]
fn k126_a_tls_alpn_01_certificate_no_tls_listener_presents_is_an_error_at_its_challenge() {
    let dir = tempfile::tempdir().expect("dir");
    write(dir.path(), "shop", &["shop.example.com"], 2020, 2090);
    let auto = "[certificates.auto]\nacme = { directory = \"https://acme.example/dir\", domains = [\"auto.example.com\"], challenge = \"tls-alpn-01\" }\n";
    let (text, findings) = check(dir.path(), &["shop"], &["shop"], "shop.example.com", auto);
    let finding =
        find(&findings, codes::ACME_TLS_ALPN_UNSERVED).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(finding.severity, Severity::Error, "{text}");
    // Pointed at `challenge` on the acme line (the config's 23rd line), file:line:col.
    let column = auto
        .lines()
        .nth(1)
        .and_then(|l| l.find("\"tls-alpn-01\""))
        .map_or(0, |c| c + 1);
    assert!(text.contains(&format!("keel.toml:23:{column}")), "{text}");
    assert!(text.contains("K126"), "{text}");

    // Presented by the TLS listener: nothing to say.
    let (text, findings) = check(
        dir.path(),
        &["shop", "auto"],
        &["shop"],
        "shop.example.com",
        auto,
    );
    assert!(
        find(&findings, codes::ACME_TLS_ALPN_UNSERVED).is_none(),
        "{text}"
    );
    // The same certificate proved by HTTP-01 is only unused (K221), not K126.
    let http = auto.replace(", challenge = \"tls-alpn-01\"", "");
    let (text, findings) = check(dir.path(), &["shop"], &["shop"], "shop.example.com", &http);
    assert!(
        find(&findings, codes::ACME_TLS_ALPN_UNSERVED).is_none(),
        "{text}"
    );
    assert!(find(&findings, codes::CERT_UNUSED).is_some(), "{text}");
}
