//! A change of certificate is vouched for only on handshake evidence
//! (`keel-watch`'s `handshake_evidence.rs`): a guarded controller serves a TLS listener
//! (rustls clients verifying against a test CA, SNI `shop.example.com`). A renewed
//! certificate applied while clients only reuse a keep-alive connection (requests
//! flow, but no client completes a handshake with the new certificate) ends its watch
//! `unproven`, naming the listener and the certificate; the same renewal applied while
//! clients open new connections passes. Evidence is counted per certificate: on a
//! listener presenting two (SNI), a renewal of one watched while clients only open new
//! connections for the other ends `unproven` too.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use keel_control::{ApplyRequest, ApplyStatus, GuardResult};
use keel_testkit::Answer;
use rustls::pki_types::ServerName;
use support::tls_shop::{TestCa, TlsPlane, tls_config};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Requests (and, with new connections, handshakes) per second of the client load.
const PER_SECOND: u64 = 50;
/// Load before a change, so the baseline window has handshakes and requests.
const WARMUP: Duration = Duration::from_secs(2);

const SHOP: &str = "shop.example.com";
const OTHER: &str = "other.example.com";

/// Keel serving `https` with certificate `shop` from `dir/FILE.pem` ([`tls_config`]); a
/// one-second watch and 10 requests of route evidence, so the test is quick.
fn config(dir: &Path, file: &str, backend: SocketAddr) -> String {
    tls_config(
        dir,
        file,
        backend,
        "[safety]\nwatch = \"1s\"\n\n[detectors]\nmin_requests = 10",
    )
}

/// An HTTP/1.1 connection over TLS (one handshake, SNI `host`), for as many requests
/// as asked.
async fn connect(
    addr: SocketAddr,
    tls: &TlsConnector,
    host: &'static str,
) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from(host).expect("name");
    let stream = tls.connect(name, tcp).await.expect("handshake");
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("http/1.1");
    tokio::spawn(connection);
    sender
}

async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: &str,
) -> u16 {
    let request = http::Request::get("/")
        .header("host", host)
        .body(Empty::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

/// `PER_SECOND` requests a second for `duration`: each on a new connection (a full
/// handshake each), or all on one kept-alive connection.
async fn load(addr: SocketAddr, tls: TlsConnector, duration: Duration, new_connections: bool) {
    load_for(addr, tls, duration, new_connections, SHOP).await;
}

/// [`load`] for `host` (its SNI name and `host` header).
async fn load_for(
    addr: SocketAddr,
    tls: TlsConnector,
    duration: Duration,
    new_connections: bool,
    host: &'static str,
) {
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(1_000 / PER_SECOND));
    let mut kept = None;
    while started.elapsed() < duration {
        ticks.tick().await;
        if new_connections || kept.is_none() {
            kept = Some(connect(addr, &tls, host).await);
        }
        if let Some(sender) = kept.as_mut() {
            assert_eq!(get(sender, host).await, 200);
        }
    }
}

/// [`config`] with a second certificate, `other` (for `other.example.com`, from
/// `dir/other.pem`), on the same listener, and a route for its host.
fn two_certificates(dir: &Path, file: &str, backend: SocketAddr) -> String {
    config(dir, file, backend)
        .replace(
            r#"tls = { certificates = ["shop"] }"#,
            r#"tls = { certificates = ["shop", "other"], default = "shop" }"#,
        )
        .replace(
            "[services.web]",
            &format!(
                "[certificates.other]\ncert = \"{0}/other.pem\"\nkey = \"{0}/other.key\"\n\n[[routes]]\nname = \"other\"\nhost = \"{OTHER}\"\nservice = \"web\"\npool = \"web\"\n\n[services.web]",
                dir.display()
            ),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_vouched_for_only_after_handshakes_with_it() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new();
    for file in ["first", "second", "third"] {
        ca.issue(dir.path(), file, SHOP);
    }
    let backend = keel_testkit::start("web", Answer::Ok).await;
    let apply = |file: &str| ApplyRequest {
        wait: true,
        ..support::shop::request(config(dir.path(), file, backend))
    };
    let shop = TlsPlane::start(dir.path(), apply("first")).await;
    let (controller, addr) = (&shop.controller, shop.addr);
    // Every new connection a full handshake: a resumed session never sees the new
    // certificate, so it is not counted as evidence for it.
    let tls = ca.client(false);

    // Handshakes before, then only a kept-alive connection while the renewal is watched:
    // its route gets its requests, its certificate no handshake.
    load(addr, tls.clone(), WARMUP, true).await;
    let quiet = tokio::spawn(load(addr, tls.clone(), Duration::from_secs(4), false));
    let outcome = controller.apply(apply("second")).await.expect("apply 2");
    quiet.await.expect("keep-alive load");
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:#?}");
    let guard = outcome.guard.expect("guarded");
    assert_eq!(guard.result, GuardResult::Unproven, "{guard:#?}");
    let reason = guard.reason.unwrap_or_default();
    assert!(
        reason.contains("listener https presenting changed certificate shop")
            && reason.contains("of 20 full TLS handshakes")
            && !reason.contains("route shop"),
        "{reason}"
    );

    // The next renewal, watched while clients open new connections: it passes.
    load(addr, tls.clone(), WARMUP, true).await;
    let busy = tokio::spawn(load(addr, tls.clone(), Duration::from_secs(4), true));
    let outcome = controller.apply(apply("third")).await.expect("apply 3");
    busy.await.expect("new-connection load");
    let guard = outcome.guard.expect("guarded");
    assert_eq!(guard.result, GuardResult::Promoted, "{guard:#?}");
    assert!(guard.reason.is_none(), "{guard:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_with_the_listeners_other_certificate_prove_nothing_for_the_renewed_one() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new();
    for file in ["first", "second"] {
        ca.issue(dir.path(), file, SHOP);
    }
    ca.issue(dir.path(), "other", OTHER);
    let backend = keel_testkit::start("web", Answer::Ok).await;
    let apply = |file: &str| ApplyRequest {
        wait: true,
        ..support::shop::request(two_certificates(dir.path(), file, backend))
    };
    let shop = TlsPlane::start(dir.path(), apply("first")).await;
    let (controller, addr) = (&shop.controller, shop.addr);
    // Full handshakes only (see the test above).
    let tls = ca.client(false);

    // Both certificates get full handshakes before; while `shop`'s renewal is watched,
    // only `other` does (shop's clients keep one connection alive): the listener is
    // busy with handshakes, none of them with the renewed certificate.
    let warm_shop = tokio::spawn(load_for(addr, tls.clone(), WARMUP, true, SHOP));
    load_for(addr, tls.clone(), WARMUP, true, OTHER).await;
    warm_shop.await.expect("shop warm-up");
    let other = tokio::spawn(load_for(
        addr,
        tls.clone(),
        Duration::from_secs(4),
        true,
        OTHER,
    ));
    let kept = tokio::spawn(load_for(
        addr,
        tls.clone(),
        Duration::from_secs(4),
        false,
        SHOP,
    ));
    let outcome = controller.apply(apply("second")).await.expect("apply 2");
    other.await.expect("other load");
    kept.await.expect("keep-alive load");
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:#?}");
    let guard = outcome.guard.expect("guarded");
    assert_eq!(guard.result, GuardResult::Unproven, "{guard:#?}");
    let reason = guard.reason.unwrap_or_default();
    assert!(
        reason.contains("listener https presenting changed certificate shop (")
            && reason.contains("of 20 full TLS handshakes")
            && !reason.contains("certificate other"),
        "{reason}"
    );
}
