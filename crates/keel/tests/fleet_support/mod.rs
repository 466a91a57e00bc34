//! What the fleet process tests share: `keel serve` children on node files with a
//! `[fleet]` table on a real etcd, the `keel` command with the test's admin token, and the
//! generation a listener serves.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use keel_testkit::{eventually, free_addr};

pub(crate) const TOKEN: &str = "fleet-process-token";

/// How long a process gets to serve a generation (20 s: a start, or a follow, on a loaded
/// machine).
pub(crate) const SERVE_WITHIN: Duration = Duration::from_secs(20);

/// A `keel serve` child, killed (by its id) when dropped.
pub(crate) struct Node {
    pub(crate) child: Child,
    pub(crate) listen: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) dir: std::path::PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn node_file(
    dir: &Path,
    name: &str,
    etcd: &str,
    backend: SocketAddr,
    timeout: &str,
) -> (SocketAddr, SocketAddr) {
    node_file_with(dir, name, etcd, backend, timeout, "")
}

/// [`node_file`] with `fleet_extra` lines in its `[fleet]` table.
pub(crate) fn node_file_with(
    dir: &Path,
    name: &str,
    etcd: &str,
    backend: SocketAddr,
    timeout: &str,
    fleet_extra: &str,
) -> (SocketAddr, SocketAddr) {
    let (listen, admin) = (free_addr(), free_addr());
    let text = format!(
        "[listeners.web]\naddr = \"{listen}\"\n[admin]\naddr = \"{admin}\"\n[fleet]\nstore = \"etcd\"\nendpoints = [\"{etcd}\"]\nprefix = \"/keel/process\"\nnode = \"{name}\"\n{fleet_extra}[safety]\nwatch = \"300ms\"\n[services.web]\nallow_no_identity = true\n[pools.web]\nservice = \"web\"\nbackends = [\"{backend}\"]\n[[routes]]\nname = \"all\"\nservice = \"web\"\npool = \"web\"\ntimeout = \"{timeout}\"\n"
    );
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(dir.join("keel.toml"), text).expect("write");
    (listen, admin)
}

pub(crate) fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env("KEEL_ADMIN_TOKEN", TOKEN)
        .env("KEEL_LOG", "warn")
        .output()
        .expect("run keel")
}

pub(crate) async fn generation(addr: SocketAddr) -> Option<u64> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: shop.example\r\nconnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok()?;
    let text = String::from_utf8_lossy(&answer);
    text.starts_with("HTTP/1.1 200").then_some(())?;
    text.lines()
        .find_map(|l| l.strip_prefix("x-keel-generation: "))?
        .trim()
        .parse()
        .ok()
}

/// Waits up to [`SERVE_WITHIN`] until the listener `listen` serves `generation`: `Some` of
/// it if it did.
pub(crate) async fn serves(listen: SocketAddr, generation: u64) -> Option<u64> {
    eventually(SERVE_WITHIN, || async {
        self::generation(listen).await.filter(|g| *g == generation)
    })
    .await
}

/// Starts `keel serve` on `dir/keel.toml` and waits until it serves `generation`.
pub(crate) async fn serve(
    dir: &Path,
    listen: SocketAddr,
    admin: SocketAddr,
    generation: u64,
) -> Node {
    let child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["serve", "--config"])
        .arg(dir.join("keel.toml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("KEEL_ADMIN_TOKEN", TOKEN)
        .env("KEEL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn keel serve");
    let node = Node {
        child,
        listen,
        admin,
        dir: dir.to_path_buf(),
    };
    let up = serves(listen, generation).await;
    assert_eq!(
        up,
        Some(generation),
        "{} serves generation {generation}",
        dir.display()
    );
    node
}
