//! `keel apply FILE -m "why"`: send a config to the running Keel, which checks it in
//! full, computes its blast radius on the live traffic sample (the gate), and makes it
//! the active generation under the guard, or refuses it with findings.
//!
//! * `--dry-run`: check and gate only; prints the blast-radius report and the verdict, and
//!   exits as the apply would (1 when it would be refused; "would be applied because
//!   forced" with `--force`). What it prints is `apply_text.rs`.
//! * `--force`: apply over policy errors and a gate refusal (recorded as forced).
//! * `--canary 10% [--watch 30s]`: the new generation serves a slice first and is
//!   promoted step by step; the command waits, and exits 1 with the reason if a
//!   detector fired and Keel reverted it.
//! * without `--canary`: a full swap, watched for `[safety] watch` (or `--watch`) in the
//!   background; an alarm reverts it by itself. The command returns after the swap, or
//!   with `--wait` after the watch (exit 1 if it was reverted).
//! * `--no-guard`: no canary, no watch, no automatic revert; logged and recorded.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::apply_text;
use super::{AdminArgs, EXIT_FAILED, EXIT_INPUT, author, block_on, failed, print_json};
use clap::Args;
use keel_control::api::ApplyBody;
use keel_control::client::guard_timeout;

/// Arguments of `keel apply`.
#[derive(Args, Debug)]
pub(crate) struct ApplyArgs {
    /// The config file.
    pub(crate) file: PathBuf,
    /// Why (recorded in the audit log).
    #[arg(long, short, default_value = "")]
    pub(crate) message: String,
    /// Who applies it (default: $USER).
    #[arg(long)]
    pub(crate) author: Option<String>,
    /// Apply over policy errors and the blast-radius gate (never over hard errors).
    /// Recorded as forced, with the blast-radius report.
    #[arg(long)]
    pub(crate) force: bool,
    /// Check and gate only (blast radius on the live traffic sample); change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Serve the new generation to this share of requests first (e.g. `10%`), watch it
    /// against the current one, then promote it in `[safety] promote_steps`. Waits.
    #[arg(long, value_parser = parse_percent)]
    pub(crate) canary: Option<f64>,
    /// How long to watch the canary slice, or the full swap (e.g. `30s`; default
    /// `[safety] watch`).
    #[arg(long, value_parser = parse_watch)]
    pub(crate) watch: Option<Duration>,
    /// After a full swap, wait for the watch's verdict (exit 1 if Keel reverted it).
    #[arg(long)]
    pub(crate) wait: bool,
    /// Apply without the guard: no canary, no watch, no automatic revert. Recorded.
    #[arg(long, conflicts_with = "canary")]
    pub(crate) no_guard: bool,
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(p) if (keel_control::MIN_CANARY_PERCENT..100.0).contains(&p) => Ok(p),
        Ok(_) => Err(format!(
            "a canary is at least {}% and less than 100% of requests",
            keel_control::MIN_CANARY_PERCENT
        )),
        Err(_) => Err(format!("`{text}` is not a percentage (e.g. 10%)")),
    }
}

fn parse_watch(text: &str) -> Result<Duration, String> {
    keel_config::parse_duration(text).map_err(|e| e.to_string())
}

pub(crate) fn run(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let file = args.file.display().to_string();
    let config = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("keel: cannot read {file}: {error}");
            return Ok(ExitCode::from(EXIT_INPUT));
        }
    };
    let client = match args.admin.client() {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let client = client.with_timeout(guard_timeout(
        &config,
        args.canary,
        args.watch,
        args.wait && !args.dry_run,
    ));
    if args.no_guard && !args.dry_run {
        eprintln!(
            "keel: WARNING: --no-guard: this apply gets no canary, no watch and no automatic \
             revert; it is recorded as a guard-bypassed event"
        );
    }
    if let Some(canary) = args.canary.filter(|_| !args.dry_run) {
        eprintln!(
            "keel: canary at {canary}%: waiting for the watch{} and the promotion steps…",
            args.watch
                .map(|w| format!(" ({})", keel_config::format_duration(w)))
                .unwrap_or_default()
        );
    }
    let body = ApplyBody {
        config,
        author: author(args.author),
        message: args.message,
        force: args.force,
        dry_run: args.dry_run,
        file_name: file,
        canary: args.canary,
        watch_ms: args
            .watch
            .map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX)),
        no_guard: args.no_guard,
        wait: args.wait,
    };
    let outcome = match block_on(client.apply(&body))? {
        Ok(outcome) => outcome,
        Err(error) => return Ok(failed(error)),
    };
    if args.admin.json_output() {
        print_json(&outcome)?;
    } else {
        let text = apply_text::render(&outcome, args.dry_run);
        eprint!("{}", text.err);
        print!("{}", text.out);
    }
    Ok(if outcome.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}
