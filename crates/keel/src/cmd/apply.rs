//! `keel apply FILE -m "why"`: send a config to the running Keel, which checks it in
//! full, gates it, and makes it the active generation, or refuses it with findings.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use keel_control::api::ApplyBody;
use keel_control::{ApplyOutcome, ApplyStatus};

use super::{AdminArgs, EXIT_FAILED, EXIT_USAGE, author, block_on, failed, print_json};

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
    /// Apply over policy errors and the gate (never over hard errors). Recorded as forced.
    #[arg(long)]
    pub(crate) force: bool,
    /// Check and gate only; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}

pub(crate) fn run(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let file = args.file.display().to_string();
    let config = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("keel: cannot read {file}: {error}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let client = match args.admin.client() {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let body = ApplyBody {
        config,
        author: author(args.author),
        message: args.message,
        force: args.force,
        dry_run: args.dry_run,
        file_name: file,
    };
    let outcome = match block_on(client.apply(&body))? {
        Ok(outcome) => outcome,
        Err(error) => return Ok(failed(error)),
    };
    if args.admin.json {
        print_json(&outcome)?;
    } else {
        print_human(&outcome);
    }
    Ok(if outcome.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

fn print_human(outcome: &ApplyOutcome) {
    let has_findings = outcome.report["diagnostics"]
        .as_array()
        .is_some_and(|d| !d.is_empty());
    if has_findings || outcome.status == ApplyStatus::Refused {
        eprint!("{}", outcome.report_text);
    }
    for overridden in &outcome.overridden {
        eprintln!(
            "keel: FORCED past {:?}{}: {}",
            overridden.stage,
            overridden
                .code
                .as_deref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default(),
            overridden.message
        );
    }
    let t = &outcome.timings;
    match outcome.status {
        ApplyStatus::Applied => println!(
            "applied: generation {} is active (was {}){}; check {} ms, compile {} ms, persist {} ms, swap {} µs",
            outcome.generation.unwrap_or(0),
            outcome
                .previous
                .map_or("none".to_string(), |p| p.to_string()),
            if outcome.forced { ", FORCED" } else { "" },
            t.check_us / 1000,
            t.compile_us / 1000,
            t.persist_us / 1000,
            t.swap_us
        ),
        ApplyStatus::DryRun => println!(
            "dry run: the config passes check and gate and would replace generation {}",
            outcome
                .previous
                .map_or("none".to_string(), |p| p.to_string())
        ),
        ApplyStatus::Refused => {
            eprintln!(
                "refused{}:",
                outcome
                    .generation
                    .map(|g| format!(" (recorded as rejected generation {g})"))
                    .unwrap_or_default()
            );
            for refusal in &outcome.refusals {
                eprintln!(
                    "  [{:?}{}] {}",
                    refusal.stage,
                    refusal
                        .code
                        .as_deref()
                        .map(|c| format!(" {c}"))
                        .unwrap_or_default(),
                    refusal.message
                );
            }
            eprintln!(
                "generation {} still serves",
                outcome
                    .previous
                    .map_or("none".to_string(), |p| p.to_string())
            );
        }
    }
    for note in &outcome.notes {
        println!("note: {note}");
    }
}
