//! The TLS handshake of one client connection, bounded in time, counted on the
//! generation whose certificates it was made with.
//!
//! The server config comes from the generation active when the connection arrives:
//! the primary, or during a canary the canary generation for its share of connections
//! (chosen at random per connection, as a request without a sticky key is). So a
//! certificate change applies to new connections at the swap (or to the canary's
//! slice of them first), a rollback brings the old certificate back for them, and the
//! handshakes a certificate fails are held against the generation that served it
//! ([`super::HandshakeCounters`], read by keel-watch's `handshakes` detector).

use std::sync::Arc;
use std::time::Duration;

use keel_config::TlsVersion;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::config::ServedListener;
use super::counters::{HandshakeCounters, HandshakeFailure};
use crate::dataplane::{Active, DataPlane};

/// Time a client has to complete the TLS handshake after connecting (10 seconds), as
/// `header_read_timeout` bounds a request head: a connection that never finishes one
/// must not hold a descriptor.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One TLS listener being served: its name (the key of each generation's server
/// configs and handshake counters).
#[derive(Clone, Debug)]
pub struct TlsListener {
    pub(crate) name: Arc<str>,
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
    /// The TLS listener `name`, for [`DataPlane::serve_tls_on`]. Its handshakes are
    /// counted per generation (`Generation::tls`, [`super::GenerationTls::handshakes`]).
    pub fn tls_listener(&self, name: &str) -> TlsListener {
        TlsListener {
            name: Arc::from(name),
        }
    }

    /// Runs the server side of the handshake with the certificates of the generation
    /// that serves this connection, counting the outcome on that generation.
    pub(crate) async fn handshake(
        &self,
        stream: TcpStream,
        listener: &TlsListener,
    ) -> Option<Established> {
        let Some((counters, served)) = self.active().and_then(|a| serving(&a, &listener.name))
        else {
            // No generation, or one without this listener: nothing to count it on.
            tracing::debug!(listener = %listener.name, "no TLS listener of that name is served: connection closed");
            return None;
        };
        let Some(served) = served else {
            counters.fail(HandshakeFailure::NoCertificate);
            tracing::debug!(listener = %listener.name, "no servable certificate: connection closed");
            return None;
        };
        let answers = &self.acme_challenges.tls_alpn;
        let accepted = if answers.pending() {
            // An ACME TLS-ALPN-01 validation is held: read the hello first.
            let accept = crate::acme_tls_alpn::accept_or_validate(answers, stream, served.server);
            tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, accept).await
        } else {
            let accept = TlsAcceptor::from(served.server).accept(stream);
            tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, async { accept.await.map(Some) }).await
        };
        let stream = match accepted {
            Ok(Ok(Some(stream))) => stream,
            // A validation handshake, answered and closed: no client of the generation.
            Ok(Ok(None)) => return None,
            Ok(Err(error)) => {
                let reason = HandshakeFailure::of_error(&error);
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
        let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        // The certificate the SNI name picks: the one sent on a full handshake, and the
        // one a resumed session's name maps to in this generation.
        let certificate = served.resolver.pick_index(session.server_name());
        counters.complete(certificate, tls13, h2, resumed);
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

/// The generation that makes this connection's handshake (the canary for its share of
/// connections, else the primary): its counters for the listener and, when it has a
/// servable certificate for it, the listener's server config.
fn serving(
    active: &Active,
    listener: &str,
) -> Option<(Arc<HandshakeCounters>, Option<ServedListener>)> {
    let generation = match &active.canary {
        Some(canary) if fastrand::u32(..1000) < canary.permille => &canary.generation,
        _ => &active.primary,
    };
    let counters = generation.tls.handshakes(listener)?.clone();
    Some((counters, generation.tls.served(listener).cloned()))
}
