//! `keel show N`: one generation: who, when, why, its state, its check result, its
//! certificates (leaf facts and the digest of the copy it pinned, never the key), and
//! its config text (`--config` prints only the text, ready for `keel apply`).

use std::process::ExitCode;

use clap::Args;

use super::{AdminArgs, block_on, failed, print_json};

/// Arguments of `keel show`.
#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    /// The generation.
    pub(crate) id: u64,
    /// Print only the config text.
    #[arg(long)]
    pub(crate) config: bool,
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}

pub(crate) fn run(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let client = match args.admin.client() {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let detail = match block_on(client.generation(args.id))? {
        Ok(detail) => detail,
        Err(error) => return Ok(failed(error)),
    };
    if args.config {
        print!("{}", detail.config);
        return Ok(ExitCode::SUCCESS);
    }
    if args.admin.json_output() {
        print_json(&detail)?;
        return Ok(ExitCode::SUCCESS);
    }
    let g = &detail.summary;
    println!(
        "generation {}  {}{}{}",
        g.id,
        g.state.as_str(),
        if g.known_good { ", known-good" } else { "" },
        if g.forced { ", FORCED" } else { "" }
    );
    println!("author:    {}", g.author);
    println!("origin:    {}", g.origin);
    println!("created:   {}", g.created_at);
    if let Some(activated) = &g.activated_at {
        println!("activated: {activated}");
    }
    println!("in memory: {}", in_memory_line(g));
    println!("message:   {}", g.message);
    println!(
        "check:     {}, {}",
        super::plural(g.errors, "error", "errors"),
        super::plural(g.warnings, "warning", "warnings")
    );
    for key in ["refusals", "overridden"] {
        if let Some(items) = detail.check_report[key].as_array() {
            for item in items {
                println!(
                    "{key}: [{}] {}",
                    item["stage"].as_str().unwrap_or("?"),
                    item["message"].as_str().unwrap_or("")
                );
            }
        }
    }
    println!("sha256:    {}", g.content_hash);
    for line in certificate_lines(&detail.certificates) {
        println!("{line}");
    }
    println!("---");
    print!("{}", detail.config);
    Ok(ExitCode::SUCCESS)
}

/// One line per certificate: its leaf facts as `keel diff` prints them, and the digest
/// of the copy the generation pinned. Never anything of the key but that digest.
fn certificate_lines(certificates: &[keel_control::api::CertificateView]) -> Vec<String> {
    let mut lines = Vec::new();
    for certificate in certificates {
        let facts = match (&certificate.facts, &certificate.unavailable) {
            (Some(facts), _) => keel_config::CertificateFacts::from(facts).summary(),
            (None, Some(why)) => format!("no facts: {why}"),
            (None, None) => "no facts".to_string(),
        };
        lines.push(format!("cert:      {}: {facts}", certificate.name));
        if let Some(pinned) = &certificate.pinned {
            lines.push(format!("           pinned copy {pinned}"));
        }
    }
    lines
}

/// What `keel show` says about rolling back to a generation: instant only when it is in
/// memory, and without `--force` only when it is known-good (a reverted or judged-bad
/// generation says so).
fn in_memory_line(g: &keel_control::api::GenerationSummary) -> String {
    use keel_store::GenerationState;
    if !g.in_memory {
        return "no".to_string();
    }
    if g.state == GenerationState::Active {
        return "yes (serving now)".to_string();
    }
    if g.known_good && g.state == GenerationState::RolledBack {
        return "yes (instant rollback target, known-good; a rollback left it, no alarm judged it bad)"
            .to_string();
    }
    if g.known_good {
        return "yes (instant rollback target, known-good)".to_string();
    }
    let why = if g.state == GenerationState::RolledBack {
        "it was rolled back and is not known-good"
    } else {
        "it is not known-good"
    };
    format!(
        "yes, but {why}: a rollback to it needs --force (`keel rollback --to {} --dry-run` says why)",
        g.id
    )
}
