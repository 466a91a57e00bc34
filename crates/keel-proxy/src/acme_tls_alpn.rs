//! ACME TLS-ALPN-01 answers (RFC 8737): while the control plane has such an order under
//! way, a ClientHello on a TLS listener that offers ALPN `acme-tls/1` for a domain being
//! validated gets the self-signed validation certificate the control plane made for it
//! (carrying the critical `id-pe-acmeIdentifier` extension), and nothing else: the
//! connection is closed once the handshake is done, as the RFC asks.
//!
//! The table is empty almost always; the handshake path then pays one relaxed atomic load
//! and keeps its ordinary one-step accept. Only while a challenge is held does it read
//! the ClientHello first (`tokio_rustls::LazyConfigAcceptor`) to choose between the
//! validation certificate and the generation's server config.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

use keel_config::CertificateFiles;
use rustls::ServerConfig;
use rustls::server::{Acceptor, ClientHello};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::tls::{MaterialError, servable};

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737 §6.2).
pub const ACME_TLS_ALPN_PROTOCOL: &[u8] = b"acme-tls/1";

/// Why a validation certificate cannot be answered with.
#[derive(Debug, thiserror::Error)]
pub enum TlsAlpnError {
    /// Its chain or key cannot be served.
    #[error("the validation certificate cannot be served: {0}")]
    Material(#[from] MaterialError),
    /// rustls refused the server config.
    #[error("cannot build the validation server config: {0}")]
    Config(rustls::Error),
}

/// Validation certificates by domain (lower case), shared by every TLS listener.
#[derive(Debug, Default)]
pub(crate) struct TlsAlpnAnswers {
    any: AtomicBool,
    by_domain: RwLock<HashMap<String, Arc<ServerConfig>>>,
}

impl TlsAlpnAnswers {
    /// Answers validation handshakes for `domain` with `certificate` until
    /// [`Self::remove`]. False when `limit` domains are already held.
    pub(crate) fn insert(
        &self,
        domain: &str,
        certificate: &CertificateFiles,
        limit: usize,
    ) -> Result<bool, TlsAlpnError> {
        let config = validation_config(certificate)?;
        let mut by_domain = self.by_domain.write().unwrap_or_else(|p| p.into_inner());
        let domain = domain.to_ascii_lowercase();
        if by_domain.len() >= limit && !by_domain.contains_key(&domain) {
            return Ok(false);
        }
        by_domain.insert(domain, config);
        self.any.store(true, Relaxed);
        Ok(true)
    }

    /// Stops answering validation handshakes for `domain`.
    pub(crate) fn remove(&self, domain: &str) {
        let mut by_domain = self.by_domain.write().unwrap_or_else(|p| p.into_inner());
        by_domain.remove(&domain.to_ascii_lowercase());
        self.any.store(!by_domain.is_empty(), Relaxed);
    }

    /// Whether any validation is held (the only case the handshake reads the hello first).
    pub(crate) fn pending(&self) -> bool {
        self.any.load(Relaxed)
    }

    /// The server config answering `hello`, when it is a validation handshake (ALPN
    /// `acme-tls/1` offered, SNI a domain held); `None`: an ordinary client.
    pub(crate) fn for_hello(&self, hello: &ClientHello<'_>) -> Option<Arc<ServerConfig>> {
        let offers = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN_PROTOCOL));
        if !offers {
            return None;
        }
        let name = hello.server_name()?;
        self.by_domain
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}

/// A server config presenting only the validation certificate and only `acme-tls/1`.
fn validation_config(certificate: &CertificateFiles) -> Result<Arc<ServerConfig>, TlsAlpnError> {
    let ready = servable(certificate)?;
    let mut config = ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsAlpnError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Only(ready.key)));
    config.alpn_protocols = vec![ACME_TLS_ALPN_PROTOCOL.to_vec()];
    Ok(Arc::new(config))
}

/// Resolves every hello to the one validation certificate.
#[derive(Debug)]
struct Only(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Only {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The server side of a handshake while validations are held: reads the ClientHello,
/// answers a validation handshake with its certificate and closes it (`Ok(None)`), or
/// goes on with `server` (the generation's config) for any other client.
pub(crate) async fn accept_or_validate(
    answers: &TlsAlpnAnswers,
    stream: TcpStream,
    server: Arc<ServerConfig>,
) -> std::io::Result<Option<TlsStream<TcpStream>>> {
    let start = LazyConfigAcceptor::new(Acceptor::default(), stream).await?;
    let Some(validation) = answers.for_hello(&start.client_hello()) else {
        return start.into_stream(server).await.map(Some);
    };
    let domain = start.client_hello().server_name().map(str::to_string);
    let mut stream = start.into_stream(validation).await?;
    tracing::info!(
        domain = domain.as_deref().unwrap_or(""),
        "answered an ACME TLS-ALPN-01 validation handshake"
    );
    // RFC 8737 §3: nothing but the handshake on this connection.
    let _ = stream.shutdown().await;
    Ok(None)
}
