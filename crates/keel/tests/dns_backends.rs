//! DNS backends through the real binary: `backends = [{ host = "web.internal", port,
//! resolve = "1s" }]` is resolved through `[server] resolvers`, here a tiny DNS server
//! on loopback that this test controls (answers built with hickory-proto). A changed
//! answer moves traffic to the new address as a new generation; a name that stops
//! resolving keeps its last good address; results, changes and failures are `dns`
//! events in the store (what `keel timeline` reads).

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use http_body_util::Full;
use keel_store::{EventQuery, SqliteStore, Store};
use keel_testkit::{free_port, wait_until};
use support::{Killed, keel_serve};

/// Longest any single wait may take (30 seconds).
const WAIT: Duration = Duration::from_secs(30);

/// The address `web.internal` resolves to; `None`: NXDOMAIN.
type Answer = Arc<Mutex<Option<Ipv4Addr>>>;

/// A DNS server on a loopback UDP port answering A queries from `answer` (TTL 0).
async fn dns_server(answer: Answer) -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("dns socket");
    let addr = socket.local_addr().expect("dns addr");
    tokio::spawn(async move {
        let mut buffer = [0u8; 512];
        loop {
            let Ok((length, client)) = socket.recv_from(&mut buffer).await else {
                continue;
            };
            let Ok(query) = Message::from_vec(&buffer[..length]) else {
                continue;
            };
            let current = *answer.lock().expect("answer");
            let mut response = Message::response(query.metadata.id, query.metadata.op_code);
            response.metadata.recursion_desired = query.metadata.recursion_desired;
            response.metadata.recursion_available = true;
            response.add_queries(query.queries.clone());
            match current {
                None => response.metadata.response_code = ResponseCode::NXDomain,
                Some(ip) => {
                    for question in &query.queries {
                        if question.query_type() == RecordType::A {
                            response.add_answer(Record::from_rdata(
                                question.name().clone(),
                                0,
                                RData::A(A(ip)),
                            ));
                        }
                    }
                }
            }
            if let Ok(bytes) = response.to_vec() {
                let _ = socket.send_to(&bytes, client).await;
            }
        }
    });
    addr
}

/// A backend on `ip:port` answering its own name.
async fn backend(ip: Ipv4Addr, port: u16, name: &'static str) {
    let listener = tokio::net::TcpListener::bind((ip, port))
        .await
        .expect("backend socket");
    keel_testkit::serve(listener, move |_request| async move {
        http::Response::new(Full::new(Bytes::from_static(name.as_bytes())))
    });
}

/// The body and generation of `GET /` through Keel.
async fn get(port: u16) -> Option<(String, u64)> {
    let output = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-w",
            "\n%header{x-keel-generation}",
        ])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, generation) = text.rsplit_once('\n')?;
    Some((body.to_string(), generation.trim().parse().ok()?))
}

fn dns_events(state: &std::path::Path) -> Vec<String> {
    let Ok(store) = SqliteStore::open(state) else {
        return Vec::new();
    };
    store
        .events(EventQuery {
            kinds: vec!["dns".to_string()],
            ..EventQuery::default()
        })
        .map(|events| events.into_iter().map(|e| e.summary).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_dns_backend_follows_its_name_and_keeps_the_last_good_address() {
    let (first_ip, second_ip) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3));
    let port = std::net::TcpListener::bind((first_ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    backend(first_ip, port, "first").await;
    backend(second_ip, port, "second").await;
    let answer: Answer = Arc::new(Mutex::new(Some(first_ip)));
    let dns = dns_server(answer.clone()).await;

    let (http, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("keel.toml");
    std::fs::write(
        &file,
        format!(
            "[listeners.http]\naddr = \"127.0.0.1:{http}\"\n\n[admin]\naddr = \"127.0.0.1:{admin}\"\n\n\
             [server]\nresolvers = [\"{dns}\"]\n\n[safety]\nwatch = \"1s\"\n\n[services.web]\nallow_no_identity = true\n\n\
             [pools.web]\nservice = \"web\"\nbackends = [{{ host = \"web.internal\", port = {port}, resolve = \"1s\" }}]\n\n\
             [[routes]]\nname = \"all\"\nservice = \"web\"\npool = \"web\"\n"
        ),
    )
    .expect("config");
    let state = tempfile::tempdir().expect("state");
    let _keel = Killed::spawn(&mut keel_serve(&file, state.path()));

    let (body, first_generation) =
        wait_until(WAIT, "keel answers from the first address", || async {
            get(http).await.filter(|(body, _)| body == "first")
        })
        .await;
    assert_eq!(body, "first");

    // The name moves: the next resolution changes the pool, as a new generation.
    *answer.lock().expect("answer") = Some(second_ip);
    let (_, second_generation) = wait_until(WAIT, "keel follows the name", || async {
        get(http).await.filter(|(body, _)| body == "second")
    })
    .await;
    assert!(second_generation > first_generation);

    // The name stops resolving: an event says so, and the last good address serves on.
    *answer.lock().expect("answer") = None;
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
