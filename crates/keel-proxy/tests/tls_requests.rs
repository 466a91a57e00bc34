//! What a TLS connection tells its requests, through real sockets: `x-forwarded-proto:
//! https`, the SNI name and version in the traffic sample and the access log, `421
//! Misdirected Request` for a host the connection's certificate choice does not serve
//! (and, with `require_sni`, for any host other than the SNI name), routes limited to
//! listeners, and a TLS listener's HSTS header.

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use support::tls::{BOTH, TlsProxy, client, connect, tls_config_with, write_certificate};
use support::{TestBackend, WAIT};

/// Status, `keel-error` and `x-route` of a GET for `host` over a TLS connection that
/// sent `sni` (an IP address: no SNI).
async fn get_over_tls(addr: SocketAddr, sni: &str, host: &str) -> (u16, String, String) {
    answer(exchange_tls(addr, sni, host).await).await
}

/// The answer to a GET for `host` over a TLS connection that sent `sni`.
async fn exchange_tls(
    addr: SocketAddr,
    sni: &str,
    host: &str,
) -> http::Response<hyper::body::Incoming> {
    let (stream, _) = connect(addr, sni, &client(&[b"http/1.1"], BOTH))
        .await
        .expect("handshake");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("client");
    tokio::spawn(connection);
    let request = Request::get("/x")
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .expect("request");
    sender.send_request(request).await.expect("response")
}

async fn answer(response: http::Response<hyper::body::Incoming>) -> (u16, String, String) {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (error, route) = (header("keel-error"), header("x-route"));
    let _ = response.into_body().collect().await;
    (status, error, route)
}

/// Status, `keel-error` and `x-route` of a plain GET for `host`.
async fn get_plain(addr: SocketAddr, host: &str) -> (u16, String, String) {
    answer(exchange_plain(addr, host).await).await
}

/// The answer to a plain GET for `host`.
async fn exchange_plain(addr: SocketAddr, host: &str) -> http::Response<hyper::body::Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("client");
    tokio::spawn(connection);
    let request = Request::get("/x")
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .expect("request");
    sender.send_request(request).await.expect("response")
}

#[tokio::test]
async fn the_scheme_sni_and_version_reach_the_backend_the_sample_and_the_access_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_certificate(dir.path(), "shop", &["shop.example.com"]);
    let backend = TestBackend::start("web", None).await;
    let log = dir.path().join("access.log");
    let extra = format!(
        "[listeners.http]\naddr = \"127.0.0.2:1\"\n[access_log]\npath = \"{}\"\n",
        log.display()
    );
    let config = tls_config_with(
        dir.path(),
        r#"{ certificates = ["shop"] }"#,
        &["shop"],
        backend.addr,
        &extra,
        "",
    );
    let (proxy, _) = TlsProxy::start(config).await;
    let plain = proxy.serve_plain("http").await;

    let (status, _, _) = get_over_tls(proxy.addr, "shop.example.com", "shop.example.com").await;
    assert_eq!(status, 200);
    let head = backend.last_head().expect("the backend saw the request");
    assert_eq!(head.headers["x-forwarded-proto"], "https");

    // A client's own x-forwarded-proto is not believed on a plain connection.
    let (status, _, _) = get_plain(plain, "shop.example.com").await;
    assert_eq!(status, 200);
    let head = backend.last_head().expect("the backend saw the request");
    assert_eq!(head.headers["x-forwarded-proto"], "http");

    let sample = proxy.plane.sample().snapshot();
    let tls = sample
        .iter()
        .find_map(|shape| shape.tls.clone())
        .expect("a TLS request in the sample");
    assert_eq!(tls.sni.as_deref(), Some("shop.example.com"));
    assert_eq!(tls.version, "1.3");
    assert!(
        sample
            .iter()
            .any(|s| s.tls.is_none() && s.listener.as_deref() == Some("http")),
        "{sample:?}"
    );

    support::eventually(WAIT, "two access-log lines", || {
        let log = log.clone();
        async move { std::fs::read_to_string(&log).is_ok_and(|text| text.lines().count() == 2) }
    })
    .await;
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines[0]["scheme"], "https");
    assert_eq!(lines[0]["listener"], "https");
    assert_eq!(lines[0]["tls"]["sni"], "shop.example.com");
    assert_eq!(lines[0]["tls"]["version"], "1.3");
    assert_eq!(lines[1]["scheme"], "http");
    assert_eq!(lines[1]["listener"], "http");
    assert!(lines[1].get("tls").is_none());
}

#[tokio::test]
async fn a_host_that_would_get_another_certificate_than_the_sni_name_is_misdirected() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_certificate(
        dir.path(),
        "shop",
        &["shop.example.com", "www.shop.example.com"],
    );
    write_certificate(dir.path(), "api", &["api.example.com"]);
    let backend = TestBackend::start("web", None).await;
    let config = tls_config_with(
        dir.path(),
        r#"{ certificates = ["shop", "api"], default = "shop" }"#,
        &["shop", "api"],
        backend.addr,
        "",
        "",
    );
    let (proxy, _) = TlsProxy::start(config).await;
    let cases = [
        (
            "shop.example.com",
            "shop.example.com:443",
            200,
            "SNI is the host",
        ),
        (
            "shop.example.com",
            "WWW.shop.example.com",
            200,
            "another name of the same certificate (HTTP/2 connection reuse)",
        ),
        (
            "shop.example.com",
            "api.example.com",
            421,
            "a host that gets another certificate",
        ),
        (
            "api.example.com",
            "shop.example.com",
            421,
            "the other way round",
        ),
        (
            "127.0.0.1",
            "api.example.com",
            200,
            "no SNI: nothing to compare",
        ),
    ];
    for (sni, host, expected, why) in cases {
        let (status, error, _) = get_over_tls(proxy.addr, sni, host).await;
        assert_eq!(status, expected, "SNI {sni}, Host {host}: {why}");
        if expected == 421 {
            assert_eq!(error, "misdirected-request");
        }
    }
    assert_eq!(backend.requests(), 3, "misdirected requests never reach it");
}

#[tokio::test]
async fn a_route_with_require_sni_serves_only_requests_whose_sni_is_their_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_certificate(
        dir.path(),
        "shop",
        &["shop.example.com", "www.shop.example.com"],
    );
    let backend = TestBackend::start("web", None).await;
    let extra = "[listeners.http]\naddr = \"127.0.0.2:1\"\n\
                 [[routes]]\nname = \"strict\"\nhost = \"www.shop.example.com\"\n\
                 service = \"web\"\npool = \"web\"\nrequire_sni = true\n";
    let config = tls_config_with(
        dir.path(),
        r#"{ certificates = ["shop"] }"#,
        &["shop"],
        backend.addr,
        extra,
        "",
    );
    let (proxy, _) = TlsProxy::start(config).await;
    let plain = proxy.serve_plain("http").await;
    let host = "www.shop.example.com";
    assert_eq!(get_over_tls(proxy.addr, host, host).await.0, 200);
    let (status, error, _) = get_over_tls(proxy.addr, "shop.example.com", host).await;
    assert_eq!(
        (status, error.as_str()),
        (421, "misdirected-request"),
        "same certificate, but the route asks for SNI equal to the host"
    );
    assert_eq!(get_over_tls(proxy.addr, "127.0.0.1", host).await.0, 421);
    assert_eq!(get_plain(plain, host).await.0, 421, "no TLS at all");
    // Other routes keep the default rule.
    assert_eq!(
        get_over_tls(proxy.addr, host, "shop.example.com").await.0,
        200
    );
}

#[tokio::test]
async fn a_route_limited_to_a_listener_matches_only_requests_that_came_in_on_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_certificate(dir.path(), "shop", &["shop.example.com"]);
    let backend = TestBackend::start("web", None).await;
    let extra = "[listeners.http]\naddr = \"127.0.0.2:1\"\n\
                 [[routes]]\nname = \"plain-only\"\nlistener = \"http\"\n\
                 service = \"web\"\npool = \"web\"\n\
                 response_headers = { set = { \"x-route\" = \"plain-only\" } }\n";
    let config = tls_config_with(
        dir.path(),
        r#"{ certificates = ["shop"] }"#,
        &["shop"],
        backend.addr,
        extra,
        "response_headers = { set = { \"x-route\" = \"all\" } }",
    );
    let (proxy, _) = TlsProxy::start(config).await;
    let plain = proxy.serve_plain("http").await;
    let host = "shop.example.com";
    assert_eq!(get_plain(plain, host).await.2, "plain-only");
    assert_eq!(get_over_tls(proxy.addr, host, host).await.2, "all");
    let sample = proxy.plane.sample().snapshot();
    assert!(
        sample
            .iter()
            .any(|s| s.listener.as_deref() == Some("https"))
    );
}

#[tokio::test]
async fn a_tls_listener_with_hsts_sends_it_on_every_answer_and_a_plain_one_never() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_certificate(dir.path(), "shop", &["shop.example.com"]);
    let backend = TestBackend::start("web", None).await;
    let config = tls_config_with(
        dir.path(),
        r#"{ certificates = ["shop"], hsts = { max_age = "24h", include_subdomains = true } }"#,
        &["shop"],
        backend.addr,
        "[listeners.http]\naddr = \"127.0.0.2:1\"\n",
        "",
    );
    let (proxy, _) = TlsProxy::start(config).await;
    let plain = proxy.serve_plain("http").await;
    let host = "shop.example.com";
    let hsts = |response: &http::Response<hyper::body::Incoming>| {
        response
            .headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap_or("").to_string())
    };
    let served = exchange_tls(proxy.addr, host, host).await;
    assert_eq!(served.status(), 200);
    assert_eq!(
        hsts(&served).as_deref(),
        Some("max-age=86400; includeSubDomains")
    );
    let misdirected = exchange_tls(proxy.addr, host, "other.example.org").await;
    assert_eq!(misdirected.status(), 421);
    assert!(
        hsts(&misdirected).is_some(),
        "Keel's own answers carry it too"
    );
    let over_http = exchange_plain(plain, host).await;
    assert_eq!(over_http.status(), 200);
    assert_eq!(
        hsts(&over_http),
        None,
        "never over plain HTTP (RFC 6797 7.2)"
    );
}
