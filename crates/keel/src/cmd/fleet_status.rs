//! `keel status --fleet NODE_FILE`: every live member of the fleet that NODE_FILE's
//! `[fleet]` table names, read from etcd (not through one node's admin API, so it works
//! while any node is down): the generation each serves, since when, its lag behind the
//! fleet's active generation (a canary node serving the node canary's candidate is in
//! step), its health and whether its etcd session is alive; then the node canary: the
//! rollout in progress or the last one, and its step. Exit 1 when a node drifts or etcd
//! cannot be read. `--format json`: `{"nodes": [...], "rollout": {...} | null}`.

use std::path::Path;
use std::process::ExitCode;

use keel_fleet::{NODE_LEASE_TTL_SECS, NodeStatus, RolloutState};
use keel_store::{now_ms, rfc3339};

use super::{EXIT_FAILED, EXIT_INPUT, block_on, print_json};

pub(crate) fn run(node_file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let Some(node) = keel_fleet::node_config(node_file) else {
        eprintln!(
            "keel: {} has no `[fleet] store = \"etcd\"` table",
            node_file.display()
        );
        return Ok(ExitCode::from(EXIT_INPUT));
    };
    let Some(fleet) = node.fleet.as_ref() else {
        return Ok(ExitCode::from(EXIT_INPUT));
    };
    let endpoints: Vec<String> = fleet.endpoints.iter().map(|e| e.value.clone()).collect();
    let prefix = fleet.prefix.value.clone();
    let read = block_on(async move {
        let nodes = keel_fleet::fleet_status(&endpoints, &prefix).await?;
        let rollout = keel_fleet::fleet_rollout(&endpoints, &prefix).await?;
        Ok::<_, keel_store::StoreError>((nodes, rollout))
    })?;
    let (nodes, rollout) = match read {
        Ok(read) => read,
        Err(error) => {
            eprintln!("keel: cannot read the fleet's status: {error}");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    if json {
        print_json(&serde_json::json!({ "nodes": nodes, "rollout": rollout }))?;
    } else {
        print!("{}", render(&nodes, now_ms()));
        print!("{}", render_rollout(rollout.as_ref()));
    }
    let in_step = nodes.iter().all(|n| n.in_step() && n.healthy);
    Ok(if in_step {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

fn render(nodes: &[NodeStatus], now_ms: i64) -> String {
    let mut out = format!(
        "{:<16} {:>10} {:<25} {:>9} {:<8} {}\n",
        "NODE", "GENERATION", "SINCE", "LAG", "HEALTH", "SESSION"
    );
    if nodes.is_empty() {
        out.push_str("(no live node: none holds a lease under this prefix)\n");
    }
    for node in nodes {
        let generation = node.generation.map_or("-".into(), |g| g.to_string());
        let lag = if node.generation == node.fleet_generation {
            "in step".to_string()
        } else if node.in_step() {
            "canary".to_string()
        } else {
            format!(
                "{:.1}s{}",
                node.lag_ms as f64 / 1000.0,
                node.fleet_generation
                    .map_or(String::new(), |f| format!(" (fleet {f})"))
            )
        };
        // A live lease keeps the key; a status older than the lease means the session stalls.
        let alive = now_ms - node.updated_ms <= NODE_LEASE_TTL_SECS * 1000;
        out.push_str(&format!(
            "{:<16} {:>10} {:<25} {:>9} {:<8} {}\n",
            node.node,
            generation,
            rfc3339(node.since_ms),
            lag,
            if node.healthy { "ok" } else { "degraded" },
            if alive { "alive" } else { "stale" }
        ));
    }
    out
}

/// The node canary: `rollout: generation N step (canaries ...) ...`.
fn render_rollout(rollout: Option<&RolloutState>) -> String {
    let Some(rollout) = rollout else {
        return "rollout: none yet (no apply has had a node canary)\n".to_string();
    };
    let mut line = format!(
        "rollout: generation {} {} on {} (clean: {}); applied on {} over generation {}",
        rollout.generation,
        rollout.step.as_str(),
        rollout.canaries.join(", "),
        if rollout.clean.is_empty() {
            "none yet".to_string()
        } else {
            rollout.clean.join(", ")
        },
        rollout.by,
        rollout
            .previous
            .map_or_else(|| "none".to_string(), |p| p.to_string()),
    );
    if rollout.in_progress() {
        line.push_str(&format!(
            "; the rest follow once it is watched clean, not before {}",
            rfc3339(rollout.watch_ends_ms())
        ));
    }
    if let Some(reason) = &rollout.reason {
        line.push_str(&format!("; {reason}"));
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, generation: u64, fleet: u64) -> NodeStatus {
        NodeStatus {
            node: name.into(),
            generation: Some(generation),
            since_ms: 0,
            fleet_generation: Some(fleet),
            lag_ms: if generation == fleet { 0 } else { 4200 },
            healthy: true,
            updated_ms: 10_000,
            candidate: None,
            canary: false,
        }
    }

    #[test]
    fn a_drifting_node_shows_its_lag_and_the_fleets_generation() {
        let text = render(&[node("lb-1", 3, 3), node("lb-2", 2, 3)], 11_000);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].contains("lb-1") && lines[1].contains("in step"),
            "{text}"
        );
        assert!(
            lines[2].contains("4.2s (fleet 3)") && lines[2].contains("alive"),
            "{text}"
        );
        let stale = render(&[node("lb-3", 3, 3)], 60_000);
        assert!(stale.contains("stale"), "{stale}");
    }

    #[test]
    fn a_canary_node_serving_the_candidate_is_in_step_and_the_rollout_is_shown() {
        let canary = NodeStatus {
            candidate: Some(4),
            canary: true,
            ..node("lb-1", 4, 3)
        };
        assert!(canary.in_step());
        let text = render(&[canary, node("lb-2", 3, 3)], 11_000);
        assert!(
            text.lines().nth(1).is_some_and(|l| l.contains("canary")),
            "{text}"
        );
        let rollout = RolloutState {
            generation: 4,
            previous: Some(3),
            by: "lb-1".into(),
            canaries: vec!["lb-1".into()],
            clean: Vec::new(),
            step: keel_fleet::RolloutStep::Canary,
            started_ms: 10_000,
            watch_ms: 30_000,
            reason: None,
            updated_ms: 10_000,
            batch: None,
            step_started_ms: None,
        };
        let line = render_rollout(Some(&rollout));
        assert!(
            line.starts_with("rollout: generation 4 canary on lb-1 (clean: none yet)"),
            "{line}"
        );
        let failed = RolloutState {
            step: keel_fleet::RolloutStep::Failed,
            reason: Some("rolled back".into()),
            ..rollout
        };
        assert!(render_rollout(Some(&failed)).contains("failed on lb-1"));
        assert!(render_rollout(None).contains("none yet"));
    }
}
