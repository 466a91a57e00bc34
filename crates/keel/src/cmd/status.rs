//! `keel status`: the active generation, since when, who applied it and why, what is
//! kept for rollback, backend health, and whether the store is in step.

use std::process::ExitCode;

use clap::Args;
use keel_control::Status;

use super::{AdminArgs, EXIT_FAILED, block_on, failed, print_json};

/// Arguments of `keel status`.
#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}

pub(crate) fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let client = match args.admin.client() {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let status = match block_on(client.status())? {
        Ok(status) => status,
        Err(error) => return Ok(failed(error)),
    };
    if args.admin.json {
        print_json(&status)?;
    } else {
        print!("{}", render(&status));
    }
    Ok(if status.store_in_sync {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

fn render(status: &Status) -> String {
    let mut out = String::new();
    match &status.active {
        Some(a) => {
            out.push_str(&format!(
                "active: generation {}{}{} since {} ({}), by {} via {}\n",
                a.id,
                if a.known_good { " (known-good)" } else { "" },
                if a.forced { " (FORCED)" } else { "" },
                a.active_since,
                human_secs(a.active_for_secs),
                a.author,
                a.origin
            ));
            if !a.message.is_empty() {
                out.push_str(&format!("  message: {}\n", a.message));
            }
            out.push_str(&format!(
                "  {} routes, {} pools, {} requests served\n",
                a.routes, a.pools, a.requests
            ));
        }
        None => out.push_str("active: none\n"),
    }
    if let Some(canary) = &status.canary {
        out.push_str(&format!(
            "canary: generation {} at {}.{}%\n",
            canary.generation,
            canary.permille / 10,
            canary.permille % 10
        ));
    }
    if let Some(guard) = &status.guard {
        out.push_str(&format!(
            "guard: watching generation {} ({}, {}.{}% of requests) against generation {} since {}, until {} unless a detector fires\n",
            guard.generation,
            match guard.mode {
                keel_control::GuardMode::Canary => "canary",
                _ => "full swap",
            },
            guard.permille / 10,
            guard.permille % 10,
            guard.baseline,
            guard.since,
            guard.until
        ));
    }
    let kept: Vec<String> = status
        .kept
        .iter()
        .map(|k| {
            format!(
                "{}{}",
                k.id,
                if k.known_good { " (known-good)" } else { "" }
            )
        })
        .collect();
    out.push_str(&format!(
        "kept for rollback: {}\n",
        if kept.is_empty() {
            "none".to_string()
        } else {
            kept.join(", ")
        }
    ));
    let h = &status.health;
    out.push_str(&format!(
        "backends: {} of {} serving, {} out\n",
        h.serving, h.backends, h.out
    ));
    for pool in &h.pools {
        let backends: Vec<String> = pool
            .backends
            .iter()
            .map(|b| format!("{} {}", b.addr, b.state))
            .collect();
        out.push_str(&format!(
            "  pool {} (service {}): {}\n",
            pool.name,
            pool.service,
            backends.join(", ")
        ));
    }
    if let Some(d) = &status.descriptors {
        let open = d
            .open
            .map_or(String::new(), |open| format!("{open} open of "));
        out.push_str(&format!(
            "file descriptors: {open}{} (hard limit {})\n",
            d.limit, d.hard_limit
        ));
    }
    match &status.store_error {
        None => out.push_str("store: in sync\n"),
        Some(error) => out.push_str(&format!("store: NOT IN SYNC: {error}\n")),
    }
    for note in &status.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

fn human_secs(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{}s", secs / 60, secs % 60),
        _ => format!("{}h{}m", secs / 3600, (secs % 3600) / 60),
    }
}
