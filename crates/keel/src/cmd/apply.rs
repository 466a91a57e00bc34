//! `keel apply FILE -m "why"`: send a config to the running Keel, which checks it in
//! full, computes its blast radius on the live traffic sample (the gate), and makes it
//! the active generation under the guard, or refuses it with findings.
//!
//! * `--dry-run`: check and gate only; prints the blast-radius report and the verdict.
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

use clap::Args;
use keel_control::api::ApplyBody;
use keel_control::client::guard_timeout;
use keel_control::{ApplyOutcome, ApplyStatus, GuardMode, GuardReport, GuardResult, Stage};

use super::check::Format;
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
    /// Output format (`--json` is the same as `--format json`).
    #[arg(long, value_enum)]
    pub(crate) format: Option<Format>,
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
            return Ok(ExitCode::from(EXIT_USAGE));
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
    if args.admin.json || matches!(args.format, Some(Format::Json)) {
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
    let refused_before_swap = outcome.status == ApplyStatus::Refused
        && !outcome.refusals.iter().any(|r| r.stage == Stage::Guard);
    if has_findings || refused_before_swap {
        eprint!("{}", outcome.report_text);
    }
    print_blast_radius(outcome);
    for overridden in &outcome.overridden {
        eprintln!(
            "keel: FORCED past {:?}{}: {}",
            overridden.stage,
            code(overridden.code.as_deref()),
            overridden.message
        );
    }
    let t = &outcome.timings;
    let previous = outcome
        .previous
        .map_or("none".to_string(), |p| p.to_string());
    match outcome.status {
        ApplyStatus::Applied => println!(
            "applied: generation {} {} (was {previous}){}; check {} ms, gate {} ms, compile {} ms, persist {} ms, swap {} µs",
            outcome.generation.unwrap_or(0),
            match outcome.guard.as_ref().map(|g| g.mode) {
                Some(GuardMode::Canary) => "was promoted from its canary",
                _ => "is active",
            },
            if outcome.forced { ", FORCED" } else { "" },
            t.check_us / 1000,
            t.gate_us / 1000,
            t.compile_us / 1000,
            t.persist_us / 1000,
            t.swap_us
        ),
        ApplyStatus::DryRun => println!(
            "dry run: the config passes check and gate and would replace generation {previous}; nothing changed"
        ),
        ApplyStatus::Refused => {
            let guard = outcome.refusals.iter().any(|r| r.stage == Stage::Guard);
            eprintln!(
                "{}{}:",
                if guard { "rolled back" } else { "refused" },
                outcome
                    .generation
                    .map(|g| if guard {
                        format!(" (generation {g} is recorded as rolled back)")
                    } else {
                        format!(" (recorded as rejected generation {g})")
                    })
                    .unwrap_or_default()
            );
            for refusal in &outcome.refusals {
                eprintln!(
                    "  [{:?}{}] {}",
                    refusal.stage,
                    code(refusal.code.as_deref()),
                    refusal.message
                );
            }
            if refusal_needs_force_hint(outcome) {
                eprintln!(
                    "hint: if this movement is intended, apply again with --force -m \"why\" (recorded as forced)"
                );
            }
            eprintln!("generation {previous} still serves");
        }
    }
    if let Some(guard) = &outcome.guard {
        print_guard(guard, outcome.generation.unwrap_or(0));
    }
    for note in &outcome.notes {
        println!("note: {note}");
    }
}

/// The blast-radius report and verdict, when there is something to look at: a refusal
/// or override by the gate, or a dry run. Otherwise one line.
fn print_blast_radius(outcome: &ApplyOutcome) {
    let Some(gate) = &outcome.gate else {
        return;
    };
    let involved = outcome
        .refusals
        .iter()
        .chain(&outcome.overridden)
        .any(|r| r.stage == Stage::Gate);
    if involved || outcome.status == ApplyStatus::DryRun {
        if outcome.overridden.iter().any(|r| r.stage == Stage::Gate) {
            eprintln!("keel: the blast-radius gate refused this change; --force overrides it:");
        }
        if let Some(text) = keel_control::impact_text(gate) {
            let text = format!("{}\n", text.trim_end());
            if outcome.status == ApplyStatus::DryRun {
                print!("{text}");
            } else {
                eprint!("{text}");
            }
        }
        return;
    }
    let report = &gate["report"];
    if let (Some(total), Some(share)) = (
        report["total"].as_u64(),
        report["changes_service"]["share"].as_f64(),
    ) {
        println!(
            "blast radius: {:.1}% of {total} sampled requests change service (limit {:.1}%)",
            share * 100.0,
            gate["gate"]["max_shift"].as_f64().unwrap_or(0.0) * 100.0
        );
    }
}

fn print_guard(guard: &GuardReport, generation: u64) {
    let baseline = guard
        .baseline
        .map_or("the previous generation".to_string(), |b| {
            format!("generation {b}")
        });
    let seconds = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
    match guard.result {
        GuardResult::Watching => {
            let watch = guard.stages.first().map_or(0, |s| s.watch_ms);
            println!(
                "guard: watching generation {generation} for {}; if a detector fires Keel swaps {baseline} back by itself \
                 (`keel status` shows the watch; --wait waits for it)",
                seconds(watch)
            );
        }
        GuardResult::Promoted => println!(
            "guard: no alarm in {} of watching{}",
            seconds(guard.watched_ms),
            if guard.mode == GuardMode::Canary {
                format!(" through {} steps", guard.stages.len())
            } else {
                String::new()
            }
        ),
        GuardResult::RolledBack => eprintln!(
            "guard: detected after {}, reverted after {}; {baseline} serves",
            seconds(guard.detected_after_ms.unwrap_or(0)),
            seconds(guard.reverted_after_ms.unwrap_or(0)),
        ),
        GuardResult::Cancelled => eprintln!(
            "guard: {}",
            guard.reason.as_deref().unwrap_or("the watch was cancelled")
        ),
        GuardResult::Unwatched => println!("guard: not watched (see the note)"),
        GuardResult::Kept => eprintln!(
            "guard: a detector fired, and the generation keeps serving: {}",
            guard.reason.as_deref().unwrap_or("see `keel status`")
        ),
        GuardResult::Bypassed => eprintln!(
            "keel: WARNING: generation {generation} serves UNGUARDED (--no-guard): nothing will revert it by itself"
        ),
    }
}

fn refusal_needs_force_hint(outcome: &ApplyOutcome) -> bool {
    outcome.status == ApplyStatus::Refused
        && outcome.refusals.iter().any(|r| r.stage == Stage::Gate)
        && !outcome.refusals.iter().any(|r| r.stage == Stage::Check)
}

fn code(code: Option<&str>) -> String {
    code.map(|c| format!(" {c}")).unwrap_or_default()
}
