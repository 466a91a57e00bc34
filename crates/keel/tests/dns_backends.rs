//! DNS backends through the real binary: `backends = [{ host = "web.internal", port,
//! resolve = "1s" }]` is resolved through `[server] resolvers`, here a tiny DNS server
//! on loopback that this test controls (answers built with hickory-proto). A changed
//! answer moves traffic to the new address as a new generation; a name that stops
//! resolving keeps its last good address; results, changes and failures are `dns`
//! events in the store (what `keel timeline` reads).

mod dns_support;
mod support;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dns_support::{SharedZone, Zone, backend, config, dns_events, dns_server, get};
use keel_testkit::{free_port, wait_until};
use support::{Killed, keel_serve};

/// Longest any single wait may take (30 seconds).
const WAIT: Duration = Duration::from_secs(30);
/// The name the pool's backend resolves.
const NAME: &str = "web.internal.";

#[tokio::test]
async fn a_dns_backend_follows_its_name_and_keeps_the_last_good_address() {
    let (first_ip, second_ip) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3));
    let port = dns_support::free_port_on(first_ip);
    backend(first_ip, port, "first").await;
    backend(second_ip, port, "second").await;
    let zone: SharedZone = Arc::new(Mutex::new(Zone::default()));
    zone.lock().expect("zone").hosts.insert(NAME, first_ip);
    let dns = dns_server(zone.clone()).await;

    let (http, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("keel.toml");
    let backend = format!("host = \"web.internal\", port = {port}, resolve = \"1s\"");
    std::fs::write(&file, config(http, admin, dns, &backend)).expect("config");
    let state = tempfile::tempdir().expect("state");
    let _keel = Killed::spawn(&mut keel_serve(&file, state.path()));

    let (body, first_generation) =
        wait_until(WAIT, "keel answers from the first address", || async {
            get(http).await.filter(|(body, _)| body == "first")
        })
        .await;
    assert_eq!(body, "first");

    // The name moves: the next resolution changes the pool, as a new generation.
    zone.lock().expect("zone").hosts.insert(NAME, second_ip);
    let (_, second_generation) = wait_until(WAIT, "keel follows the name", || async {
        get(http).await.filter(|(body, _)| body == "second")
    })
    .await;
    assert!(second_generation > first_generation);

    // The name stops resolving: an event says so, and the last good address serves on.
    zone.lock().expect("zone").hosts.remove(NAME);
    let events = wait_until(WAIT, "a failure event", || async {
        let events = dns_events(state.path());
        events
            .iter()
            .any(|e| e.contains("does not resolve"))
            .then_some(events)
    })
    .await;
    assert!(
        events.iter().any(|e| e.contains("changed from 127.0.0.2")),
        "{events:#?}"
    );
    let (body, generation) = get(http).await.expect("an answer");
    assert_eq!((body.as_str(), generation), ("second", second_generation));
}
