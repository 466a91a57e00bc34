//! The gate and the guard through the real `keel serve` process and the real `keel`
//! CLI: real backends that identify as their service, real requests through the proxy
//! first (the live sample), then
//!
//! * `keel apply --dry-run` prints the blast radius and the verdict and changes nothing,
//!   `keel apply` is refused by the gate with the matrix, and `--force` applies;
//! * `keel apply --canary 10% --watch 5s` of a misrouting config, under ~200 requests/s,
//!   exits non-zero with the detector's reason and `keel status` shows the old generation.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use http_body_util::Empty;
use keel_control::admin::AdminToken;
use keel_control::client::AdminClient;
use keel_testkit::{Backend, free_addr};

const TOKEN: &str = "guard-process-token";
/// Requests per second of the canary test's load.
const RPS: u32 = 200;

/// A `keel serve` child, killed (by its id) when dropped.
struct Keel {
    child: Child,
    log: PathBuf,
    admin: String,
    proxy: SocketAddr,
    dir: PathBuf,
}

impl Keel {
    async fn start(dir: &Path, config: &str, proxy: SocketAddr, admin: SocketAddr) -> Keel {
        let file = dir.join("keel.toml");
        std::fs::write(&file, config).expect("write config");
        let log = dir.join("serve.log");
        let child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["serve", "--config"])
            .arg(&file)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .env("KEEL_ADMIN_TOKEN", TOKEN)
            .env("KEEL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn keel serve");
        let mut keel = Keel {
            child,
            log,
            admin: format!("http://{admin}"),
            proxy,
            dir: dir.to_owned(),
        };
        let client = AdminClient::new(
            &keel.admin,
            Some(AdminToken::new(TOKEN, "test").expect("token")),
        )
        .expect("client");
        support::until_healthy(&mut keel.child, &client, &keel.log).await;
        keel
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `keel ARGS` against this server (on a blocking thread).
    async fn cli(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keel"));
        command
            .args(args)
            .current_dir(&self.dir)
            .env("KEEL_ADMIN", &self.admin)
            .env("KEEL_ADMIN_TOKEN", TOKEN)
            .env("KEEL_LOG", "warn");
        tokio::task::spawn_blocking(move || command.output().expect("run keel"))
            .await
            .expect("cli task")
    }

    fn write(&self, name: &str, config: &str) {
        std::fs::write(self.dir.join(name), config).expect("write config");
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

/// How the web route is aimed.
#[derive(Clone, Copy)]
enum Web {
    /// At pool web.
    Good,
    /// At pool legacy, declaring service legacy-web: passes `keel check`, moves 100%.
    Legacy,
    /// Split 30 web / 70 legacy while declaring web: K102 and the gate need `--force`.
    Misroute,
    /// At pool web, with another timeout.
    Harmless,
}

fn config(
    proxy: SocketAddr,
    admin: SocketAddr,
    web: SocketAddr,
    legacy: SocketAddr,
    target: Web,
) -> String {
    let (service, route) = match target {
        Web::Good => ("web", "pool = \"web\"\ntimeout = \"10s\""),
        Web::Harmless => ("web", "pool = \"web\"\ntimeout = \"9s\""),
        Web::Legacy => ("legacy-web", "pool = \"legacy\"\ntimeout = \"10s\""),
        Web::Misroute => (
            "web",
            "split = [{ pool = \"web\", weight = 30 }, { pool = \"legacy\", weight = 70 }]\ntimeout = \"10s\"",
        ),
    };
    format!(
        r#"[listeners.web]
addr = "{proxy}"

[admin]
addr = "{admin}"

[services.web]
identity = {{ header = "x-service", equals = "web" }}

[services.legacy-web]
identity = {{ header = "x-service", equals = "legacy-web" }}

[pools.web]
service = "web"
backends = [{{ addr = "{web}" }}]

[pools.legacy]
service = "legacy-web"
backends = [{{ addr = "{legacy}" }}]

[[routes]]
name = "web"
host = "shop.example.com"
service = "{service}"
{route}
"#
    )
}

/// Sends `rps` requests per second for `seconds` through the proxy; returns how many
/// failed at the transport level.
async fn load(proxy: SocketAddr, rps: u32, seconds: u64) -> u64 {
    keel_testkit::load(rps, Duration::from_secs(seconds), |n| {
        http::Request::builder()
            .uri(format!("http://{proxy}/products/{}", n % 50))
            .header("host", "shop.example.com")
            .body(Empty::new())
            .expect("request")
    })
    .await
    .transport_errors
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

struct Setup {
    keel: Keel,
    web: SocketAddr,
    legacy: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let (web, legacy) = (
            Backend::new("web").start().await,
            Backend::new("legacy-web").start().await,
        );
        let (proxy, admin) = (free_addr(), free_addr());
        let keel = Keel::start(
            dir.path(),
            &config(proxy, admin, web, legacy, Web::Good),
            proxy,
            admin,
        )
        .await;
        Setup {
            keel,
            web,
            legacy,
            admin,
            _dir: dir,
        }
    }

    fn write(&self, name: &str, target: Web) {
        let config = config(self.keel.proxy, self.admin, self.web, self.legacy, target);
        self.keel.write(name, &config);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_refuses_with_the_matrix_and_force_applies() {
    let setup = Setup::start().await;
    assert_eq!(load(setup.keel.proxy, 100, 1).await, 0);
    setup.write("legacy.toml", Web::Legacy);
    setup.write("harmless.toml", Web::Harmless);

    let dry = setup.keel.cli(&["apply", "legacy.toml", "--dry-run"]).await;
    let out = text(&dry);
    assert_eq!(dry.status.code(), Some(1), "{out}");
    assert!(out.contains("REFUSED by the blast-radius gate"), "{out}");
    assert!(
        out.contains("100.0% of the 100 sampled requests to shop.example.com"),
        "{out}"
    );
    assert!(out.contains("Movement matrix"), "{out}");

    // Issue 27 (5): a forced dry run says it would be applied because forced, and
    // never that the config passes the gate it failed.
    let forced_dry = setup
        .keel
        .cli(&["apply", "legacy.toml", "--dry-run", "--force"])
        .await;
    let out = text(&forced_dry);
    assert_eq!(forced_dry.status.code(), Some(0), "{out}");
    assert!(
        out.contains("dry run: would be applied because forced"),
        "{out}"
    );
    assert!(!out.contains("passes check and gate"), "{out}");

    let ok = setup
        .keel
        .cli(&["apply", "harmless.toml", "--dry-run"])
        .await;
    let out = text(&ok);
    assert_eq!(ok.status.code(), Some(0), "{out}");
    assert!(out.contains("ACCEPTED by the blast-radius gate"), "{out}");
    assert!(
        out.contains("Blast radius on 100 sampled requests"),
        "{out}"
    );

    let refused = setup
        .keel
        .cli(&["apply", "legacy.toml", "-m", "move web"])
        .await;
    let out = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{out}");
    assert!(out.contains("Movement matrix"), "{out}");
    assert!(out.contains("--force"), "{out}");
    assert!(out.contains("generation 1 still serves"), "{out}");

    let forced = setup
        .keel
        .cli(&[
            "apply",
            "legacy.toml",
            "--force",
            "-m",
            "web moves to legacy on purpose",
        ])
        .await;
    let out = text(&forced);
    assert_eq!(forced.status.code(), Some(0), "{out}");
    assert!(out.contains("FORCED"), "{out}");
    assert!(out.contains("guard: watching generation 3"), "{out}");

    let shown = setup.keel.cli(&["show", "2", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
    assert_eq!(json["state"], "rejected");
    assert_eq!(json["impact_report"]["gate"]["allowed"], false);
    let shown = setup.keel.cli(&["show", "3", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
    assert_eq!(json["forced"], true);
    assert_eq!(json["impact_report"]["report"]["total"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misrouting_canary_is_reverted_and_apply_exits_non_zero() {
    let setup = Setup::start().await;
    setup.write("misroute.toml", Web::Misroute);
    let traffic = tokio::spawn(load(setup.keel.proxy, RPS, 9));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = std::time::Instant::now();
    let applied = setup
        .keel
        .cli(&[
            "apply",
            "misroute.toml",
            "--canary",
            "10%",
            "--watch",
            "5s",
            "--force",
            "-m",
            "the March-15 edit",
        ])
        .await;
    let took = started.elapsed();
    let out = text(&applied);
    println!("keel apply --canary 10% --watch 5s (misroute): exited after {took:?}\n{out}");
    assert_eq!(
        applied.status.code(),
        Some(1),
        "{out}\n{}",
        setup.keel.log()
    );
    assert!(out.contains("rolled back"), "{out}");
    assert!(out.contains("detector fired on generation 2"), "{out}");

    let status = setup.keel.cli(&["status"]).await;
    let out = text(&status);
    assert_eq!(status.status.code(), Some(0), "{out}");
    assert!(out.contains("active: generation 1"), "{out}");
    assert!(!out.contains("canary:"), "{out}");
    let history = setup.keel.cli(&["show", "2", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&history.stdout).expect("json");
    assert_eq!(json["state"], "rolled-back");
    assert_eq!(traffic.await.expect("load"), 0);
}
