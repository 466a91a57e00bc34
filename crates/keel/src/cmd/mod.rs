//! The command tree. One file per command; each parses its flags and calls the
//! library that does the work.

mod apply;
mod check;
mod demo;
mod diff;
mod history;
mod packaging;
mod playbook;
mod rollback;
mod serve;
mod show;
mod status;
mod timeline;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use keel_control::admin::{AdminToken, TOKEN_ENV};
use keel_control::client::{ADMIN_URL_ENV, AdminClient, DEFAULT_ADMIN_URL};

/// Exit code for usage errors and unusable configs (sysexits EX_USAGE).
pub(crate) const EXIT_USAGE: u8 = 64;
/// Exit code for a refused or failed operation.
pub(crate) const EXIT_FAILED: u8 = 1;
/// State directory when none is given: `./keel-state` (the store, `keel.db`, and the
/// admin token, `admin.token`).
pub(crate) const DEFAULT_STATE_DIR: &str = "./keel-state";
/// Environment variable naming the state directory.
pub(crate) const STATE_DIR_ENV: &str = "KEEL_STATE_DIR";

/// Keel: an HTTP load balancer whose misconfigurations cannot happen silently.
#[derive(Parser, Debug)]
#[command(name = "keel", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info` or `keel_proxy=debug`.
    #[arg(long, global = true, env = "KEEL_LOG", default_value = "info")]
    pub(crate) log: String,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Check a config: parse errors, lints, shadowed routes, route tests, intents, probes.
    Check(check::CheckArgs),
    /// Serve traffic: the store's active generation, or FILE on a first start.
    Serve(serve::ServeArgs),
    /// Apply a config to a running Keel (full check first).
    Apply(apply::ApplyArgs),
    /// Go back to a generation kept compiled in memory.
    Rollback(rollback::RollbackArgs),
    /// List generations, newest first.
    History(history::HistoryArgs),
    /// Show one generation: metadata, check result and config text.
    Show(show::ShowArgs),
    /// Semantic diff of two configs (generation ids or files).
    Diff(diff::DiffArgs),
    /// What serves now, since when, who applied it, backend health.
    Status(status::StatusArgs),
    /// Write the incident timeline (a post-mortem draft) from the store's events.
    Timeline(timeline::TimelineArgs),
    /// Write the rollback playbook (targets, commands, verification, topology) from the live state.
    Playbook(playbook::PlaybookArgs),
    /// The game day: a simulated shop behind Keel, shoppers, and March 15 replayed as scenes.
    Demo(demo::DemoArgs),
    /// Write a shell completion script for bash, zsh or fish on stdout.
    Completions(packaging::CompletionsArgs),
    /// Write the man pages (keel.1 and one per command) into a directory.
    Man(packaging::ManArgs),
}

/// How a command reaches the admin API of a running `keel serve`.
#[derive(Args, Debug, Clone)]
pub(crate) struct AdminArgs {
    /// Admin API URL.
    #[arg(long, env = ADMIN_URL_ENV, default_value = DEFAULT_ADMIN_URL)]
    pub(crate) admin: String,
    /// State directory of `keel serve`, where the admin token is read from
    /// (unless KEEL_ADMIN_TOKEN is set).
    #[arg(long, env = STATE_DIR_ENV, default_value = DEFAULT_STATE_DIR)]
    pub(crate) state_dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

impl AdminArgs {
    /// The client, or the exit code after explaining why there is none.
    pub(crate) fn client(&self) -> Result<AdminClient, ExitCode> {
        let token = AdminToken::read(&self.state_dir).map_err(|error| {
            eprintln!(
                "keel: no admin token: {error}\nhint: set {TOKEN_ENV}, or --state-dir to the state directory of `keel serve`"
            );
            ExitCode::from(EXIT_USAGE)
        })?;
        AdminClient::new(&self.admin, Some(token)).map_err(|error| {
            eprintln!("keel: {error}");
            ExitCode::from(EXIT_USAGE)
        })
    }
}

/// Runs a client future on a small runtime.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(future))
}

/// Prints a failure and returns exit code 1.
pub(crate) fn failed(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("keel: {error}");
    ExitCode::from(EXIT_FAILED)
}

/// Pretty JSON on stdout.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The author recorded for CLI applies and rollbacks: `--author`, else `$USER`.
pub(crate) fn author(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| keel_control::UNKNOWN_AUTHOR.to_string())
}

pub(crate) fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Rollback(args) => rollback::run(args),
        Command::History(args) => history::run(args),
        Command::Show(args) => show::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Status(args) => status::run(args),
        Command::Timeline(args) => timeline::run(args),
        Command::Playbook(args) => playbook::run(args),
        Command::Demo(args) => demo::run(args, &cli.log),
        Command::Completions(args) => packaging::completions(args),
        Command::Man(args) => packaging::man(args),
    }
}

/// Resolves on SIGTERM or Ctrl-C, whichever comes first.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
