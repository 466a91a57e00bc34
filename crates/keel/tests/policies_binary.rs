//! Route policies through the real `keel serve` process, with raw HTTP/1.1 over real
//! loopback sockets: fixed answers (`respond`, a route without a pool), path rewrites
//! (`rewrite = { path_prefix }`) and rate limits (`429` with `retry-after`, a bucket
//! per key, recovery), and `keel check` judging them (route tests with
//! `rewritten_path` and `status = 403|429`, K214 for a fixed answer that takes a later
//! route's requests), and the client address behind trusted proxies (`x-forwarded-for`)
//! and PROXY protocol v1/v2 headers written here; the gate refusing a new deny over
//! `[safety] max_shift` or over an intent's `max_refused`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use keel_testkit::{RawAnswer, get_request};
use support::{Killed, keel_cli, keel_serve, text};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Longest any single wait may take (15 seconds).
const WAIT: Duration = Duration::from_secs(15);

/// `GET path` with `extra` header lines, on a connection of its own (`Connection: close`).
async fn get(addr: SocketAddr, path: &str, extra: &str) -> Option<RawAnswer> {
    exchange(addr, b"", path, extra).await
}

/// [`get`] after `prefix` (a PROXY protocol header) on the same connection.
async fn exchange(addr: SocketAddr, prefix: &[u8], path: &str, extra: &str) -> Option<RawAnswer> {
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(get_request("shop.example.com", path, extra).as_bytes());
    keel_testkit::exchange(addr, &bytes, WAIT).await
}

/// A backend of service `web` that answers with the target it was sent, and counts.
async fn echo_backend(count: Arc<AtomicU64>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    keel_testkit::serve(listener, move |request| {
        count.fetch_add(1, Relaxed);
        let target = request
            .uri()
            .path_and_query()
            .map_or_else(String::new, |pq| pq.to_string());
        async move {
            http::Response::builder()
                .header("x-service", "web")
                .body(Full::new(Bytes::from(target)))
                .unwrap_or_default()
        }
    });
    addr
}

fn base(proxy: SocketAddr, admin: SocketAddr, backend: SocketAddr) -> String {
    format!(
        "[listeners.web]\naddr = \"{proxy}\"\n\n[admin]\naddr = \"{admin}\"\n\n[server]\nworker_threads = 1\n\n\
         [services.web]\nidentity = {{ header = \"x-service\", equals = \"web\" }}\n\n\
         [pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"{backend}\" }}]\n\n"
    )
}

/// Starts `keel serve` on `config` in `dir` and waits until `ready_path` answers.
async fn serve(dir: &Path, config: &str, proxy: SocketAddr, ready_path: &str) -> Killed {
    let file = dir.join("keel.toml");
    std::fs::write(&file, config).expect("config");
    let keel = Killed::spawn(
        keel_serve(&file, &dir.join("state"))
            .current_dir(dir)
            .env("KEEL_ADMIN_TOKEN", "policies-binary-token"),
    );
    let deadline = Instant::now() + WAIT;
    while get(proxy, ready_path, "").await.is_none() {
        assert!(Instant::now() < deadline, "keel serve never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    keel
}

fn free() -> SocketAddr {
    keel_testkit::free_addr()
}

#[tokio::test]
async fn keel_serve_answers_fixed_routes_itself_and_rewrites_prefixes() {
    let dir = tempfile::tempdir().expect("dir");
    let count = Arc::new(AtomicU64::new(0));
    let backend = echo_backend(count.clone()).await;
    let proxy = free();
    let config = format!(
        "{}[[routes]]\nname = \"maintenance\"\npath = \"/status.txt\"\n\
         respond = {{ status = 503, body = \"back soon\\n\", content_type = \"text/plain\" }}\n\
         response_headers = {{ set = {{ \"retry-after\" = \"120\" }} }}\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nservice = \"web\"\npool = \"web\"\n\
         rewrite = {{ path_prefix = \"/v2\" }}\n\n\
         [[routes]]\nname = \"rest\"\nservice = \"web\"\npool = \"web\"\n",
        base(proxy, free(), backend)
    );
    let _keel = serve(dir.path(), &config, proxy, "/ready").await;
    let before = count.load(Relaxed);

    let fixed = get(proxy, "/status.txt", "").await.expect("fixed answer");
    assert_eq!(fixed.status, 503);
    assert_eq!(fixed.body, "back soon\n");
    assert_eq!(fixed.header("content-type"), Some("text/plain"));
    assert_eq!(
        fixed.header("retry-after"),
        Some("120"),
        "response rules apply"
    );
    assert_eq!(fixed.header("x-keel-generation"), Some("1"));
    assert_eq!(
        fixed.header("keel-error"),
        None,
        "a fixed answer is no error"
    );
    assert_eq!(
        count.load(Relaxed),
        before,
        "the fixed answer reached the backend"
    );

    let api = get(proxy, "/api/users?id=7", "").await.expect("api");
    assert_eq!((api.status, api.body.as_str()), (200, "/v2/users?id=7"));
    let bare = get(proxy, "/api", "").await.expect("api root");
    assert_eq!(bare.body, "/v2");
    // Only the route with the rule rewrites; a path merely containing the prefix is kept.
    let rest = get(proxy, "/shop/api/x", "").await.expect("rest");
    assert_eq!(rest.body, "/shop/api/x");
    assert_eq!(count.load(Relaxed), before + 3);
}

/// `keel check FILE --format json` in `dir`: (exit code, the lint ids found).
fn check(dir: &Path, config: &str) -> (i32, String) {
    let file = dir.join("check.toml");
    std::fs::write(&file, config).expect("config");
    let output = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["check", "--format", "json"])
        .arg(&file)
        .output()
        .expect("run keel check");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn keel_check_judges_rewritten_paths_and_fixed_answers_that_shadow() {
    let dir = tempfile::tempdir().expect("dir");
    let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let routes = "[[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nservice = \"web\"\npool = \"web\"\n\
         rewrite = { path_prefix = \"/v2\" }\nallow = [\"10.0.0.0/8\"]\n\n\
         [[routes]]\nname = \"rest\"\nservice = \"web\"\npool = \"web\"\n\n";
    let tests = |rewritten: &str| {
        format!(
            "[[tests]]\nrequest = \"GET http://shop.example.com/api/x\"\nexpect = {{ rewritten_path = \"{rewritten}\" }}\n\n\
             [[tests]]\nrequest = \"GET http://shop.example.com/api/x\"\nclient = \"192.0.2.1\"\nexpect = {{ status = 403 }}\n\n\
             [[tests]]\nrequest = \"GET http://shop.example.com/api/x\"\nclient = \"10.1.1.1\"\nexpect = {{ route = \"api\" }}\n"
        )
    };
    let good = format!("{}{routes}{}", base(addr, free(), addr), tests("/v2/x"));
    let (code, json) = check(dir.path(), &good);
    assert_eq!(code, 0, "{json}");
    assert!(!json.contains("K107"), "{json}");

    let wrong = format!("{}{routes}{}", base(addr, free(), addr), tests("/api/x"));
    let (code, json) = check(dir.path(), &wrong);
    assert_ne!(code, 0);
    assert!(
        json.contains("expected rewritten path `/api/x`, got `/v2/x`"),
        "{json}"
    );

    // A maintenance answer in front of everything takes the shop's requests.
    let shadowing = format!(
        "{}[[routes]]\nname = \"maintenance\"\npath_prefix = \"/\"\nrespond = {{ status = 503 }}\n\n{routes}",
        base(addr, free(), addr)
    );
    let (_, json) = check(dir.path(), &shadowing);
    assert!(json.contains("K214"), "{json}");
    assert!(
        json.contains(
            "fixed answer `maintenance` (503) takes every request route `api` would forward"
        ),
        "{json}"
    );
}

#[tokio::test]
async fn keel_serve_rate_limits_per_key_with_retry_after_and_recovers() {
    let dir = tempfile::tempdir().expect("dir");
    let count = Arc::new(AtomicU64::new(0));
    let backend = echo_backend(count.clone()).await;
    let proxy = free();
    let config = format!(
        "{}[[routes]]\nname = \"limited\"\npath_prefix = \"/api\"\nservice = \"web\"\npool = \"web\"\n\
         rate_limit = {{ requests = 5, per = \"1s\", burst = 2, key = \"header:x-api-key\" }}\n\n\
         [[routes]]\nname = \"rest\"\nservice = \"web\"\npool = \"web\"\n",
        base(proxy, free(), backend)
    );
    let _keel = serve(dir.path(), &config, proxy, "/ready").await;
    let before = count.load(Relaxed);
    let alice = "x-api-key: alice\r\n";

    for _ in 0..2 {
        let answer = get(proxy, "/api/a", alice).await.expect("answer");
        assert_eq!(answer.status, 200, "the burst is served");
    }
    let limited = get(proxy, "/api/a", alice).await.expect("answer");
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("keel-error"), Some("rate-limited"));
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert!(limited.body.contains("route `limited`"), "{}", limited.body);
    assert_eq!(count.load(Relaxed), before + 2, "a 429 reached the backend");

    // Another key has its own bucket; another route has no limit.
    let bob = get(proxy, "/api/a", "x-api-key: bob\r\n")
        .await
        .expect("bob");
    assert_eq!(bob.status, 200);
    assert_eq!(get(proxy, "/other", alice).await.expect("rest").status, 200);

    // At 5 per second a token comes back: alice is served again.
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = get(proxy, "/api/a", alice).await.expect("answer");
        if answer.status == 200 {
            break;
        }
        assert_eq!(answer.status, 429);
        assert!(Instant::now() < deadline, "the bucket never refilled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn keel_check_judges_429_expectations_against_the_route_limit() {
    let dir = tempfile::tempdir().expect("dir");
    let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let config = |limit: &str| {
        format!(
            "{}[[routes]]\nname = \"api\"\nservice = \"web\"\npool = \"web\"\n{limit}\n\n\
             [[tests]]\nrequest = \"GET http://shop.example.com/x\"\nexpect = {{ status = 429 }}\n",
            base(addr, free(), addr)
        )
    };
    let (code, json) = check(
        dir.path(),
        &config("rate_limit = { requests = 10, per = \"1s\" }"),
    );
    assert_eq!(code, 0, "{json}");
    let (code, json) = check(dir.path(), &config(""));
    assert_ne!(code, 0);
    assert!(json.contains("route `api` has no rate_limit"), "{json}");
}

/// A PROXY protocol v2 header naming `source` as the client (TCP over IPv4).
fn proxy_v2(source: std::net::Ipv4Addr, port: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&source.octets());
    header.extend_from_slice(&[127, 0, 0, 1]);
    header.extend_from_slice(&port.to_be_bytes());
    header.extend_from_slice(&80u16.to_be_bytes());
    header
}

#[tokio::test]
async fn keel_serve_judges_the_client_named_by_trusted_proxies_and_proxy_headers() {
    let dir = tempfile::tempdir().expect("dir");
    let count = Arc::new(AtomicU64::new(0));
    let backend = echo_backend(count.clone()).await;
    let (proxy, edge) = (free(), free());
    let config = base(proxy, free(), backend).replace(
        "[server]\n",
        &format!(
            "[listeners.edge]\naddr = \"{edge}\"\nproxy_protocol = true\n\n\
             [server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n"
        ),
    ) + "[[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nservice = \"web\"\npool = \"web\"\n\
         allow = [\"192.0.2.0/24\"]\n\n\
         [[routes]]\nname = \"rest\"\nservice = \"web\"\npool = \"web\"\n";
    let _keel = serve(dir.path(), &config, proxy, "/ready").await;
    let status = |answer: Option<RawAnswer>| answer.map(|a| a.status);

    // The peer 127.0.0.1 is trusted: the rightmost untrusted x-forwarded-for entry counts.
    for (xff, expected) in [
        ("", 403),
        ("x-forwarded-for: 192.0.2.7\r\n", 200),
        ("x-forwarded-for: 203.0.113.5\r\n", 403),
        ("x-forwarded-for: 192.0.2.7, 127.0.0.1\r\n", 200),
        ("x-forwarded-for: 192.0.2.7, 203.0.113.5\r\n", 403),
        (
            "x-forwarded-for: 192.0.2.7\r\nx-forwarded-for: nonsense\r\n",
            403,
        ),
    ] {
        assert_eq!(
            status(get(proxy, "/api/x", xff).await),
            Some(expected),
            "{xff:?}"
        );
    }

    // The edge listener believes the PROXY header, v1 and v2, and nothing else.
    let v1 = b"PROXY TCP4 192.0.2.9 127.0.0.1 5000 80\r\n";
    let served = exchange(edge, v1, "/api/x", "").await.expect("v1 answer");
    assert_eq!(served.status, 200);
    let v2 = proxy_v2([192, 0, 2, 10].into(), 5001);
    assert_eq!(status(exchange(edge, &v2, "/api/x", "").await), Some(200));
    let outside = proxy_v2([203, 0, 113, 9].into(), 5002);
    let refused = exchange(edge, &outside, "/api/x", "")
        .await
        .expect("v2 answer");
    assert_eq!(refused.status, 403);
    assert!(
        refused.body.contains("client 203.0.113.9"),
        "{}",
        refused.body
    );
    // The named client is not a trusted proxy: its own x-forwarded-for is not believed.
    let forged = exchange(edge, &outside, "/api/x", "x-forwarded-for: 192.0.2.1\r\n").await;
    assert_eq!(status(forged), Some(403));
    // Without a header the connection is closed unanswered.
    assert!(get(edge, "/api/x", "").await.is_none());
    let before = count.load(Relaxed);
    assert_eq!(status(exchange(edge, v1, "/other", "").await), Some(200));
    assert_eq!(count.load(Relaxed), before + 1);
}

/// `keel ARGS` against the server whose admin API is at `admin`, run in `dir`.
async fn cli(dir: &Path, admin: SocketAddr, args: &[&str]) -> (Option<i32>, String) {
    let mut command = keel_cli(
        dir,
        Some(format!("http://{admin}")),
        "policies-binary-token",
        args,
    );
    let output = tokio::task::spawn_blocking(move || command.output().expect("run keel"))
        .await
        .expect("cli task");
    (output.status.code(), text(&output))
}

#[tokio::test]
async fn the_gate_replays_a_new_deny_on_sampled_clients_and_refusals_are_metrics() {
    let dir = tempfile::tempdir().expect("dir");
    let count = Arc::new(AtomicU64::new(0));
    let backend = echo_backend(count.clone()).await;
    let (proxy, admin) = (free(), free());
    let config = |rule: &str| {
        base(proxy, admin, backend).replace(
            "[server]\n",
            "[safety]\nmax_shift = 0.1\n\n[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        ) + &format!("[[routes]]\nname = \"shop\"\nservice = \"web\"\npool = \"web\"\n{rule}\n")
    };
    let _keel = serve(dir.path(), &config(""), proxy, "/ready").await;
    // 50 requests to shop.example.com behind a trusted proxy: 19 from 10.0.0.0/8.
    for i in 0..50 {
        let client = if i < 19 {
            format!("10.0.0.{i}")
        } else {
            format!("192.0.2.{i}")
        };
        let answer = get(proxy, "/", &format!("x-forwarded-for: {client}\r\n")).await;
        assert_eq!(answer.map(|a| a.status), Some(200));
    }
    std::fs::write(
        dir.path().join("deny.toml"),
        config("deny = [\"10.0.0.0/8\"]"),
    )
    .expect("write");

    let (code, out) = cli(dir.path(), admin, &["apply", "deny.toml", "--dry-run"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("REFUSED by the blast-radius gate"), "{out}");
    assert!(
        // The sample also holds the readiness request: 51 in all.
        out.contains(
            "the new policies would refuse 37.3% of sampled requests to shop.example.com (19 of 51"
        ),
        "{out}"
    );
    assert!(out.contains("route `shop`'s deny list"), "{out}");

    let (code, out) = cli(
        dir.path(),
        admin,
        &[
            "apply",
            "deny.toml",
            "--force",
            "--no-guard",
            "-m",
            "refuse 10/8",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    let refused = get(proxy, "/", "x-forwarded-for: 10.1.1.1\r\n")
        .await
        .expect("answer");
    assert_eq!(refused.status, 403);
    let metrics = get(admin, "/metrics", "").await.expect("metrics");
    assert!(
        metrics
            .body
            .lines()
            .any(|line| line.starts_with("keel_policy_refusals_total{")
                && line.contains("route=\"shop\"")
                && line.contains("policy=\"address\"")
                && line.ends_with(" 1")),
        "{}",
        metrics.body
    );
}

#[tokio::test]
async fn the_gate_refuses_a_deny_over_an_intents_max_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let count = Arc::new(AtomicU64::new(0));
    let backend = echo_backend(count.clone()).await;
    let (proxy, admin) = (free(), free());
    // max_shift alone (50 %) would let a deny of 37 % of the sample through.
    let config = |rule: &str| {
        base(proxy, admin, backend).replace(
            "[server]\n",
            "[safety]\nmax_shift = 0.5\n\n[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        ) + &format!(
            "[[routes]]\nname = \"shop\"\nservice = \"web\"\npool = \"web\"\n{rule}\n\n\
             [[intents]]\nhost = \"shop.example.com\"\nmax_refused = 0.01\n"
        )
    };
    let _keel = serve(dir.path(), &config(""), proxy, "/ready").await;
    for i in 0..50 {
        let client = if i < 19 {
            format!("10.0.0.{i}")
        } else {
            format!("192.0.2.{i}")
        };
        let answer = get(proxy, "/", &format!("x-forwarded-for: {client}\r\n")).await;
        assert_eq!(answer.map(|a| a.status), Some(200));
    }
    std::fs::write(
        dir.path().join("deny.toml"),
        config("deny = [\"10.0.0.0/8\"]"),
    )
    .expect("write");
    let (code, out) = cli(dir.path(), admin, &["apply", "deny.toml", "--dry-run"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("REFUSED by the blast-radius gate (1 reason)"),
        "{out}"
    );
    assert!(
        out.contains("policies may refuse at most 1.0% of requests to shop.example.com; with the new config they refuse 37.3% of the 51 sampled ones (was 0.0%), by route `shop`'s deny list; e.g. `GET shop.example.com/"),
        "{out}"
    );
    // A rule that refuses none of the sampled clients passes.
    std::fs::write(
        dir.path().join("narrow.toml"),
        config("deny = [\"198.51.100.0/24\"]"),
    )
    .expect("write");
    let (code, out) = cli(dir.path(), admin, &["apply", "narrow.toml", "--dry-run"]).await;
    assert_eq!(code, Some(0), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_reverts_a_forced_deny_all_on_its_refusals() {
    let dir = tempfile::tempdir().expect("dir");
    let count = Arc::new(AtomicU64::new(0));
    let backend = echo_backend(count.clone()).await;
    let (proxy, admin) = (free(), free());
    let config = |rule: &str| {
        base(proxy, admin, backend)
            + &format!("[[routes]]\nname = \"shop\"\nservice = \"web\"\npool = \"web\"\n{rule}\n")
    };
    let _keel = serve(dir.path(), &config(""), proxy, "/ready").await;
    std::fs::write(
        dir.path().join("closed.toml"),
        config("deny = [\"0.0.0.0/0\", \"::/0\"]"),
    )
    .expect("write");
    // Bounded load: 100 requests/s for 8 s, before, during and after the apply.
    let traffic = tokio::spawn(keel_testkit::load(100, Duration::from_secs(8), move |n| {
        http::Request::builder()
            .uri(format!("http://{proxy}/products/{}", n % 20))
            .header("host", "shop.example.com")
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("request")
    }));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, out) = cli(
        dir.path(),
        admin,
        &[
            "apply",
            "closed.toml",
            "--force",
            "--watch",
            "5s",
            "--wait",
            "-m",
            "close the shop",
        ],
    )
    .await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("rolled back"), "{out}");
    assert!(out.contains("detector fired on generation 2"), "{out}");
    let (_, status) = cli(dir.path(), admin, &["status"]).await;
    assert!(status.contains("active: generation 1"), "{status}");
    let report = traffic.await.expect("load");
    assert_eq!(report.transport_errors, 0);
    assert!(
        report.count(403) > 0,
        "the deny-all never served: no evidence"
    );
    assert_eq!(
        get(proxy, "/", "").await.map(|a| a.status),
        Some(200),
        "the shop is open again"
    );
}
