//! ACME TLS-ALPN-01 answers on a real TLS listener (RFC 8737), and handshakes counted per
//! certificate: while a validation is held for `shop.example.com`, a client offering ALPN
//! `acme-tls/1` with that SNI gets the validation certificate, agrees on `acme-tls/1` and
//! finds the connection closed after the handshake; a browser-like client (ALPN h2) gets
//! the listener's certificate as before; `acme-tls/1` for a name not held, or once the
//! validation is withdrawn, finds no protocol in common. Validation handshakes are not
//! counted; ordinary ones are, on the certificate their SNI name picked.

mod support;

use keel_config::CertificateFiles;
use keel_proxy::ACME_TLS_ALPN_PROTOCOL;
use keel_proxy::tls::HandshakeKind;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use support::tls::{
    BOTH, TlsProxy, client, client_provider, connect, tls_config, write_certificate,
};
use support::{TestBackend, WAIT};
use tokio::io::AsyncReadExt;
use tokio_rustls::TlsConnector;

/// What an ACME server's validator does with the certificate: takes it as it is (webpki
/// refuses the critical `id-pe-acmeIdentifier` extension it does not know, so the
/// signature checks a browser would make do not apply; the validator checks the
/// extension instead).
#[derive(Debug)]
struct Validator;

impl ServerCertVerifier for Validator {
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
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        client_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client offering only ALPN `acme-tls/1`, as an ACME server's validator.
fn validator() -> TlsConnector {
    let mut config = rustls::ClientConfig::builder_with_provider(client_provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Validator))
        .with_no_client_auth();
    config.alpn_protocols = vec![ACME_TLS_ALPN_PROTOCOL.to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// A validation certificate for `domain` as an ACME client makes it (any 32-byte digest).
fn validation(domain: &str) -> (CertificateFiles, Vec<u8>) {
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()]).expect("params");
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(&[7; 32])];
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    let files = CertificateFiles {
        chain_pem: cert.pem().into_bytes(),
        key_pem: key.serialize_pem().into_bytes(),
    };
    (files, cert.der().to_vec())
}

#[tokio::test]
async fn a_validation_handshake_gets_the_validation_certificate_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shop = write_certificate(dir.path(), "shop", &["shop.example.com"]);
    let other = write_certificate(dir.path(), "other", &["other.example.com"]);
    let backend = TestBackend::start("web", None).await;
    let tls = r#"{ certificates = ["shop", "other"], default = "shop" }"#;
    let config = tls_config(dir.path(), tls, &["shop", "other"], backend.addr);
    let (proxy, generation) = TlsProxy::start(config).await;
    let challenges = proxy.plane.acme_challenges();
    let (files, validation_der) = validation("shop.example.com");
    assert!(
        challenges
            .insert_tls_alpn("shop.example.com", &files)
            .expect("servable")
    );

    let acme = validator();
    let (mut stream, leaf) = connect(proxy.addr, "shop.example.com", &acme)
        .await
        .expect("validation handshake");
    assert!(leaf == validation_der, "the validation certificate");
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        Some(ACME_TLS_ALPN_PROTOCOL)
    );
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed after the handshake: {read:?}"
    );

    // Ordinary clients, during the validation: the listener's certificates by SNI.
    let browser = client(&[b"h2"], BOTH);
    let (_, leaf) = connect(proxy.addr, "shop.example.com", &browser)
        .await
        .expect("browser");
    assert!(leaf == shop);
    let (_, leaf) = connect(proxy.addr, "other.example.com", &browser)
        .await
        .expect("browser");
    assert!(leaf == other);
    // `acme-tls/1` for a name no validation is held for: no protocol in common.
    assert!(
        connect(proxy.addr, "other.example.com", &acme)
            .await
            .is_err(),
        "no validation for other.example.com"
    );

    // Withdrawn: the validation certificate is no longer presented.
    challenges.remove_tls_alpn("shop.example.com");
    assert!(
        connect(proxy.addr, "shop.example.com", &acme)
            .await
            .is_err(),
        "validation withdrawn"
    );

    // Two ordinary handshakes counted, one per certificate; the validation none.
    let counters = generation.tls.handshakes("https").expect("https").clone();
    support::eventually(WAIT, "handshakes counted per certificate", move || {
        let counters = counters.clone();
        async move {
            counters.completed() == 2
                && counters.certificate_handshakes(0, HandshakeKind::Full) == 1
                && counters.certificate_handshakes(1, HandshakeKind::Full) == 1
        }
    })
    .await;
    assert_eq!(
        generation
            .tls
            .handshakes("https")
            .expect("https")
            .certificates(),
        ["shop", "other"]
    );
}
