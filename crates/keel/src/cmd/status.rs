//! `keel status`: open alerts first (each naming the generation it blames), then the
//! active generation, since when, who applied it and why, what is kept for rollback,
//! backend health, open tunnels per generation, route, pool and backend, and whether the
//! store is in step.

use std::process::ExitCode;

use clap::Args;
use keel_control::Status;
use keel_control::tunnel_status::GenerationTunnels;

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
        #[cfg(feature = "fleet")]
        return super::fleet_status::run(node_file, args.admin.json_output());
        #[cfg(not(feature = "fleet"))]
        {
            eprintln!(
                "keel: this keel was built without fleet mode ({}): build it with `--features fleet`",
                node_file.display()
            );
            return Ok(ExitCode::from(super::EXIT_INPUT));
        }
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
        if !guard.waiting_for.is_empty() {
            let routes: Vec<String> = guard
                .waiting_for
                .iter()
                .map(keel_control::EvidenceWait::describe)
                .collect();
            out.push_str(&format!(
                "guard: the watch still waits for evidence from {}\n",
                routes.join(", ")
            ));
        }
    }
    if let Some(unproven) = &status.unproven {
        out.push_str(&format!("UNPROVEN: {}\n", unproven.text()));
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
            .map(|b| match (&b.claims, &b.identity_seen) {
                (Some(service), _) => format!("{} {} (claims to be {service})", b.addr, b.state),
                (None, Some(seen)) => format!("{} {} (answers as `{seen}`)", b.addr, b.state),
                (None, None) => format!("{} {}", b.addr, b.state),
            })
            .collect();
        out.push_str(&format!(
            "  pool {} (service {}): {}\n",
            pool.name,
            pool.service,
            backends.join(", ")
        ));
    }
    render_tunnels(&mut out, &status.tunnels);
    out.push_str(&format!(
        "client connections: {} open, {} of them parked (idle, holding no HTTP buffers)\n",
        status.connections.open, status.connections.parked
    ));
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

/// Routes and backends listed per generation in the text form (the JSON has them all).
const SHOWN_TUNNEL_LINES: usize = 10;

/// Open tunnels per generation (serving or left by a rollback), then per route, pool
/// and backend.
fn render_tunnels(out: &mut String, tunnels: &[GenerationTunnels]) {
    if tunnels.is_empty() {
        return;
    }
    let open: u64 = tunnels.iter().map(|t| t.open).sum();
    out.push_str(&format!(
        "tunnels: {open} open
"
    ));
    for generation in tunnels {
        out.push_str(&format!(
            "  generation {} ({}): {} open; {} closed idle, {} drained
",
            generation.generation,
            if generation.serving {
                "serving"
            } else {
                "NOT SERVING: routed by a generation that was replaced or rolled back"
            },
            generation.open,
            generation.idle_closed,
            generation.drained
        ));
        for route in generation.routes.iter().take(SHOWN_TUNNEL_LINES) {
            out.push_str(&format!(
                "    route {}: {} open
",
                route.route, route.open
            ));
        }
        more(out, generation.routes.len(), "routes");
        let mut pools: Vec<(&str, u64)> = Vec::new();
        for backend in &generation.backends {
            match pools.iter_mut().find(|(pool, _)| *pool == backend.pool) {
                Some((_, open)) => *open += backend.open,
                None => pools.push((&backend.pool, backend.open)),
            }
        }
        for (pool, open) in pools.iter().take(SHOWN_TUNNEL_LINES) {
            out.push_str(&format!(
                "    pool {pool}: {open} open
"
            ));
        }
        more(out, pools.len(), "pools");
        for backend in generation.backends.iter().take(SHOWN_TUNNEL_LINES) {
            out.push_str(&format!(
                "    backend {} (pool {}): {} open
",
                backend.backend, backend.pool, backend.open
            ));
        }
        more(out, generation.backends.len(), "backends");
    }
}

fn more(out: &mut String, listed: usize, what: &str) {
    if listed > SHOWN_TUNNEL_LINES {
        out.push_str(&format!(
            "    … and {} more {what} (`keel status --json`)\n",
            listed - SHOWN_TUNNEL_LINES
        ));
    }
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
            unproven: None,
            kept: Vec::new(),
            health: HealthSummary::default(),
            store_in_sync: true,
            store_error: None,
            notes: Vec::new(),
            uptime_secs: 1,
            descriptors: None,
            connections: keel_proxy::ClientConnections::default(),
            tunnels: Vec::new(),
        }
    }

    #[test]
    fn tunnels_are_listed_per_generation_route_pool_and_backend() {
        use keel_control::tunnel_status::{BackendTunnels, GenerationTunnels, RouteTunnels};
        let mut with = status(0);
        assert!(!render(&with).contains("tunnels"));
        with.tunnels = vec![GenerationTunnels {
            generation: 6,
            serving: false,
            open: 3,
            routes: vec![RouteTunnels {
                route: "live".into(),
                open: 3,
            }],
            backends: vec![
                BackendTunnels {
                    pool: "live".into(),
                    backend: "127.0.0.1:9301".into(),
                    open: 2,
                },
                BackendTunnels {
                    pool: "live".into(),
                    backend: "127.0.0.1:9302".into(),
                    open: 1,
                },
            ],
            idle_closed: 4,
            drained: 0,
        }];
        let text = render(&with);
        for line in [
            "tunnels: 3 open\n",
            "  generation 6 (NOT SERVING: routed by a generation that was replaced or rolled back): 3 open; 4 closed idle, 0 drained\n",
            "    route live: 3 open\n",
            "    pool live: 3 open\n",
            "    backend 127.0.0.1:9301 (pool live): 2 open\n",
            "    backend 127.0.0.1:9302 (pool live): 1 open\n",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
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

    #[test]
    fn an_unproven_generation_says_which_routes_had_no_evidence() {
        let mut with = status(0);
        assert!(!render(&with).contains("UNPROVEN"));
        with.unproven = Some(keel_control::UnprovenStatus {
            generation: 7,
            baseline: 6,
            since: "2026-12-07T11:00:00.000Z".into(),
            waiting_for: vec![keel_control::EvidenceWait {
                route: "cart".into(),
                requests: 3,
                needed: 20,
                certificates: Vec::new(),
            }],
        });
        let text = render(&with);
        assert!(
            text.contains(
                "UNPROVEN: generation 7 is unproven: its watch (against generation 6) ended without evidence from route cart (3 of 20 requests)"
            ),
            "{text}"
        );
    }
}
