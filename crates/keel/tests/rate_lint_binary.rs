//! K219 through the real binary: `keel check --traffic SAMPLE` replays a saved sample's
//! arrival times through the config's rate limits, and `keel apply --dry-run` against a
//! running `keel serve` replays its live sample, both naming the limit's file:line:col
//! and the share of requests it would have answered 429.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use support::{Killed, keel_cli, keel_serve, text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Longest any single wait may take (15 seconds).
const WAIT: Duration = Duration::from_secs(15);

/// The route's rate limit line, at line 22 column 14 of [`config`]'s text.
const TIGHT: &str = "rate_limit = { requests = 5, per = \"1s\", burst = 5, key = \"client_ip\" }";

fn config(proxy: SocketAddr, admin: SocketAddr, backend: SocketAddr, rule: &str) -> String {
    format!(
        "[listeners.web]\naddr = \"{proxy}\"\n\n[admin]\naddr = \"{admin}\"\n\n\
         [server]\nworker_threads = 1\n\n\
         [services.web]\nidentity = {{ header = \"x-service\", equals = \"web\" }}\n\n\
         [pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"{backend}\" }}]\nhealth = {{ path = \"/\" }}\n\n\
         [[routes]]\nname = \"shop\"\nservice = \"web\"\npool = \"web\"\n{rule}\n"
    )
}

fn keel(dir: &Path, admin: Option<SocketAddr>, args: &[&str]) -> Output {
    let admin = admin.map(|admin| format!("http://{admin}"));
    keel_cli(dir, admin, "rate-lint-token", args)
        .output()
        .expect("run keel")
}

/// One sampled request shape as `GET /traffic/sample` serves it.
fn shape(client: &str, at_ms: u64) -> String {
    format!(
        "{{\"method\":\"GET\",\"host\":\"shop.example.com\",\"path\":\"/\",\
         \"client\":\"{client}\",\"at_ms\":{at_ms}}}\n"
    )
}

#[test]
fn keel_check_replays_a_saved_sample_through_the_rate_limits() {
    let dir = tempfile::tempdir().expect("dir");
    let (a, b, c) = (
        keel_testkit::free_addr(),
        keel_testkit::free_addr(),
        keel_testkit::free_addr(),
    );
    std::fs::write(dir.path().join("tight.toml"), config(a, b, c, TIGHT)).expect("write");
    std::fs::write(
        dir.path().join("loose.toml"),
        config(a, b, c, &TIGHT.replace("5", "50")),
    )
    .expect("write");
    // 20 requests from one client in 190 ms: a bucket of 5 refilled at 5/s serves 5.
    let sample: String = (0..20)
        .map(|i| shape("10.0.0.1", 1_000_000 + i * 10))
        .collect();
    std::fs::write(dir.path().join("sample.jsonl"), sample).expect("write");

    let out = keel(
        dir.path(),
        None,
        &["check", "tight.toml", "--traffic", "sample.jsonl"],
    );
    let printed = text(&out);
    assert_eq!(out.status.code(), Some(0), "a warning: {printed}");
    assert!(
        printed.contains(
            "tight.toml:22:14: warning[K219]: route `shop`'s rate limit (5/1s burst 5 by \
             client_ip) would have answered 429 to 75.0% of its 20 sampled requests"
        ),
        "{printed}"
    );
    let out = keel(
        dir.path(),
        None,
        &[
            "check",
            "tight.toml",
            "--traffic",
            "sample.jsonl",
            "--deny-warnings",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Without the sample there is nothing to judge; with a limit above it, nothing to say.
    let out = keel(dir.path(), None, &["check", "tight.toml"]);
    assert!(!text(&out).contains("K219"), "{}", text(&out));
    let out = keel(
        dir.path(),
        None,
        &[
            "check",
            "loose.toml",
            "--traffic",
            "sample.jsonl",
            "--deny-warnings",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // An unreadable sample is an input error (64), not a silent pass.
    let out = keel(
        dir.path(),
        None,
        &["check", "tight.toml", "--traffic", "missing.jsonl"],
    );
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
}

/// `GET /` to `proxy` on a connection of its own; the status, if any.
async fn get(proxy: SocketAddr, forwarded_for: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(proxy).await.ok()?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: shop.example.com\r\nx-forwarded-for: {forwarded_for}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&raw)
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test]
async fn keel_apply_replays_the_live_sample_through_a_new_rate_limit() {
    let dir = tempfile::tempdir().expect("dir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let backend = listener.local_addr().expect("addr");
    keel_testkit::serve(listener, |_request| async {
        http::Response::builder()
            .header("x-service", "web")
            .body(Full::new(Bytes::from_static(b"ok")))
            .unwrap_or_default()
    });
    let (proxy, admin) = (keel_testkit::free_addr(), keel_testkit::free_addr());
    let open = config(proxy, admin, backend, "").replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    );
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, &open).expect("config");
    let _keel = Killed::spawn(
        keel_serve(&file, &dir.path().join("state"))
            .current_dir(dir.path())
            .env("KEEL_ADMIN_TOKEN", "rate-lint-token"),
    );
    let deadline = Instant::now() + WAIT;
    while get(proxy, "192.0.2.1").await.is_none() {
        assert!(Instant::now() < deadline, "keel serve never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 30 requests from one client as fast as they come: well above 1 per 10 s.
    for _ in 0..30 {
        assert_eq!(get(proxy, "10.0.0.1").await, Some(200));
    }
    let limited = open.replace(
        "pool = \"web\"\n\n",
        "pool = \"web\"\nrate_limit = { requests = 1, per = \"10s\", burst = 1, key = \"client_ip\" }\n",
    );
    assert_ne!(limited, open);
    std::fs::write(dir.path().join("limited.toml"), &limited).expect("write");
    let line = limited
        .lines()
        .position(|l| l.starts_with("rate_limit"))
        .expect("limit line")
        + 1;
    let dir_path = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        keel(
            &dir_path,
            Some(admin),
            &["apply", "limited.toml", "--dry-run"],
        )
    })
    .await
    .expect("cli");
    let printed = text(&out);
    assert!(
        printed.contains(&format!("limited.toml:{line}:14: warning[K219]")),
        "{printed}"
    );
    // 10.0.0.1 keeps 1 of its 30; the probing client keeps its one: 29 of 31+ refused.
    assert!(
        printed.contains("would have answered 429 to 9"),
        "{printed}"
    );
}
