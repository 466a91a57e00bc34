//! The command tree. One file per command; each parses its flags and calls the
//! library that does the work.

mod check;
mod playbook;
mod serve;
mod timeline;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for usage errors and unusable configs (sysexits EX_USAGE).
pub(crate) const EXIT_USAGE: u8 = 64;

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
    /// Serve traffic with a config.
    Serve(serve::ServeArgs),
    /// Write the incident timeline (a post-mortem draft) from the store's events.
    Timeline(timeline::TimelineArgs),
    /// Write the rollback playbook (targets, commands, verification, topology) from the live state.
    Playbook(playbook::PlaybookArgs),
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
        Command::Timeline(args) => timeline::run(args),
        Command::Playbook(args) => playbook::run(args),
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
