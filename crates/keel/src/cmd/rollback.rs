//! `keel rollback [--to N] [--force] [--dry-run] [--wait]`: swap back to a generation
//! kept compiled in memory: the newest known-good one by default. Never parses, never
//! needs the config file.
//!
//! A rollback is a change too: the answer shows its blast radius (active table → target
//! table on the live sample) before anything else, a target that is not known-good is
//! refused unless `--force` (with the reasons it is distrusted: its alerts with their
//! times), and the target is watched like an apply and reverted by the guard if it
//! alarms (`--wait` waits for that verdict; exit 1 if it was reverted). It prints how
//! many open tunnels of the generation it left were drained or left open
//! (`[safety] rolled_back_tunnels`).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use keel_control::api::RollbackBody;
use keel_control::client::REQUEST_TIMEOUT;
use keel_control::{GuardResult, RollbackOutcome};

use super::{AdminArgs, EXIT_FAILED, author, block_on, failed, print_json};

/// Longest `--wait` allowed for when `--watch` is not given: the server watches for the
/// longer `[safety] watch` of two configs the CLI does not read (1 hour).
const ROLLBACK_WAIT_ALLOWANCE: Duration = Duration::from_secs(3600);

/// Arguments of `keel rollback`.
#[derive(Args, Debug)]
pub(crate) struct RollbackArgs {
    /// The generation to go back to (default: the newest known-good one in memory).
    #[arg(long)]
    pub(crate) to: Option<u64>,
    /// Why (recorded in the audit log).
    #[arg(long, short, default_value = "")]
    pub(crate) message: String,
    /// Who asks (default: $USER).
    #[arg(long)]
    pub(crate) author: Option<String>,
    /// Roll back to a generation that is not known-good (reverted by an alarm, marked bad,
    /// forced, or never served long enough). The answer says why it was distrusted.
    #[arg(long)]
    pub(crate) force: bool,
    /// Show the target and the blast radius only; swap nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// How long the guard watches the target (e.g. `30s`; default: the longer
    /// `[safety] watch` of the two configs).
    #[arg(long, value_parser = parse_watch)]
    pub(crate) watch: Option<Duration>,
    /// Wait for the guard's verdict on the target (exit 1 if it reverted it).
    #[arg(long)]
    pub(crate) wait: bool,
    /// Fleet mode: roll back this node only, without the fleet's store (for when etcd is
    /// unreachable). The node then drifts from the fleet, reported on reconnection, until
    /// the fleet is rolled back or applied again (docs/fleet.md). Exits 1: not recorded.
    #[arg(long)]
    pub(crate) local: bool,
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}

fn parse_watch(text: &str) -> Result<Duration, String> {
    keel_config::parse_duration(text).map_err(|e| e.to_string())
}

pub(crate) fn run(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let client = match args.admin.client() {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let client = if args.wait {
        client.with_timeout(REQUEST_TIMEOUT + args.watch.unwrap_or(ROLLBACK_WAIT_ALLOWANCE))
    } else {
        client
    };
    let body = RollbackBody {
        to: args.to,
        author: author(args.author),
        reason: args.message,
        force: args.force,
        dry_run: args.dry_run,
        watch_ms: args
            .watch
            .map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX)),
        wait: args.wait,
        local: args.local,
    };
    let outcome = match block_on(client.rollback(&body))? {
        Ok(outcome) => outcome,
        Err(error) => return Ok(failed(error)),
    };
    if args.admin.json_output() {
        print_json(&outcome)?;
    } else {
        print_human(&outcome);
    }
    if let Some(error) = &outcome.persist_error {
        eprintln!("keel: WARNING: {error}");
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    if outcome
        .guard
        .as_ref()
        .is_some_and(|g| g.result == GuardResult::RolledBack)
    {
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// What the rollback did to the tunnels (WebSockets) open on the generation it left.
fn tunnels_line(outcome: &RollbackOutcome) -> String {
    let left = &outcome.tunnels;
    let mut parts = Vec::new();
    if left.drained > 0 {
        parts.push(format!(
            "{} of generation {} drained: closed in {}, their clients reconnect to generation {}",
            left.drained,
            outcome.from,
            keel_config::format_duration(Duration::from_millis(left.drain_ms)),
            outcome.to
        ));
    }
    if left.kept > 0 {
        parts.push(format!(
            "{} left open on generation {} (rolled_back_tunnels = \"keep\"; `keel status` lists them)",
            left.kept, outcome.from
        ));
    }
    if parts.is_empty() {
        format!("tunnels: none open on generation {}", outcome.from)
    } else {
        format!("tunnels: {}", parts.join("; "))
    }
}

fn print_human(outcome: &RollbackOutcome) {
    if let Some(text) = outcome
        .blast_radius
        .as_ref()
        .and_then(|b| b["text"].as_str())
    {
        println!("{}", text.trim_end());
        println!();
    }
    if outcome.forced {
        println!(
            "FORCED: generation {} is not known-good; it was distrusted because:",
            outcome.to
        );
        for reason in &outcome.distrust {
            println!("  - {reason}");
        }
    }
    if outcome.dry_run {
        println!(
            "dry run: a rollback would make generation {} serve instead of {}{}",
            outcome.to,
            outcome.from,
            if outcome.forced {
                " (because forced)"
            } else {
                ""
            }
        );
    } else {
        println!(
            "rolled back: generation {} serves (was {}); swap {} µs",
            outcome.to, outcome.from, outcome.swap_us
        );
        println!("{}", tunnels_line(outcome));
    }
    if let Some(guard) = &outcome.guard {
        match guard.result {
            GuardResult::Watching => {}
            GuardResult::Promoted => println!(
                "guard: no alarm in {} ms of watching generation {}",
                guard.watched_ms, outcome.to
            ),
            GuardResult::RolledBack => eprintln!(
                "guard: generation {} alarmed after {} ms and was reverted after {} ms",
                outcome.to,
                guard.detected_after_ms.unwrap_or(0),
                guard.reverted_after_ms.unwrap_or(0)
            ),
            GuardResult::Kept | GuardResult::Cancelled => {}
            GuardResult::Unproven => eprintln!(
                "guard: {}",
                guard
                    .reason
                    .as_deref()
                    .unwrap_or("the watch ended without the evidence it waited for")
            ),
            GuardResult::Unwatched | GuardResult::Bypassed => {
                println!("guard: not watched");
            }
        }
    }
    for note in &outcome.notes {
        println!("note: {note}");
    }
}
