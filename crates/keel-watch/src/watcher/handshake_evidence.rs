//! Handshake evidence: what a watch of a change that replaced certificates waits for
//! before it vouches, as it waits for requests on the routes that had traffic
//! (`awaits_evidence` in `mod.rs`).
//!
//! A certificate is proven by clients that completed a full handshake with it, not by
//! requests: requests on connections opened before the swap, and resumed sessions,
//! never saw the new certificate. So, for every certificate whose bytes changed (new, or
//! other chain or key than the baseline's certificate of that name) and every TLS
//! listener of the candidate presenting it, the watch waits until the candidate's
//! window holds [`MIN_FULL_HANDSHAKES`] full (not resumed) handshakes on that listener
//! whose SNI name picked that certificate. Counted per certificate: on a listener
//! presenting a changed and an unchanged certificate (SNI), handshakes with the
//! unchanged one prove nothing about the changed one.
//!
//! Evidence is expected only where clients came before: the baseline's window held as
//! many completed handshakes with the certificate of that name on that listener, or,
//! for a certificate the baseline's listener did not present, as many handshake
//! attempts on the listener (a busy listener, whose new certificate no client may yet
//! have asked for: then the watch ends `unproven`, which is the truth).

use keel_config::Config;
use keel_proxy::Generation;

use super::EvidenceWait;
use crate::detectors::handshakes::MIN_HANDSHAKES;
use crate::handshake_window::Handshakes;

/// Full handshakes a listener presenting a changed certificate must complete under the
/// candidate before the watch vouches (20): as many as the `handshakes` detector needs
/// before it may judge, so a watch never vouches for a certificate the detector could
/// not yet have refused.
pub const MIN_FULL_HANDSHAKES: u64 = MIN_HANDSHAKES;

/// Names of the candidate's certificates whose bytes differ from the baseline's
/// certificate of the same name (or that the baseline does not have).
pub(crate) fn changed_certificates(baseline: &Config, candidate: &Config) -> Vec<String> {
    candidate
        .certificates
        .iter()
        .filter(|(name, certificate)| {
            baseline
                .certificates
                .get(*name)
                .is_none_or(|before| before.files != certificate.files)
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// The (TLS listener, changed certificate) pairs of the candidate that have not yet
/// completed [`MIN_FULL_HANDSHAKES`] full handshakes (see the module doc): one wait each.
pub(crate) fn handshake_waits(
    baseline: &Generation,
    candidate: &Generation,
    before: &[Handshakes],
    now: &[Handshakes],
) -> Vec<EvidenceWait> {
    let changed = changed_certificates(&baseline.config, &candidate.config);
    if changed.is_empty() {
        return Vec::new();
    }
    let mut waits = Vec::new();
    for (name, listener) in &candidate.config.listeners {
        let Some(tls) = &listener.tls else {
            continue;
        };
        let of = |windows: &[Handshakes]| {
            windows
                .iter()
                .find(|h| &*h.listener == name.as_str())
                .cloned()
        };
        let (before, now) = (of(before), of(now));
        for certificate in tls.certificates.iter().map(|c| &c.value) {
            if !changed.contains(certificate) {
                continue;
            }
            let had = before
                .as_ref()
                .is_some_and(|h| match h.certificate(certificate) {
                    Some(with) => with.completed >= MIN_FULL_HANDSHAKES,
                    None => h.attempts() >= MIN_FULL_HANDSHAKES,
                });
            let full = now
                .as_ref()
                .and_then(|h| h.certificate(certificate))
                .map_or(0, |with| with.full);
            if had && full < MIN_FULL_HANDSHAKES {
                waits.push(EvidenceWait {
                    route: name.clone(),
                    requests: full,
                    needed: MIN_FULL_HANDSHAKES,
                    certificates: vec![certificate.clone()],
                });
            }
        }
    }
    waits
}
