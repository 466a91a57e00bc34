//! What a rollback shows and records beyond the swap: its blast radius before it happens
//! (the active table → the target table on the live sample, never a refusal), and, after
//! it, what the generation it left served, from that generation's own counters (the
//! `traffic` event `keel timeline` reads for "traffic affected").

use std::sync::Arc;

use keel_impact::{Compiled, blast_radius_compiled};
use keel_proxy::Generation;
use keel_proxy::stats::Outcome;
use keel_store::{GenerationId, NewEvent, kind};

use crate::Controller;
use crate::error::ControlError;
use crate::gate::IMPACT_SCHEMA_VERSION;

/// What `generation` served, from its per-generation counters (since it was compiled),
/// as the `traffic` event a rollback to `to` writes: what `keel timeline` reports as
/// "traffic affected".
pub(crate) fn traffic_event(generation: &Generation, to: GenerationId) -> NewEvent {
    let stats = &generation.stats;
    let mut outcomes = [0_u64; 7];
    for route in stats.routes.iter() {
        for (sum, count) in outcomes.iter_mut().zip(route.totals()) {
            *sum += count;
        }
    }
    let count = |outcome: Outcome| outcomes[outcome as usize];
    let requests = stats.requests();
    let (misidentified, server_errors, connect_failures) = (
        count(Outcome::Misidentified),
        count(Outcome::ServerError),
        count(Outcome::ConnectFailure),
    );
    let wrong_or_failed = misidentified + server_errors + connect_failures;
    let share = if requests == 0 {
        0.0
    } else {
        wrong_or_failed as f64 / requests as f64
    };
    NewEvent::new(
        kind::TRAFFIC,
        format!(
            "generation {} served {requests} requests until the rollback to {to}: \
             {misidentified} answered by the wrong application, {server_errors} 5xx, \
             {connect_failures} connect failures",
            generation.id
        ),
    )
    .generation(generation.id)
    .details(serde_json::json!({
        "requests_served": requests,
        "misidentified": misidentified,
        "server_errors": server_errors,
        "connect_failures": connect_failures,
        "wrong_or_failed": wrong_or_failed,
        "affected_share": share,
        "rolled_back_to": to,
    }))
}

/// The blast radius of going from `active` to `target` on the live sample, as the
/// stored impact envelope, plus a note when the sample is empty. Never a refusal.
pub(crate) async fn rollback_blast_radius(
    controller: &Controller,
    active: &Arc<Generation>,
    target: &Arc<Generation>,
) -> Result<(Option<serde_json::Value>, Vec<String>), ControlError> {
    let (active, target) = (active.clone(), target.clone());
    let plane = controller.plane().clone();
    Ok(tokio::task::spawn_blocking(move || {
        let sample = plane.sample().snapshot();
        let report = blast_radius_compiled(
            Compiled {
                config: &active.config,
                table: &active.table,
            },
            Compiled {
                config: &target.config,
                table: &target.table,
            },
            &sample,
        );
        let mut notes = Vec::new();
        if sample.is_empty() {
            notes.push(
                "the live traffic sample is empty: the rollback's blast radius could not be measured"
                    .to_string(),
            );
        }
        let text = format!(
            "Rollback from generation {} to {}: {}",
            active.id,
            target.id,
            report.render_human()
        );
        let envelope = serde_json::json!({
            "schema_version": IMPACT_SCHEMA_VERSION,
            "report": report.to_json(),
            "text": text,
        });
        (Some(envelope), notes)
    })
    .await?)
}
