//! The handshake part of a generation's window: for each TLS listener of the
//! generation, the handshakes it served (completed, resumed, failed by reason), laid
//! out after the request counters in the series' flat vector (`window.rs`). So they
//! slide while the generation serves, freeze when it stops, and serve as a baseline,
//! exactly as its requests do; a tick reads a few atomics per TLS listener.

use std::sync::Arc;

use keel_proxy::tls::{GenerationTls, HandshakeFailure};

/// Reasons a handshake fails, in [`HandshakeFailure::ALL`] order.
const REASONS: usize = HandshakeFailure::ALL.len();
/// Cells per listener: completed, resumed, then one per failure reason.
const CELLS: usize = 2 + REASONS;
const COMPLETED: usize = 0;
const RESUMED: usize = 1;
const FAILED: usize = 2;

/// Where each TLS listener's handshake counters sit in a series' flat vector.
#[derive(Debug)]
pub(crate) struct HandshakeLayout {
    start: usize,
    /// Listener names, in the generation's order of [`GenerationTls::all_handshakes`].
    listeners: Box<[Arc<str>]>,
}

impl HandshakeLayout {
    /// The layout of a generation's handshake counters, from cell `start` on.
    pub(crate) fn of(tls: &GenerationTls, start: usize) -> Self {
        Self {
            start,
            listeners: tls
                .all_handshakes()
                .iter()
                .map(|c| Arc::from(c.listener.as_str()))
                .collect(),
        }
    }

    /// Cells taken.
    pub(crate) fn len(&self) -> usize {
        self.listeners.len() * CELLS
    }

    /// Reads every listener's counters into `out`.
    pub(crate) fn read(&self, tls: &GenerationTls, out: &mut [u64]) {
        for (i, counters) in tls
            .all_handshakes()
            .iter()
            .take(self.listeners.len())
            .enumerate()
        {
            let cells = &mut out[self.start + i * CELLS..self.start + (i + 1) * CELLS];
            cells[COMPLETED] = counters.completed();
            cells[RESUMED] = counters.resumed();
            for (r, reason) in HandshakeFailure::ALL.iter().enumerate() {
                cells[FAILED + r] = counters.failed(*reason);
            }
        }
    }

    /// Each listener's handshakes in a window's `values`.
    pub(crate) fn counts(&self, values: &[u64]) -> Vec<Handshakes> {
        self.listeners
            .iter()
            .enumerate()
            .map(|(i, listener)| {
                let cells = values
                    .get(self.start + i * CELLS..self.start + (i + 1) * CELLS)
                    .unwrap_or(&[0; CELLS]);
                let mut failed = [0; REASONS];
                failed.copy_from_slice(&cells[FAILED..]);
                Handshakes {
                    listener: listener.clone(),
                    completed: cells[COMPLETED],
                    resumed: cells[RESUMED],
                    failed,
                }
            })
            .collect()
    }
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
}

impl Handshakes {
    /// No handshakes yet, on `listener`.
    pub fn empty(listener: &str) -> Self {
        Self {
            listener: Arc::from(listener),
            completed: 0,
            resumed: 0,
            failed: [0; REASONS],
        }
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
    }
}
