//! The command tree. One file per command; each parses its flags and calls the
//! library that does the work.

mod apply;
mod apply_text;
mod check;
mod console;
mod demo;
mod diff;
#[cfg(feature = "fleet")]
mod fleet_status;
mod history;
mod mark_bad;
mod packaging;
mod playbook;
mod rollback;
mod serve;
mod show;
mod status;
mod timeline;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use keel_control::admin::{AdminToken, TOKEN_ENV};
use keel_control::client::{ADMIN_URL_ENV, AdminClient, DEFAULT_ADMIN_URL};

/// Exit code for a refused or failed operation.
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit code for usage errors: an unknown subcommand or flag, a missing argument, a flag
/// value that cannot mean anything (clap's own code, 2).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code for input that cannot be read or used: a missing or unreadable file, a
/// config that does not load, no store, no admin token (sysexits EX_DATAERR-like, 64).
pub(crate) const EXIT_INPUT: u8 = 64;
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
    /// Format of Keel's own log on stderr (`keel serve`'s above all): `text` (coloured
    /// only on a terminal, never with NO_COLOR set) or `json` (one object per line).
    #[arg(long, global = true, env = "KEEL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
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
    /// Go back to a generation kept compiled in memory (shown, then watched like an apply).
    Rollback(rollback::RollbackArgs),
    /// Judge a generation bad: it loses its known-good mark for good.
    MarkBad(mark_bad::MarkBadArgs),
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
    /// Print the URL of the web console (`/ui` on the admin listener); `--open` opens it.
    Console(console::ConsoleArgs),
    /// The game day: a simulated shop behind Keel, shoppers, and March 15 replayed as scenes.
    Demo(demo::DemoArgs),
    /// Write a shell completion script for bash, zsh or fish on stdout.
    Completions(packaging::CompletionsArgs),
    /// Write the man pages (keel.1 and one per command) into a directory.
    Man(packaging::ManArgs),
}

/// How a command that prints data prints it: `--format human|json` (`--json` is the same
/// as `--format json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people: aligned text, no Debug forms.
    Human,
    /// For tools: the command's documented JSON.
    Json,
}

/// How Keel's own log is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// One line per event, for people.
    Text,
    /// One JSON object per event, for log pipelines.
    Json,
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
    /// Output format: `human` (the default) or `json`.
    #[arg(long, value_enum)]
    pub(crate) format: Option<Format>,
    /// The same as `--format json`.
    #[arg(long)]
    pub(crate) json: bool,
}

impl AdminArgs {
    /// Whether the command prints JSON (`--format json` or `--json`).
    pub(crate) fn json_output(&self) -> bool {
        self.json || self.format == Some(Format::Json)
    }

    /// The client, or the exit code after explaining why there is none.
    pub(crate) fn client(&self) -> Result<AdminClient, ExitCode> {
        let token = AdminToken::read(&self.state_dir).map_err(|error| {
            eprintln!(
                "keel: no admin token: {error}\nhint: set {TOKEN_ENV}, or --state-dir to the state directory of `keel serve`"
            );
            ExitCode::from(EXIT_INPUT)
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

/// `1 warning`, `2 warnings`.
pub(crate) fn plural(count: impl Into<u64>, one: &str, many: &str) -> String {
    let count = count.into();
    format!("{count} {}", if count == 1 { one } else { many })
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

/// Whether text for people may carry colour: stderr is a terminal and `NO_COLOR` is
/// unset or empty (<https://no-color.org>).
pub(crate) fn colour_allowed() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub(crate) fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cli.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(colour_allowed()).try_init(),
    };
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Rollback(args) => rollback::run(args),
        Command::MarkBad(args) => mark_bad::run(args),
        Command::History(args) => history::run(args),
        Command::Show(args) => show::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Status(args) => status::run(args),
        Command::Timeline(args) => timeline::run(args),
        Command::Playbook(args) => playbook::run(args),
        Command::Console(args) => console::run(args),
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
