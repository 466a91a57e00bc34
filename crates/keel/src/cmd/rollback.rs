//! `keel rollback [--to N]`: swap back to a generation kept compiled in memory: the
//! newest known-good one by default. Never parses, never needs the config file.

use std::process::ExitCode;

use clap::Args;
use keel_control::api::RollbackBody;

use super::{AdminArgs, EXIT_FAILED, author, block_on, failed, print_json};

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
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}

pub(crate) fn run(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let client = match args.admin.client() {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let body = RollbackBody {
        to: args.to,
        author: author(args.author),
        reason: args.message,
    };
    let outcome = match block_on(client.rollback(&body))? {
        Ok(outcome) => outcome,
        Err(error) => return Ok(failed(error)),
    };
    if args.admin.json {
        print_json(&outcome)?;
    } else {
        println!(
            "rolled back: generation {} serves (was {}); swap {} µs",
            outcome.to, outcome.from, outcome.swap_us
        );
    }
    if let Some(error) = &outcome.persist_error {
        eprintln!("keel: WARNING: {error}");
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}
