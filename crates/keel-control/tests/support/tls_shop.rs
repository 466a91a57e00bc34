//! The certificate-guard suites' TLS shop (`tls_guard.rs`, `tls_evidence.rs`): a test CA
//! (rcgen) and the certificates it issues, the config serving listener `https` with
//! certificate `shop`, a rustls client that trusts only that CA, and a guarded
//! controller (`Controller::new_guarded`, SQLite store) whose data plane serves the TLS
//! listener on 127.0.0.1:0.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use keel_control::{ApplyRequest, ApplyStatus, Controller};
use keel_proxy::{DataPlane, ListenerLimits};
use keel_store::SqliteStore;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

/// A test certificate authority: its certificate (PEM) and the issuer that signs with it.
pub struct TestCa {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// A fresh self-signed CA, `CN=keel test CA`.
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "keel test CA");
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA");
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes a certificate for `name` signed by this CA as `FILE.pem` / `FILE.key` in
    /// `dir`.
    pub fn issue(&self, dir: &Path, file: &str, name: &str) {
        let params = CertificateParams::new(vec![name.to_string()]).expect("params");
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).expect("cert");
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).expect("key");
    }

    /// A rustls client that trusts only this CA; with `resumption` false, every new
    /// connection is a full handshake (a resumed session never sees a new certificate).
    pub fn client(&self, resumption: bool) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.pem.as_bytes()).expect("CA"))
            .expect("root");
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        if !resumption {
            config.resumption = rustls::client::Resumption::disabled();
        }
        TlsConnector::from(Arc::new(config))
    }
}

/// Keel serving `https` with certificate `shop` read from `dir/FILE.pem`, route `shop`
/// (host `shop.example.com`) to `backend`, and `extra` settings (listener and admin
/// addresses fixed: the controller binds none).
pub fn tls_config(dir: &Path, file: &str, backend: SocketAddr, extra: &str) -> String {
    let dir = dir.display();
    format!(
        r#"[listeners.https]
addr = "127.0.0.1:18443"
tls = {{ certificates = ["shop"] }}

[admin]
addr = "127.0.0.1:19901"

{extra}

[certificates.shop]
cert = "{dir}/{file}.pem"
key = "{dir}/{file}.key"

[services.web]
allow_no_identity = true

[pools.web]
service = "web"
backends = [{{ addr = "{backend}" }}]

[[routes]]
name = "shop"
host = "shop.example.com"
service = "web"
pool = "web"
"#
    )
}

/// A guarded controller over a SQLite store in `state` ([`guarded_controller`]), `first`
/// applied, its data plane serving the TLS listener `https` on 127.0.0.1:0 until this is
/// dropped.
///
/// [`guarded_controller`]: super::shop::guarded_controller
pub struct TlsPlane {
    pub controller: Controller,
    pub plane: Arc<DataPlane>,
    pub store: Arc<SqliteStore>,
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl TlsPlane {
    /// Applies `first` (which must be applied) and starts serving.
    pub async fn start(state: &Path, first: ApplyRequest) -> Self {
        let (controller, plane, store) = super::shop::guarded_controller(state);
        let applied = controller.apply(first).await.expect("apply 1");
        assert_eq!(applied.status, ApplyStatus::Applied, "{applied:#?}");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let limits =
            ListenerLimits::from_server(&plane.active().expect("active").primary.config.server);
        let (serving, tls) = (plane.clone(), plane.tls_listener("https"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            serving
                .serve_tls(listener, limits, tls, async move {
                    let _ = stopped.await;
                })
                .await
        });
        TlsPlane {
            controller,
            plane,
            store,
            addr,
            _stop: stop,
        }
    }
}
