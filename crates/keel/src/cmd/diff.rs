//! `keel diff OLD NEW`: the semantic diff of two configs (routes, pools, backends,
//! weights added, removed, changed). OLD and NEW are generation ids (fetched from the
//! admin API) or config files. A later issue adds `--traffic FILE` (blast radius).

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use keel_config::Config;
use keel_control::semantic_diff;

use super::{AdminArgs, EXIT_USAGE, block_on, failed, print_json};

/// Arguments of `keel diff`.
#[derive(Args, Debug)]
pub(crate) struct DiffArgs {
    /// The old config: a generation id or a file.
    pub(crate) old: String,
    /// The new config: a generation id or a file.
    pub(crate) new: String,
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
        let (label, text) = match side {
            Side::File(path) => match std::fs::read_to_string(&path) {
                Ok(text) => (path, text),
                Err(error) => {
                    eprintln!("keel: cannot read {path}: {error}");
                    return Ok(ExitCode::from(EXIT_USAGE));
                }
            },
            Side::Generation(id) => {
                let Some(client) = &client else {
                    return Ok(ExitCode::from(EXIT_USAGE));
                };
                match block_on(client.generation(id))? {
                    Ok(detail) => (format!("generation {id}"), detail.config),
                    Err(error) => return Ok(failed(error)),
                }
            }
        };
        match parse(&label, &text) {
            Some(config) => configs.push(config),
            None => return Ok(ExitCode::from(EXIT_USAGE)),
        }
    }
    let diff = semantic_diff(&configs[0], &configs[1]);
    if args.admin.json {
        print_json(&diff)?;
    } else {
        print!("{}", diff.render_human());
    }
    Ok(ExitCode::SUCCESS)
}

fn parse(label: &str, text: &str) -> Option<Config> {
    let parsed = keel_config::parse(text);
    if parsed.has_errors() {
        eprintln!("keel: {label} does not parse; `keel check` shows why");
        return None;
    }
    Some(parsed.config)
}
