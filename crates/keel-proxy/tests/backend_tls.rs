//! HTTPS to backends (`[pools.NAME] tls = { server_name, ca, cert, key }`): a CA and
//! certificates made here with rcgen, real rustls backends. The backend's certificate is
//! verified (a backend signed by another CA gets no request), `protocol = "h2"` agrees
//! on HTTP/2 by ALPN, health probes go through the same TLS, and an mTLS backend that
//! refuses clients without a certificate serves Keel once the pool names one.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::*;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A CA: its PEM, and an issuer to sign with.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("CA");
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A certificate for `names` signed by `ca`: chain PEM and key PEM.
fn leaf(ca: &Ca, names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let params = CertificateParams::new(names).expect("params");
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("leaf");
    (cert.pem(), key.serialize_pem())
}

#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS backend on 127.0.0.1:0 with `cert`, answering `x-service: web` and the HTTP
/// version it was spoken to in; with `client_ca`, it refuses clients without a
/// certificate signed by that CA.
async fn tls_backend(cert: &(String, String), client_ca: Option<&Ca>) -> SocketAddr {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.0.as_bytes())
        .collect::<Result<_, _>>()
        .expect("chain");
    let key = PrivateKeyDer::from_pem_slice(cert.1.as_bytes()).expect("key");
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).expect("ca"))
                .expect("root");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(|request: Request<Incoming>| async move {
                    let version = format!("{:?}", request.version());
                    Ok::<_, std::convert::Infallible>(
                        Response::builder()
                            .header("x-service", "web")
                            .body(Full::new(Bytes::from(version)))
                            .expect("response"),
                    )
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A proxy to `backend` whose pool says `pool_extra`, its TLS files (in `dir`) read as
/// the loader reads them.
async fn proxy(dir: &Path, backend: SocketAddr, pool_extra: &str) -> TestProxy {
    let text = with_listener(&format!(
        "[services.web]\nidentity = {{ header = \"x-service\", equals = \"web\" }}\n\n\
         [pools.web]\nservice = \"web\"\nbackends = [\"{backend}\"]\n\
         health = {{ path = \"/healthz\", interval = \"50ms\" }}\n{pool_extra}\n\n\
         [[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\nretries = 0\n"
    ));
    let mut config = config(&text);
    let findings = keel_config::backend_tls::read_backend_tls_files(&mut config.pools, dir);
    assert!(findings.is_empty(), "{findings:#?}");
    TestProxy::start_from(config, |_| {}).await
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

#[tokio::test]
async fn an_https_pool_verifies_its_backend_and_probes_it_through_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca("internal CA");
    write(dir.path(), "ca.pem", &ca.pem);
    let backend = tls_backend(&leaf(&ca, &["payments.internal"]), None).await;
    let proxy = proxy(
        dir.path(),
        backend,
        "tls = { server_name = \"payments.internal\", ca = \"ca.pem\" }",
    )
    .await;
    let answer = get(&client(), &proxy.url("/"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "HTTP/1.1");
}

#[tokio::test]
async fn protocol_h2_agrees_on_http2_by_alpn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca("internal CA");
    write(dir.path(), "ca.pem", &ca.pem);
    let backend = tls_backend(&leaf(&ca, &["payments.internal"]), None).await;
    let proxy = proxy(
        dir.path(),
        backend,
        "protocol = \"h2\"\ntls = { server_name = \"payments.internal\", ca = \"ca.pem\" }",
    )
    .await;
    let answer = get(&client(), &proxy.url("/"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "HTTP/2.0");
}

#[tokio::test]
async fn a_backend_signed_by_another_ca_or_for_another_name_gets_no_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trusted = ca("internal CA");
    let other = ca("someone else");
    write(dir.path(), "ca.pem", &trusted.pem);
    let impostor = tls_backend(&leaf(&other, &["payments.internal"]), None).await;
    let proxy_to_impostor = proxy(
        dir.path(),
        impostor,
        "tls = { server_name = \"payments.internal\", ca = \"ca.pem\" }",
    )
    .await;
    let answer = get(&client(), &proxy_to_impostor.url("/"), &[]).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text()
    );
    assert_eq!(answer.header("keel-error"), Some("no-healthy-backend"));

    let wrong_name = tls_backend(&leaf(&trusted, &["ledger.internal"]), None).await;
    let proxy_to_wrong_name = proxy(
        dir.path(),
        wrong_name,
        "tls = { server_name = \"payments.internal\", ca = \"ca.pem\" }",
    )
    .await;
    let answer = get(&client(), &proxy_to_wrong_name.url("/"), &[]).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text()
    );
}

#[tokio::test]
async fn an_mtls_backend_serves_keel_only_with_the_pools_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca("internal CA");
    write(dir.path(), "ca.pem", &ca.pem);
    let (client_chain, client_key) = leaf(&ca, &["keel.internal"]);
    write(dir.path(), "keel.pem", &client_chain);
    write(dir.path(), "keel.key", &client_key);
    let backend = tls_backend(&leaf(&ca, &["payments.internal"]), Some(&ca)).await;

    let without = proxy(
        dir.path(),
        backend,
        "tls = { server_name = \"payments.internal\", ca = \"ca.pem\" }",
    )
    .await;
    let refused = get(&client(), &without.url("/"), &[]).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text()
    );

    let with = proxy(
        dir.path(),
        backend,
        "tls = { server_name = \"payments.internal\", ca = \"ca.pem\", cert = \"keel.pem\", key = \"keel.key\" }",
    )
    .await;
    let served = get(&client(), &with.url("/"), &[]).await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.text());
}

/// A WebSocket echo server behind TLS (`wss://`) on 127.0.0.1:0 with `cert`, answering
/// its handshakes with `x-service: web`.
async fn wss_echo_backend(cert: &(String, String)) -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.0.as_bytes())
        .collect::<Result<_, _>>()
        .expect("chain");
    let key = PrivateKeyDer::from_pem_slice(cert.1.as_bytes()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                #[allow(clippy::result_large_err)]
                let identify = |_: &tokio_tungstenite::tungstenite::handshake::server::Request,
                                mut response: tokio_tungstenite::tungstenite::handshake::server::Response| {
                    response
                        .headers_mut()
                        .insert("x-service", http::HeaderValue::from_static("web"));
                    Ok(response)
                };
                let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, identify).await
                else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if (message.is_text() || message.is_binary())
                        && socket.send(message).await.is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_websocket_reaches_an_https_backend_over_its_tls() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca("internal CA");
    write(dir.path(), "ca.pem", &ca.pem);
    let backend = wss_echo_backend(&leaf(&ca, &["live.internal"])).await;
    let text = with_listener(&format!(
        "[services.web]\nidentity = {{ header = \"x-service\", equals = \"web\" }}\n\
         verify_responses = true\n\n\
         [pools.web]\nservice = \"web\"\nbackends = [\"{backend}\"]\n\
         tls = {{ server_name = \"live.internal\", ca = \"ca.pem\" }}\n\n\
         [[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\nupgrades = [\"websocket\"]\n"
    ));
    let mut config = config(&text);
    let findings = keel_config::backend_tls::read_backend_tls_files(&mut config.pools, dir.path());
    assert!(findings.is_empty(), "{findings:#?}");
    let proxy = TestProxy::start_from(config, |_| {}).await;
    let url = format!("ws://{}/live", proxy.addr);
    let (mut socket, response) =
        tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url.as_str()))
            .await
            .expect("handshake in time")
            .expect("handshake");
    assert_eq!(response.status(), 101);
    assert_eq!(
        response.headers()["x-service"],
        "web",
        "the TLS backend's 101"
    );
    for word in ["over", "tls"] {
        socket.send(Message::text(word)).await.expect("send");
        let echo = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("an echo in time")
            .expect("a message")
            .expect("no error");
        assert_eq!(echo, Message::text(word));
    }
    assert_eq!(proxy.generation.tunnels.total().open(), 1);
}
