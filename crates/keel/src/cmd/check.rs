//! `keel check FILE [--probe] [--traffic SAMPLE] [--format human|json] [--deny-warnings]`:
//! the loader's verdict on a config, for people or for CI. With `--traffic` (a file in any
//! format `keel diff --traffic` reads, e.g. `GET /traffic/sample` saved from a running
//! Keel) it also replays the sample's timestamps through every rate limit (K219,
//! `keel_impact::rate_lint`).
//!
//! Exit codes: 0 clean (warnings allowed unless `--deny-warnings`), 1 any error,
//! 64 when the file cannot be read (docs/cli.md). `--probe` also connects to every backend (see
//! `keel_check::probe`); only then is a tokio runtime started.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use keel_check::probe::{self, ProbeRow};
use keel_config::{Diagnostic, Report, Severity, codes};

use super::Format;

/// Arguments of `keel check`.
#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    /// The config file.
    pub(crate) file: std::path::PathBuf,
    /// Output format: `human` (grouped by severity, with snippets) or `json` (the stable
    /// schema of docs/lints.md).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub(crate) format: Format,
    /// The same as `--format json`.
    #[arg(long)]
    pub(crate) json: bool,
    /// Exit 1 on warnings too.
    #[arg(long)]
    pub(crate) deny_warnings: bool,
    /// Also connect to every backend: health check and identity (K109, K210).
    #[arg(long)]
    pub(crate) probe: bool,
    /// The file is meant for `keel apply` to a fleet: flag node-only keys (K230), with the
    /// receiving node's own config file when given (`--fleet NODE_FILE`).
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    pub(crate) fleet: Option<std::path::PathBuf>,
    /// Replay this traffic sample (what `GET /traffic/sample` serves, or access-log lines)
    /// through the config's rate limits: a limit that would refuse sampled requests is a
    /// warning (K219).
    #[arg(long, value_name = "SAMPLE")]
    pub(crate) traffic: Option<std::path::PathBuf>,
}

pub(crate) fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let file = args.file.display().to_string();
    let source = match std::fs::read_to_string(&args.file) {
        Ok(source) => source,
        Err(error) => {
            eprintln!("keel: cannot read {file}: {error}");
            return Ok(ExitCode::from(super::EXIT_INPUT));
        }
    };
    // DNS backends' names (A/AAAA and SRV) are resolved as `keel serve` resolves them,
    // through `[server] resolvers`.
    keel_control::dns::DnsCache::install();
    let mut loaded = keel_check::load(&file, &source);
    if let Some(node_file) = &args.fleet {
        fleet_findings(&mut loaded, node_file)?;
    }
    if let Some(path) = &args.traffic {
        match keel_impact::read_traffic(path) {
            Ok(traffic) => traffic_findings(&mut loaded, &traffic),
            Err(error) => {
                eprintln!("keel: {error}");
                return Ok(ExitCode::from(super::EXIT_INPUT));
            }
        }
    }
    let rows = if args.probe {
        probe_backends(&loaded.config_ignoring_policy(), &mut loaded.report)?
    } else {
        None
    };
    let report = &loaded.report;
    let format = if args.json { Format::Json } else { args.format };
    match format {
        Format::Human => {
            if let Some(rows) = &rows {
                println!("backend probes:\n{}", probe::render_table(rows));
            }
            print!("{}", report.render_human());
        }
        Format::Json => {
            let mut json = report.to_json();
            if let (Some(rows), Some(object)) = (&rows, json.as_object_mut()) {
                object.insert("probes".into(), probe::rows_json(rows));
            }
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
    }
    let failed = report.has_errors() || (args.deny_warnings && report.count(Severity::Warning) > 0);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// K219 over a usable config, replaying `sample`.
fn traffic_findings(loaded: &mut keel_check::Loaded, sample: &keel_impact::Traffic) {
    let Some(config) = loaded.config_ignoring_policy() else {
        loaded.report.push(Diagnostic::note(
            codes::SKIPPED,
            "traffic replay skipped: the config has errors that make it unusable",
        ));
        return;
    };
    loaded
        .report
        .extend(keel_impact::rate_limit_findings(&config, &sample.requests));
}

/// Probes every backend of a usable config and adds the findings to the report.
/// K230 over the loaded config, against the node's own file when one is named.
fn fleet_findings(
    loaded: &mut keel_check::Loaded,
    node_file: &std::path::Path,
) -> anyhow::Result<()> {
    let Some(config) = loaded.config_ignoring_policy() else {
        return Ok(());
    };
    let node = if node_file.as_os_str().is_empty() {
        None
    } else {
        let text = std::fs::read_to_string(node_file)
            .with_context(|| format!("reading the node's config {}", node_file.display()))?;
        Some(keel_config::parse(&text).config)
    };
    loaded
        .report
        .extend(keel_check::fleet::node_key_findings(&config, node.as_ref()));
    Ok(())
}

fn probe_backends(
    config: &Option<std::sync::Arc<keel_config::Config>>,
    report: &mut Report,
) -> anyhow::Result<Option<Vec<ProbeRow>>> {
    let Some(config) = config else {
        report.push(Diagnostic::note(
            codes::SKIPPED,
            "backend probes skipped: the config has errors that make it unusable",
        ));
        return Ok(None);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the probe runtime")?;
    let rows = runtime.block_on(probe::probe_config(config));
    report.extend(probe::probe_diagnostics(&rows));
    Ok(Some(rows))
}
