//! SRV backends through the real binary: `backends = [{ srv = "_http._tcp.web.internal",
//! resolve = "1s" }]` is resolved through `[server] resolvers`, here a tiny DNS server on
//! loopback that this test controls (SRV and A answers built with hickory-proto). Only
//! the best priority class serves, on the ports the records give; a changed record moves
//! traffic as a new generation; a class whose targets stop resolving gives way to the
//! next; an SRV name that stops resolving keeps its last good targets. `keel check`
//! resolves the name the same way, and reports a malformed one at its position.

mod dns_support;
mod support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dns_support::{
    SharedZone, Zone, backend, config, dns_events, dns_server, free_port_on as free_port, get,
};
use keel_testkit::wait_until_every;
use support::{Killed, keel_serve};

/// Longest any single wait may take (30 seconds).
const WAIT: Duration = Duration::from_secs(30);
/// How often a wait looks again (100 ms: each look runs curl or opens the store).
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// The SRV name the pool uses.
const SRV_NAME: &str = "_http._tcp.web.internal.";

/// The pool's backend: `srv` resolved every second.
fn srv_backend(srv: &str) -> String {
    format!("srv = \"{srv}\", resolve = \"1s\"")
}

/// `keel check FILE`: its exit code and what it printed (without blocking the runtime
/// the test's DNS server runs on).
async fn check(file: &std::path::Path) -> (Option<i32>, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("check")
        .arg(file)
        .output()
        .await
        .expect("keel check");
    (output.status.code(), support::text(&output))
}

#[tokio::test]
async fn an_srv_backend_serves_its_best_class_and_follows_its_records() {
    let (a, b, c) = (
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
        Ipv4Addr::new(127, 0, 0, 4),
    );
    // Three ports: each target is reached on the port its own record gives.
    let (port_a, port_b, port_c) = (free_port(a), free_port(b), free_port(c));
    backend(a, port_a, "first").await;
    backend(b, port_b, "second").await;
    backend(c, port_c, "backup").await;
    let zone: SharedZone = Arc::new(Mutex::new(Zone {
        srv: HashMap::from([(
            SRV_NAME,
            vec![
                (10, 0, port_a, "a.web.internal."),
                (20, 0, port_c, "c.web.internal."),
            ],
        )]),
        hosts: HashMap::from([
            ("a.web.internal.", a),
            ("b.web.internal.", b),
            ("c.web.internal.", c),
        ]),
    }));
    let dns = dns_server(zone.clone()).await;

    let (http, admin) = (
        free_port(Ipv4Addr::LOCALHOST),
        free_port(Ipv4Addr::LOCALHOST),
    );
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, config(http, admin, dns, &srv_backend(SRV_NAME))).expect("config");

    // `keel check` resolves the SRV name through the same resolvers: no K231.
    let (code, text) = check(&file).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("K231"), "{text}");

    let state = tempfile::tempdir().expect("state");
    let _keel = Killed::spawn(&mut keel_serve(&file, state.path()));

    let (_, first_generation) = wait_until_every(
        WAIT,
        LOOK_EVERY,
        "keel answers from the first target",
        || async { get(http).await.filter(|(body, _)| body == "first") },
    )
    .await;
    // Only the best priority class serves: the priority-20 target gets nothing.
    for _ in 0..10 {
        let (body, _) = get(http).await.expect("an answer");
        assert_eq!(body, "first");
    }

    // The best class's record moves to another target and port: a new generation.
    zone.lock().expect("zone").srv.insert(
        SRV_NAME,
        vec![
            (10, 0, port_b, "b.web.internal."),
            (20, 0, port_c, "c.web.internal."),
        ],
    );
    let (_, second_generation) =
        wait_until_every(WAIT, LOOK_EVERY, "keel follows the record", || async {
            get(http).await.filter(|(body, _)| body == "second")
        })
        .await;
    assert!(second_generation > first_generation);

    // The best class's target stops resolving: the next class serves.
    zone.lock().expect("zone").hosts.remove("b.web.internal.");
    let (_, third_generation) = wait_until_every(
        WAIT,
        LOOK_EVERY,
        "keel falls back to the next class",
        || async { get(http).await.filter(|(body, _)| body == "backup") },
    )
    .await;
    assert!(third_generation > second_generation);

    // The SRV name stops resolving: an event says so, and the last good target serves on.
    zone.lock().expect("zone").srv.remove(SRV_NAME);
    let events = wait_until_every(WAIT, LOOK_EVERY, "a failure event", || async {
        let events = dns_events(state.path());
        events
            .iter()
            .any(|e| e.contains("SRV _http._tcp.web.internal. does not resolve"))
            .then_some(events)
    })
    .await;
    let moved = format!("changed from 127.0.0.2:{port_a} (weight 1) to 127.0.0.3:{port_b}");
    assert!(events.iter().any(|e| e.contains(&moved)), "{events:#?}");
    let (body, generation) = get(http).await.expect("an answer");
    assert_eq!((body.as_str(), generation), ("backup", third_generation));
}

#[tokio::test]
async fn keel_check_reports_a_malformed_srv_name_at_its_position() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("keel.toml");
    let dns: SocketAddr = "127.0.0.1:53".parse().expect("addr");
    std::fs::write(
        &file,
        config(8080, 9090, dns, &srv_backend("_http._udp.web.internal")),
    )
    .expect("config");
    let (code, text) = check(&file).await;
    assert_eq!(code, Some(1), "{text}");
    // Line 18 (`backends = [...]`), column 21: the name's opening quote.
    assert!(text.contains("keel.toml:18:21"), "{text}");
    assert!(text.contains("over TCP"), "{text}");
}
