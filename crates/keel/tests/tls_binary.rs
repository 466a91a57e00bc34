//! The real binary with TLS: `keel serve` terminates TLS for curl (h2 and HTTP/1.1,
//! the certificate verified against the file made here), and `keel check` refuses an
//! expired certificate with the position of its `cert` key.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use keel_testkit::{Backend, free_port};
use support::{Killed, keel_serve};
use tokio::time::Instant;

/// Longest any single wait may take (15 seconds).
const WAIT: Duration = Duration::from_secs(15);

/// Writes `certs/shop.pem` and `certs/shop.key` under `dir`, valid until `until`.
fn write_certificate(dir: &Path, until: i32) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["shop.example.com".to_string()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(until, 1, 1);
    let cert = params.self_signed(&key).expect("cert");
    std::fs::create_dir_all(dir.join("certs")).expect("mkdir");
    std::fs::write(dir.join("certs/shop.pem"), cert.pem()).expect("cert");
    std::fs::write(dir.join("certs/shop.key"), key.serialize_pem()).expect("key");
}

fn config(port: u16, admin: u16, backend: std::net::SocketAddr) -> String {
    format!(
        "[listeners.https]\naddr = \"127.0.0.1:{port}\"\ntls = {{ certificates = [\"shop\"] }}\n\n\
         [certificates.shop]\ncert = \"certs/shop.pem\"\nkey = \"certs/shop.key\"\n\n\
         [admin]\naddr = \"127.0.0.1:{admin}\"\n\n[server]\nworker_threads = 2\n\n\
         [services.web]\nallow_no_identity = true\n\n[pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"{backend}\" }}]\n\n\
         [[routes]]\nname = \"shop\"\nhost = \"shop.example.com\"\nservice = \"web\"\npool = \"web\"\n\n\
         [[routes]]\nname = \"rest\"\nservice = \"web\"\npool = \"web\"\n"
    )
}

async fn curl(dir: &Path, port: u16, flag: &str) -> Option<String> {
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", flag, "--cacert"])
        .arg(dir.join("certs/shop.pem"))
        .arg("--resolve")
        .arg(format!("shop.example.com:{port}:127.0.0.1"))
        .args(["-w", "\n%{http_code} %{http_version}"])
        .arg(format!("https://shop.example.com:{port}/"))
        .output()
        .await
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test]
async fn keel_serve_terminates_tls_for_curl_over_h2_and_http1() {
    let dir = tempfile::tempdir().expect("dir");
    write_certificate(dir.path(), 2090);
    let backend = Backend::new("web").body("hello\n").start().await;
    let (port, admin) = (free_port(), free_port());
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, config(port, admin, backend)).expect("config");
    let state = tempfile::tempdir().expect("state");
    // Run from another directory: the certificate paths are relative to the config file.
    let _keel = Killed::spawn(keel_serve(&file, state.path()).current_dir(state.path()));
    let deadline = Instant::now() + WAIT;
    let first = loop {
        if let Some(answer) = curl(dir.path(), port, "--http2").await {
            break answer;
        }
        assert!(Instant::now() < deadline, "keel never answered over TLS");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(first, "hello\n\n200 2");
    let http1 = curl(dir.path(), port, "--http1.1")
        .await
        .expect("HTTP/1.1 over TLS");
    assert_eq!(http1, "hello\n\n200 1.1");
}

#[test]
fn keel_check_refuses_an_expired_certificate_at_its_cert_key() {
    let dir = tempfile::tempdir().expect("dir");
    write_certificate(dir.path(), 2021);
    let file = dir.path().join("keel.toml");
    std::fs::write(
        &file,
        config(8443, 9901, "127.0.0.1:9001".parse().expect("addr")),
    )
    .expect("config");
    let output = Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("check")
        .arg(&file)
        .output()
        .expect("run keel check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("K121"), "{text}");
    // `cert = "certs/shop.pem"` is line 6; its value starts at column 8.
    assert!(text.contains("keel.toml:6:8"), "{text}");
}
