//! Certificate blast radius: which certificate each sampled TLS request's SNI name
//! would get from its listener under the old and the new config (exact SAN, then
//! wildcard SAN, then the listener's `default`, as the data plane picks), and whether
//! the new one covers the name.
//!
//! Two ways a change hurts clients, both judged like a misroute by the gate:
//! - **uncovered**: the name would get a certificate that does not cover it (browsers
//!   refuse the connection). Judged per SNI name, as a host's service shift is: the
//!   share of that name's sampled requests.
//! - **another certificate**: the name would get a different certificate (another
//!   `[certificates]` entry) that still covers it. Judged on the whole sample. A
//!   certificate renewed in place (same entry, new bytes) is not "another".
//!
//! Certificates are known by the facts the loader read (`Certificate::facts`); a
//! config without them (not loaded from files) is not judged, and the report says so.

use std::collections::BTreeMap;

use keel_config::Config;
use keel_route::RequestShape;
use serde::Serialize;

/// What one SNI name (on one listener) would see change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CertificateShift {
    /// The SNI name.
    pub sni: String,
    /// The listener the requests came in on.
    pub listener: String,
    /// Sampled requests with this name on this listener.
    pub requests: usize,
    /// The certificate the old config gives the name.
    pub old: String,
    /// The certificate the new config would give it (`None`: the listener serves no
    /// certificate any more).
    pub new: Option<String>,
    /// Whether that certificate covers the name.
    pub covered: bool,
}

/// The certificate changes of a sample: what the gate judges.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CertificateImpact {
    /// Sampled requests that came over TLS with an SNI name.
    pub tls_requests: usize,
    /// Names whose certificate changes, most requests first.
    pub shifts: Vec<CertificateShift>,
    /// Whether the certificates' facts were known in both configs.
    pub judged: bool,
}

/// The certificate `name` gets on `listener` under `config`, with the names it
/// covers; `None` when the listener is not TLS there or its certificates' facts are
/// unknown.
fn pick<'c>(config: &'c Config, listener: &str, name: &str) -> Option<(&'c str, &'c [String])> {
    let tls = config.listeners.get(listener)?.tls.as_ref()?;
    let facts = |cert: &'c str| {
        let facts = config.certificates.get(cert)?.facts.as_ref()?;
        Some((cert, facts.dns_names.as_slice()))
    };
    let listed: Vec<(&str, &[String])> = tls
        .certificates
        .iter()
        .map(|c| facts(c.value.as_str()))
        .collect::<Option<_>>()?;
    let exact = listed
        .iter()
        .find(|(_, names)| names.iter().any(|n| n == name));
    let wildcard = || {
        let (_, suffix) = name.split_once('.')?;
        listed
            .iter()
            .find(|(_, names)| names.iter().any(|n| n.strip_prefix("*.") == Some(suffix)))
    };
    match exact.or_else(wildcard) {
        Some(found) => Some(*found),
        None => facts(tls.default.value.as_str()),
    }
}

/// True when a SAN list covers `name` (wildcards stand for one label).
fn covers(names: &[String], name: &str) -> bool {
    names.iter().any(|n| match n.strip_prefix("*.") {
        Some(suffix) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => n == name,
    })
}

/// Replays the TLS requests of `sample` through the certificate choice of both configs.
pub fn certificate_impact(
    old: &Config,
    new: &Config,
    sample: &[RequestShape],
) -> CertificateImpact {
    let known = |c: &Config| c.certificates.values().all(|cert| cert.facts.is_some());
    let mut impact = CertificateImpact {
        judged: known(old) && known(new),
        ..CertificateImpact::default()
    };
    let mut by_name: BTreeMap<(&str, &str), CertificateShift> = BTreeMap::new();
    for request in sample {
        let (Some(tls), Some(listener)) = (&request.tls, &request.listener) else {
            continue;
        };
        let Some(sni) = tls.sni.as_deref() else {
            continue;
        };
        impact.tls_requests += 1;
        if !impact.judged {
            continue;
        }
        let Some((old_cert, _)) = pick(old, listener, sni) else {
            continue;
        };
        let new_pick = pick(new, listener, sni);
        let covered = new_pick.is_some_and(|(_, names)| covers(names, sni));
        if new_pick.map(|(name, _)| name) == Some(old_cert) && covered {
            continue;
        }
        by_name
            .entry((sni, listener.as_str()))
            .or_insert_with(|| CertificateShift {
                sni: sni.to_string(),
                listener: listener.clone(),
                requests: 0,
                old: old_cert.to_string(),
                new: new_pick.map(|(name, _)| name.to_string()),
                covered,
            })
            .requests += 1;
    }
    impact.shifts = by_name.into_values().collect();
    impact
        .shifts
        .sort_by(|a, b| b.requests.cmp(&a.requests).then(a.sni.cmp(&b.sni)));
    impact
}
