//! `keel diff OLD NEW --traffic FILE` through the real binary: the semantic diff plus
//! the blast radius of the traffic file, for people and as JSON; exit 1 when the gate
//! of `keel apply` would refuse the change. No server needed for two files.

use std::path::Path;
use std::process::{Command, Output};

fn keel(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .current_dir(dir)
        .env("KEEL_LOG", "warn")
        .output()
        .expect("run keel")
}

/// The shop: `/cart` and `/checkout` to the checkout pool, everything else to web.
/// `legacy` re-points both at the legacy pool (routes declaring service legacy-web).
fn config(legacy: bool) -> String {
    let (service, pool) = if legacy {
        ("legacy-web", "legacy")
    } else {
        ("checkout", "checkout")
    };
    format!(
        r#"[listeners.web]
addr = "127.0.0.1:18080"

[services.web]
allow_no_identity = true
[services.checkout]
allow_no_identity = true
[services.legacy-web]
allow_no_identity = true

[pools.web]
service = "web"
backends = [{{ addr = "127.0.0.1:9101" }}]

[pools.checkout]
service = "checkout"
backends = [{{ addr = "127.0.0.1:9102" }}]

[pools.legacy]
service = "legacy-web"
backends = [{{ addr = "127.0.0.1:9103" }}]

[[routes]]
name = "cart"
host = "shop.example.com"
path_prefix = "/cart"
service = "{service}"
pool = "{pool}"

[[routes]]
name = "checkout"
host = "shop.example.com"
path_prefix = "/checkout"
service = "{service}"
pool = "{pool}"

[[routes]]
name = "web"
host = "shop.example.com"
service = "web"
pool = "web"
"#
    )
}

/// Ten requests: two to `/cart`, one to `/checkout/pay`, seven to products.
const TRAFFIC: &str = "# a hand-written sample\n\
GET http://shop.example.com/cart\n\
GET http://shop.example.com/cart\n\
POST http://shop.example.com/checkout/pay\n\
GET http://shop.example.com/products/1\n\
GET http://shop.example.com/products/2\n\
GET http://shop.example.com/products/3\n\
GET http://shop.example.com/products/4\n\
GET http://shop.example.com/products/5\n\
GET http://shop.example.com/\n\
GET http://shop.example.com/about\n";

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("old.toml"), config(false)).expect("write");
    std::fs::write(dir.path().join("new.toml"), config(true)).expect("write");
    // The same config, reformatted: no movement at all.
    let reformatted = format!("# tidied\n{}", config(false).replace(" = ", "="));
    std::fs::write(dir.path().join("same.toml"), reformatted).expect("write");
    std::fs::write(dir.path().join("traffic.txt"), TRAFFIC).expect("write");
    dir
}

#[test]
fn diff_with_traffic_prints_the_matrix_and_the_gate_verdict() {
    let dir = setup();
    let output = keel(
        &["diff", "old.toml", "new.toml", "--traffic", "traffic.txt"],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{output:?}");
    // The semantic diff is still there, then the blast radius.
    assert!(stdout.contains("routes"), "{stdout}");
    assert!(
        stdout.contains("REFUSED by the blast-radius gate"),
        "{stdout}"
    );
    assert!(
        stdout.contains("30.0% of the 10 sampled requests to shop.example.com"),
        "{stdout}"
    );
    assert!(stdout.contains("Movement matrix"), "{stdout}");
    assert!(
        stdout.contains("e.g. GET shop.example.com/cart"),
        "{stdout}"
    );
}

#[test]
fn diff_with_traffic_as_json_counts_exactly_the_moved_requests() {
    let dir = setup();
    let output = keel(
        &[
            "diff",
            "old.toml",
            "new.toml",
            "--traffic",
            "traffic.txt",
            "--format",
            "json",
        ],
        dir.path(),
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(json["impact"]["schema_version"], 1);
    assert_eq!(json["impact"]["total"], 10);
    assert_eq!(json["impact"]["changes_service"]["requests"], 3.0);
    assert_eq!(json["gate"]["allowed"], false);
    assert!(json["diff"]["routes"].is_array());

    let same = keel(
        &[
            "diff",
            "old.toml",
            "same.toml",
            "--traffic",
            "traffic.txt",
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(same.status.code(), Some(0), "{same:?}");
    let json: serde_json::Value = serde_json::from_slice(&same.stdout).expect("json");
    assert_eq!(json["impact"]["moved"]["requests"], 0.0);
    assert_eq!(json["gate"]["allowed"], true);
}

#[test]
fn a_bad_traffic_line_is_an_error_naming_the_line() {
    let dir = setup();
    std::fs::write(
        dir.path().join("bad.txt"),
        "GET http://shop.example.com/cart\nnot a request\n",
    )
    .expect("write");
    let output = keel(
        &["diff", "old.toml", "new.toml", "--traffic", "bad.txt"],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(64), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.txt:2"), "{stderr}");
}
