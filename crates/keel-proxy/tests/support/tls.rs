//! TLS fixtures: certificates made with rcgen, a data plane serving a TLS listener
//! (and, when asked, a plain one beside it), and a rustls client that accepts any
//! certificate so a test can see which one the server chose.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use keel_proxy::{DataPlane, DataPlaneOptions, Generation, ListenerLimits};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

/// A self-signed certificate for `names`, written as `NAME.pem` and `NAME.key` in `dir`.
pub fn write_certificate(dir: &Path, name: &str, names: &[&str]) -> Vec<u8> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let made = rcgen::generate_simple_self_signed(names).expect("rcgen");
    std::fs::write(dir.join(format!("{name}.pem")), made.cert.pem()).expect("write cert");
    std::fs::write(
        dir.join(format!("{name}.key")),
        made.signing_key.serialize_pem(),
    )
    .expect("write key");
    made.cert.der().to_vec()
}

/// A config serving listener `https` with `tls`, certificates `names` (files in `dir`),
/// and one pool to `backend`; certificate files read as the loader reads them.
pub fn tls_config(
    dir: &Path,
    tls: &str,
    names: &[&str],
    backend: SocketAddr,
) -> keel_config::Config {
    tls_config_with(dir, tls, names, backend, "", "")
}

/// [`tls_config`] with more config text: `extra` before the catch-all route `all`
/// (listeners, routes tried first), `route` inside it.
pub fn tls_config_with(
    dir: &Path,
    tls: &str,
    names: &[&str],
    backend: SocketAddr,
    extra: &str,
    route: &str,
) -> keel_config::Config {
    let mut text = format!("[listeners.https]\naddr = \"127.0.0.1:1\"\ntls = {tls}\n");
    for name in names {
        text.push_str(&format!(
            "[certificates.{name}]\ncert = \"{name}.pem\"\nkey = \"{name}.key\"\n"
        ));
    }
    text.push_str(&format!(
        "[services.web]\n[pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"{backend}\" }}]\n\
         {extra}\n[[routes]]\nname = \"all\"\nservice = \"web\"\npool = \"web\"\n{route}\n"
    ));
    let mut config = super::config(&text);
    let findings = keel_config::read_certificate_files(&mut config.certificates, dir);
    assert!(findings.is_empty(), "{findings:#?}");
    config
}

pub struct TlsProxy {
    pub addr: SocketAddr,
    pub plane: Arc<DataPlane>,
    limits: ListenerLimits,
    _stop: oneshot::Sender<()>,
}

impl TlsProxy {
    pub async fn start(config: keel_config::Config) -> (Self, Arc<Generation>) {
        let config = Arc::new(config);
        let plane = DataPlane::new(DataPlaneOptions::from_config(&config)).expect("plane");
        let generation = plane.compile(1, config.clone()).expect("compile");
        plane.activate(generation.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let limits = ListenerLimits::from_server(&config.server);
        let tls = plane.tls_listener("https");
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = plane.clone();
        let served_limits = limits.clone();
        tokio::spawn(async move {
            serving
                .serve_tls(listener, served_limits, tls, async move {
                    let _ = stopped.await;
                })
                .await
        });
        (
            Self {
                addr,
                plane,
                limits,
                _stop: stop,
            },
            generation,
        )
    }

    /// Serves a plain listener named `name` on the same data plane, until the test's
    /// runtime ends; returns its address.
    pub async fn serve_plain(&self, name: &str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind plain");
        let addr = listener.local_addr().expect("addr");
        let limits = self.limits.clone();
        let plane = self.plane.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            plane
                .serve_named(listener, limits, &name, std::future::pending())
                .await
        });
        addr
    }

    /// The primary generation's handshake counters of listener `https`.
    pub fn counters(&self) -> Arc<keel_proxy::tls::HandshakeCounters> {
        self.plane
            .active()
            .expect("active")
            .primary
            .tls
            .handshakes("https")
            .expect("counters")
            .clone()
    }
}

/// Accepts any server certificate (signatures still checked), so a test can see which
/// one the server chose even when it does not cover the name asked for; offers every
/// signature scheme of its provider, or only `schemes` when given (a client that cannot
/// check the server's key type).
#[derive(Debug)]
pub struct AcceptAny {
    provider: Arc<rustls::crypto::CryptoProvider>,
    schemes: Option<Vec<SignatureScheme>>,
}

impl AcceptAny {
    /// Offers every signature scheme `provider` can check.
    pub fn new(provider: Arc<rustls::crypto::CryptoProvider>) -> Self {
        AcceptAny {
            provider,
            schemes: None,
        }
    }

    /// Offers only `schemes`.
    pub fn offering_only(
        provider: Arc<rustls::crypto::CryptoProvider>,
        schemes: Vec<SignatureScheme>,
    ) -> Self {
        AcceptAny {
            provider,
            schemes: Some(schemes),
        }
    }
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        match &self.schemes {
            Some(schemes) => schemes.clone(),
            None => self
                .provider
                .signature_verification_algorithms
                .supported_schemes(),
        }
    }
}

#[allow(deprecated)]
pub fn client_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client config accepting any certificate, with `alpn` and `versions`.
pub fn client(
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> TlsConnector {
    let provider = client_provider();
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny::new(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

pub const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Handshakes as `server_name` (an IP address sends no SNI) and returns the stream and
/// the leaf certificate the server presented.
pub async fn connect(
    addr: SocketAddr,
    server_name: &str,
    connector: &TlsConnector,
) -> std::io::Result<(tokio_rustls::client::TlsStream<TcpStream>, Vec<u8>)> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_string()).expect("server name");
    let stream = connector.connect(name, tcp).await?;
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("certificates")[0]
        .to_vec();
    Ok((stream, leaf))
}

/// Keel terminating TLS with `tls` (which names certificate `shop`, for
/// `shop.example.com`, written in the returned directory) in front of backend `web`.
pub async fn shop_proxy(tls: &str) -> (tempfile::TempDir, super::TestBackend, TlsProxy) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_certificate(dir.path(), "shop", &["shop.example.com"]);
    let backend = super::TestBackend::start("web", None).await;
    let config = tls_config(dir.path(), tls, &["shop"], backend.addr);
    let (proxy, _) = TlsProxy::start(config).await;
    (dir, backend, proxy)
}
