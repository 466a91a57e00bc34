//! The real `keel serve` process: first start, restarts that serve the store whatever
//! the file says, SIGHUP, the CLI commands and their exit codes, and `kill -9` during
//! applies (the store stays intact and serves the old or the new generation, never a
//! mix, never nothing).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keel_control::ApplyStatus;
use keel_control::admin::AdminToken;
use keel_control::api::ApplyBody;
use keel_control::client::AdminClient;
use keel_store::{GenerationState, SqliteStore, Store};
use keel_testkit::{Backend, WAIT, eventually, free_addr};

const TOKEN: &str = "process-test-token";
/// Crash rounds: start, apply continuously, kill -9, inspect, restart.
const CRASH_ROUNDS: usize = 8;

/// A `keel serve` child, killed (by its id) when dropped.
struct Keel {
    child: Child,
    stderr: PathBuf,
    admin: String,
}

impl Keel {
    fn start(dir: &Path, config: &Path, admin: SocketAddr) -> Keel {
        let stderr = dir.join(format!("serve-{}.log", unique_suffix()));
        let log = std::fs::File::create(&stderr).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["serve", "--config"])
            .arg(config)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .env("KEEL_ADMIN_TOKEN", TOKEN)
            .env("KEEL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn keel serve");
        Keel {
            child,
            stderr,
            admin: format!("http://{admin}"),
        }
    }

    fn client(&self) -> AdminClient {
        AdminClient::new(
            &self.admin,
            Some(AdminToken::new(TOKEN, "test").expect("token")),
        )
        .expect("client")
    }

    /// Waits until the admin API answers; panics with the log if the process died.
    async fn ready(&mut self) {
        let client = self.client();
        support::until_healthy(&mut self.child, &client, &self.stderr).await;
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGKILL, then reap.
    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Keel {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn unique_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A backend answering 200 with body `name` (and no identity header).
async fn echo_backend(name: &'static str) -> SocketAddr {
    Backend::new(name).anonymous().start().await
}

fn config(proxy: SocketAddr, admin: SocketAddr, backend: SocketAddr) -> String {
    format!(
        "[listeners.web]\naddr = \"{proxy}\"\n\n[admin]\naddr = \"{admin}\"\n\n[safety]\nknown_good_after = \"0s\"\n\n\
         [services.app]\nallow_no_identity = true\n\n[pools.app]\nservice = \"app\"\nbackends = [{{ addr = \"{backend}\" }}]\n\n\
         [[routes]]\nname = \"all\"\nservice = \"app\"\npool = \"app\"\nretries = 0\n"
    )
}

/// GET through the proxy: (generation header, body).
async fn get(proxy: SocketAddr) -> Option<(u64, String)> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .get(format!("http://{proxy}/").parse().ok()?)
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    let generation = response
        .headers()
        .get("x-keel-generation")?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((generation, String::from_utf8_lossy(&body).into_owned()))
}

/// Runs the CLI against the admin API.
fn cli(admin: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env("KEEL_ADMIN", admin)
        .env("KEEL_ADMIN_TOKEN", TOKEN)
        .env("KEEL_LOG", "warn")
        .output()
        .expect("run keel")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_serve_the_store_and_the_cli_drives_a_running_keel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (echo_backend("A").await, echo_backend("B").await);
    let (proxy, admin) = (free_addr(), free_addr());
    let file = dir.path().join("keel.toml");
    let file_b = dir.path().join("b.toml");
    std::fs::write(&file, config(proxy, admin, a)).expect("write");
    std::fs::write(&file_b, config(proxy, admin, b)).expect("write");

    let mut keel = Keel::start(dir.path(), &file, admin);
    keel.ready().await;
    assert_eq!(get(proxy).await, Some((1, "A".into())));
    assert!(keel.log().contains("became generation 1"), "{}", keel.log());
    let url = keel.admin.clone();
    let cli = move |args: &[&str]| {
        let url = url.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                cli(&url, &args.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .await
            .expect("cli")
        }
    };

    let status = cli(&["status"]).await;
    assert!(
        status.status.success() && text(&status).contains("active: generation 1"),
        "{}",
        text(&status)
    );
    let b_path = file_b.display().to_string();
    let applied = cli(&["apply", &b_path, "-m", "to B", "--author", "carol"]).await;
    assert!(applied.status.success(), "{}", text(&applied));
    assert!(
        text(&applied).contains("applied: generation 2"),
        "{}",
        text(&applied)
    );
    assert_eq!(get(proxy).await, Some((2, "B".into())));
    let status = cli(&["status"]).await;
    assert!(
        !text(&status).contains("became generation 1")
            && text(&status).contains("Keel started on generation 1"),
        "{}",
        text(&status)
    );
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[listeners.web]\naddr = 5\n").expect("write");
    let refused = cli(&["apply", &broken.display().to_string()]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("refused") && text(&refused).contains("broken.toml:2"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        cli(&["apply", "/nonexistent.toml"]).await.status.code(),
        Some(64)
    );
    let history = cli(&["history"]).await;
    assert!(
        text(&history).contains("rejected") && text(&history).contains("carol"),
        "{}",
        text(&history)
    );
    let shown = cli(&["show", "2", "--config"]).await;
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout),
        config(proxy, admin, b)
    );
    let diff = cli(&["diff", "1", "2"]).await;
    assert!(
        text(&diff).contains(&format!("backend {b}: (none) → weight 1")),
        "{}",
        text(&diff)
    );
    let files = cli(&["diff", &file.display().to_string(), &b_path]).await;
    assert_eq!(text(&files), text(&diff));
    let json = cli(&["status", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("status JSON");
    assert_eq!(json["active"]["author"], "carol");
    // Generation 1 is known-good (`known_good_after = "0s"`): no --force, and the blast
    // radius comes first.
    let rollback = cli(&["rollback", "--to", "1", "-m", "B is wrong"]).await;
    assert!(rollback.status.success(), "{}", text(&rollback));
    let said = text(&rollback);
    assert!(
        said.starts_with("Rollback from generation 2 to 1: Blast radius on")
            && said.contains("rolled back: generation 1 serves (was 2)")
            && said.contains("the guard watches generation 1")
            && !said.contains("FORCED"),
        "{said}"
    );
    assert_eq!(get(proxy).await, Some((1, "A".into())));
    // Generation 2 never became known-good (the guard was still watching it): going back
    // to it needs --force and says why; a dry run shows it and swaps nothing.
    let distrusted = cli(&["rollback", "--to", "2"]).await;
    assert_eq!(distrusted.status.code(), Some(1), "{}", text(&distrusted));
    assert!(
        text(&distrusted).contains("generation 2 is not known-good")
            && text(&distrusted).contains("never became known-good")
            && text(&distrusted).contains("--force"),
        "{}",
        text(&distrusted)
    );
    let dry = cli(&["rollback", "--to", "2", "--force", "--dry-run"]).await;
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        text(&dry).contains("FORCED: generation 2 is not known-good")
            && text(&dry).contains("dry run: a rollback would make generation 2 serve"),
        "{}",
        text(&dry)
    );
    assert_eq!(get(proxy).await, Some((1, "A".into())));
    let shown = cli(&["show", "2"]).await;
    assert!(
        text(&shown)
            .contains("it was rolled back and is not known-good: a rollback to it needs --force"),
        "{}",
        text(&shown)
    );
    let marked = cli(&["mark-bad", "2", "-m", "B is wrong"]).await;
    assert!(
        marked.status.success() && text(&marked).contains("generation 2 marked bad"),
        "{}",
        text(&marked)
    );
    let distrusted = cli(&["rollback", "--to", "2"]).await;
    assert!(
        text(&distrusted).contains("marked bad via cli: B is wrong"),
        "{}",
        text(&distrusted)
    );
    assert_eq!(
        cli(&["rollback", "--to", "99"]).await.status.code(),
        Some(1)
    );
    let wrong = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["rollback"])
        .env("KEEL_ADMIN", &keel.admin)
        .env("KEEL_ADMIN_TOKEN", "wrong")
        .output()
        .expect("run");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(text(&wrong).contains("wrong admin token"));

    // SIGHUP re-reads the file through the same gate.
    std::fs::write(&file, config(proxy, admin, b)).expect("write");
    keel.signal("HUP");
    let served = eventually(WAIT, || async { get(proxy).await.filter(|(g, _)| *g > 3) }).await;
    assert_eq!(
        served.map(|(_, body)| body),
        Some("B".to_string()),
        "{}",
        keel.log()
    );
    let generation = get(proxy).await.map(|(g, _)| g);
    std::fs::write(&file, "not = [valid").expect("write");
    keel.signal("HUP");
    let rejected = eventually(WAIT, || async {
        let list = keel.client().history(1).await.ok()?;
        list.into_iter()
            .find(|g| g.origin == "sighup" && g.state == GenerationState::Rejected)
    })
    .await;
    assert!(rejected.is_some(), "{}", keel.log());
    assert_eq!(get(proxy).await.map(|(g, _)| g), generation);

    // SIGTERM drains and exits 0.
    keel.signal("TERM");
    let exited = tokio::task::spawn_blocking(move || {
        let status = keel.child.wait();
        (status.map(|s| s.success()).unwrap_or(false), keel)
    })
    .await
    .expect("wait");
    assert!(exited.0, "{}", exited.1.log());

    // Restart with the file broken, then deleted: the store's generation serves, and Keel says so.
    for (broken, says) in [(true, "is broken"), (false, "does not exist")] {
        if broken {
            std::fs::write(&file, "not = [valid").expect("write");
        } else {
            std::fs::remove_file(&file).expect("remove");
        }
        let mut keel = Keel::start(dir.path(), &file, admin);
        keel.ready().await;
        assert_eq!(
            get(proxy).await.map(|(g, body)| (Some(g), body)),
            Some((generation, "B".to_string()))
        );
        let log = keel.log();
        assert!(
            log.contains(says) && log.contains("from the store"),
            "{log}"
        );
        let status = cli(&["status"]).await;
        assert!(text(&status).contains(says), "{}", text(&status));
        keel.kill9();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_applies_leaves_the_old_or_the_new_generation_never_a_mix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (echo_backend("A").await, echo_backend("B").await);
    let (proxy, admin) = (free_addr(), free_addr());
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, config(proxy, admin, a)).expect("write");
    let texts = [config(proxy, admin, a), config(proxy, admin, b)];
    let body_of = |config_text: &str| {
        if config_text.contains(&a.to_string()) {
            "A"
        } else {
            "B"
        }
    };

    let mut interrupted = 0;
    for round in 0..CRASH_ROUNDS {
        let mut keel = Keel::start(dir.path(), &file, admin);
        keel.ready().await;
        let client = keel.client();
        let acknowledged = Arc::new(Mutex::new(Vec::<u64>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let applier = {
            let (acknowledged, stop, texts) = (acknowledged.clone(), stop.clone(), texts.clone());
            tokio::spawn(async move {
                let mut i = round;
                while !stop.load(Ordering::Relaxed) {
                    // A storm of applies on an idle Keel, each over the last one's watch:
                    // forced past the evidence and watch checks, which this test is not about.
                    let body = ApplyBody {
                        config: texts[i % 2].clone(),
                        author: "crash".into(),
                        force: true,
                        ..ApplyBody::default()
                    };
                    match client.apply(&body).await {
                        Ok(outcome) if outcome.status == ApplyStatus::Applied => {
                            if let (Some(id), Ok(mut acked)) =
                                (outcome.generation, acknowledged.lock())
                            {
                                acked.push(id);
                            }
                        }
                        Ok(outcome) => panic!("apply refused: {:?}", outcome.refusals),
                        Err(_) => return true, // killed with this apply in flight
                    }
                    i += 1;
                }
                false
            })
        };
        // Let a few applies complete, then kill at a varying instant within the next ones.
        let wanted = 2 + round % 3;
        eventually(WAIT, || async {
            (acknowledged.lock().map(|a| a.len()).unwrap_or(0) >= wanted).then_some(())
        })
        .await
        .expect("applies go through");
        tokio::time::sleep(Duration::from_micros(700 * round as u64)).await;
        keel.kill9();
        stop.store(true, Ordering::Relaxed);
        if applier.await.expect("applier") {
            interrupted += 1;
        }
        let last_acked = acknowledged
            .lock()
            .ok()
            .and_then(|a| a.last().copied())
            .expect("acked");

        // The store is intact, has exactly one active generation, and lost no acknowledged apply.
        let (active_id, active_text) = {
            let store = SqliteStore::open(&dir.path().join("state")).expect("reopen");
            assert_eq!(
                store.integrity_check().expect("integrity"),
                Vec::<String>::new()
            );
            let all = store.generations(10_000).expect("generations");
            assert_eq!(
                all.iter()
                    .filter(|g| g.state == GenerationState::Active)
                    .count(),
                1
            );
            let active = store
                .active()
                .expect("active")
                .expect("an active generation");
            assert!(
                active.id >= last_acked,
                "acknowledged {last_acked}, store has {}",
                active.id
            );
            (active.id, active.config_text)
        };

        // After a restart, exactly that generation serves, routed as its config says.
        let mut keel = Keel::start(dir.path(), &file, admin);
        keel.ready().await;
        let served = eventually(WAIT, || get(proxy)).await;
        assert_eq!(
            served,
            Some((active_id, body_of(&active_text).to_string())),
            "round {round}"
        );
        keel.kill9();
    }
    eprintln!("{interrupted} of {CRASH_ROUNDS} kills landed with an apply in flight");
    assert!(interrupted > 0, "no kill landed during an apply");
}
