//! Redirect routes through the real `keel serve` process: a plain listener and a TLS
//! listener (certificate made here by rcgen), traffic sampled on the plain one, then
//! a `to-https` redirect limited to `listener = "http"`. The blast-radius gate refuses
//! it (the redirect takes the sampled requests away from their service); forced, the
//! plain listener answers `308` with the `Location` the route test states (query
//! kept), the TLS listener still forwards, curl follows the redirect to the backend,
//! a `Host` the redirect cannot use safely gets `400`, and the redirects are counted
//! in the metrics.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use keel_testkit::{Backend, RawAnswer, exchange, free_port, get_request};
use support::{Killed, keel_cli, keel_serve, text};
use tokio::time::Instant;

/// Longest any single wait may take (15 seconds).
const WAIT: Duration = Duration::from_secs(15);
/// Requests sampled on the plain listener before the redirect is applied.
const SAMPLED: usize = 20;

/// Writes `certs/shop.pem` and `certs/shop.key` for `shop.example.com` under `dir`.
fn write_certificate(dir: &Path) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["shop.example.com".to_string()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2090, 1, 1);
    let cert = params.self_signed(&key).expect("cert");
    std::fs::create_dir_all(dir.join("certs")).expect("mkdir");
    std::fs::write(dir.join("certs/shop.pem"), cert.pem()).expect("cert");
    std::fs::write(dir.join("certs/shop.key"), key.serialize_pem()).expect("key");
}

/// The ports of one test: plain, TLS, admin.
#[derive(Clone, Copy)]
struct Ports {
    http: u16,
    https: u16,
    admin: u16,
}

/// The shop on both listeners; with `redirect`, plain requests go to https first.
fn config(ports: Ports, backend: SocketAddr, redirect: bool) -> String {
    let Ports { http, https, admin } = ports;
    let mut text = format!(
        "[listeners.http]\naddr = \"127.0.0.1:{http}\"\n\n\
         [listeners.https]\naddr = \"127.0.0.1:{https}\"\ntls = {{ certificates = [\"shop\"] }}\n\n\
         [certificates.shop]\ncert = \"certs/shop.pem\"\nkey = \"certs/shop.key\"\n\n\
         [admin]\naddr = \"127.0.0.1:{admin}\"\n\n[server]\nworker_threads = 1\n\n\
         [safety]\nmax_shift = 0.1\n\n\
         [services.web]\nallow_no_identity = true\n\n\
         [pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"{backend}\" }}]\n\n"
    );
    if redirect {
        text.push_str(&format!(
            "[[routes]]\nname = \"to-https\"\nlistener = \"http\"\n\
             redirect = {{ scheme = \"https\", port = {https}, status = 308 }}\n\n\
             [[tests]]\nrequest = \"GET http://shop.example.com/x?q=1\"\n\
             expect = {{ route = \"to-https\", status = 308, location = \"https://shop.example.com:{https}/x?q=1\" }}\n\n\
             [[tests]]\nrequest = \"GET https://shop.example.com/x\"\nexpect = {{ route = \"shop\" }}\n\n"
        ));
    }
    text.push_str(
        "[[routes]]\nname = \"shop\"\nhost = \"shop.example.com\"\nservice = \"web\"\npool = \"web\"\n",
    );
    text
}

/// `GET target` with `Host: host` over plain HTTP/1.1 (`Connection: close`).
async fn get(port: u16, host: &str, target: &str) -> Option<RawAnswer> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    exchange(addr, get_request(host, target, "").as_bytes(), WAIT).await
}

/// curl with both listeners resolved for `shop.example.com` and the test certificate
/// trusted; prints the body, then the status and the number of redirects followed.
async fn curl(dir: &Path, ports: Ports, url: &str, extra: &[&str]) -> Option<String> {
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(dir.join("certs/shop.pem"))
        .arg("--resolve")
        .arg(format!("shop.example.com:{}:127.0.0.1", ports.http))
        .arg("--resolve")
        .arg(format!("shop.example.com:{}:127.0.0.1", ports.https))
        .args(extra)
        .args(["-w", "\n%{http_code} %{num_redirects}"])
        .arg(url)
        .output()
        .await
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `keel ARGS` against the server whose admin API is on `admin`, run in `dir`.
async fn cli(dir: &Path, admin: u16, args: &[&str]) -> (Option<i32>, String) {
    let mut command = keel_cli(
        dir,
        Some(format!("http://127.0.0.1:{admin}")),
        "redirects-binary-token",
        args,
    );
    let output = tokio::task::spawn_blocking(move || command.output().expect("run keel"))
        .await
        .expect("cli task");
    (output.status.code(), text(&output))
}

#[tokio::test]
async fn a_redirect_to_https_is_gated_then_served_on_the_plain_listener_only() {
    let dir = tempfile::tempdir().expect("dir");
    write_certificate(dir.path());
    let backend = Backend::new("web").body("hello\n").start().await;
    let ports = Ports {
        http: free_port(),
        https: free_port(),
        admin: free_port(),
    };
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, config(ports, backend, false)).expect("config");
    std::fs::write(
        dir.path().join("redirect.toml"),
        config(ports, backend, true),
    )
    .expect("config");
    let _keel = Killed::spawn(
        keel_serve(&file, &dir.path().join("state"))
            .current_dir(dir.path())
            .env("KEEL_ADMIN_TOKEN", "redirects-binary-token"),
    );
    let deadline = Instant::now() + WAIT;
    while get(ports.http, "shop.example.com", "/ready")
        .await
        .is_none()
    {
        assert!(Instant::now() < deadline, "keel serve never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..SAMPLED {
        let answer = get(ports.http, "shop.example.com", &format!("/x?n={i}")).await;
        assert_eq!(answer.map(|a| a.status), Some(200));
    }

    // Every sampled request would leave service `web` for Keel's redirect: refused.
    let (code, out) = cli(
        dir.path(),
        ports.admin,
        &["apply", "redirect.toml", "--dry-run"],
    )
    .await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("REFUSED by the blast-radius gate"), "{out}");
    assert!(out.contains("redirect 308 to https://"), "{out}");

    let (code, out) = cli(
        dir.path(),
        ports.admin,
        &[
            "apply",
            "redirect.toml",
            "--force",
            "--no-guard",
            "-m",
            "plain HTTP moves to https",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{out}");

    let moved = get(ports.http, "Shop.Example.com", "/x?q=1")
        .await
        .expect("an answer");
    assert_eq!(moved.status, 308, "{}", moved.head);
    assert_eq!(
        moved.header("location"),
        Some(format!("https://shop.example.com:{}/x?q=1", ports.https).as_str()),
        "{}",
        moved.head
    );
    assert_eq!(moved.body, "");

    // The TLS listener still forwards; curl follows the plain listener's redirect there.
    let https = format!("https://shop.example.com:{}/x", ports.https);
    assert_eq!(
        curl(dir.path(), ports, &https, &[]).await.as_deref(),
        Some("hello\n\n200 0")
    );
    let http = format!("http://shop.example.com:{}/x?q=1", ports.http);
    assert_eq!(
        curl(dir.path(), ports, &http, &["-L"]).await.as_deref(),
        Some("hello\n\n200 1")
    );

    // A Host that is not a plain name never reaches `Location`.
    let odd = get(ports.http, "a%0d%0aset-cookie.example", "/")
        .await
        .expect("an answer");
    assert_eq!(odd.status, 400, "{}", odd.head);
    assert_eq!(odd.header("location"), None);
    assert_eq!(odd.header("keel-error"), Some("bad-request"));

    let metrics = get(ports.admin, "127.0.0.1", "/metrics")
        .await
        .expect("metrics");
    assert!(
        metrics
            .body
            .lines()
            .any(|line| line.starts_with("keel_redirects_total{")
                && line.contains("route=\"to-https\"")
                && line.ends_with(" 2")),
        "{}",
        metrics.body
    );
}
