//! The handshake part of a generation's window: for each TLS listener of the
//! generation, the handshakes it served (completed, resumed, failed by reason, and
//! completed and full per certificate the listener presents), laid
//! out after the request counters in the series' flat vector (`window.rs`). So they
//! slide while the generation serves, freeze when it stops, and serve as a baseline,
//! exactly as its requests do; a tick reads a few atomics per TLS listener.

use std::sync::Arc;

use keel_proxy::tls::{GenerationTls, HandshakeFailure, HandshakeKind};

/// Reasons a handshake fails, in [`HandshakeFailure::ALL`] order.
const REASONS: usize = HandshakeFailure::ALL.len();
/// Cells per listener before its certificates: completed, resumed, then one per
/// failure reason.
const CELLS: usize = 2 + REASONS;
const COMPLETED: usize = 0;
const RESUMED: usize = 1;
const FAILED: usize = 2;
/// Cells per certificate of a listener: completed, of which full.
const CERTIFICATE_CELLS: usize = 2;

/// One listener's name, certificates and first cell (from the layout's `start`).
type ListenerCells = (Arc<str>, Box<[Arc<str>]>, usize);

/// Where each TLS listener's handshake counters sit in a series' flat vector: its
/// [`CELLS`], then [`CERTIFICATE_CELLS`] per certificate it presents.
#[derive(Debug)]
pub(crate) struct HandshakeLayout {
    start: usize,
    /// Listeners in the generation's order of [`GenerationTls::all_handshakes`].
    listeners: Box<[ListenerCells]>,
    len: usize,
}

impl HandshakeLayout {
    /// The layout of a generation's handshake counters, from cell `start` on.
    pub(crate) fn of(tls: &GenerationTls, start: usize) -> Self {
        let mut len = 0;
        let listeners = tls
            .all_handshakes()
            .iter()
            .map(|c| {
                let at = len;
                len += CELLS + CERTIFICATE_CELLS * c.certificates().len();
                let certificates = c.certificates().iter().map(|n| Arc::from(n.as_str()));
                (Arc::from(c.listener.as_str()), certificates.collect(), at)
            })
            .collect();
        Self {
            start,
            listeners,
            len,
        }
    }

    /// Cells taken.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Reads every listener's counters into `out`.
    pub(crate) fn read(&self, tls: &GenerationTls, out: &mut [u64]) {
        for (counters, (_, certificates, at)) in tls.all_handshakes().iter().zip(&self.listeners) {
            let from = self.start + at;
            let cells = &mut out[from..from + CELLS + CERTIFICATE_CELLS * certificates.len()];
            cells[COMPLETED] = counters.completed();
            cells[RESUMED] = counters.resumed();
            for (r, reason) in HandshakeFailure::ALL.iter().enumerate() {
                cells[FAILED + r] = counters.failed(*reason);
            }
            for c in 0..certificates.len() {
                let full = counters.certificate_handshakes(c, HandshakeKind::Full);
                let resumed = counters.certificate_handshakes(c, HandshakeKind::Resumed);
                cells[CELLS + c * CERTIFICATE_CELLS] = full + resumed;
                cells[CELLS + c * CERTIFICATE_CELLS + 1] = full;
            }
        }
    }

    /// Each listener's handshakes in a window's `values`.
    pub(crate) fn counts(&self, values: &[u64]) -> Vec<Handshakes> {
        self.listeners
            .iter()
            .map(|(listener, certificates, at)| {
                let from = self.start + at;
                let cell = |i: usize| values.get(from + i).copied().unwrap_or(0);
                let mut failed = [0; REASONS];
                for (r, count) in failed.iter_mut().enumerate() {
                    *count = cell(FAILED + r);
                }
                Handshakes {
                    listener: listener.clone(),
                    completed: cell(COMPLETED),
                    resumed: cell(RESUMED),
                    failed,
                    certificates: certificates
                        .iter()
                        .enumerate()
                        .map(|(c, name)| CertificateHandshakes {
                            certificate: name.clone(),
                            completed: cell(CELLS + c * CERTIFICATE_CELLS),
                            full: cell(CELLS + c * CERTIFICATE_CELLS + 1),
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

/// The handshakes completed with one certificate of a listener in a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateHandshakes {
    /// The certificate's name.
    pub certificate: Arc<str>,
    /// Completed handshakes whose SNI name picked it (resumed ones included).
    pub completed: u64,
    /// Of those, full handshakes: the client got and accepted this certificate.
    pub full: u64,
}

/// The handshakes one TLS listener served in a window (or since any start: the
/// detector only adds and compares).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshakes {
    /// The listener's name.
    pub listener: Arc<str>,
    /// Handshakes completed (resumed ones included).
    pub completed: u64,
    /// Completed handshakes that resumed a session.
    pub resumed: u64,
    /// Failed handshakes, by [`HandshakeFailure::ALL`] index.
    pub failed: [u64; REASONS],
    /// Completed handshakes per certificate of the listener, in its order.
    pub certificates: Vec<CertificateHandshakes>,
}

impl Handshakes {
    /// No handshakes yet, on `listener`.
    pub fn empty(listener: &str) -> Self {
        Self {
            listener: Arc::from(listener),
            completed: 0,
            resumed: 0,
            failed: [0; REASONS],
            certificates: Vec::new(),
        }
    }

    /// The handshakes completed with `certificate` (none when it is not presented).
    pub fn certificate(&self, certificate: &str) -> Option<&CertificateHandshakes> {
        self.certificates
            .iter()
            .find(|c| &*c.certificate == certificate)
    }

    /// Failed handshakes for `reason`.
    pub fn failed(&self, reason: HandshakeFailure) -> u64 {
        self.failed[reason as usize]
    }

    /// Failed handshakes, every reason.
    pub fn failures(&self) -> u64 {
        self.failed.iter().sum()
    }

    /// Handshakes that failed for a reason that blames the certificate
    /// ([`HandshakeFailure::blames_certificate`]).
    pub fn certificate_failures(&self) -> u64 {
        HandshakeFailure::ALL
            .iter()
            .filter(|r| r.blames_certificate())
            .map(|r| self.failed(*r))
            .sum()
    }

    /// Handshakes attempted: completed plus failed.
    pub fn attempts(&self) -> u64 {
        self.completed + self.failures()
    }

    /// Adds another listener's (or window's) counts to these.
    pub fn add(&mut self, other: &Handshakes) {
        self.completed += other.completed;
        self.resumed += other.resumed;
        for (sum, more) in self.failed.iter_mut().zip(other.failed) {
            *sum += more;
        }
        for more in &other.certificates {
            match self
                .certificates
                .iter_mut()
                .find(|c| c.certificate == more.certificate)
            {
                Some(sum) => {
                    sum.completed += more.completed;
                    sum.full += more.full;
                }
                None => self.certificates.push(more.clone()),
            }
        }
    }
}
