//! `keel check FILE`: the loader's verdict on a config, for people or for CI.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use keel_config::{Report, parse};

/// Arguments of `keel check`.
#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    /// The config file.
    pub(crate) file: std::path::PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub(crate) format: Format,
    /// Exit 1 on warnings too.
    #[arg(long)]
    pub(crate) deny_warnings: bool,
}

/// How findings are printed.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Format {
    /// Grouped by severity, with snippets.
    Human,
    /// The stable JSON schema (docs/lints.md).
    Json,
}

pub(crate) fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let file = args.file.display().to_string();
    let source = match std::fs::read_to_string(&args.file) {
        Ok(source) => source,
        Err(error) => {
            eprintln!("keel: cannot read {file}: {error}");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    let parsed = parse(&source);
    let mut report = Report::new(file, source);
    report.extend(parsed.diagnostics);
    match args.format {
        Format::Human => print!("{}", report.render_human()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report.to_json())?),
    }
    let failed = report.has_errors()
        || (args.deny_warnings && report.count(keel_config::Severity::Warning) > 0);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
