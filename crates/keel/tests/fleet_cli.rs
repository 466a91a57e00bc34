//! The operator's commands against a fleet, with the real binary: two `keel serve` processes
//! (lb-1, lb-2) on one real etcd. `keel apply` through lb-1 is what `keel history`, `show`
//! and `diff` through lb-2 print; `keel rollback` through lb-2 moves lb-1; `keel timeline
//! --fleet` and `keel playbook --fleet` read the fleet's history from etcd and name the node
//! that took each change.

#![cfg(feature = "fleet")]

mod fleet_support;

use std::time::Duration;

use fleet_support::{Node, generation, keel, node_file, serve};
use keel_testkit::{Backend, Etcd, eventually};

/// How long a command's effect may take to reach a node (follow, compile, swap).
const REACH_WITHIN: Duration = Duration::from_secs(20);

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `keel ARGS --admin <node's admin> --state-dir <node's state>` (the token is in the
/// environment).
fn keel_at(node: &Node, args: &[&str]) -> std::process::Output {
    let admin = format!("http://{}", node.admin);
    let state = node.dir.join("state");
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--admin",
        &admin,
        "--state-dir",
        state.to_str().unwrap_or_default(),
    ]);
    keel(&all)
}

/// Waits until every node serves `want`.
async fn everywhere(nodes: &[&Node], want: u64) -> bool {
    for node in nodes {
        let listen = node.listen;
        let reached = eventually(REACH_WITHIN, || async move {
            generation(listen).await.filter(|g| *g == want)
        })
        .await;
        if reached.is_none() {
            return false;
        }
    }
    true
}

/// The history as `[(id, state, message)]`, from `keel history --json` through `node`.
fn history(node: &Node) -> Vec<(u64, String, String)> {
    let output = keel_at(node, &["history", "--json"]);
    assert!(output.status.success(), "keel history: {}", text(&output));
    let list: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("keel history --json is JSON");
    list.as_array()
        .expect("a list")
        .iter()
        .map(|g| {
            (
                g["id"].as_u64().unwrap_or(0),
                g["state"].as_str().unwrap_or("").to_string(),
                g["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_through_either_node_mean_the_fleet() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Backend::new("web").start().await;
    let mut nodes = Vec::new();
    for name in ["lb-1", "lb-2"] {
        let node_dir = dir.path().join(name);
        let (listen, admin) = node_file(&node_dir, name, &etcd.endpoint(), backend, "5s");
        nodes.push(serve(&node_dir, listen, admin, 1).await);
    }
    let (a, b) = (&nodes[0], &nodes[1]);

    // An apply through lb-1 (evidence for its gate first).
    for _ in 0..20 {
        assert_eq!(generation(a.listen).await, Some(1));
    }
    let changed = dir.path().join("changed");
    node_file(&changed, "lb-1", &etcd.endpoint(), backend, "7s");
    let file = changed.join("keel.toml");
    let file = file.to_str().unwrap_or_default();
    let output = keel_at(
        a,
        &["apply", "--no-guard", "-m", "timeout to 7s via lb-1", file],
    );
    assert!(
        output.status.success(),
        "keel apply via lb-1: {}",
        text(&output)
    );
    assert!(
        everywhere(&[a, b], 2).await,
        "both nodes serve generation 2"
    );

    // lb-2's history, show and diff are the fleet's: what lb-1 recorded.
    let through_b = history(b);
    assert_eq!(
        through_b,
        history(a),
        "one history, whichever node is asked"
    );
    assert_eq!(
        through_b.first().map(|g| (g.0, g.1.as_str(), g.2.as_str())),
        Some((2, "active", "timeout to 7s via lb-1")),
        "{through_b:?}"
    );
    let shown = keel_at(b, &["show", "2", "--config"]);
    assert!(shown.status.success(), "keel show: {}", text(&shown));
    let shown = text(&shown);
    assert!(
        shown.contains("timeout = \"7s\"") && shown.contains("node = \"lb-1\""),
        "keel show 2 through lb-2 prints the text applied through lb-1: {shown}"
    );
    let diff = keel_at(b, &["diff", "1", "2"]);
    let diff = text(&diff);
    assert!(
        diff.contains("5s") && diff.contains("7s"),
        "keel diff 1 2 through lb-2 shows the timeout change: {diff}"
    );

    // A rollback through lb-2 moves lb-1 too.
    let output = keel_at(
        b,
        &["rollback", "--to", "1", "--force", "-m", "back via lb-2"],
    );
    assert!(
        output.status.success(),
        "keel rollback via lb-2: {}",
        text(&output)
    );
    assert!(
        everywhere(&[a, b], 1).await,
        "both nodes serve generation 1 again"
    );
    let through_a = history(a);
    assert_eq!(
        through_a.first().map(|g| (g.0, g.1.as_str())),
        Some((2, "rolled-back")),
        "{through_a:?}"
    );

    // The timeline and the playbook read the fleet from etcd and name the nodes.
    let node_file = a.dir.join("keel.toml");
    let node_file = node_file.to_str().unwrap_or_default();
    let timeline = keel(&["timeline", "--fleet", node_file]);
    assert!(
        timeline.status.success(),
        "keel timeline --fleet: {}",
        text(&timeline)
    );
    let timeline = text(&timeline);
    let line = |kind: &str, node: &str| {
        timeline
            .lines()
            .any(|l| l.contains(&format!("`{kind}` on node `{node}`")))
    };
    assert!(line("apply", "lb-1"), "the apply names lb-1: {timeline}");
    assert!(
        line("rollback", "lb-2"),
        "the rollback names lb-2: {timeline}"
    );
    let playbook = keel(&["playbook", "--offline", "--fleet", node_file]);
    assert!(
        playbook.status.success(),
        "keel playbook --fleet: {}",
        text(&playbook)
    );
    let playbook = text(&playbook);
    assert!(
        playbook.contains("cli on node lb-1"),
        "the playbook's recent changes name the node: {playbook}"
    );
}
