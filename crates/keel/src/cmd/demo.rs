//! `keel demo`: the game day. A simulated shop, Keel in front of it and about 200
//! shoppers a second, all in this process on 127.0.0.1; then March 15 replayed as
//! scenes (refused by check, forced and reverted by Keel, the timeline). Exits 0 when
//! every scene behaved as expected, 1 otherwise, 130 when stopped with Ctrl-C or `q`.
//!
//! Keel's own log lines (refusals, forced applies, identity mismatches) would tear through
//! the live screen, so the demo's threads log into an in-memory tail instead; the tail is
//! printed on stderr when something did not behave.
//!
//! The game lives behind the `keel` crate's default cargo feature `demo`, with keel-demo and
//! its terminal UI; a `keel` built without it keeps the command, which then says so.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

/// Arguments of `keel demo`.
#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Run only this scene (1: refused by check, 2: forced and reverted, 3: the timeline).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub(crate) scene: Option<u8>,
    /// Length of the warm-up and of the observation after the revert (2s to 5m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Plain lines instead of the live screen (chosen by itself when stdout is not a terminal).
    #[arg(long)]
    pub(crate) no_tui: bool,
    /// Leave the shop and Keel running after the scenes, with how to reach them, until Ctrl-C.
    #[arg(long)]
    pub(crate) keep: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    keel_config::parse_duration(text).map_err(|e| e.to_string())
}

#[cfg(feature = "demo")]
pub(crate) fn run(args: DemoArgs, log_filter: &str) -> anyhow::Result<ExitCode> {
    game::run(args, log_filter)
}

/// Without the `demo` feature: the command exists, so that scripts and completions see
/// the same command tree, and explains why it cannot play.
#[cfg(not(feature = "demo"))]
pub(crate) fn run(_args: DemoArgs, _log_filter: &str) -> anyhow::Result<ExitCode> {
    eprintln!(
        "keel demo: this keel was built without the demo (cargo feature `demo`); \
         build it with `cargo build -p keel --features demo`"
    );
    Ok(ExitCode::from(super::EXIT_USAGE))
}

#[cfg(feature = "demo")]
mod game {
    use std::io::IsTerminal;
    use std::process::ExitCode;
    use std::time::Duration;

    use anyhow::Context;
    use keel_demo::scenes::Act;
    use keel_demo::view::ViewMode;
    use keel_demo::{DemoError, GameOptions, LogTail};

    use super::super::{EXIT_FAILED, EXIT_USAGE};
    use super::DemoArgs;

    /// Exit code when the person watching stopped the game day (128 + SIGINT).
    const EXIT_ABORTED: u8 = 130;
    /// Log lines printed when a scene failed (40 lines).
    const LOG_LINES_ON_FAILURE: usize = 40;

    pub(crate) fn run(args: DemoArgs, log_filter: &str) -> anyhow::Result<ExitCode> {
        let mode = if args.no_tui || !std::io::stdout().is_terminal() {
            ViewMode::Plain
        } else {
            ViewMode::Tui
        };
        let mut options = GameOptions::new(mode);
        options.observe = args.duration;
        options.keep = args.keep;
        if let Some(n) = args.scene {
            options.scenes = Act::scene(n).into_iter().collect();
        }
        if let Err(error) = options.validate() {
            eprintln!("keel demo: {error}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }

        let tail = LogTail::new();
        let dispatch = log_dispatch(log_filter, &tail);
        let _main_thread_log = tracing::dispatcher::set_default(&dispatch);
        let runtime = {
            let dispatch = dispatch.clone();
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .on_thread_start(move || {
                    // Every runtime thread logs into the tail for its whole life.
                    std::mem::forget(tracing::dispatcher::set_default(&dispatch));
                })
                .build()
                .context("cannot start the runtime")?
        };
        let played = runtime.block_on(keel_demo::game::run(options));
        // Background tasks (health checks, the watcher) end with the runtime.
        runtime.shutdown_timeout(Duration::from_secs(2));
        match played {
            Ok(report) if report.passed() => Ok(ExitCode::SUCCESS),
            Ok(_) => {
                print_tail(&tail);
                Ok(ExitCode::from(EXIT_FAILED))
            }
            Err(DemoError::Aborted) => {
                eprintln!("keel demo: stopped before the end");
                Ok(ExitCode::from(EXIT_ABORTED))
            }
            Err(error) => {
                eprintln!("keel demo: {error}");
                print_tail(&tail);
                Ok(ExitCode::from(EXIT_FAILED))
            }
        }
    }

    fn log_dispatch(filter: &str, tail: &LogTail) -> tracing::Dispatch {
        let filter = tracing_subscriber::EnvFilter::try_new(filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let tail = tail.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || tail.writer())
            .finish();
        tracing::Dispatch::new(subscriber)
    }

    fn print_tail(tail: &LogTail) {
        let lines = tail.last(LOG_LINES_ON_FAILURE);
        if lines.is_empty() {
            return;
        }
        eprintln!("\nkeel demo: the last {} log lines:", lines.len());
        for line in lines {
            eprintln!("  {line}");
        }
    }
}
