//! The handshake counters of one TLS listener in one generation: handshakes completed
//! per certificate of the listener (the one the client's SNI name picks), by protocol
//! version, ALPN and kind (full or resumed), and failed (by reason).
//!
//! Handshakes are counted on the generation whose certificates the client got (the
//! primary when the connection arrived, or the canary for its slice of connections), so
//! the detectors can hold a certificate change to its handshakes as they hold a route
//! change to its requests. Each generation has one [`HandshakeCounters`] per TLS
//! listener of its config; the hot path is one relaxed increment per handshake.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use rustls::{AlertDescription, PeerIncompatible};

/// Why a handshake did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Not done within [`super::TLS_HANDSHAKE_TIMEOUT`].
    Timeout,
    /// The generation has no servable certificate for this listener.
    NoCertificate,
    /// The client refused the certificate it got (an alert such as `bad_certificate`
    /// for a name the certificate does not cover, `unknown_ca`, `certificate_expired`),
    /// or offered no signature scheme the certificate's key can sign with.
    CertificateRefused,
    /// The peer spoke something rustls refused (no common version or cipher, a bad
    /// message, plain HTTP, another client alert).
    Protocol,
    /// The connection failed or closed mid-handshake.
    Io,
}

impl HandshakeFailure {
    /// Every reason, in metric order.
    pub const ALL: [Self; 5] = [
        Self::Timeout,
        Self::NoCertificate,
        Self::CertificateRefused,
        Self::Protocol,
        Self::Io,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::NoCertificate => "no_certificate",
            Self::CertificateRefused => "certificate_refused",
            Self::Protocol => "protocol",
            Self::Io => "io",
        }
    }

    /// Whether the failure points at what the generation serves (no certificate, or
    /// one the clients refuse) rather than at the peer or the network: the reasons a
    /// generation watched on its own, without a baseline, is judged on.
    pub fn blames_certificate(self) -> bool {
        matches!(self, Self::NoCertificate | Self::CertificateRefused)
    }

    /// The reason of a failed `accept` (tokio-rustls wraps rustls's error in an
    /// `io::Error`; anything else is the connection's).
    pub(crate) fn of_error(error: &std::io::Error) -> Self {
        match error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            Some(error) if refuses_certificate(error) => Self::CertificateRefused,
            Some(_) => Self::Protocol,
            None => Self::Io,
        }
    }
}

/// Whether rustls's error says the client would not take the certificate.
fn refuses_certificate(error: &rustls::Error) -> bool {
    match error {
        rustls::Error::AlertReceived(alert) => matches!(
            alert,
            AlertDescription::BadCertificate
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnknownCA
                | AlertDescription::BadCertificateStatusResponse
        ),
        rustls::Error::PeerIncompatible(PeerIncompatible::NoSignatureSchemesInCommon) => true,
        _ => false,
    }
}

/// Whether a completed handshake was full (the certificate sent) or resumed an earlier
/// session (abbreviated: no certificate sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeKind {
    /// A full handshake: the client got, and accepted, the certificate.
    Full,
    /// A resumed session: no certificate was sent.
    Resumed,
}

impl HandshakeKind {
    /// Both kinds, in metric order.
    pub const ALL: [Self; 2] = [Self::Full, Self::Resumed];

    /// The `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Resumed => "resumed",
        }
    }
}

/// Completed handshakes of one certificate: by protocol version (1.2, 1.3), ALPN (`h2`,
/// anything else) and [`HandshakeKind`].
type Completed = [[[AtomicU64; 2]; 2]; 2];

/// Handshake counters of one TLS listener in one generation.
#[derive(Debug)]
pub struct HandshakeCounters {
    /// The listener's name.
    pub listener: String,
    /// The listener's certificates, in its `certificates` order.
    certificates: Vec<String>,
    /// Completed, per certificate (the one the client's SNI name picks).
    completed: Vec<Completed>,
    /// Failed, by [`HandshakeFailure::ALL`] index (before a certificate is known).
    failures: [AtomicU64; HandshakeFailure::ALL.len()],
}

impl HandshakeCounters {
    pub(crate) fn new(listener: &str, certificates: &[&str]) -> Self {
        Self {
            listener: listener.to_string(),
            certificates: certificates.iter().map(|c| c.to_string()).collect(),
            completed: certificates.iter().map(|_| Completed::default()).collect(),
            failures: Default::default(),
        }
    }

    /// The listener's certificates, in its `certificates` order.
    pub fn certificates(&self) -> &[String] {
        &self.certificates
    }

    fn all(&self) -> impl Iterator<Item = &AtomicU64> {
        self.completed.iter().flatten().flatten().flatten()
    }

    /// Completed handshakes.
    pub fn completed(&self) -> u64 {
        self.all().map(|c| c.load(Relaxed)).sum()
    }

    /// Completed handshakes of one kind: `version` `"1.2"` or `"1.3"`, and whether
    /// ALPN agreed on `h2` (every certificate, full and resumed).
    pub fn completed_with(&self, version: &str, h2: bool) -> u64 {
        let version = usize::from(version == "1.3");
        self.completed
            .iter()
            .flat_map(|c| &c[version][usize::from(h2)])
            .map(|c| c.load(Relaxed))
            .sum()
    }

    /// Completed handshakes that picked `certificate` (its position in
    /// [`Self::certificates`]), of `kind`, `version` and ALPN `h2` or not.
    pub fn completed_for(
        &self,
        certificate: usize,
        kind: HandshakeKind,
        version: &str,
        h2: bool,
    ) -> u64 {
        self.completed.get(certificate).map_or(0, |c| {
            c[usize::from(version == "1.3")][usize::from(h2)][kind as usize].load(Relaxed)
        })
    }

    /// Completed handshakes of `kind` that picked `certificate` (by position), every
    /// version and ALPN.
    pub fn certificate_handshakes(&self, certificate: usize, kind: HandshakeKind) -> u64 {
        self.completed.get(certificate).map_or(0, |c| {
            c.iter()
                .flatten()
                .map(|k| k[kind as usize].load(Relaxed))
                .sum()
        })
    }

    /// Completed handshakes that resumed a session (abbreviated: no certificate sent).
    pub fn resumed(&self) -> u64 {
        (0..self.completed.len())
            .map(|c| self.certificate_handshakes(c, HandshakeKind::Resumed))
            .sum()
    }

    /// Failed handshakes for `reason`.
    pub fn failed(&self, reason: HandshakeFailure) -> u64 {
        self.failures[reason as usize].load(Relaxed)
    }

    /// Failed handshakes, every reason.
    pub fn failures(&self) -> u64 {
        self.failures.iter().map(|c| c.load(Relaxed)).sum()
    }

    pub(crate) fn fail(&self, reason: HandshakeFailure) {
        self.failures[reason as usize].fetch_add(1, Relaxed);
    }

    /// Counts a completed handshake on `certificate` (its position in the listener's
    /// certificates; one out of range is not counted per certificate, so never).
    pub(crate) fn complete(&self, certificate: usize, tls13: bool, h2: bool, resumed: bool) {
        let kind = if resumed {
            HandshakeKind::Resumed
        } else {
            HandshakeKind::Full
        };
        if let Some(counts) = self.completed.get(certificate) {
            counts[usize::from(tls13)][usize::from(h2)][kind as usize].fetch_add(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(error: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, error)
    }

    #[test]
    fn a_client_alert_about_the_certificate_is_a_refusal_and_other_errors_are_not() {
        for alert in [
            AlertDescription::BadCertificate,
            AlertDescription::UnknownCA,
            AlertDescription::CertificateExpired,
        ] {
            let error = wrapped(rustls::Error::AlertReceived(alert));
            assert_eq!(
                HandshakeFailure::of_error(&error),
                HandshakeFailure::CertificateRefused,
                "{alert:?}"
            );
        }
        let no_scheme = wrapped(PeerIncompatible::NoSignatureSchemesInCommon.into());
        assert_eq!(
            HandshakeFailure::of_error(&no_scheme),
            HandshakeFailure::CertificateRefused
        );
        let other = wrapped(rustls::Error::AlertReceived(
            AlertDescription::ProtocolVersion,
        ));
        assert_eq!(
            HandshakeFailure::of_error(&other),
            HandshakeFailure::Protocol
        );
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(HandshakeFailure::of_error(&reset), HandshakeFailure::Io);
    }

    #[test]
    fn only_certificate_reasons_blame_the_certificate() {
        let blamed: Vec<&str> = HandshakeFailure::ALL
            .iter()
            .filter(|r| r.blames_certificate())
            .map(|r| r.as_str())
            .collect();
        assert_eq!(blamed, ["no_certificate", "certificate_refused"]);
    }

    #[test]
    fn counts_add_up() {
        let counters = HandshakeCounters::new("https", &["shop", "other"]);
        counters.complete(0, true, true, false);
        counters.complete(1, false, false, true);
        counters.fail(HandshakeFailure::CertificateRefused);
        counters.fail(HandshakeFailure::Io);
        assert_eq!(counters.completed(), 2);
        assert_eq!(counters.completed_with("1.3", true), 1);
        assert_eq!(counters.completed_with("1.2", false), 1);
        assert_eq!(counters.resumed(), 1);
        assert_eq!(counters.failures(), 2);
        assert_eq!(counters.failed(HandshakeFailure::CertificateRefused), 1);
        assert_eq!(counters.certificate_handshakes(0, HandshakeKind::Full), 1);
        assert_eq!(
            counters.certificate_handshakes(0, HandshakeKind::Resumed),
            0
        );
        assert_eq!(
            counters.certificate_handshakes(1, HandshakeKind::Resumed),
            1
        );
        assert_eq!(
            counters.completed_for(1, HandshakeKind::Resumed, "1.2", false),
            1
        );
        assert_eq!(counters.certificate_handshakes(2, HandshakeKind::Full), 0);
    }
}
