//! A forced certificate the clients refuse is reverted by the guard on its handshakes.
//!
//! A real guarded controller (`Controller::new_guarded`, SQLite store) serves a TLS
//! listener on 127.0.0.1:0 with a certificate for `shop.example.com` signed by a test
//! CA (rcgen). Clients are rustls clients that send SNI `shop.example.com` and verify
//! against that CA, one new connection per request (so every request is a handshake),
//! at a bounded rate. The operator forces past `keel check` (K120) and the gate a
//! certificate of the same CA for another name: every client refuses it
//! (`bad_certificate`), no request reaches Keel, and only the `handshakes` detector
//! sees it. The guard reverts, and clients handshake again.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keel_control::{ApplyStatus, GuardMode, GuardResult};
use keel_store::{EventQuery, GenerationState, Store, kind};
use keel_testkit::Answer;
use rustls::pki_types::ServerName;
use support::eventually;
use support::tls_shop::{TestCa, TlsPlane, tls_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// New connections per second of the client load.
const CONNECTIONS_PER_SECOND: u64 = 50;
/// Load before the forced apply, so the baseline has handshakes in its window.
const WARMUP: Duration = Duration::from_secs(2);
/// Longest the test load runs (it stops earlier when the test ends).
const LOAD_LIMIT: Duration = Duration::from_secs(30);

/// One request on a new connection: the handshake (SNI `shop.example.com`, verified)
/// then `GET /`; the generation that answered, or the error.
async fn one_request(addr: SocketAddr, client: &TlsConnector) -> Result<u64, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("shop.example.com").map_err(|e| e.to_string())?;
    let mut tls = client
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(b"GET / HTTP/1.1\r\nhost: shop.example.com\r\nconnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    // A peer that closes without close_notify is fine here: the answer is what counts.
    let _ = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    if !answer.starts_with("http/1.1 200") {
        return Err(format!("answer: {answer}"));
    }
    answer
        .lines()
        .find_map(|l| l.strip_prefix("x-keel-generation: "))
        .and_then(|g| g.trim().parse().ok())
        .ok_or_else(|| format!("no generation header: {answer}"))
}

/// Counts of the client load.
#[derive(Default)]
struct Tally {
    served: AtomicU64,
    refused: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_certificate_the_clients_refuse_is_reverted_on_its_handshakes() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new();
    ca.issue(dir.path(), "shop", "shop.example.com");
    ca.issue(dir.path(), "other", "other.example.com");
    let backend = keel_testkit::start("web", Answer::Ok).await;
    let config = |file: &str| tls_config(dir.path(), file, backend, "");

    let shop = TlsPlane::start(dir.path(), support::shop::request(config("shop"))).await;
    let (controller, plane, store, addr) = (&shop.controller, &shop.plane, &shop.store, shop.addr);

    let client = ca.client(true);
    let tally = Arc::new(Tally::default());
    let load = {
        let (client, tally) = (client.clone(), tally.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut ticks =
                tokio::time::interval(Duration::from_millis(1_000 / CONNECTIONS_PER_SECOND));
            while started.elapsed() < LOAD_LIMIT {
                ticks.tick().await;
                let (client, tally) = (client.clone(), tally.clone());
                tokio::spawn(async move {
                    let counter = match one_request(addr, &client).await {
                        Ok(_) => &tally.served,
                        Err(_) => &tally.refused,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                });
            }
        })
    };
    tokio::time::sleep(WARMUP).await;
    assert!(
        tally.served.load(Ordering::Relaxed) >= 20,
        "the baseline has handshakes"
    );
    assert_eq!(tally.refused.load(Ordering::Relaxed), 0);

    // The certificate for another name: `keel check` says K120 and the gate counts the
    // sampled requests whose SNI it would not cover; the operator forces it.
    let started = Instant::now();
    let mut forced = support::shop::request(config("other"));
    forced.force = true;
    let outcome = controller.apply(forced).await.expect("apply 2");
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:#?}");
    let guard = outcome.guard.expect("guarded");
    assert_eq!(
        (guard.mode, guard.result),
        (GuardMode::Full, GuardResult::Watching)
    );
    let primary = || plane.active().map_or(0, |a| a.primary.id);
    let reverted = eventually(Duration::from_secs(15), || async {
        (primary() == 1).then(Instant::now)
    })
    .await
    .expect("the refused certificate was never reverted");
    let refused_before_revert = tally.refused.load(Ordering::Relaxed);
    println!(
        "certificate for another name (full swap, {CONNECTIONS_PER_SECOND} connections/s): \
         apply → automatic revert in {:?}, {refused_before_revert} handshakes refused",
        reverted - started
    );
    assert!(refused_before_revert >= 20, "{refused_before_revert}");

    // A client handshakes (and is served by generation 1) again.
    assert_eq!(one_request(addr, &client).await, Ok(1));

    let record = store.generation(2).expect("store").expect("gen 2");
    assert_eq!(record.state, GenerationState::RolledBack);
    let alert = eventually(Duration::from_secs(2), || async {
        store
            .events(EventQuery {
                kinds: vec![kind::ALERT.to_string()],
                ..EventQuery::default()
            })
            .expect("events")
            .into_iter()
            .next()
    })
    .await
    .expect("alert event");
    assert_eq!(alert.generation, Some(2));
    assert_eq!(alert.details["detector"], "handshakes", "{alert:?}");
    assert!(
        alert.details["numbers"]["by_reason"]["certificate_refused"]
            .as_u64()
            .is_some_and(|n| n >= 20),
        "{alert:?}"
    );
    let metrics = controller.watcher().expect("watcher").metrics_text();
    let refused_line = "keel_tls_handshake_failures_total{generation=\"2\",listener=\"https\",reason=\"certificate_refused\"} ";
    assert!(
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(refused_line))
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= 20),
        "{metrics}"
    );
    assert!(
        metrics.contains("keel_rollbacks_total{trigger=\"automatic\"} 1"),
        "{metrics}"
    );
    load.abort();
}
