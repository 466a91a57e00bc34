//! `keel status`: open alerts first (each naming the generation it blames), then the
//! active generation, since when, who applied it and why, what is kept for rollback,
//! backend health, and whether the store is in step.

use std::process::ExitCode;

use clap::Args;
use keel_control::Status;

use super::{AdminArgs, EXIT_FAILED, block_on, failed, print_json};

/// Arguments of `keel status`.
#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
    /// Every node of the fleet this node config's `[fleet]` names, read from etcd: the
    /// generation each serves, since when, lag, health, session (docs/fleet.md).
    #[arg(long, value_name = "NODE_FILE")]
    pub(crate) fleet: Option<std::path::PathBuf>,
}

pub(crate) fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    if let Some(node_file) = &args.fleet {
        return super::fleet_status::run(node_file, args.admin.json_output());
    }
    let client = match args.admin.client() {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let status = match block_on(client.status())? {
        Ok(status) => status,
        Err(error) => return Ok(failed(error)),
    };
    if args.admin.json_output() {
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

/// Open alerts shown in the text form (the JSON has up to `MAX_STATUS_ALERTS`).
const SHOWN_ALERTS: usize = 10;

fn render(status: &Status) -> String {
    let mut out = String::new();
    if status.open_alerts_total > 0 {
        out.push_str(&format!(
            "OPEN ALERTS: {} about what serves now (newest first)\n",
            status.open_alerts_total
        ));
        for alert in status.open_alerts.iter().take(SHOWN_ALERTS) {
            out.push_str(&format!(
                "  {} {} {} alert blames generation {} ({}): {}\n",
                alert.time,
                alert.severity.to_uppercase(),
                alert.detector,
                alert.generation,
                alert.serving,
                alert.summary
            ));
        }
        let shown = status.open_alerts.len().min(SHOWN_ALERTS);
        if status.open_alerts_total > shown {
            out.push_str(&format!(
                "  … and {} more (`keel status --json`, GET /alerts)\n",
                status.open_alerts_total - shown
            ));
        }
    }
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

#[cfg(test)]
mod tests {
    use keel_control::{HealthSummary, OpenAlert, Status};

    use super::render;

    fn status(alerts: usize) -> Status {
        let alert = |id: u64| OpenAlert {
            id,
            time: format!("2026-12-07T11:0{id}:00.000Z"),
            detector: "identity".into(),
            severity: "critical".into(),
            generation: 6,
            serving: "active".into(),
            summary: "route checkout: 97 responses from catalog".into(),
        };
        Status {
            open_alerts: (0..alerts as u64).rev().map(alert).collect(),
            open_alerts_total: alerts,
            active: None,
            canary: None,
            guard: None,
            kept: Vec::new(),
            health: HealthSummary::default(),
            store_in_sync: true,
            store_error: None,
            notes: Vec::new(),
            uptime_secs: 1,
            descriptors: None,
            tunnels: Vec::new(),
        }
    }

    #[test]
    fn open_alerts_come_first_and_name_the_generation_they_blame() {
        let text = render(&status(2));
        assert!(
            text.starts_with("OPEN ALERTS: 2 about what serves now"),
            "{text}"
        );
        assert!(
            text.contains("CRITICAL identity alert blames generation 6 (active): route checkout"),
            "{text}"
        );
        let many = render(&status(12));
        assert!(many.contains("… and 2 more"), "{many}");
        assert!(!render(&status(0)).contains("ALERTS"));
    }
}
