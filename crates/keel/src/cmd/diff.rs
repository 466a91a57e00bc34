//! `keel diff OLD NEW [--traffic FILE]`: the semantic diff of two configs (routes,
//! pools, backends, weights added, removed, changed). OLD and NEW are generation ids
//! (fetched from the admin API) or config files.
//!
//! With `--traffic FILE` (request shapes as `GET /traffic/sample` serves them, access-log
//! lines, or `METHOD URL` lines; see docs/blast-radius.md) it also replays that traffic
//! through both configs and prints the blast radius: the movement matrix, the per-host
//! service shift, requests that start failing, examples, sticky-session movement, and
//! the verdict `keel apply`'s gate would give. `--format json` prints
//! `{"diff", "impact", "gate"}` (the last two in keel-impact's schema version 1).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use keel_config::Config;
use keel_control::semantic_diff;

use super::{AdminArgs, EXIT_FAILED, EXIT_INPUT, block_on, failed, print_json};

/// Arguments of `keel diff`.
#[derive(Args, Debug)]
pub(crate) struct DiffArgs {
    /// The old config: a generation id or a file.
    pub(crate) old: String,
    /// The new config: a generation id or a file.
    pub(crate) new: String,
    /// Replay this traffic through both configs and print the blast radius.
    #[arg(long)]
    pub(crate) traffic: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}

/// Where a side of the diff comes from.
enum Side {
    Generation(u64),
    File(String),
}

impl Side {
    /// A number is a generation id unless a file of that name exists.
    fn of(arg: &str) -> Side {
        match arg.parse::<u64>() {
            Ok(id) if !Path::new(arg).exists() => Side::Generation(id),
            _ => Side::File(arg.to_string()),
        }
    }
}

pub(crate) fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let sides = [Side::of(&args.old), Side::of(&args.new)];
    let needs_api = sides.iter().any(|s| matches!(s, Side::Generation(_)));
    let client = if needs_api {
        match args.admin.client() {
            Ok(client) => Some(client),
            Err(code) => return Ok(code),
        }
    } else {
        None
    };
    let mut configs = Vec::new();
    for side in sides {
        let is_file = matches!(side, Side::File(_));
        let mut stored_certificates = Vec::new();
        let (label, text) = match side {
            Side::File(path) => match std::fs::read_to_string(&path) {
                Ok(text) => (path, text),
                Err(error) => {
                    eprintln!("keel: cannot read {path}: {error}");
                    return Ok(ExitCode::from(EXIT_INPUT));
                }
            },
            Side::Generation(id) => {
                let Some(client) = &client else {
                    return Ok(ExitCode::from(EXIT_INPUT));
                };
                match block_on(client.generation(id))? {
                    Ok(detail) => {
                        stored_certificates = detail.certificates;
                        (format!("generation {id}"), detail.config)
                    }
                    Err(error) => return Ok(failed(error)),
                }
            }
        };
        match parse(&label, &text) {
            Some(mut config) => {
                // A file's certificates are read beside it, so that the diff and the
                // blast radius see what they say; a stored generation's facts are those
                // of the certificates it pinned, as the admin API lists them (one whose
                // facts are not at hand is not judged, and the gate says so).
                if is_file {
                    let dir = keel_config::config_dir(&label);
                    let _ = keel_check::read_certificates(&mut config, &dir);
                }
                for view in stored_certificates {
                    if let (Some(certificate), Some(facts)) =
                        (config.certificates.get_mut(&view.name), &view.facts)
                    {
                        certificate.facts = Some(std::sync::Arc::new(
                            keel_config::CertificateFacts::from(facts),
                        ));
                    }
                }
                configs.push(config);
            }
            None => return Ok(ExitCode::from(EXIT_INPUT)),
        }
    }
    let diff = semantic_diff(&configs[0], &configs[1]);
    let json = args.admin.json_output();
    let Some(path) = &args.traffic else {
        if json {
            print_json(&diff)?;
        } else {
            print!("{}", diff.render_human());
        }
        return Ok(ExitCode::SUCCESS);
    };
    let traffic = match keel_impact::read_traffic(path) {
        Ok(traffic) => traffic,
        Err(error) => {
            eprintln!("keel: {error}");
            return Ok(ExitCode::from(EXIT_INPUT));
        }
    };
    if let Some(line) = traffic.truncated_line {
        eprintln!(
            "keel: note: {}:{line}: the last line is incomplete (no newline) and was skipped",
            path.display()
        );
    }
    let report = match keel_impact::blast_radius(&configs[0], &configs[1], &traffic.requests) {
        Ok(report) => report,
        Err(error) => return Ok(failed(error)),
    };
    let verdict = keel_impact::gate_change(&report, &configs[0], &configs[1]);
    if json {
        print_json(&serde_json::json!({
            "diff": diff,
            "impact": report.to_json(),
            "gate": verdict.to_json(),
        }))?;
    } else {
        print!("{}", diff.render_human());
        println!();
        print!("{}", verdict.render_human());
    }
    Ok(if verdict.allowed {
        ExitCode::SUCCESS
    } else {
        // The gate of `keel apply` would refuse this change: scripts can stop here.
        ExitCode::from(EXIT_FAILED)
    })
}

fn parse(label: &str, text: &str) -> Option<Config> {
    let parsed = keel_config::parse(text);
    if parsed.has_errors() {
        eprintln!("keel: {label} does not parse; `keel check` shows why");
        return None;
    }
    Some(parsed.config)
}
