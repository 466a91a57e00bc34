//! `keel console [--open]`: prints the URL of the web console a running `keel serve`
//! serves from its admin listener (`/ui`), says whether it answers, and where the
//! sign-in token is (exit 1 when nothing answers; the URL is printed anyway). `--open` also hands the URL to the desktop's opener when there is
//! one; nothing needs a browser on this machine (the URL works through an SSH tunnel).

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use clap::Args;
use keel_control::admin::{TOKEN_ENV, TOKEN_FILE_NAME};
use keel_control::client::{ADMIN_URL_ENV, AdminClient, DEFAULT_ADMIN_URL};

use super::{DEFAULT_STATE_DIR, EXIT_FAILED, EXIT_USAGE, STATE_DIR_ENV, block_on};

/// The console's path on the admin listener.
const CONSOLE_PATH: &str = "/ui/";
/// Programs tried, in order, to open a URL in the user's browser.
const OPENERS: &[&str] = &["xdg-open", "open"];

/// Arguments of `keel console`.
#[derive(Args, Debug)]
pub(crate) struct ConsoleArgs {
    /// Admin API URL of the running Keel.
    #[arg(long, env = ADMIN_URL_ENV, default_value = DEFAULT_ADMIN_URL)]
    pub(crate) admin: String,
    /// State directory of `keel serve` (only named in the sign-in hint).
    #[arg(long, env = STATE_DIR_ENV, default_value = DEFAULT_STATE_DIR)]
    pub(crate) state_dir: PathBuf,
    /// Also open the URL in a browser, when a desktop opener is at hand.
    #[arg(long)]
    pub(crate) open: bool,
}

pub(crate) fn run(args: ConsoleArgs) -> anyhow::Result<ExitCode> {
    let url = format!("{}{CONSOLE_PATH}", args.admin.trim_end_matches('/'));
    let client = match AdminClient::new(&args.admin, None) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("keel: {error}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    println!("{url}");
    let answering = match block_on(client.healthz())? {
        Ok(health) => {
            match health["generation"].as_u64() {
                Some(generation) => {
                    eprintln!("keel: the console answers; generation {generation} serves");
                }
                None => eprintln!("keel: the console answers; no generation serves yet"),
            }
            true
        }
        Err(error) => {
            eprintln!(
                "keel: the admin listener does not answer ({error}); is `keel serve` running?"
            );
            false
        }
    };
    eprintln!(
        "keel: sign in with the admin token ({} or {TOKEN_ENV}), or the read-only [admin] read_token",
        args.state_dir.join(TOKEN_FILE_NAME).display()
    );
    if args.open && !open(&url) {
        eprintln!(
            "keel: no browser opener found ({}); open the URL above yourself",
            OPENERS.join(", ")
        );
    }
    // Exit 1 when nothing answers, as every command that talks to the admin API does.
    Ok(if answering {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

/// Hands `url` to the first opener that starts; whether one did.
fn open(url: &str) -> bool {
    OPENERS.iter().any(|opener| {
        Command::new(opener)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .is_ok()
    })
}
