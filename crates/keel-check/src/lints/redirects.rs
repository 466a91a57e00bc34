//! K218: a redirect to `https` for a host no certificate of a TLS listener covers. The
//! client follows the redirect and then refuses the handshake: the wrong-certificate
//! class of outage, one hop later. The host is the redirect's own `host`, or the
//! route's host condition when it keeps the request's; a route that keeps the host of
//! any request is judged only when there is no TLS listener at all.
//!
//! It is a warning, not an error: the new host may be served by another server, whose
//! certificates Keel cannot see. Certificates that could not be read (K123) or ACME
//! certificates not yet issued count by what they will cover (their `domains`).

use keel_config::{Config, Diagnostic, HostMatch, RedirectScheme, codes};

pub(super) fn check(config: &Config, out: &mut Vec<Diagnostic>) {
    let tls_listeners: Vec<&keel_config::ListenerTls> = config
        .listeners
        .values()
        .filter_map(|l| l.tls.as_ref())
        .collect();
    // Every DNS name some TLS listener's certificates cover (SAN patterns, lower case);
    // `None` when one of them cannot be judged (unreadable, reported elsewhere).
    let mut names: Vec<String> = Vec::new();
    for tls in &tls_listeners {
        for reference in &tls.certificates {
            let Some(certificate) = config.certificates.get(&reference.value) else {
                return;
            };
            if let Some(acme) = &certificate.acme {
                names.extend(acme.domains.iter().map(|d| d.value.to_ascii_lowercase()));
            } else if let Some(facts) = &certificate.facts {
                names.extend(facts.dns_names.iter().cloned());
            } else {
                return;
            }
        }
    }
    for route in &config.routes {
        let Some(redirect) = route.redirect() else {
            continue;
        };
        let Some(scheme) = &redirect.value.scheme else {
            continue;
        };
        if scheme.value != RedirectScheme::Https {
            continue;
        }
        let host = match (&redirect.value.host, route.host.as_ref().map(|h| &h.value)) {
            (Some(host), _) => Some(host.value.clone()),
            (None, Some(HostMatch::Exact(host))) => Some(host.clone()),
            (None, Some(HostMatch::Suffix(suffix))) => Some(format!("*{suffix}")),
            (None, None) => None,
        };
        let (message, label) = match &host {
            Some(host) if !names.iter().any(|name| covers(name, host)) => (
                format!(
                    "redirect `{}` sends clients to https://{host}, but no TLS listener's certificate covers `{host}`",
                    route.name.value
                ),
                "no certificate for this host",
            ),
            None if tls_listeners.is_empty() => (
                format!(
                    "redirect `{}` sends clients to https, but Keel has no TLS listener",
                    route.name.value
                ),
                "no listener terminates TLS",
            ),
            _ => continue,
        };
        out.push(
            Diagnostic::warning(codes::REDIRECT_TLS_UNCOVERED, message)
                .at(scheme.span, label)
                .with_note("clients follow the redirect and then refuse the handshake")
                .with_help("add a certificate covering the host to a TLS listener's `certificates`; if another server answers that host, this warning does not apply"),
        );
    }
}

/// True when the SAN pattern `name` covers `host`; a wildcard host (`*.example.com`,
/// from a route's host condition) is covered only by the same wildcard.
fn covers(name: &str, host: &str) -> bool {
    if name == host {
        return true;
    }
    if host.starts_with('*') {
        return false;
    }
    match name.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{codes as codes_of, run_lint};
    use super::*;

    #[test]
    fn https_to_a_host_without_a_tls_listener_is_a_warning() {
        let found = run_lint(
            check,
            "[[routes]]\nname = \"move\"\nredirect = { scheme = \"https\", host = \"www.example.com\" }\n\
             [[routes]]\nname = \"up\"\nhost = \"a.example.com\"\nredirect = { scheme = \"https\" }\n\
             [[routes]]\nname = \"any\"\nredirect = { scheme = \"https\" }\n\
             [[routes]]\nname = \"plain\"\nredirect = { scheme = \"http\", host = \"b.example.com\" }\n",
        );
        assert_eq!(
            codes_of(&found),
            vec![codes::REDIRECT_TLS_UNCOVERED; 3],
            "{found:#?}"
        );
        assert!(found[0].message.contains("https://www.example.com"));
        assert!(found[2].message.contains("no TLS listener"));
    }

    #[test]
    fn a_host_a_tls_listeners_certificate_covers_is_clean() {
        let mut config = super::super::test_support::config(
            "[listeners.https]\naddr = \"127.0.0.1:8443\"\ntls = { certificates = [\"shop\"] }\n\
             [certificates.shop]\ncert = \"shop.pem\"\nkey = \"shop.key\"\n\
             [[routes]]\nname = \"covered\"\nhost = \"shop.example.com\"\nlistener = \"web\"\nredirect = { scheme = \"https\" }\n\
             [[routes]]\nname = \"wild\"\nhost = \"*.example.com\"\nlistener = \"web\"\nredirect = { scheme = \"https\" }\n\
             [[routes]]\nname = \"elsewhere\"\nlistener = \"web\"\nredirect = { scheme = \"https\", host = \"other.example.org\" }\n\
             [[routes]]\nname = \"any\"\nlistener = \"web\"\nredirect = { scheme = \"https\" }\n",
        );
        let mut out = Vec::new();
        check(&config, &mut out);
        assert!(
            out.is_empty(),
            "unread certificates are not judged: {out:#?}"
        );
        if let Some(certificate) = config.certificates.get_mut("shop") {
            certificate.facts = Some(std::sync::Arc::new(keel_config::CertificateFacts {
                subject: "CN=shop".into(),
                issuer: "CN=shop".into(),
                dns_names: vec!["shop.example.com".into()],
                not_after: "2090-01-01T00:00:00Z".into(),
                key_type: "ECDSA P-256".into(),
                sha256: "00".into(),
            }));
        }
        check(&config, &mut out);
        let routes: Vec<&str> = out
            .iter()
            .filter_map(|d| d.message.split('`').nth(1))
            .collect();
        assert_eq!(routes, vec!["wild", "elsewhere"], "{out:#?}");
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(covers("*.example.com", "www.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(covers("*.example.com", "*.example.com"));
        assert!(!covers("www.example.com", "*.example.com"));
    }
}
