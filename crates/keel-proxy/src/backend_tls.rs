//! HTTPS to backends: the rustls client side of a pool's `tls` table.
//!
//! The backend's certificate is always verified: against the pool's `ca` bundle, or
//! the system's ([`keel_config::defaults::SYSTEM_CA_BUNDLE`]) without one, for the
//! pool's `server_name`, or the backend's IP address without one. With `cert` and `key`
//! Keel presents a client certificate (mTLS). ALPN offers `h2` for `protocol = "h2"`,
//! `http/1.1` otherwise. The health probes and `keel check --probe` connect with the
//! same [`BackendTlsConnector`], so a backend that passes them passes real traffic.

use std::net::SocketAddr;
use std::sync::Arc;

use keel_config::backend_tls::BackendTls;
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The crypto provider: ring, as the listeners' (see [`crate::tls`]).
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why a pool's TLS settings cannot make a client.
#[derive(Debug, thiserror::Error)]
pub enum BackendTlsError {
    /// The files were not read (the loader reported why).
    #[error("the pool's TLS files were not read")]
    Unread,
    /// The CA bundle (the pool's or the system's) could not be read or holds nothing.
    #[error("CA bundle: {0}")]
    Ca(String),
    /// The client certificate or key does not parse.
    #[error("client certificate: {0}")]
    ClientCertificate(String),
    /// `server_name` is not a DNS name or IP address.
    #[error("bad server_name `{0}`")]
    ServerName(String),
    /// rustls refused the settings.
    #[error("TLS settings: {0}")]
    Config(#[from] rustls::Error),
}

/// Opens TLS connections to a pool's backends.
#[derive(Clone)]
pub struct BackendTlsConnector {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for BackendTlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendTlsConnector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl BackendTlsConnector {
    /// The client for a pool's `tls`, offering `h2` by ALPN when `h2`.
    pub fn new(tls: &BackendTls, h2: bool) -> Result<Self, BackendTlsError> {
        let files = tls.files.as_ref().ok_or(BackendTlsError::Unread)?;
        let ca_pem = match &files.ca_pem {
            Some(pem) => pem.clone(),
            None => std::fs::read(keel_config::defaults::SYSTEM_CA_BUNDLE).map_err(|e| {
                BackendTlsError::Ca(format!("{}: {e}", keel_config::defaults::SYSTEM_CA_BUNDLE))
            })?,
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca_pem) {
            let cert = cert.map_err(|e| BackendTlsError::Ca(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| BackendTlsError::Ca(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(BackendTlsError::Ca("no certificate in it".into()));
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut config = match &files.client {
            Some((chain, key)) => {
                let chain = CertificateDer::pem_slice_iter(chain)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| BackendTlsError::ClientCertificate(e.to_string()))?;
                let key = PrivateKeyDer::from_pem_slice(key)
                    .map_err(|e| BackendTlsError::ClientCertificate(e.to_string()))?;
                builder.with_client_auth_cert(chain, key)?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = if h2 {
            vec![b"h2".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let server_name = tls
            .server_name
            .as_ref()
            .map(|name| {
                ServerName::try_from(name.value.clone())
                    .map_err(|_| BackendTlsError::ServerName(name.value.clone()))
            })
            .transpose()?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// A TLS session over `tcp` to `addr`, its certificate verified.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        tcp: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = self
            .server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
        self.connector.connect(name, tcp).await
    }
}
