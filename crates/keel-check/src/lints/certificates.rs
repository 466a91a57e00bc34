//! Certificates, read from the bytes the loader took from their files: K101 (a listener
//! names a certificate that does not exist), K123 (a file that is not a usable PEM
//! chain or key; unreadable files are reported by the loader, at the same key), K122
//! (a key that is not the leaf's), K121 (expired), K220 (expiring within `[safety]
//! cert_expiry_warning`), K221 (a certificate no listener uses) and K120 (a route host
//! that no certificate of a TLS listener covers: browsers would refuse it, the
//! wrong-certificate class of outage), K126 (an ACME certificate proved by TLS-ALPN-01
//! that no TLS listener presents: the validation handshake has nowhere to land).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use keel_config::{AcmeChallenge, Config, Diagnostic, HostMatch, codes, format_duration};
use keel_proxy::tls::{LeafSummary, MaterialError, servable};

use super::suggestion;

/// Seconds in a day, for "expires in N days".
const DAY_SECONDS: i64 = 24 * 3600;

pub(super) fn check(config: &Config, out: &mut Vec<Diagnostic>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    check_at(config, now, out);
}

/// [`check`] with the current time given, in seconds since the Unix epoch.
pub(super) fn check_at(config: &Config, now: i64, out: &mut Vec<Diagnostic>) {
    let leaves = certificates(config, now, out);
    for (name, listener) in &config.listeners {
        let Some(tls) = &listener.tls else { continue };
        for reference in &tls.certificates {
            if !config.certificates.contains_key(&reference.value) {
                out.push(
                    Diagnostic::error(
                        codes::UNKNOWN_REFERENCE,
                        format!(
                            "listener `{name}` names unknown certificate `{}`{}",
                            reference.value,
                            suggestion(
                                &reference.value,
                                config.certificates.keys().map(String::as_str)
                            )
                        ),
                    )
                    .at(reference.span, "no [certificates] table has this name")
                    .with_help(format!(
                        "add [certificates.{}] with cert and key files",
                        reference.value
                    )),
                );
            }
        }
        let listener_leaves: Vec<&LeafSummary> = tls
            .certificates
            .iter()
            .filter_map(|c| leaves.get(c.value.as_str()))
            .collect();
        // Only when every certificate could be read: otherwise K123 already says why.
        if listener_leaves.len() != tls.certificates.len() {
            continue;
        }
        for route in &config.routes {
            let Some(host) = &route.host else { continue };
            // A route limited to other listeners never answers on this one.
            let elsewhere =
                !route.listeners.is_empty() && !route.listeners.iter().any(|l| l.value == *name);
            if elsewhere {
                continue;
            }
            let covered = match &host.value {
                HostMatch::Exact(host) => listener_leaves.iter().any(|leaf| leaf.covers(host)),
                HostMatch::Suffix(suffix) => {
                    let wildcard = format!("*{suffix}");
                    listener_leaves
                        .iter()
                        .any(|leaf| leaf.dns_names.contains(&wildcard))
                }
            };
            if !covered {
                out.push(
                    Diagnostic::error(
                        codes::CERT_NOT_COVERING,
                        format!(
                            "route `{}` serves host `{}` on TLS listener `{name}`, but none of its certificates covers it",
                            route.name.value, host.value
                        ),
                    )
                    .at(host.span, "no certificate for this host")
                    .with_help("add a certificate whose subject alternative names include this host to the listener's `certificates`")
                    .with_note("clients would get the default certificate and refuse the connection"),
                );
            }
        }
    }
    for (name, certificate) in &config.certificates {
        let used = config.listeners.values().any(|l| {
            l.tls
                .as_ref()
                .is_some_and(|tls| tls.certificates.iter().any(|c| &c.value == name))
        });
        if let Some(acme) = &certificate.acme
            && acme.challenge.value == AcmeChallenge::TlsAlpn01
            && !used
        {
            out.push(
                Diagnostic::error(
                    codes::ACME_TLS_ALPN_UNSERVED,
                    format!(
                        "certificate `{name}` is proved by tls-alpn-01, but no TLS listener presents it"
                    ),
                )
                .at(
                    acme.challenge.span,
                    "the ACME server validates this on a TLS listener",
                )
                .with_help(format!(
                    "add \"{name}\" to the `certificates` of the TLS listener on port 443, or use challenge = \"http-01\" with a plain listener on port 80"
                ))
                .with_note("the ACME server's validation handshake would find no listener presenting the certificate: it would never be issued"),
            );
        }
        if !used {
            out.push(
                Diagnostic::warning(
                    codes::CERT_UNUSED,
                    format!("certificate `{name}` is used by no listener"),
                )
                .at(
                    certificate.name.span,
                    "not named by any listener's tls.certificates",
                )
                .with_help("add it to a TLS listener's `certificates`, or remove it"),
            );
        }
    }
}

/// Parses every certificate that has bytes; reports K123, K122, K121 and K220; returns
/// the leaves of the servable ones by name.
fn certificates<'a>(
    config: &'a Config,
    now: i64,
    out: &mut Vec<Diagnostic>,
) -> HashMap<&'a str, LeafSummary> {
    let mut leaves = HashMap::new();
    let warning = i64::try_from(config.safety.cert_expiry_warning.as_secs()).unwrap_or(i64::MAX);
    for (name, certificate) in &config.certificates {
        let Some(files) = &certificate.files else {
            continue;
        };
        let ready = match servable(files) {
            Ok(ready) => ready,
            Err(MaterialError::KeyMismatch) => {
                out.push(
                    Diagnostic::error(
                        codes::CERT_KEY_MISMATCH,
                        format!(
                            "the key of certificate `{name}` does not belong to its certificate"
                        ),
                    )
                    .at(certificate.key.span, "this key")
                    .with_help("point `key` at the private key the certificate was issued for"),
                );
                continue;
            }
            Err(error @ MaterialError::BadKey(_)) => {
                out.push(unusable(name, &error, certificate.key.span));
                continue;
            }
            Err(error) => {
                out.push(unusable(name, &error, certificate.cert.span));
                continue;
            }
        };
        let leaf = ready.leaf;
        let left = leaf.not_after.saturating_sub(now);
        if left <= 0 {
            out.push(
                Diagnostic::error(
                    codes::CERT_EXPIRED,
                    format!(
                        "certificate `{name}` ({}) expired {} days ago",
                        leaf.subject,
                        (-left) / DAY_SECONDS
                    ),
                )
                .at(certificate.cert.span, "expired")
                .with_help("renew it and point `cert` and `key` at the new files"),
            );
        } else if left < warning {
            out.push(
                Diagnostic::warning(
                    codes::CERT_EXPIRING,
                    format!(
                        "certificate `{name}` ({}) expires in {} days",
                        leaf.subject,
                        left / DAY_SECONDS
                    ),
                )
                .at(certificate.cert.span, "expires soon")
                .with_help("renew it before it expires")
                .with_note(format!(
                    "[safety] cert_expiry_warning is {}",
                    format_duration(config.safety.cert_expiry_warning)
                )),
            );
        }
        leaves.insert(name.as_str(), leaf);
    }
    leaves
}

fn unusable(name: &str, error: &MaterialError, span: keel_config::Span) -> Diagnostic {
    Diagnostic::error(
        codes::CERT_UNREADABLE,
        format!("certificate `{name}` cannot be used: {error}"),
    )
    .at(span, "this file")
    .with_help("give a PEM chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1)")
}
