//! `keel mark-bad N -m WHY`: an operator's judgement that generation N is bad. Its
//! known-good mark is withdrawn for good (it is never promoted again), so no rollback
//! picks it without `--force`, and the `mark-bad` event says who and why. It does not
//! roll back: a generation that serves keeps serving (`keel rollback` does that).

use std::process::ExitCode;

use clap::Args;
use keel_control::api::MarkBadBody;

use super::{AdminArgs, author, block_on, failed, print_json};

/// Arguments of `keel mark-bad`.
#[derive(Args, Debug)]
pub(crate) struct MarkBadArgs {
    /// The generation.
    pub(crate) id: u64,
    /// Why (recorded in the audit log).
    #[arg(long, short, default_value = "")]
    pub(crate) message: String,
    /// Who judges (default: $USER).
    #[arg(long)]
    pub(crate) author: Option<String>,
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}

pub(crate) fn run(args: MarkBadArgs) -> anyhow::Result<ExitCode> {
    let client = match args.admin.client() {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let body = MarkBadBody {
        author: author(args.author),
        reason: args.message,
    };
    let outcome = match block_on(client.mark_bad(args.id, &body))? {
        Ok(outcome) => outcome,
        Err(error) => return Ok(failed(error)),
    };
    if args.admin.json_output() {
        print_json(&outcome)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "generation {} marked bad{}: a rollback to it needs --force from now on",
        outcome.id,
        if outcome.withdrew_known_good {
            " (it was known-good)"
        } else {
            ""
        }
    );
    if outcome.active {
        println!(
            "note: generation {} still serves; `keel rollback` goes back to the newest known-good generation",
            outcome.id
        );
    }
    Ok(ExitCode::SUCCESS)
}
