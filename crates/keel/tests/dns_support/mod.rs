//! What the DNS backend tests (`dns_backends.rs`, `dns_srv.rs`) share: a tiny DNS server
//! on a loopback UDP port answering from a [`Zone`] the test changes as it runs (answers
//! built with hickory-proto, TTL 0), the backends its names point at, `GET /` through
//! Keel with the generation that answered, the `dns` events in a state directory, and the
//! config of a Keel whose one pool is resolved through that server.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use http_body_util::Full;
use keel_store::{EventQuery, SqliteStore, Store};

/// One SRV record: (priority, weight, port, target with its trailing dot).
pub(crate) type SrvRecord = (u16, u16, u16, &'static str);

/// What the test's DNS server answers. A name in neither map is NXDOMAIN.
#[derive(Default)]
pub(crate) struct Zone {
    /// SRV records by name (with the trailing dot).
    pub(crate) srv: HashMap<&'static str, Vec<SrvRecord>>,
    /// A records by name (with the trailing dot); another type asked of such a name gets an
    /// empty answer.
    pub(crate) hosts: HashMap<&'static str, Ipv4Addr>,
}

/// A [`Zone`] the test changes while the server answers from it.
pub(crate) type SharedZone = Arc<Mutex<Zone>>;

/// Adds to `response` what `zone` holds for `question`, or marks it NXDOMAIN.
fn answer(zone: &Zone, question: &Query, response: &mut Message) {
    let name = question.name().to_ascii().to_ascii_lowercase();
    match question.query_type() {
        RecordType::SRV if zone.srv.contains_key(name.as_str()) => {
            for &(priority, weight, port, target) in &zone.srv[name.as_str()] {
                let target = Name::from_ascii(target).expect("target name");
                response.add_answer(Record::from_rdata(
                    question.name().clone(),
                    0,
                    RData::SRV(SRV::new(priority, weight, port, target)),
                ));
            }
        }
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

/// A DNS server on a loopback UDP port answering from `zone` (TTL 0); its address.
pub(crate) async fn dns_server(zone: SharedZone) -> SocketAddr {
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

/// A free TCP port on `ip` (a loopback address such as 127.0.0.2).
pub(crate) fn free_port_on(ip: Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A backend on `ip:port` answering its own name.
pub(crate) async fn backend(ip: Ipv4Addr, port: u16, name: &'static str) {
    let listener = tokio::net::TcpListener::bind((ip, port))
        .await
        .expect("backend socket");
    keel_testkit::serve(listener, move |_request| async move {
        http::Response::new(Full::new(Bytes::from_static(name.as_bytes())))
    });
}

/// The body and generation of `GET /` through Keel on `127.0.0.1:port` (with curl).
pub(crate) async fn get(port: u16) -> Option<(String, u64)> {
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

/// The summaries of the `dns` events in the store in `state` (none while it cannot be
/// opened yet).
pub(crate) fn dns_events(state: &Path) -> Vec<String> {
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

/// A Keel config listening on `127.0.0.1:http` (admin on `admin`) whose one pool `web`
/// has the single backend `backend` (the inside of its inline table, e.g.
/// `srv = "_http._tcp.web.internal.", resolve = "1s"`), resolved through `dns`. The pool's
/// `backends` line is line 18, its table's first key at column 15.
pub(crate) fn config(http: u16, admin: u16, dns: SocketAddr, backend: &str) -> String {
    format!(
        "[listeners.http]\naddr = \"127.0.0.1:{http}\"\n\n[admin]\naddr = \"127.0.0.1:{admin}\"\n\n\
         [server]\nresolvers = [\"{dns}\"]\n\n[safety]\nwatch = \"1s\"\n\n[services.web]\nallow_no_identity = true\n\n\
         [pools.web]\nservice = \"web\"\nbackends = [{{ {backend} }}]\n\n\
         [[routes]]\nname = \"all\"\nservice = \"web\"\npool = \"web\"\n"
    )
}
