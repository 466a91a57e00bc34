//! Fleet mode with the real binary: three `keel serve` processes whose files carry a
//! `[fleet]` table on one real etcd; `keel apply` to the second converges all three (each
//! on its own listener), and `keel status --fleet` lists them in step. With a node canary
//! (`[fleet] rollout`), a guarded `keel apply` serves on the applying process first, the
//! others follow only after the watch, and `keel status --fleet` shows the rollout's step.

#![cfg(feature = "fleet")]

mod fleet_support;

use std::path::Path;
use std::time::Duration;

use fleet_support::{generation, keel, node_file, node_file_with, serve, serves};
use keel_testkit::{Backend, Etcd, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_apply_to_one_process_converges_three_and_status_lists_them() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Backend::new("web").start().await;
    let mut nodes = Vec::new();
    for name in ["lb-1", "lb-2", "lb-3"] {
        let node_dir = dir.path().join(name);
        let (listen, admin) = node_file(&node_dir, name, &etcd.endpoint(), backend, "5s");
        // Started one after another: the first node's file becomes the fleet's generation 1,
        // which each serves on its own listener.
        nodes.push(serve(&node_dir, listen, admin, 1).await);
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
        let serving = serves(node.listen, 2).await;
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

/// The node canary's watch in the process test.
const PROCESS_ROLLOUT_WATCH: Duration = Duration::from_secs(4);

fn fleet_status_text(node_file: &Path) -> String {
    let output = keel(&["status", "--fleet", node_file.to_str().unwrap_or_default()]);
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_keel_apply_serves_on_its_process_first_and_the_others_after_the_watch() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Backend::new("web").start().await;
    let rollout = format!(
        "rollout = {{ first = 1, then = \"all\", watch = \"{}s\" }}\n",
        PROCESS_ROLLOUT_WATCH.as_secs()
    );
    let mut nodes = Vec::new();
    for name in ["lb-1", "lb-2", "lb-3"] {
        let node_dir = dir.path().join(name);
        let (listen, admin) =
            node_file_with(&node_dir, name, &etcd.endpoint(), backend, "5s", &rollout);
        nodes.push(serve(&node_dir, listen, admin, 1).await);
    }
    for _ in 0..20 {
        assert_eq!(generation(nodes[0].listen).await, Some(1));
    }
    let changed = dir.path().join("changed");
    node_file_with(&changed, "lb-1", &etcd.endpoint(), backend, "7s", &rollout);
    let admin = format!("http://{}", nodes[0].admin);
    let state = nodes[0].dir.join("state");
    let file = changed.join("keel.toml");
    let started = std::time::Instant::now();
    // Guarded: no --no-guard. The apply returns once lb-1 serves it.
    let output = keel(&[
        "apply",
        "--admin",
        &admin,
        "--state-dir",
        state.to_str().unwrap_or_default(),
        file.to_str().unwrap_or_default(),
    ]);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(generation(nodes[0].listen).await, Some(2), "lb-1 first");
    let node_file = nodes[1].dir.join("keel.toml");
    // Each node publishes its status every second: lb-1 shows as the canary, in step.
    let during = eventually(Duration::from_secs(3), || {
        let text = fleet_status_text(&node_file);
        async move {
            (text.contains("rollout: generation 2 canary on lb-1")
                && text
                    .lines()
                    .any(|l| l.starts_with("lb-1") && l.contains("canary")))
            .then_some(text)
        }
    })
    .await;
    assert!(during.is_some(), "{}", fleet_status_text(&node_file));
    // The others stay on generation 1 until the watch has passed.
    while started.elapsed() < PROCESS_ROLLOUT_WATCH - Duration::from_millis(500) {
        for node in &nodes[1..] {
            assert_eq!(generation(node.listen).await, Some(1), "too early");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for node in &nodes {
        let serving = serves(node.listen, 2).await;
        assert_eq!(
            serving,
            Some(2),
            "every node serves generation 2 after the watch"
        );
    }
    assert!(started.elapsed() >= PROCESS_ROLLOUT_WATCH);
    let after = eventually(Duration::from_secs(10), || {
        let text = fleet_status_text(&node_file);
        async move {
            (text.contains("rollout: generation 2 promoted on lb-1 (clean: lb-1)")
                && ["lb-1", "lb-2", "lb-3"].iter().all(|name| {
                    text.lines()
                        .any(|l| l.starts_with(name) && l.contains("in step"))
                }))
            .then_some(text)
        }
    })
    .await;
    assert!(after.is_some(), "{}", fleet_status_text(&node_file));
}
