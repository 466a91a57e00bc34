//! The certificate part of the blast radius: sampled TLS requests replayed through
//! the SNI choice of both configs. A name that would get a certificate not covering
//! it is refused; names moving to another covering certificate are refused above
//! `max_shift`; a certificate renewed in place is no change.

use std::sync::Arc;

use keel_config::{CertificateFacts, Config};
use keel_impact::{GateReason, blast_radius, gate_change};
use keel_route::{RequestShape, TlsShape};

/// A config with TLS listener `https` serving `listed` (the first is the default),
/// with each certificate's SAN list and fingerprint as the loader would have read.
fn config(listed: &[(&str, &[&str], &str)], max_shift: &str) -> Config {
    let names: Vec<String> = listed.iter().map(|(n, _, _)| format!("\"{n}\"")).collect();
    let mut text = format!(
        "[listeners.https]\naddr = \"127.0.0.1:8443\"\n\
         tls = {{ certificates = [{}], default = \"{}\" }}\n\
         [safety]\nmax_shift = {max_shift}\n",
        names.join(", "),
        listed[0].0
    );
    for (name, _, _) in listed {
        text.push_str(&format!(
            "[certificates.{name}]\ncert = \"{name}.pem\"\nkey = \"{name}.key\"\n"
        ));
    }
    text.push_str(
        "[services.web]\n[pools.web]\nservice = \"web\"\nbackends = [\"127.0.0.1:9001\"]\n\
         [[routes]]\nname = \"all\"\nservice = \"web\"\npool = \"web\"\n",
    );
    let parsed = keel_config::parse(&text);
    assert!(!parsed.has_errors(), "{:#?}", parsed.diagnostics);
    let mut config = parsed.config;
    for (name, sans, sha) in listed {
        config.certificates[*name].facts = Some(Arc::new(CertificateFacts {
            subject: format!("CN={name}"),
            issuer: "CN=test".into(),
            dns_names: sans.iter().map(|s| s.to_string()).collect(),
            not_after: "2090-01-01T00:00:00Z".into(),
            key_type: "ECDSA P-256".into(),
            sha256: sha.to_string(),
        }));
    }
    config
}

/// `count` sampled HTTPS requests for `sni`, and `plain` plain ones.
fn sample(by_sni: &[(&str, usize)], plain: usize) -> Vec<RequestShape> {
    let mut out = Vec::new();
    for (sni, count) in by_sni {
        for _ in 0..*count {
            let mut shape = RequestShape::new("GET", sni, "/");
            shape.listener = Some("https".into());
            shape.tls = Some(TlsShape {
                sni: Some(sni.to_string()),
                version: "1.3".into(),
            });
            out.push(shape);
        }
    }
    for _ in 0..plain {
        out.push(RequestShape::new("GET", "shop.example.com", "/"));
    }
    out
}

#[test]
fn a_name_that_would_get_a_certificate_not_covering_it_is_refused() {
    let shop: &[&str] = &["shop.example.com"];
    let api: &[&str] = &["api.example.com"];
    let old = config(&[("shop", shop, "aa"), ("api", api, "bb")], "0.5");
    // The api certificate is dropped: api.example.com would get the default.
    let new = config(&[("shop", shop, "aa")], "0.5");
    let sample = sample(&[("shop.example.com", 88), ("api.example.com", 12)], 0);
    let report = blast_radius(&old, &new, &sample).expect("report");
    let verdict = gate_change(&report, &old, &new);
    assert!(!verdict.allowed, "{}", verdict.render_human());
    let reason = verdict
        .reasons
        .iter()
        .find(|r| matches!(r, GateReason::CertificateUncovered { .. }))
        .expect("an uncovered-name reason");
    let text = reason.to_string();
    assert!(
        text.starts_with("12.0% of sampled requests (12 with SNI api.example.com"),
        "{text}"
    );
    assert!(text.contains("does not cover their host"), "{text}");
}

#[test]
fn names_moving_to_another_covering_certificate_are_refused_above_max_shift() {
    let shop: &[&str] = &["shop.example.com"];
    let wild: &[&str] = &["*.example.com"];
    let api: &[&str] = &["api.example.com"];
    let old = config(&[("shop", shop, "aa"), ("api", api, "bb")], "0.1");
    let new = config(&[("shop", shop, "aa"), ("wild", wild, "cc")], "0.1");
    let sample = sample(&[("shop.example.com", 80), ("api.example.com", 20)], 0);
    let verdict = gate_change(
        &blast_radius(&old, &new, &sample).expect("report"),
        &old,
        &new,
    );
    let Some(GateReason::CertificateChange {
        names, requests, ..
    }) = verdict
        .reasons
        .iter()
        .find(|r| matches!(r, GateReason::CertificateChange { .. }))
    else {
        panic!("{}", verdict.render_human());
    };
    assert_eq!(
        (names.as_slice(), *requests),
        (&["api.example.com".to_string()][..], 20)
    );

    // The same move under a looser limit passes.
    let old = config(&[("shop", shop, "aa"), ("api", api, "bb")], "0.5");
    let new = config(&[("shop", shop, "aa"), ("wild", wild, "cc")], "0.5");
    let verdict = gate_change(
        &blast_radius(&old, &new, &sample).expect("report"),
        &old,
        &new,
    );
    assert!(verdict.allowed, "{}", verdict.render_human());
}

#[test]
fn a_certificate_renewed_in_place_and_plain_requests_are_no_change() {
    let shop: &[&str] = &["shop.example.com"];
    let old = config(&[("shop", shop, "aa")], "0");
    let new = config(&[("shop", shop, "renewed")], "0");
    let sample = sample(&[("shop.example.com", 10)], 5);
    let report = blast_radius(&old, &new, &sample).expect("report");
    assert_eq!(report.certificates.tls_requests, 10);
    assert!(report.certificates.shifts.is_empty());
    assert!(gate_change(&report, &old, &new).allowed);
}
