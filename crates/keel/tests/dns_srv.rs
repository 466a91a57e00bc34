//! SRV backends through the real binary: `backends = [{ srv = "_http._tcp.web.internal",
//! resolve = "1s" }]` is resolved through `[server] resolvers`, here a tiny DNS server on
//! loopback that this test controls (SRV and A answers built with hickory-proto). Only
//! the best priority class serves, on the ports the records give; a changed record moves
//! traffic as a new generation; a class whose targets stop resolving gives way to the
//! next; an SRV name that stops resolving keeps its last good targets. `keel check`
//! resolves the name the same way, and reports a malformed one at its position.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use http_body_util::Full;
use keel_store::{EventQuery, SqliteStore, Store};
use tokio::time::Instant;

/// Longest any single wait may take (30 seconds).
const WAIT: Duration = Duration::from_secs(30);
/// The SRV name the pool uses.
const SRV_NAME: &str = "_http._tcp.web.internal.";

fn free_port(ip: Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the test's DNS server answers.
#[derive(Default)]
struct Zone {
    /// `SRV_NAME`'s records (priority, weight, port, target); `None`: NXDOMAIN.
    srv: Option<Vec<(u16, u16, u16, &'static str)>>,
    /// A records by name (with the trailing dot); another name is NXDOMAIN.
    hosts: HashMap<&'static str, Ipv4Addr>,
}

type Shared = Arc<Mutex<Zone>>;

fn answer(zone: &Zone, question: &hickory_proto::op::Query, response: &mut Message) {
    let name = question.name().to_ascii().to_ascii_lowercase();
    match question.query_type() {
        RecordType::SRV if name == SRV_NAME => match &zone.srv {
            None => response.metadata.response_code = ResponseCode::NXDomain,
            Some(records) => {
                for &(priority, weight, port, target) in records {
                    let target = Name::from_ascii(target).expect("target name");
                    response.add_answer(Record::from_rdata(
                        question.name().clone(),
                        0,
                        RData::SRV(SRV::new(priority, weight, port, target)),
                    ));
                }
            }
        },
        kind => match zone.hosts.get(name.as_str()) {
            None => response.metadata.response_code = ResponseCode::NXDomain,
            Some(&ip) if kind == RecordType::A => {
                response.add_answer(Record::from_rdata(
                    question.name().clone(),
                    0,
                    RData::A(A(ip)),
                ));
            }
            Some(_) => {}
        },
    }
}

/// A DNS server on a loopback UDP port answering from `zone` (TTL 0).
async fn dns_server(zone: Shared) -> SocketAddr {
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
            let mut response = Message::response(query.metadata.id, query.metadata.op_code);
            response.metadata.recursion_desired = query.metadata.recursion_desired;
            response.metadata.recursion_available = true;
            response.add_queries(query.queries.clone());
            {
                let zone = zone.lock().expect("zone");
                for question in &query.queries {
                    answer(&zone, question, &mut response);
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

async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

fn config(http: u16, admin: u16, dns: SocketAddr, srv: &str) -> String {
    format!(
        "[listeners.http]\naddr = \"127.0.0.1:{http}\"\n\n[admin]\naddr = \"127.0.0.1:{admin}\"\n\n\
         [server]\nresolvers = [\"{dns}\"]\n\n[safety]\nwatch = \"1s\"\n\n[services.web]\nallow_no_identity = true\n\n\
         [pools.web]\nservice = \"web\"\nbackends = [{{ srv = \"{srv}\", resolve = \"1s\" }}]\n\n\
         [[routes]]\nname = \"all\"\nservice = \"web\"\npool = \"web\"\n"
    )
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
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
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
    let zone: Shared = Arc::new(Mutex::new(Zone {
        srv: Some(vec![
            (10, 0, port_a, "a.web.internal."),
            (20, 0, port_c, "c.web.internal."),
        ]),
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
    std::fs::write(&file, config(http, admin, dns, SRV_NAME)).expect("config");

    // `keel check` resolves the SRV name through the same resolvers: no K231.
    let (code, text) = check(&file).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("K231"), "{text}");

    let state = tempfile::tempdir().expect("state");
    let _keel = Killed(
        Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["--log", "warn", "serve", "--config"])
            .arg(&file)
            .arg("--state-dir")
            .arg(state.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start keel"),
    );

    let (_, first_generation) = eventually("keel answers from the first target", || async {
        get(http).await.filter(|(body, _)| body == "first")
    })
    .await;
    // Only the best priority class serves: the priority-20 target gets nothing.
    for _ in 0..10 {
        let (body, _) = get(http).await.expect("an answer");
        assert_eq!(body, "first");
    }

    // The best class's record moves to another target and port: a new generation.
    zone.lock().expect("zone").srv = Some(vec![
        (10, 0, port_b, "b.web.internal."),
        (20, 0, port_c, "c.web.internal."),
    ]);
    let (_, second_generation) = eventually("keel follows the record", || async {
        get(http).await.filter(|(body, _)| body == "second")
    })
    .await;
    assert!(second_generation > first_generation);

    // The best class's target stops resolving: the next class serves.
    zone.lock().expect("zone").hosts.remove("b.web.internal.");
    let (_, third_generation) = eventually("keel falls back to the next class", || async {
        get(http).await.filter(|(body, _)| body == "backup")
    })
    .await;
    assert!(third_generation > second_generation);

    // The SRV name stops resolving: an event says so, and the last good target serves on.
    zone.lock().expect("zone").srv = None;
    let events = eventually("a failure event", || async {
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
    std::fs::write(&file, config(8080, 9090, dns, "_http._udp.web.internal")).expect("config");
    let (code, text) = check(&file).await;
    assert_eq!(code, Some(1), "{text}");
    // Line 18 (`backends = [...]`), column 21: the name's opening quote.
    assert!(text.contains("keel.toml:18:21"), "{text}");
    assert!(text.contains("over TCP"), "{text}");
}
