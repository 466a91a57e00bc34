//! `keel history`: generations newest first, with state, known-good and in-memory marks,
//! author, origin and message.

use std::process::ExitCode;

use clap::Args;
use keel_control::api::GenerationSummary;

use super::{AdminArgs, block_on, failed, print_json};

/// Generations listed by default (20).
const DEFAULT_LIMIT: usize = 20;

/// Arguments of `keel history`.
#[derive(Args, Debug)]
pub(crate) struct HistoryArgs {
    /// How many generations to list.
    #[arg(long, short = 'n', default_value_t = DEFAULT_LIMIT)]
    pub(crate) limit: usize,
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}

pub(crate) fn run(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let client = match args.admin.client() {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let list = match block_on(client.history(args.limit))? {
        Ok(list) => list,
        Err(error) => return Ok(failed(error)),
    };
    if args.admin.json_output() {
        print_json(&list)?;
    } else {
        print!("{}", render(&list));
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per generation. Marks: `K` known-good, `M` kept compiled in memory, `F` forced.
pub(crate) fn render(list: &[GenerationSummary]) -> String {
    let mut out = format!(
        "{:>5}  {:<11}  {:<3}  {:<24}  {:<12}  {:<7}  MESSAGE\n",
        "GEN", "STATE", "KMF", "CREATED", "AUTHOR", "ORIGIN"
    );
    for g in list {
        let marks: String = [(g.known_good, 'K'), (g.in_memory, 'M'), (g.forced, 'F')]
            .iter()
            .map(|(on, c)| if *on { *c } else { '.' })
            .collect();
        let message = g.message.lines().next().unwrap_or("");
        out.push_str(&format!(
            "{:>5}  {:<11}  {:<3}  {:<24}  {:<12}  {:<7}  {}\n",
            g.id,
            g.state.as_str(),
            marks,
            g.created_at,
            g.author,
            g.origin,
            message
        ));
    }
    out
}
