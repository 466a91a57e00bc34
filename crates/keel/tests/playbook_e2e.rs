//! The playbook's rollback commands work as printed: the demo's shop and Keel start in
//! this process (a real store in a temporary state directory, a real admin API and
//! listener on 127.0.0.1:0), a second generation is applied, keel-report builds the
//! playbook from the store, and each extracted rollback command is run by `sh` with the
//! real `keel` binary first on PATH and `KEEL_ADMIN_TOKEN` set. Then `keel status` and a
//! real request through the listener must show the generation the playbook named.

use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keel_control::{ApplyRequest, ApplyStatus};
use keel_demo::config::good_config;
use keel_demo::shop::{SHOP_HOST, Shop, ShopConfig};
use keel_demo::stand::Stand;
use keel_report::{LiveView, Playbook, ROLLBACK_MARKER};

/// Longest a CLI command may take (30 seconds).
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

async fn keel_cli(command: &str, token: &str) -> std::process::Output {
    let binary = Path::new(env!("CARGO_BIN_EXE_keel"));
    let bin_dir = binary.parent().expect("the binary's directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("PATH", path)
        .env("KEEL_ADMIN_TOKEN", token)
        .env("KEEL_LOG", "warn")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(COMMAND_DEADLINE, run)
        .await
        .expect("the command ended in time")
        .expect("sh runs")
}

/// The generation that answered a real shop request through Keel's listener.
async fn served_generation(stand: &Stand) -> String {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::get(format!("http://{}/catalog", stand.addrs.listener))
        .header(http::header::HOST, SHOP_HOST)
        .body(Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = client.request(request).await.expect("an answer");
    assert_eq!(response.status(), http::StatusCode::OK);
    let generation = response
        .headers()
        .get("x-keel-generation")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let _ = response.into_body().collect().await;
    generation
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playbooks_rollback_commands_roll_back_with_the_real_binary() {
    let state = tempfile::tempdir().expect("state dir");
    let shop = Shop::start(ShopConfig::fast()).await.expect("shop");
    let stand = Stand::start(&shop, state.path()).await.expect("keel");
    assert_eq!(stand.first_generation, 1);
    let token = std::fs::read_to_string(stand.token_file()).expect("token file");
    let token = token.trim();

    // Generation 2: the same shop with a longer known-good delay (a real, checked change).
    let second =
        good_config(&stand.addrs).replace("known_good_after = \"5s\"", "known_good_after = \"7s\"");
    let outcome = stand
        .controller
        .apply(ApplyRequest {
            config_text: second,
            author: "playbook-test".into(),
            message: "a second generation to roll back from".into(),
            ..ApplyRequest::default()
        })
        .await
        .expect("apply");
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:?}");
    assert_eq!(outcome.generation, Some(2));
    assert_eq!(served_generation(&stand).await, "2");

    let store = stand.controller.store().clone();
    let admin = stand.admin_url();
    let playbook = tokio::task::spawn_blocking(move || {
        Playbook::from_store(
            store.as_ref(),
            LiveView::Unknown {
                reason: "not needed".into(),
            },
            &admin,
        )
    })
    .await
    .expect("task")
    .expect("playbook");
    let commands = playbook.rollback_commands();
    assert!(!commands.is_empty(), "no rollback command in {playbook:?}");
    assert!(
        playbook
            .render_markdown(None)
            .contains(&format!("{ROLLBACK_MARKER} to=1")),
        "the Markdown names the target"
    );
    let recommended = &commands[0];
    assert_eq!(playbook.targets[0].generation.id, 1, "{commands:?}");

    let rolled_back = keel_cli(recommended, token).await;
    assert!(
        rolled_back.status.success(),
        "`{recommended}` failed:\n{}\n{}",
        String::from_utf8_lossy(&rolled_back.stdout),
        String::from_utf8_lossy(&rolled_back.stderr)
    );
    assert_eq!(stand.serving(), Some(1));
    assert_eq!(served_generation(&stand).await, "1");

    let status = keel_cli(
        &format!("keel status --admin {} --json", stand.admin_url()),
        token,
    )
    .await;
    assert!(status.status.success(), "{status:?}");
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(json["active"]["id"], 1, "{json}");

    stand.shutdown().await;
    shop.shutdown().await;
}

/// Issue 27 (4): `keel playbook` reads the token from `--state-dir` like every other
/// command (no `KEEL_ADMIN_TOKEN`), and reads the real `GET /status` shape: every backend
/// of the running daemon is reported with a state, none drawn grey "unknown".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playbook_reads_the_state_dirs_token_and_the_real_status_shape() {
    let state = tempfile::tempdir().expect("state dir");
    let shop = Shop::start(ShopConfig::fast()).await.expect("shop");
    let stand = Stand::start(&shop, state.path()).await.expect("keel");
    let backends = stand
        .controller
        .status()
        .health
        .pools
        .iter()
        .map(|p| p.backends.len())
        .sum::<usize>();
    assert!(backends > 0);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["playbook", "--state-dir"])
        .arg(state.path())
        .args(["--admin", &stand.admin_url()])
        .env_remove("KEEL_ADMIN_TOKEN")
        .env("KEEL_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(COMMAND_DEADLINE, output)
        .await
        .expect("in time")
        .expect("runs");
    let markdown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        markdown.contains(&format!(
            "backend states from GET {}/status ({backends} backends reported)",
            stand.admin_url()
        )),
        "{markdown}"
    );
    assert!(!markdown.contains("backend states unknown"), "{markdown}");
    stand.shutdown().await;
    shop.shutdown().await;
}
