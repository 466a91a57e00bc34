//! A real three-member etcd cluster on loopback for the fleet's failure tests: three
//! `/usr/bin/etcd` processes, each on a client and a peer port of its own with its own
//! temporary data directory, forming one raft group; any member can be killed (an outage of
//! that member, e.g. the leader's) and restarted on its data, and all are killed when
//! dropped.
//!
//! Which member leads is etcd's business: a test asks a member (the v3 API's `status`)
//! with its own client and kills the one that answers as leader.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::etcd::ETCD_BINARY;
use crate::free_addr;

/// Members of the test cluster (3: one may die and the other two keep a quorum).
pub const ETCD_CLUSTER_MEMBERS: usize = 3;
/// How long the cluster gets to elect a leader and report healthy after a start (20 seconds).
const CLUSTER_START_TIMEOUT: Duration = Duration::from_secs(20);
/// Raft heartbeat of the test members on loopback (50 milliseconds; etcd's default is 100).
const HEARTBEAT_MS: u64 = 50;
/// Raft election timeout of the test members (500 milliseconds; etcd's default is 1000):
/// a killed leader is replaced within about this long.
const ELECTION_TIMEOUT_MS: u64 = 500;

#[derive(Debug)]
struct Member {
    name: String,
    client: SocketAddr,
    peer: SocketAddr,
    data: PathBuf,
    child: Option<Child>,
}

/// Three etcd members forming one cluster on loopback.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
}

impl EtcdCluster {
    /// Starts the three members and waits until every one reports healthy, or returns
    /// `None` after a loud skip message when etcd is not installed.
    ///
    /// # Panics
    /// When the cluster does not become healthy: the test cannot go on.
    pub fn start() -> Option<Self> {
        if !std::path::Path::new(ETCD_BINARY).exists() {
            eprintln!(
                "\n\n*** SKIPPED: {ETCD_BINARY} is missing; install Debian's etcd-server to run the fleet tests ***\n\n"
            );
            return None;
        }
        let tag = format!("{}-{}", std::process::id(), fastrand::u64(..));
        let members = (0..ETCD_CLUSTER_MEMBERS)
            .map(|i| Member {
                name: format!("keel-m{i}"),
                client: free_addr(),
                peer: free_addr(),
                data: std::env::temp_dir().join(format!("keel-etcd-cluster-{tag}-m{i}")),
                child: None,
            })
            .collect();
        let mut cluster = EtcdCluster { members };
        for i in 0..ETCD_CLUSTER_MEMBERS {
            cluster.spawn(i);
        }
        for i in 0..ETCD_CLUSTER_MEMBERS {
            cluster.wait_healthy(i);
        }
        Some(cluster)
    }

    /// Every member's client URL, `http://127.0.0.1:PORT`, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Member `i`'s client URL.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://{}", self.members[i].client)
    }

    /// Kills member `i` (SIGKILL, no goodbye to its peers); its data stays for
    /// [`EtcdCluster::restart`].
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its ports and data and waits until the cluster reports it
    /// healthy (it rejoined and a leader exists).
    ///
    /// # Panics
    /// When it does not become healthy in time.
    pub fn restart(&mut self, i: usize) {
        if self.members[i].child.is_none() {
            self.spawn(i);
        }
        self.wait_healthy(i);
    }

    /// Whether member `i`'s process runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    fn spawn(&mut self, i: usize) {
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}=http://{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let member = &self.members[i];
        let client = format!("http://{}", member.client);
        let peer = format!("http://{}", member.peer);
        let child = Command::new(ETCD_BINARY)
            .arg(format!("--name={}", member.name))
            .arg(format!("--data-dir={}", member.data.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=keel-test-cluster")
            .arg(format!("--heartbeat-interval={HEARTBEAT_MS}"))
            .arg(format!("--election-timeout={ELECTION_TIMEOUT_MS}"))
            .arg("--log-level=error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start an etcd member");
        self.members[i].child = Some(child);
    }

    /// Waits until member `i` answers `GET /health` with `"health":"true"` (it is part of a
    /// cluster that has a leader).
    fn wait_healthy(&self, i: usize) {
        let addr = self.members[i].client;
        let started = Instant::now();
        while !healthy(addr) {
            assert!(
                started.elapsed() < CLUSTER_START_TIMEOUT,
                "etcd member {i} on {addr} was not healthy within {CLUSTER_START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One `GET /health` on a fresh connection, bounded to a second.
fn healthy(addr: SocketAddr) -> bool {
    let bound = Duration::from_secs(1);
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, bound) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(bound));
    let _ = stream.set_write_timeout(Some(bound));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: etcd\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
            let _ = std::fs::remove_dir_all(&self.members[i].data);
        }
    }
}
