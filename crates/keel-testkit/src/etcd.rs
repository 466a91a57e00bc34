//! A real single-member etcd on loopback for fleet tests: `/usr/bin/etcd` (Debian's
//! `etcd-server`) started on two free ports with a temporary data directory, stopped and
//! restarted on the same data (an outage), killed when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_addr;

/// Where the tests look for etcd (Debian's `etcd-server` package installs it there).
pub const ETCD_BINARY: &str = "/usr/bin/etcd";

/// How long etcd gets to answer on its client port after a start (10 seconds).
const ETCD_START_TIMEOUT: Duration = Duration::from_secs(10);

/// One etcd member serving `endpoint()` from a temporary data directory.
#[derive(Debug)]
pub struct Etcd {
    child: Option<Child>,
    client: SocketAddr,
    peer: SocketAddr,
    data: PathBuf,
}

impl Etcd {
    /// Starts etcd, or returns `None` after printing a loud skip message when the binary
    /// is not installed (`apt-get install etcd-server`).
    pub fn start() -> Option<Self> {
        if !std::path::Path::new(ETCD_BINARY).exists() {
            eprintln!(
                "\n\n*** SKIPPED: {ETCD_BINARY} is missing; install Debian's etcd-server to run the fleet tests ***\n\n"
            );
            return None;
        }
        let data = std::env::temp_dir().join(format!(
            "keel-etcd-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let mut etcd = Etcd {
            child: None,
            client: free_addr(),
            peer: free_addr(),
            data,
        };
        etcd.resume();
        Some(etcd)
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.client)
    }

    /// Kills etcd (an outage); its data stays for [`Etcd::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data, and waits until it accepts connections.
    ///
    /// # Panics
    /// When etcd does not start: the test cannot go on.
    pub fn resume(&mut self) {
        if self.child.is_some() {
            return;
        }
        let peer = format!("http://{}", self.peer);
        let child = Command::new(ETCD_BINARY)
            .arg("--name=keel-test")
            .arg(format!("--data-dir={}", self.data.display()))
            .arg(format!("--listen-client-urls={}", self.endpoint()))
            .arg(format!("--advertise-client-urls={}", self.endpoint()))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=keel-test={peer}"))
            .arg("--log-level=error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(self.client).is_err() {
            assert!(
                started.elapsed() < ETCD_START_TIMEOUT,
                "etcd did not listen on {} within {ETCD_START_TIMEOUT:?}",
                self.client
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
