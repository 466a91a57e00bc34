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
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keel_control::{ApplyStatus, Controller, GuardMode, GuardResult};
use keel_proxy::{DataPlane, DataPlaneOptions, ListenerLimits};
use keel_store::{EventQuery, GenerationState, SqliteStore, Store, kind};
use keel_testkit::Answer;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use support::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

/// New connections per second of the client load.
const CONNECTIONS_PER_SECOND: u64 = 50;
/// Load before the forced apply, so the baseline has handshakes in its window.
const WARMUP: Duration = Duration::from_secs(2);
/// Longest the test load runs (it stops earlier when the test ends).
const LOAD_LIMIT: Duration = Duration::from_secs(30);

/// Writes a certificate for `name` signed by `ca` as `FILE.pem` / `FILE.key` in `dir`.
fn issue(dir: &Path, file: &str, name: &str, ca: &Issuer<'static, KeyPair>) {
    let params = CertificateParams::new(vec![name.to_string()]).expect("params");
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, ca).expect("leaf");
    std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).expect("cert");
    std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).expect("key");
}

/// A test CA: its certificate (PEM) and an issuer.
fn test_ca() -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "keel test CA");
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("CA");
    (cert.pem(), Issuer::new(params, key))
}

/// Keel serving `https` with certificate `shop` read from `dir/FILE.pem`.
fn config(dir: &Path, file: &str, backend: SocketAddr) -> String {
    let dir = dir.display();
    format!(
        r#"[listeners.https]
addr = "127.0.0.1:18443"
tls = {{ certificates = ["shop"] }}

[admin]
addr = "127.0.0.1:19901"

[certificates.shop]
cert = "{dir}/{file}.pem"
key = "{dir}/{file}.key"

[services.web]
allow_no_identity = true

[pools.web]
service = "web"
backends = [{{ addr = "{backend}" }}]

[[routes]]
name = "shop"
host = "shop.example.com"
service = "web"
pool = "web"
"#
    )
}

/// A rustls client that trusts only the test CA.
fn verifying_client(ca_pem: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA"))
        .expect("root");
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

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
    let (ca_pem, ca) = test_ca();
    issue(dir.path(), "shop", "shop.example.com", &ca);
    issue(dir.path(), "other", "other.example.com", &ca);
    let backend = keel_testkit::start("web", Answer::Ok).await;

    let store = Arc::new(SqliteStore::open(dir.path()).expect("store"));
    let plane = DataPlane::new(DataPlaneOptions {
        sample_size: 10_000,
        sample_window: Duration::from_secs(300),
        access_log: None,
        generation_header: true,
    })
    .expect("data plane");
    let controller = Controller::new_guarded(store.clone() as Arc<dyn Store>, plane.clone());
    let first = controller
        .apply(support::shop::request(config(dir.path(), "shop", backend)))
        .await
        .expect("apply 1");
    assert_eq!(first.status, ApplyStatus::Applied, "{first:#?}");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let limits =
        ListenerLimits::from_server(&plane.active().expect("active").primary.config.server);
    let serving = plane.clone();
    let tls = plane.tls_listener("https");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        serving
            .serve_tls(listener, limits, tls, async move {
                let _ = stopped.await;
            })
            .await
    });

    let client = verifying_client(&ca_pem);
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
    let mut forced = support::shop::request(config(dir.path(), "other", backend));
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
    let _ = stop.send(());
}
