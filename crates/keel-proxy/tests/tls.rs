//! TLS termination through real sockets: certificates made here with rcgen, served by
//! the data plane, and reached by a rustls client and by curl. SNI picks exact, then
//! wildcard, then the default; ALPN agrees on h2 or http/1.1; `min_version` holds; and
//! a generation serves the certificate bytes it was loaded with, so activating an
//! older generation brings its certificate back while the file on disk says otherwise.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keel_proxy::tls::HandshakeFailure;
use keel_testkit::read_until;
use support::tls::{BOTH, TlsProxy, client, connect, shop_proxy, tls_config, write_certificate};
use support::{TestBackend, WAIT};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn sni_picks_the_exact_name_then_the_wildcard_then_the_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shop = write_certificate(dir.path(), "shop", &["shop.example.com"]);
    let wild = write_certificate(dir.path(), "wild", &["*.example.com"]);
    let fallback = write_certificate(dir.path(), "fallback", &["fallback.example.net"]);
    let backend = TestBackend::start("web", None).await;
    let config = tls_config(
        dir.path(),
        r#"{ certificates = ["shop", "wild", "fallback"], default = "fallback" }"#,
        &["shop", "wild", "fallback"],
        backend.addr,
    );
    let (proxy, _) = TlsProxy::start(config).await;
    let any = client(&[b"http/1.1"], BOTH);
    let cases = [
        ("shop.example.com", &shop, "exact name"),
        ("SHOP.example.com", &shop, "exact name in another case"),
        ("api.example.com", &wild, "wildcard"),
        (
            "a.b.example.com",
            &fallback,
            "wildcard covers one label only",
        ),
        ("other.example.org", &fallback, "no certificate covers it"),
        ("127.0.0.1", &fallback, "no SNI at all"),
    ];
    for (name, expected, why) in cases {
        let (_, leaf) = connect(proxy.addr, name, &any).await.expect(why);
        assert!(&leaf == expected, "{name} ({why}): wrong certificate");
    }
    let counters = proxy.counters();
    support::eventually(WAIT, "every handshake is counted", || {
        let counters = counters.clone();
        async move { counters.completed() == cases.len() as u64 }
    })
    .await;
}

#[tokio::test]
async fn alpn_h2_serves_http2_over_tls_and_http1_without_it() {
    let (_dir, backend, proxy) = shop_proxy(r#"{ certificates = ["shop"] }"#).await;

    let (stream, _) = connect(
        proxy.addr,
        "shop.example.com",
        &client(&[b"h2", b"http/1.1"], BOTH),
    )
    .await
    .expect("h2 handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 client");
    tokio::spawn(connection);
    let request = Request::get("https://shop.example.com/x")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("h2 response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(body, "web");

    // No ALPN at all: HTTP/1.1.
    let (stream, _) = connect(proxy.addr, "shop.example.com", &client(&[], BOTH))
        .await
        .expect("h1 handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), None);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 client");
    tokio::spawn(connection);
    let request = Request::get("/y")
        .header("host", "shop.example.com")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("h1 response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_11);
    let counters = proxy.counters();
    assert_eq!(counters.completed(), 2);
    assert_eq!(counters.completed_with("1.3", true), 1);
    assert_eq!(backend.requests(), 2);
}

#[tokio::test]
async fn curl_verifies_the_certificate_and_speaks_h2_and_http1() {
    let (dir, _backend, proxy) = shop_proxy(r#"{ certificates = ["shop"] }"#).await;
    let port = proxy.addr.port();
    let cacert = dir.path().join("shop.pem");
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let output = tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", flag, "--cacert"])
            .arg(&cacert)
            .arg("--resolve")
            .arg(format!("shop.example.com:{port}:127.0.0.1"))
            .args(["-w", "\n%{http_code} %{http_version}"])
            .arg(format!("https://shop.example.com:{port}/"))
            .output()
            .await
            .expect("run curl");
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "curl {flag}: {out} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(out, format!("web\n200 {version}"), "curl {flag}");
    }
}

#[tokio::test]
async fn min_version_1_3_refuses_a_tls_1_2_client_and_counts_it() {
    let (_dir, _backend, proxy) =
        shop_proxy(r#"{ certificates = ["shop"], min_version = "1.3" }"#).await;
    let old = client(&[], &[&rustls::version::TLS12]);
    assert!(connect(proxy.addr, "shop.example.com", &old).await.is_err());
    let (stream, _) = connect(proxy.addr, "shop.example.com", &client(&[], BOTH))
        .await
        .expect("TLS 1.3 handshake");
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let counters = proxy.counters();
    support::eventually(WAIT, "one refused and one completed handshake", || {
        let counters = counters.clone();
        async move { counters.failed(HandshakeFailure::Protocol) == 1 && counters.completed() == 1 }
    })
    .await;
}

#[tokio::test]
async fn an_older_generation_serves_its_own_certificate_after_the_file_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = write_certificate(dir.path(), "shop", &["shop.example.com"]);
    let backend = TestBackend::start("web", None).await;
    let tls = r#"{ certificates = ["shop"] }"#;
    let config = tls_config(dir.path(), tls, &["shop"], backend.addr);
    let (proxy, generation_1) = TlsProxy::start(config).await;
    let any = client(&[], BOTH);

    // The file is replaced and applied as generation 2.
    let second = write_certificate(dir.path(), "shop", &["shop.example.com"]);
    assert_ne!(first, second);
    let config_2 = Arc::new(tls_config(dir.path(), tls, &["shop"], backend.addr));
    let generation_2 = proxy.plane.compile(2, config_2).expect("compile 2");
    proxy.plane.activate(generation_2);
    let (_, leaf) = connect(proxy.addr, "shop.example.com", &any)
        .await
        .expect("after apply");
    assert!(leaf == second, "generation 2 serves the new certificate");

    // Rolling back to generation 1 serves the first certificate again, though the file
    // on disk now holds the second.
    proxy.plane.activate(generation_1);
    let (_, leaf) = connect(proxy.addr, "shop.example.com", &any)
        .await
        .expect("after rollback");
    assert!(
        leaf == first,
        "generation 1 serves the certificate it was loaded with"
    );
}

#[tokio::test]
async fn a_client_speaking_plain_http_to_a_tls_listener_is_refused_and_counted() {
    let (_dir, backend, proxy) = shop_proxy(r#"{ certificates = ["shop"] }"#).await;
    let (reply, closed) =
        support::raw_exchange(proxy.addr, b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert!(closed, "the connection is closed");
    assert!(!reply.contains("HTTP/1.1"), "{reply}");
    let counters = proxy.counters();
    support::eventually(WAIT, "the plain-text client is counted", || {
        let counters = counters.clone();
        async move { counters.failed(HandshakeFailure::Protocol) == 1 }
    })
    .await;
    assert_eq!(backend.requests(), 0);
}

/// HTTP/1 over TLS is parked between requests like plain HTTP/1 (`crate::parking`):
/// after an idle pause longer than the park delay (20 ms), a head sent in pieces, and
/// then two pipelined requests, are answered in order on the same TLS session. (That
/// the parked connection gives hyper's buffers back is `bench/memory.sh`'s to measure.)
#[tokio::test]
async fn an_idle_http1_tls_connection_is_parked_and_serves_on() {
    const PAUSE: std::time::Duration = std::time::Duration::from_millis(150);
    let (_dir, backend, proxy) = shop_proxy(r#"{ certificates = ["shop"] }"#).await;
    let (mut stream, _) = connect(proxy.addr, "shop.example.com", &client(&[], BOTH))
        .await
        .expect("handshake");
    let answers = |count: usize| {
        move |read: &[u8]| String::from_utf8_lossy(read).matches("\r\n\r\nweb").count() >= count
    };
    stream
        .write_all(b"GET /first HTTP/1.1\r\nHost: shop.example.com\r\n\r\n")
        .await
        .expect("write");
    read_until(&mut stream, "the first answer", answers(1)).await;
    tokio::time::sleep(PAUSE).await;
    for piece in [
        &b"GET /sec"[..],
        b"ond HTTP/1.1\r\nHost: shop.exa",
        b"mple.com\r\n\r\n",
    ] {
        stream.write_all(piece).await.expect("write");
        tokio::time::sleep(PAUSE).await;
    }
    let second = read_until(&mut stream, "the second answer", answers(1)).await;
    assert!(second.starts_with(b"HTTP/1.1 200"), "{second:?}");
    assert_eq!(backend.last_head().expect("head").uri.path(), "/second");
    stream
        .write_all(
            b"GET /third HTTP/1.1\r\nHost: shop.example.com\r\n\r\n\
              GET /fourth HTTP/1.1\r\nHost: shop.example.com\r\n\r\n",
        )
        .await
        .expect("write");
    let rest = read_until(&mut stream, "two pipelined answers", answers(2)).await;
    assert_eq!(
        String::from_utf8_lossy(&rest)
            .matches("HTTP/1.1 200")
            .count(),
        2
    );
    assert_eq!(backend.last_head().expect("head").uri.path(), "/fourth");
    assert_eq!(backend.requests(), 4);
    assert_eq!(
        proxy.counters().completed(),
        1,
        "one TLS session throughout"
    );
}
