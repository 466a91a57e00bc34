//! An intent's `max_refused` judged live by the guard, through the real `keel serve`:
//! a forced apply whose new `deny` refuses a quarter of the clients, in scope of an
//! intent that allows 1 %, is reverted. The detectors' `error_rate` and `share_shift`
//! are set high, so only the refusal intent can fire (the errors detector would
//! otherwise catch a refusal share this large on its own).

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

fn config(proxy: SocketAddr, admin: SocketAddr, backend: SocketAddr, rule: &str) -> String {
    format!(
        "[listeners.web]\naddr = \"{proxy}\"\n\n[admin]\naddr = \"{admin}\"\n\n\
         [server]\nworker_threads = 1\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n\
         [detectors]\nerror_rate = 0.9\nshare_shift = 0.9\n\n\
         [services.web]\nidentity = {{ header = \"x-service\", equals = \"web\" }}\n\n\
         [pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"{backend}\" }}]\n\n\
         [[routes]]\nname = \"shop\"\nhost = \"shop.example.com\"\nservice = \"web\"\npool = \"web\"\n{rule}\n\n\
         [[intents]]\nhost = \"shop.example.com\"\nmax_refused = 0.01\n"
    )
}

fn keel(dir: &Path, admin: SocketAddr, args: &[&str]) -> Output {
    keel_cli(
        dir,
        Some(format!("http://{admin}")),
        "refusal-intent-token",
        args,
    )
    .output()
    .expect("run keel")
}

/// `GET /` for shop.example.com on a connection of its own; the status, if any.
async fn get(proxy: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect(proxy).await.ok()?;
    let request = "GET / HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n";
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_reverts_a_forced_deny_over_an_intents_max_refused() {
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
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, config(proxy, admin, backend, "")).expect("config");
    std::fs::write(
        dir.path().join("deny.toml"),
        config(proxy, admin, backend, "deny = [\"10.0.0.0/8\"]"),
    )
    .expect("write");
    let _keel = Killed::spawn(
        keel_serve(&file, &dir.path().join("state"))
            .current_dir(dir.path())
            .env("KEEL_ADMIN_TOKEN", "refusal-intent-token"),
    );
    let deadline = Instant::now() + WAIT;
    while get(proxy).await.is_none() {
        assert!(Instant::now() < deadline, "keel serve never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Bounded load: 100 requests/s for 8 s, one in four from 10.0.0.0/8.
    let traffic = tokio::spawn(keel_testkit::load(100, Duration::from_secs(8), move |n| {
        let client = if n % 4 == 0 {
            format!("10.0.{}.1", n % 200)
        } else {
            format!("192.0.2.{}", n % 200)
        };
        http::Request::builder()
            .uri(format!("http://{proxy}/products/{}", n % 20))
            .header("host", "shop.example.com")
            .header("x-forwarded-for", client)
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("request")
    }));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dir_path = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        keel(
            &dir_path,
            admin,
            &[
                "apply",
                "deny.toml",
                "--force",
                "--watch",
                "5s",
                "--wait",
                "-m",
                "refuse 10/8",
            ],
        )
    })
    .await
    .expect("cli");
    let printed = text(&out);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(printed.contains("rolled back"), "{printed}");
    assert!(
        printed.contains("intent for shop.example.com: policies refused"),
        "{printed}"
    );
    assert!(
        printed.contains("above its max_refused of 1.0%"),
        "{printed}"
    );
    let report = traffic.await.expect("load");
    assert!(report.count(403) > 0, "the deny never served: no evidence");
    assert_eq!(get(proxy).await, Some(200), "generation 1 serves again");
}
