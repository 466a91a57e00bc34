//! What the `keel` binary's process tests share: a child process killed and reaped when
//! the test drops it (a failed assertion included), `keel serve` as such a child, the CLI
//! run against a server's admin API, the wait until a served child answers `/healthz` (its
//! log in the panic when it died or never answered), and a finished command's output as
//! text. Configs,
//! clients and the waits for a first answer stay in each suite; backends, free ports and
//! `eventually` come from keel-testkit.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use keel_control::client::AdminClient;

/// A child process, killed and reaped when dropped.
pub struct Killed(pub Child);

impl Killed {
    /// Spawns `command`, failing the test when it cannot start.
    pub fn spawn(command: &mut Command) -> Killed {
        Killed(command.spawn().expect("start the process"))
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `keel --log warn serve --config CONFIG --state-dir STATE` with stdin closed, stdout
/// dropped and stderr the test's: set its directory and environment, then
/// [`Killed::spawn`] it.
pub fn keel_serve(config: &Path, state: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keel"));
    command
        .args(["--log", "warn", "serve", "--config"])
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

/// `keel ARGS` run in `dir` with admin token `token`, logging warnings only, against the
/// admin API at `admin` (`http://…`; `None` leaves `KEEL_ADMIN` unset).
pub fn keel_cli(dir: &Path, admin: Option<String>, token: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keel"));
    command
        .args(args)
        .current_dir(dir)
        .env("KEEL_ADMIN_TOKEN", token)
        .env("KEEL_LOG", "warn");
    if let Some(admin) = admin {
        command.env("KEEL_ADMIN", admin);
    }
    command
}

/// A finished command's stdout, then its stderr, as text.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Waits until the server `client` talks to answers `GET /healthz` (every 10 ms, at most
/// 1,000 looks); panics with the log at `log` if `child` exits first or it never answers.
pub async fn until_healthy(child: &mut Child, client: &AdminClient, log: &Path) {
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    for _ in 0..1000 {
        if client.healthz().await.is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("keel serve exited with {status}:\n{}", log());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("keel serve never became ready:\n{}", log());
}
