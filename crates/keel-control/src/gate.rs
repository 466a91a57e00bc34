//! The blast-radius gate: before a checked config is compiled, replay the data plane's
//! live traffic sample through the active generation's routing table and the
//! candidate's, and refuse the change when it moves more than `[safety] max_shift` of
//! any host's traffic to another service or breaks an `[[intents]]` bound
//! (`keel_impact::gate_change`: the stricter policy of the two configs).
//!
//! The verdict's report is stored with the generation (`impact_report`), refused or
//! applied, so the audit log says what a change would have moved. Its JSON is
//!
//! ```json
//! {"schema_version": 1, "gate": <GateVerdict::to_json>, "report": <ImpactReport::to_json>,
//!  "text": "REFUSED by the blast-radius gate …\n\nBlast radius on 121 sampled requests …"}
//! ```
//!
//! With nothing to compare (the first generation) the gate allows, with a note. With no
//! sampled request for a host whose routes the change affects (a fresh start, a quiet
//! host) it refuses, naming the host and the routes (`keel_impact::evidence`): no
//! evidence is not good evidence; `--force` applies without it. Hosts the live sample
//! has no request of are judged on the sample persisted before the last restart
//! (`persisted_sample.rs`), when there is one.

use keel_impact::evidence::unjudged_hosts;
use keel_impact::{Compiled, blast_radius_compiled, gate_change};
use keel_route::RouteTable;

use crate::hooks::{Gate, GateInput, GateVerdict};
use crate::persisted_sample::with_persisted;

/// Version of the stored impact report's envelope (`gate`, `report`, `text`).
pub const IMPACT_SCHEMA_VERSION: u32 = 1;

/// The gate `keel serve` installs: blast radius on the live sample (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct BlastRadiusGate;

impl Gate for BlastRadiusGate {
    fn evaluate(&self, input: &GateInput<'_>) -> GateVerdict {
        let Some(current) = input.current else {
            return allow_with_note(
                "first generation: there is no active generation to compute a blast radius against",
            );
        };
        let table = match RouteTable::compile(input.candidate) {
            Ok(table) => table,
            // The compile stage refuses it with the same error; the gate has nothing to add.
            Err(error) => {
                return allow_with_note(&format!(
                    "blast radius not computed: the config does not compile ({error})"
                ));
            }
        };
        let (sample, from_disk) = with_persisted(input.traffic.snapshot(), input.persisted);
        let report = blast_radius_compiled(
            Compiled {
                config: &current.config,
                table: &current.table,
            },
            Compiled {
                config: input.candidate,
                table: &table,
            },
            &sample,
        );
        let verdict = gate_change(&report, &current.config, input.candidate);
        let mut notes = verdict.notes.clone();
        if sample.is_empty() {
            notes = vec![
                "the live traffic sample is empty (fresh start or no traffic yet): the \
                 blast-radius gate has no evidence to judge"
                    .to_string(),
            ];
        } else if from_disk > 0 {
            notes.push(format!(
                "{from_disk} of the {} sampled requests were persisted before the last restart \
                 (hosts the live sample has no request of)",
                sample.len()
            ));
        }
        let mut reasons: Vec<String> = verdict.reasons.iter().map(ToString::to_string).collect();
        // No evidence is not good evidence: a host the change affects needs traffic.
        for unjudged in unjudged_hosts(&current.config, input.candidate, &sample) {
            reasons.push(format!(
                "no sampled traffic for {} (route{} {} change{}): the gate has no evidence of \
                 what this change does there; wait for traffic, or --force",
                unjudged.host,
                if unjudged.routes.len() == 1 { "" } else { "s" },
                unjudged.routes.join(", "),
                if unjudged.routes.len() == 1 { "s" } else { "" },
            ));
        }
        GateVerdict {
            allow: reasons.is_empty(),
            reasons,
            report: Some(serde_json::json!({
                "schema_version": IMPACT_SCHEMA_VERSION,
                "gate": verdict.to_json(),
                "report": report.to_json(),
                "text": verdict.render_human(),
            })),
            notes,
        }
    }
}

fn allow_with_note(note: &str) -> GateVerdict {
    GateVerdict {
        notes: vec![note.to_string()],
        ..GateVerdict::allow()
    }
}

/// The human text of a stored impact report (`text`), if it has one.
pub fn impact_text(report: &serde_json::Value) -> Option<&str> {
    report.get("text").and_then(serde_json::Value::as_str)
}
