//! The TLS handshake of one client connection, bounded in time, and the handshake
//! counters of each TLS listener (by outcome, protocol version and ALPN protocol).
//!
//! The server config comes from the primary generation active when the connection
//! arrives, so a certificate change applies to new connections at the swap, and a
//! rollback brings the old certificate back for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use keel_config::TlsVersion;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::dataplane::DataPlane;

/// Time a client has to complete the TLS handshake after connecting (10 seconds), as
/// `header_read_timeout` bounds a request head: a connection that never finishes one
/// must not hold a descriptor.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a handshake did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Not done within [`TLS_HANDSHAKE_TIMEOUT`].
    Timeout,
    /// The active generation has no servable certificate for this listener.
    NoCertificate,
    /// The peer spoke something rustls refused (no common version or cipher, a bad
    /// message, a client alert such as an unknown CA).
    Protocol,
    /// The connection failed or closed mid-handshake.
    Io,
}

impl HandshakeFailure {
    /// Every reason, in metric order.
    pub const ALL: [Self; 4] = [Self::Timeout, Self::NoCertificate, Self::Protocol, Self::Io];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::NoCertificate => "no_certificate",
            Self::Protocol => "protocol",
            Self::Io => "io",
        }
    }
}

/// Handshake counters of one TLS listener.
#[derive(Debug)]
pub struct HandshakeCounters {
    /// The listener's name.
    pub listener: String,
    /// Completed, by protocol version (1.2, 1.3) and ALPN (`h2`, anything else).
    completed: [[AtomicU64; 2]; 2],
    /// Failed, by [`HandshakeFailure::ALL`] index.
    failures: [AtomicU64; 4],
}

impl HandshakeCounters {
    fn new(listener: &str) -> Self {
        Self {
            listener: listener.to_string(),
            completed: Default::default(),
            failures: Default::default(),
        }
    }

    /// Completed handshakes.
    pub fn completed(&self) -> u64 {
        self.completed
            .iter()
            .flatten()
            .map(|c| c.load(Relaxed))
            .sum()
    }

    /// Completed handshakes of one kind: `version` `"1.2"` or `"1.3"`, and whether
    /// ALPN agreed on `h2`.
    pub fn completed_with(&self, version: &str, h2: bool) -> u64 {
        let version = usize::from(version == "1.3");
        self.completed[version][usize::from(h2)].load(Relaxed)
    }

    /// Failed handshakes for `reason`.
    pub fn failed(&self, reason: HandshakeFailure) -> u64 {
        self.failures[reason as usize].load(Relaxed)
    }

    fn fail(&self, reason: HandshakeFailure) {
        self.failures[reason as usize].fetch_add(1, Relaxed);
    }
}

/// One TLS listener being served: its name (the key of the generation's server
/// configs) and its counters.
#[derive(Clone, Debug)]
pub struct TlsListener {
    pub(crate) name: Arc<str>,
    pub(crate) counters: Arc<HandshakeCounters>,
}

/// The outcome of a completed handshake that the server needs.
pub(crate) struct Established {
    pub(crate) stream: TlsStream<TcpStream>,
    /// The client and server agreed on HTTP/2 by ALPN.
    pub(crate) h2: bool,
    /// SNI name and version, for the connection's requests.
    pub(crate) session: Box<super::ConnTls>,
}

impl DataPlane {
    /// Registers TLS listener `name` (counters start at zero the first time) for
    /// [`DataPlane::serve_tls_on`].
    pub fn tls_listener(&self, name: &str) -> TlsListener {
        let mut all = self
            .tls_counters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let counters = match all.iter().find(|c| c.listener == name) {
            Some(existing) => existing.clone(),
            None => {
                let created = Arc::new(HandshakeCounters::new(name));
                all.push(created.clone());
                created
            }
        };
        TlsListener {
            name: Arc::from(name),
            counters,
        }
    }

    /// Handshake counters of every TLS listener registered so far.
    pub fn tls_counters(&self) -> Vec<Arc<HandshakeCounters>> {
        self.tls_counters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Runs the server side of the handshake with the active generation's certificates.
    pub(crate) async fn handshake(
        &self,
        stream: TcpStream,
        listener: &TlsListener,
    ) -> Option<Established> {
        let counters = &listener.counters;
        let served = self
            .active()
            .and_then(|active| active.primary.tls.served(&listener.name).cloned());
        let Some(served) = served else {
            counters.fail(HandshakeFailure::NoCertificate);
            tracing::debug!(listener = %listener.name, "no servable certificate: connection closed");
            return None;
        };
        let accept = TlsAcceptor::from(served.server).accept(stream);
        let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, accept).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                let reason = if error.get_ref().is_some_and(|e| e.is::<rustls::Error>()) {
                    HandshakeFailure::Protocol
                } else {
                    HandshakeFailure::Io
                };
                counters.fail(reason);
                tracing::debug!(listener = %listener.name, %error, reason = reason.as_str(), "TLS handshake failed");
                return None;
            }
            Err(_) => {
                counters.fail(HandshakeFailure::Timeout);
                return None;
            }
        };
        let session = stream.get_ref().1;
        let tls13 = session.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_2);
        let h2 = session.alpn_protocol() == Some(b"h2");
        counters.completed[usize::from(tls13)][usize::from(h2)].fetch_add(1, Relaxed);
        let session = Box::new(super::ConnTls {
            sni: session.server_name().map(Box::from),
            version: if tls13 {
                TlsVersion::Tls13
            } else {
                TlsVersion::Tls12
            },
            resolver: served.resolver,
        });
        Some(Established {
            stream,
            h2,
            session,
        })
    }
}
