//! `keel timeline` and `keel playbook` as a user runs them: the real binary against a real
//! SQLite store (held open by the test, as `keel serve` would hold it), and for live states a
//! real HTTP server on 127.0.0.1:0 answering `GET /status`.

use std::path::Path;
use std::process::{Command, Output};

use keel_store::{NewEvent, NewGeneration, SqliteStore, Store, kind, origin};
use serde_json::json;

const SHOP: &str = r#"
[listeners.web]
addr = "127.0.0.1:8080"

[services.web]
identity = { header = "x-service", equals = "web" }

[services.checkout]
identity = { header = "x-service", equals = "checkout" }

[pools.web]
service = "web"
backends = [{ addr = "127.0.0.1:9101" }, { addr = "127.0.0.1:9102" }]

[pools.checkout]
service = "checkout"
backends = [{ addr = "127.0.0.1:9001" }]

[[routes]]
name = "checkout"
host = "shop.example.com"
path_prefix = "/checkout"
service = "checkout"
pool = "checkout"

[[routes]]
name = "web"
service = "web"
pool = "web"
"#;

fn generation(text: &str, author: &str, message: &str) -> NewGeneration {
    NewGeneration {
        config_text: text.to_owned(),
        author: author.to_owned(),
        message: message.to_owned(),
        origin: origin::CLI.to_owned(),
        forced: false,
        check_report: json!({"errors": 0, "warnings": 0, "diagnostics": []}),
        impact_report: None,
        certificates: Default::default(),
    }
}

/// Apply 1 (known-good), apply 2 (checkout sent to the web pool), identity alert on 2, rollback
/// to 1 by the guard, then a fixed generation 3.
fn scenario(dir: &Path) -> SqliteStore {
    let store = SqliteStore::open(dir).expect("open store");
    store
        .record_apply(generation(SHOP, "alice", "initial"), true)
        .expect("1");
    store.mark_known_good(1).expect("kg");
    let bad = SHOP.replace("pool = \"checkout\"\n", "pool = \"web\"\n");
    store
        .record_apply(generation(&bad, "bob", "consolidate pools"), true)
        .expect("2");
    store
        .append_event(
            NewEvent::new(
                kind::ALERT,
                "identity: checkout answered by web on generation 2",
            )
            .generation(2)
            .details(json!({"share": 0.7, "state": "firing"})),
        )
        .expect("alert");
    store
        .record_rollback(2, 1, "guard", "identity alert")
        .expect("rollback");
    store
        .record_apply(
            generation(&SHOP.replace("9001", "9003"), "bob", "new checkout server"),
            true,
        )
        .expect("3");
    store
}

fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env_remove("KEEL_ADMIN")
        .env_remove("KEEL_STATE_DIR")
        .env_remove("KEEL_ADMIN_TOKEN")
        .output()
        .expect("run keel")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "keel failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An address nothing listens on: bound, then released.
fn closed_admin() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

#[test]
fn timeline_reads_the_store_while_it_is_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _store = scenario(dir.path());
    let state = dir.path().to_str().expect("utf-8 path");

    let json: serde_json::Value = serde_json::from_str(&stdout(&keel(&[
        "timeline",
        "--state-dir",
        state,
        "--format",
        "json",
    ])))
    .expect("json");
    assert_eq!(json["incident"]["root_causes"][0]["generation"], 2);
    assert_eq!(json["incident"]["rollback"]["generation"], 1);
    let kinds: Vec<&str> = json["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["apply", "known-good", "apply", "alert", "rollback", "apply"]
    );

    let markdown = stdout(&keel(&["timeline", "--state-dir", state, "--since", "-1h"]));
    assert!(
        markdown
            .starts_with("# Post-mortem draft: identity: checkout answered by web on generation 2")
    );
    assert!(
        markdown.contains("route checkout: target: pool checkout → pool web"),
        "{markdown}"
    );

    let future = stdout(&keel(&[
        "timeline",
        "--state-dir",
        state,
        "--since",
        "2099-01-01",
    ]));
    assert!(future.contains("No events were recorded"));

    let output_file = dir.path().join("timeline.md");
    stdout(&keel(&[
        "timeline",
        "--state-dir",
        state,
        "--output",
        output_file.to_str().expect("path"),
    ]));
    assert!(
        std::fs::read_to_string(&output_file)
            .expect("written")
            .contains("## Root-cause candidates")
    );
}

#[test]
fn bad_flags_exit_2_and_unreadable_input_exits_64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _store = scenario(dir.path());
    let state = dir.path().to_str().expect("utf-8 path");
    for (args, needle, exit) in [
        (
            vec!["timeline", "--state-dir", state, "--since", "last tuesday"],
            "--since: cannot read time",
            2,
        ),
        (
            vec![
                "timeline",
                "--state-dir",
                state,
                "--since",
                "now",
                "--until",
                "1h ago",
            ],
            "the window is empty",
            2,
        ),
        (
            vec!["timeline", "--state-dir", "/nonexistent/keel"],
            "no Keel store at /nonexistent/keel/keel.db",
            64,
        ),
        (
            vec!["playbook", "--state-dir", "/nonexistent/keel"],
            "no Keel store",
            64,
        ),
    ] {
        let output = keel(&args);
        assert_eq!(output.status.code(), Some(exit), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    assert!(
        !Path::new("/nonexistent/keel").exists(),
        "a missing store is never created"
    );
}

#[test]
fn playbook_without_admin_api_says_states_are_unknown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _store = scenario(dir.path());
    let state = dir.path().to_str().expect("utf-8 path");
    let admin = closed_admin();
    let markdown = stdout(&keel(&[
        "playbook",
        "--state-dir",
        state,
        "--admin",
        &admin,
    ]));
    assert!(
        markdown.contains(&format!(
            "backend states unknown: GET {admin}/status failed"
        )),
        "{markdown}"
    );
    let command =
        format!("keel-playbook: rollback to=1\nkeel rollback --to 1 --admin {admin}\n```");
    assert!(markdown.contains(&command), "{markdown}");
    assert!(
        !markdown.contains("--to 2 "),
        "the rolled-back generation is never a target"
    );
    assert!(markdown.contains("classDef unknown"));

    let offline = stdout(&keel(&[
        "playbook",
        "--state-dir",
        state,
        "--offline",
        "--format",
        "html",
    ]));
    assert!(offline.contains("backend states unknown: not asked (--offline)"));
    assert!(offline.contains("<svg ") && offline.contains("data-keel-rollback-to=\"1\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playbook_colours_backends_from_the_admin_status() {
    // The documented `GET /status` shape (docs/admin-api.md).
    let status = json!({
        "open_alerts": [{"id": 9, "time": "2026-12-07T11:00:00.000Z", "detector": "identity",
            "severity": "critical", "generation": 3, "serving": "active",
            "summary": "route checkout: 97 responses answered by catalog"}],
        "open_alerts_total": 1,
        "active": {"id": 3},
        "health": {"backends": 3, "serving": 2, "out": 1, "pools": [
            {"name": "web", "service": "web", "backends": [{"addr": "127.0.0.1:9101", "state": "healthy"}, {"addr": "127.0.0.1:9102", "state": "misidentified"}]},
            {"name": "checkout", "service": "checkout", "backends": [{"addr": "127.0.0.1:9003", "state": "unhealthy"}]}]}});
    let app = axum::Router::new().route(
        "/status",
        axum::routing::get(move || async move { axum::Json(status) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("tempdir");
    let _store = scenario(dir.path());
    let state = dir.path().to_str().expect("utf-8 path").to_owned();
    let output = dir.path().join("playbook.md");
    let output_arg = output.to_str().expect("path").to_owned();
    let admin_arg = admin.clone();
    let result = tokio::task::spawn_blocking(move || {
        keel(&[
            "playbook",
            "--state-dir",
            &state,
            "--admin",
            &admin_arg,
            "--output",
            &output_arg,
        ])
    })
    .await
    .expect("join");
    stdout(&result);
    server.abort();

    let markdown = std::fs::read_to_string(&output).expect("markdown written");
    assert!(
        markdown.contains(&format!(
            "backend states from GET {admin}/status (3 backends reported)"
        )),
        "{markdown}"
    );
    assert!(
        markdown.contains("classDef healthy")
            && markdown.contains("classDef misidentified")
            && markdown.contains("classDef unhealthy")
    );
    assert!(
        !markdown.contains("**Warning**"),
        "store and admin API agree on generation 3"
    );
    // Open alerts come first, naming the generation they blame.
    let alerts = markdown
        .find("## Open alerts")
        .expect("open alerts section");
    assert!(alerts < markdown.find("## Now serving").expect("now serving"));
    assert!(
        markdown.contains("**CRITICAL** identity alert blames generation 3 (active)"),
        "{markdown}"
    );
    assert!(markdown.contains("![Topology of the active generation](playbook.svg)"));
    let svg = std::fs::read_to_string(dir.path().join("playbook.svg")).expect("svg written");
    assert!(svg.contains("<svg ") && svg.contains("pool checkout") && svg.contains("#e8554e"));
}
