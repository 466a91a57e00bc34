//! Handshakes counted per generation, through real sockets: each is counted on the
//! generation whose certificate the client got (after a swap, the new one; during a
//! canary, the canary for its share of connections), a client that refuses the
//! certificate (no trusted issuer, or no signature scheme its key can make) is counted
//! as `certificate_refused`, and a resumed session as a resumption.

mod support;

use std::sync::Arc;

use keel_proxy::Canary;
use keel_proxy::tls::HandshakeFailure;
use rustls::SignatureScheme;
use support::tls::write_certificate;
use support::tls::{
    AcceptAny, BOTH, TlsProxy, client, client_provider, connect, shop_proxy, tls_config,
};
use support::{TestBackend, WAIT};
use tokio_rustls::TlsConnector;

#[tokio::test]
async fn a_handshake_is_counted_on_the_generation_whose_certificate_it_got() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = write_certificate(dir.path(), "shop", &["shop.example.com"]);
    let backend = TestBackend::start("web", None).await;
    let tls = r#"{ certificates = ["shop"] }"#;
    let (proxy, generation_1) =
        TlsProxy::start(tls_config(dir.path(), tls, &["shop"], backend.addr)).await;
    let any = client(&[], BOTH);
    connect(proxy.addr, "shop.example.com", &any)
        .await
        .expect("generation 1");

    let second = write_certificate(dir.path(), "shop", &["shop.example.com"]);
    let config_2 = Arc::new(tls_config(dir.path(), tls, &["shop"], backend.addr));
    let generation_2 = proxy.plane.compile(2, config_2).expect("compile 2");
    proxy.plane.activate(generation_2.clone());
    for _ in 0..2 {
        let (_, leaf) = connect(proxy.addr, "shop.example.com", &any)
            .await
            .expect("generation 2");
        assert!(leaf == second);
    }
    // The server counts a handshake once it has the client's Finished, which may come
    // after the client's side is done.
    let counted = |expected: (u64, u64)| {
        let (one, two) = (generation_1.clone(), generation_2.clone());
        support::eventually(WAIT, "handshakes counted per generation", move || {
            let (one, two) = (one.clone(), two.clone());
            async move {
                let count = |g: &keel_proxy::Generation| {
                    g.tls.handshakes("https").expect("https").completed()
                };
                (count(&one), count(&two)) == expected
            }
        })
    };
    counted((1, 2)).await;

    // A canary of every connection makes the handshakes with its own certificate.
    proxy.plane.activate(generation_1.clone());
    proxy.plane.set_canary(Some(Canary {
        generation: generation_2.clone(),
        permille: 1000,
    }));
    let (_, leaf) = connect(proxy.addr, "shop.example.com", &any)
        .await
        .expect("canary");
    assert!(leaf == second && leaf != first);
    counted((1, 3)).await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_counted_as_refusing_it() {
    let (_dir, _backend, proxy) = shop_proxy(r#"{ certificates = ["shop"] }"#).await;
    // Verifies against an empty set of roots: the certificate's issuer is unknown, and
    // the client says so (`unknown_ca`).
    let config = rustls::ClientConfig::builder_with_provider(client_provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let distrustful = TlsConnector::from(Arc::new(config));
    assert!(
        connect(proxy.addr, "shop.example.com", &distrustful)
            .await
            .is_err()
    );
    let counters = proxy.counters();
    support::eventually(WAIT, "the refusal is counted", || {
        let counters = counters.clone();
        async move { counters.failed(HandshakeFailure::CertificateRefused) == 1 }
    })
    .await;
    assert_eq!(counters.failed(HandshakeFailure::Protocol), 0);
    assert_eq!(counters.completed(), 0);
}

#[tokio::test]
async fn a_client_that_cannot_use_the_key_type_is_counted_as_refusing_the_certificate() {
    let (_dir, _backend, proxy) = shop_proxy(r#"{ certificates = ["shop"] }"#).await;
    let provider = client_provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        // Accepts any certificate, but offers only RSA signature schemes: a server whose
        // certificate has an ECDSA key (rcgen's default) cannot sign for it.
        .with_custom_certificate_verifier(Arc::new(AcceptAny::offering_only(
            provider,
            vec![
                SignatureScheme::RSA_PSS_SHA256,
                SignatureScheme::RSA_PKCS1_SHA256,
            ],
        )))
        .with_no_client_auth();
    let rsa_only = TlsConnector::from(Arc::new(config));
    assert!(
        connect(proxy.addr, "shop.example.com", &rsa_only)
            .await
            .is_err()
    );
    let counters = proxy.counters();
    support::eventually(WAIT, "the refusal is counted", || {
        let counters = counters.clone();
        async move { counters.failed(HandshakeFailure::CertificateRefused) == 1 }
    })
    .await;
}

#[tokio::test]
async fn a_resumed_session_is_counted_as_a_resumption() {
    let (_dir, _backend, proxy) = shop_proxy(r#"{ certificates = ["shop"] }"#).await;
    // One client config keeps its session cache across connections (TLS 1.2: the
    // server's session-id cache; no ticket is needed).
    let twelve = client(&[], &[&rustls::version::TLS12]);
    for _ in 0..2 {
        connect(proxy.addr, "shop.example.com", &twelve)
            .await
            .expect("handshake");
    }
    let counters = proxy.counters();
    support::eventually(WAIT, "two handshakes, one resumed", || {
        let counters = counters.clone();
        async move { counters.completed() == 2 && counters.resumed() == 1 }
    })
    .await;
}
