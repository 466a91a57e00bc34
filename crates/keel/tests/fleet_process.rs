//! Fleet mode with the real binary: three `keel serve` processes whose files carry a
//! `[fleet]` table on one real etcd; `keel apply` to the second converges all three (each
//! on its own listener), and `keel status --fleet` lists them in step.

#![cfg(feature = "fleet")]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use keel_testkit::{Backend, Etcd, eventually, free_addr};

const TOKEN: &str = "fleet-process-token";

/// A `keel serve` child, killed (by its id) when dropped.
struct Node {
    child: Child,
    listen: SocketAddr,
    admin: SocketAddr,
    dir: std::path::PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_file(
    dir: &Path,
    name: &str,
    etcd: &str,
    backend: SocketAddr,
    timeout: &str,
) -> (SocketAddr, SocketAddr) {
    let (listen, admin) = (free_addr(), free_addr());
    let text = format!(
        "[listeners.web]\naddr = \"{listen}\"\n[admin]\naddr = \"{admin}\"\n[fleet]\nstore = \"etcd\"\nendpoints = [\"{etcd}\"]\nprefix = \"/keel/process\"\nnode = \"{name}\"\n[safety]\nwatch = \"300ms\"\n[services.web]\nallow_no_identity = true\n[pools.web]\nservice = \"web\"\nbackends = [\"{backend}\"]\n[[routes]]\nname = \"all\"\nservice = \"web\"\npool = \"web\"\ntimeout = \"{timeout}\"\n"
    );
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(dir.join("keel.toml"), text).expect("write");
    (listen, admin)
}

fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env("KEEL_ADMIN_TOKEN", TOKEN)
        .env("KEEL_LOG", "warn")
        .output()
        .expect("run keel")
}

async fn generation(addr: SocketAddr) -> Option<u64> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_apply_to_one_process_converges_three_and_status_lists_them() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Backend::new("web").start().await;
    let mut nodes = Vec::new();
    for name in ["lb-1", "lb-2", "lb-3"] {
        let node_dir = dir.path().join(name);
        let (listen, admin) = node_file(&node_dir, name, &etcd.endpoint(), backend, "5s");
        let child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["serve", "--config"])
            .arg(node_dir.join("keel.toml"))
            .arg("--state-dir")
            .arg(node_dir.join("state"))
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
            dir: node_dir,
        };
        // Started one after another: the first node's file becomes the fleet's generation 1.
        let up = eventually(Duration::from_secs(20), || async {
            generation(listen).await.filter(|g| *g == 1)
        })
        .await;
        assert_eq!(
            up,
            Some(1),
            "{name} serves the fleet's generation 1 on its own listener"
        );
        nodes.push(node);
    }
    // Evidence for the gate on lb-2, then the apply there.
    for _ in 0..20 {
        assert_eq!(generation(nodes[1].listen).await, Some(1));
    }
    let changed = dir.path().join("changed");
    node_file(&changed, "lb-2", &etcd.endpoint(), backend, "7s");
    let admin = format!("http://{}", nodes[1].admin);
    let state = nodes[1].dir.join("state");
    let file = changed.join("keel.toml");
    let applied = eventually(Duration::from_secs(10), || {
        let output = keel(&[
            "apply",
            "--no-guard",
            "--admin",
            &admin,
            "--state-dir",
            state.to_str().unwrap_or_default(),
            file.to_str().unwrap_or_default(),
        ]);
        async move { output.status.success().then_some(output) }
    })
    .await;
    assert!(applied.is_some(), "keel apply to lb-2 succeeds");
    for node in &nodes {
        let serving = eventually(Duration::from_secs(20), || async {
            generation(node.listen).await.filter(|g| *g == 2)
        })
        .await;
        assert_eq!(
            serving,
            Some(2),
            "every node serves generation 2 on its own listener"
        );
    }
    // Each node publishes its status every second: the table shows all three in step.
    let node_file = nodes[0].dir.join("keel.toml");
    let status = eventually(Duration::from_secs(10), || {
        let output = keel(&["status", "--fleet", node_file.to_str().unwrap_or_default()]);
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let in_step = ["lb-1", "lb-2", "lb-3"].iter().all(|name| {
            text.lines()
                .any(|l| l.starts_with(name) && l.contains("in step"))
        });
        async move { (in_step && output.status.success()).then_some(text) }
    })
    .await;
    assert!(
        status.is_some(),
        "keel status --fleet lists lb-1, lb-2 and lb-3 in step"
    );
}
