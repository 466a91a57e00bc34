//! TLS on a real TLS listener: a completed handshake (curl), a plain-HTTP client
//! refused, counted on the generation that served them, and the certificate's expiry,
//! as Prometheus scrapes them; and clients refusing the certificate raise a
//! `handshakes` alert from the background watch, outside any apply.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keel_proxy::{DataPlane, DataPlaneOptions, ListenerLimits};
use keel_testkit::Answer;
use keel_watch::{Detector, Phase, Watcher};
use support::{backend, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A data plane serving TLS listener `https` on 127.0.0.1:0 with a self-signed
/// certificate for shop.example.com (in the returned directory), generation 1, watched.
async fn tls_plane() -> (tempfile::TempDir, SocketAddr, Arc<Watcher>) {
    let dir = tempfile::tempdir().expect("dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["shop.example.com".to_string()]).expect("params");
    params.not_after = rcgen::date_time_ymd(2090, 1, 1);
    let cert = params.self_signed(&key).expect("cert");
    std::fs::write(dir.path().join("shop.pem"), cert.pem()).expect("write");
    std::fs::write(dir.path().join("shop.key"), key.serialize_pem()).expect("write");

    let web = backend("web", Answer::Ok).await;
    let text = format!(
        "[listeners.https]\naddr = \"127.0.0.1:1\"\ntls = {{ certificates = [\"shop\"] }}\n\
         [certificates.shop]\ncert = \"shop.pem\"\nkey = \"shop.key\"\n\
         [services.web]\n[pools.web]\nservice = \"web\"\nbackends = [\"{web}\"]\n\
         [[routes]]\nname = \"all\"\nservice = \"web\"\npool = \"web\"\n"
    );
    let parsed = keel_config::parse(&text);
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let mut config = parsed.config;
    let unread = keel_config::read_certificate_files(&mut config.certificates, dir.path());
    assert!(unread.is_empty(), "{unread:#?}");
    let config = Arc::new(config);
    let plane = DataPlane::new(DataPlaneOptions::from_config(&config)).expect("plane");
    plane.activate(plane.compile(1, config.clone()).expect("compile"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let tls = plane.tls_listener("https");
    let serving = plane.clone();
    let limits = ListenerLimits::from_server(&config.server);
    tokio::spawn(async move {
        serving
            .serve_tls(listener, limits, tls, std::future::pending())
            .await
    });
    let (watcher, _) = Watcher::start(plane.clone(), &[]);
    (dir, addr, watcher)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_failures_and_certificate_expiry_are_exposed() {
    let (dir, addr, watcher) = tls_plane().await;
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--http2", "--cacert"])
        .arg(dir.path().join("shop.pem"))
        .arg("--resolve")
        .arg(format!("shop.example.com:{}:127.0.0.1", addr.port()))
        .arg(format!("https://shop.example.com:{}/", addr.port()))
        .output()
        .await
        .expect("curl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut plain = TcpStream::connect(addr).await.expect("connect");
    plain
        .write_all(b"GET / HTTP/1.1\r\nhost: shop.example.com\r\n\r\n")
        .await
        .expect("write");
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut sink)).await;

    let expected = [
        "keel_tls_handshakes_total{generation=\"1\",listener=\"https\",certificate=\"shop\",kind=\"full\",version=\"1.3\",alpn=\"h2\"} 1",
        "keel_tls_handshakes_total{generation=\"1\",listener=\"https\",certificate=\"shop\",kind=\"resumed\",version=\"1.3\",alpn=\"h2\"} 0",
        "keel_tls_handshakes_total{generation=\"1\",listener=\"https\",certificate=\"shop\",kind=\"full\",version=\"1.2\",alpn=\"http/1.1\"} 0",
        "keel_tls_resumptions_total{generation=\"1\",listener=\"https\"} 0",
        "keel_tls_handshake_failures_total{generation=\"1\",listener=\"https\",reason=\"protocol\"} 1",
        "keel_tls_handshake_failures_total{generation=\"1\",listener=\"https\",reason=\"certificate_refused\"} 0",
        "keel_tls_handshake_failures_total{generation=\"1\",listener=\"https\",reason=\"timeout\"} 0",
    ];
    let seen = eventually(Duration::from_secs(10), || {
        let text = watcher.metrics_text();
        expected.iter().all(|line| text.contains(line))
    })
    .await;
    let text = watcher.metrics_text();
    assert!(seen, "{text}");
    // 2090-01-01T00:00:00Z.
    assert!(
        text.contains("keel_certificate_expiry_seconds{certificate=\"shop\"} 3786912000"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_refusing_the_certificate_raise_a_handshakes_alert_outside_any_apply() {
    let (_dir, addr, watcher) = tls_plane().await;
    // curl without the certificate as its CA: it refuses it (`unknown_ca`).
    for _ in 0..25 {
        let refused = tokio::process::Command::new("curl")
            .args(["-s", "--max-time", "5", "-o", "/dev/null", "--resolve"])
            .arg(format!("shop.example.com:{}:127.0.0.1", addr.port()))
            .arg(format!("https://shop.example.com:{}/", addr.port()))
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .expect("curl");
        assert!(!refused.success());
    }
    let alerted = eventually(Duration::from_secs(5), || {
        !watcher.alerts().recent(1).is_empty()
    })
    .await;
    assert!(alerted, "no alert");
    let alert = watcher.alerts().recent(1).remove(0);
    assert_eq!(alert.detector, Detector::Handshakes, "{alert:?}");
    assert_eq!(alert.phase, Phase::Continuous);
    assert_eq!(alert.subject, "listener https");
    assert_eq!(alert.numbers["counted"], "certificate_reasons", "{alert:?}");
    assert!(
        alert.numbers["by_reason"]["certificate_refused"]
            .as_u64()
            .is_some_and(|n| n >= 20),
        "{alert:?}"
    );
}
