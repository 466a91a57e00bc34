//! `[certificates.NAME] acme = { ... }`: the order parses into the model, each mistake
//! is reported at its key, and the loader takes an ACME certificate's bytes from the
//! installed source (the state directory in `keel serve`), never from `cert`/`key`.

use std::sync::Arc;

use keel_config::{
    AcmeCertificate, AcmeChallenge, AcmeMaterial, CertificateFiles, codes, install_acme_material,
    parse, read_certificate_files,
};

fn with_acme(acme: &str) -> String {
    format!(
        "[listeners.https]\naddr = \"127.0.0.1:8443\"\ntls = {{ certificates = [\"shop\"] }}\n\
         [certificates.shop]\n{acme}\n\
         [services.web]\n[pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"127.0.0.1:9001\" }}]\n\
         [[routes]]\nname = \"all\"\nservice = \"web\"\npool = \"web\"\n"
    )
}

const ORDER: &str = r#"acme = { directory = "https://acme.example/dir", contact = ["mailto:ops@example.com"], domains = ["shop.example.com", "www.shop.example.com"], directory_ca = "ca.pem" }"#;

#[test]
fn an_acme_certificate_names_its_directory_contacts_and_domains() {
    let parsed = parse(&with_acme(ORDER));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let certificate = &parsed.config.certificates["shop"];
    let acme = certificate.acme.as_ref().expect("an ACME certificate");
    assert_eq!(acme.directory.value, "https://acme.example/dir");
    let domains: Vec<&str> = acme.domains.iter().map(|d| d.value.as_str()).collect();
    assert_eq!(domains, ["shop.example.com", "www.shop.example.com"]);
    assert_eq!(acme.contact[0].value, "mailto:ops@example.com");
    assert_eq!(
        acme.directory_ca.as_ref().map(|c| c.value.as_str()),
        Some("ca.pem")
    );
    assert!(certificate.files.is_none());
    assert_eq!(acme.challenge.value, AcmeChallenge::Http01, "the default");
}

#[test]
fn tls_alpn_01_is_chosen_by_challenge() {
    let order = r#"acme = { directory = "https://acme.example/dir", domains = ["shop.example.com"], challenge = "tls-alpn-01" }"#;
    let source = with_acme(order);
    let parsed = parse(&source);
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let acme = parsed.config.certificates["shop"]
        .acme
        .clone()
        .expect("acme");
    assert_eq!(acme.challenge.value, AcmeChallenge::TlsAlpn01);
    assert!(source[acme.challenge.span.start..].starts_with("\"tls-alpn-01\""));
}

#[test]
fn each_acme_mistake_is_reported_where_it_is_written() {
    let cases = [
        (
            r#"acme = { directory = "http://acme.example/dir", domains = ["a.example"] }"#,
            "\"http://acme.example/dir\"",
        ),
        (
            r#"acme = { directory = "https://acme.example/dir", domains = ["not a name"] }"#,
            "\"not a name\"",
        ),
        (
            r#"acme = { directory = "https://acme.example/dir", domains = ["a.example"], contact = ["ops@example.com"] }"#,
            "\"ops@example.com\"",
        ),
        (
            "cert = \"certs/shop.pem\"\nacme = { directory = \"https://acme.example/dir\", domains = [\"a.example\"] }",
            "\"certs/shop.pem\"",
        ),
        (
            r#"acme = { directory = "https://acme.example/dir" }"#,
            "{ directory",
        ),
        (
            r#"acme = { directory = "https://acme.example/dir", domains = [] }"#,
            "{ directory",
        ),
        (
            r#"acme = { directory = "https://acme.example/dir", domains = ["a.example"], shortcut = 1 }"#,
            "shortcut",
        ),
        (
            r#"acme = { directory = "https://acme.example/dir", domains = ["a.example"], challenge = "dns-01" }"#,
            "\"dns-01\"",
        ),
    ];
    for (acme, at) in cases {
        let source = with_acme(acme);
        let parsed = parse(&source);
        let error = parsed
            .diagnostics
            .iter()
            .find(|d| d.code == codes::INVALID_VALUE || d.code == codes::UNKNOWN_KEY)
            .unwrap_or_else(|| panic!("no error for {acme}: {:#?}", parsed.diagnostics));
        let span = error.span.expect("a position");
        assert!(
            source[span.start..].starts_with(at),
            "{acme}: error at {:?}, expected at {at:?}",
            &source[span.start..span.end]
        );
    }
}

struct Issued;

impl AcmeMaterial for Issued {
    fn files(&self, name: &str, acme: &AcmeCertificate) -> Result<CertificateFiles, String> {
        Ok(CertificateFiles {
            chain_pem: format!("{name} for {}", acme.domains[0].value).into_bytes(),
            key_pem: b"key".to_vec(),
        })
    }
}

#[test]
fn the_loader_takes_an_acme_certificate_from_the_installed_source() {
    let mut config = parse(&with_acme(ORDER)).config;
    install_acme_material(Arc::new(Issued));
    // No file is read: `cert`/`key` of an ACME certificate only say where it is kept.
    let findings = read_certificate_files(
        &mut config.certificates,
        std::path::Path::new("/nonexistent"),
    );
    assert!(findings.is_empty(), "{findings:#?}");
    let files = config.certificates["shop"].files.as_ref().expect("bytes");
    assert_eq!(files.chain_pem, b"shop for shop.example.com");
}
