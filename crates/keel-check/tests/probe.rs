//! Live probes against real HTTP backends on 127.0.0.1: one answering as the right
//! service, one answering as another service, one port with nobody listening, and one
//! that accepts but never answers.

use std::net::SocketAddr;
use std::time::Duration;

use keel_check::probe::{Verdict, probe_backend, probe_config, probe_diagnostics, render_table};
use keel_config::{HealthCheck, Identity, codes, parse};
use keel_testkit::{Answer, Backend, free_addr};
use tokio::net::TcpListener;

/// An HTTP backend that answers `/healthz` with `health_status`, every other path with
/// 404, and everything with `x-service: <identity>`.
async fn backend(identity: &'static str, health_status: u16) -> SocketAddr {
    Backend::new(identity)
        .answer(Answer::Status(404))
        .healthz(health_status)
        .body("ok")
        .start()
        .await
}

fn identity(name: &str) -> Identity {
    Identity {
        header: "x-service".into(),
        equals: name.into(),
    }
}

fn health() -> HealthCheck {
    HealthCheck {
        path: "/healthz".into(),
        grpc_service: None,
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        healthy_after: 2,
        unhealthy_after: 3,
    }
}

#[tokio::test]
async fn right_wrong_and_closed_backends_of_a_pool() {
    let right = backend("api", 200).await;
    let wrong = backend("web", 200).await;
    let closed = free_addr();
    let source = format!(
        r#"
[listeners.web]
addr = "127.0.0.1:8080"
[services.api]
identity = {{ header = "x-service", equals = "api" }}
[pools.api]
service = "api"
backends = ["{right}", "{wrong}", "{closed}"]
health = {{ path = "/healthz", timeout = "1s" }}
"#
    );
    let parsed = parse(&source);
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let rows = probe_config(&parsed.config).await;
    let verdicts: Vec<Verdict> = rows.iter().map(|r| r.outcome.verdict).collect();
    assert_eq!(
        verdicts,
        vec![Verdict::Ok, Verdict::Misidentified, Verdict::Down]
    );
    assert_eq!(rows[1].outcome.identity_seen.as_deref(), Some("web"));
    assert!(!rows[2].outcome.reachable);

    let diagnostics = probe_diagnostics(&rows);
    let found: Vec<&str> = diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        found,
        vec![codes::MISIDENTIFIED_BACKEND, codes::BACKEND_DOWN]
    );
    // The finding points at the backend's address in the file.
    let span = diagnostics[0].span.expect("span");
    assert_eq!(&source[span.start..span.end], format!("\"{wrong}\""));

    let table = render_table(&rows);
    assert!(
        table
            .lines()
            .nth(2)
            .is_some_and(|l| l.ends_with("misidentified")),
        "{table}"
    );
}

#[tokio::test]
async fn a_failing_health_check_is_down_and_identity_is_optional() {
    let sick = backend("api", 503).await;
    let outcome = probe_backend(
        sick,
        Some(&health()),
        Some(&identity("api")),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(outcome.verdict, Verdict::Down);
    assert_eq!(outcome.status, Some(503));
    assert!(outcome.reachable);

    // Without a health check the probe asks for `/`; any answer is alive.
    let outcome = probe_backend(sick, None, None, Duration::from_secs(1)).await;
    assert_eq!(outcome.verdict, Verdict::Ok);
    assert_eq!(outcome.status, Some(404));
}

#[tokio::test]
async fn a_silent_backend_is_down_within_the_timeout() {
    // Accepted by the kernel's backlog, never answered.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let outcome = probe_backend(addr, Some(&health()), None, Duration::from_millis(200)).await;
    assert_eq!(outcome.verdict, Verdict::Down);
    assert!(outcome.reachable, "{outcome:?}");
    // The deadline, not the peer, ended the probe.
    assert!(
        outcome.detail.contains("no answer within"),
        "{}",
        outcome.detail
    );
    drop(listener);
}

/// A backend that speaks HTTP/1.1 only (no h2c): whatever it reads, it answers one
/// HTTP/1.1 response as `api` and closes.
async fn http1_only_backend() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                let _ = stream.read(&mut buffer).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nx-service: api\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_h2c_pool_is_probed_in_http2_so_an_http1_only_backend_is_down() {
    let speaks_h2 = backend("api", 200).await;
    let http1_only = http1_only_backend().await;
    let source = format!(
        r#"
[listeners.web]
addr = "127.0.0.1:8080"
[services.api]
identity = {{ header = "x-service", equals = "api" }}
[pools.api]
service = "api"
protocol = "h2c"
backends = ["{speaks_h2}", "{http1_only}"]
health = {{ path = "/healthz", timeout = "1s" }}
"#
    );
    let parsed = parse(&source);
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let rows = probe_config(&parsed.config).await;
    let verdicts: Vec<Verdict> = rows.iter().map(|r| r.outcome.verdict).collect();
    assert_eq!(verdicts, vec![Verdict::Ok, Verdict::Down], "{rows:#?}");
    assert!(
        rows[1].outcome.detail.contains("HTTP/2"),
        "{}",
        rows[1].outcome.detail
    );
}
