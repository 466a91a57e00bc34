//! One-line descriptions of a recorded change: what it changed (the config change summary), what
//! `keel check` said, and what the blast-radius report said. Shared by the timeline and the
//! playbook's "who changed what recently".
//!
//! The change summary comes from the apply event's `details.diff_summary` when the control plane
//! stored one (a string, a list of strings, or an object with a `summary` string); otherwise it is
//! computed here with [`keel_config::semantic_diff`] (the diff `keel diff` prints) from the previous
//! generation's stored config text.

use std::collections::HashMap;
use std::rc::Rc;

use keel_config::Parsed;
use keel_store::{GenerationId, GenerationRecord, Store};
use serde::Serialize;
use serde_json::Value;

use crate::text::percent;
use keel_config::{describe_config, semantic_diff};

/// Where a change summary came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffSource {
    /// The apply event's `details.diff_summary`, written by the control plane.
    Event,
    /// Computed here from the previous generation's config text and this one.
    Computed,
    /// Nothing was serving before: the summary describes the whole config.
    FirstGeneration,
    /// Could not be computed (the previous generation is unknown or unreadable).
    Unavailable,
}

/// A change summary and its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeSummary {
    /// One line.
    pub text: String,
    /// Where it came from.
    pub source: DiffSource,
}

/// The generation a change should be compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Previous {
    /// This one was serving when the change was made.
    Known(GenerationId),
    /// Nothing was serving: a first generation.
    Nothing,
    /// Not recorded.
    Unknown,
}

impl Previous {
    /// From an apply event's `details.previous_active` (a number, or `null` for a first apply).
    pub(crate) fn from_details(details: &Value) -> Previous {
        match details.get("previous_active") {
            Some(Value::Null) => Previous::Nothing,
            Some(value) => value.as_u64().map_or(Previous::Unknown, Previous::Known),
            None => Previous::Unknown,
        }
    }
}

/// What `record` changed, compared with `previous` (see the module doc for the sources).
pub fn change_summary(
    store: &dyn Store,
    record: &GenerationRecord,
    details: &Value,
) -> ChangeSummary {
    summarize(
        store,
        &mut ParsedConfigs::default(),
        record,
        details,
        Previous::from_details(details),
    )
}

/// Parsed configs by generation: consecutive applies share one generation each (the new one of
/// an apply is the old one of the next), so each config text is parsed once per document.
#[derive(Default)]
pub(crate) struct ParsedConfigs(HashMap<GenerationId, Rc<Parsed>>);

/// Parsed configs kept at once (8): enough for applies interleaved with rollbacks, bounded for
/// long windows of large configs.
const PARSED_CONFIGS_KEPT: usize = 8;

impl ParsedConfigs {
    fn get(&mut self, record: &GenerationRecord) -> Rc<Parsed> {
        if let Some(parsed) = self.0.get(&record.id) {
            return parsed.clone();
        }
        if self.0.len() >= PARSED_CONFIGS_KEPT
            && let Some(oldest) = self.0.keys().min().copied()
        {
            self.0.remove(&oldest);
        }
        let parsed = Rc::new(keel_config::parse(&record.config_text));
        self.0.insert(record.id, parsed.clone());
        parsed
    }
}

pub(crate) fn summarize(
    store: &dyn Store,
    parsed: &mut ParsedConfigs,
    record: &GenerationRecord,
    details: &Value,
    previous: Previous,
) -> ChangeSummary {
    if let Some(text) = stored_summary(details) {
        return ChangeSummary {
            text,
            source: DiffSource::Event,
        };
    }
    let new = parsed.get(record);
    let caveat = if new.has_errors() {
        " (its config has parse errors: summary may be incomplete)"
    } else {
        ""
    };
    match previous {
        Previous::Nothing => ChangeSummary {
            text: format!("first generation: {}{caveat}", describe_config(&new.config)),
            source: DiffSource::FirstGeneration,
        },
        Previous::Unknown => unavailable("the generation it replaced is not recorded"),
        Previous::Known(id) => match store.generation(id) {
            Ok(Some(old)) => {
                let old = parsed.get(&old);
                ChangeSummary {
                    text: format!(
                        "vs generation {id}: {}{caveat}",
                        semantic_diff(&old.config, &new.config).summary_line()
                    ),
                    source: DiffSource::Computed,
                }
            }
            Ok(None) => unavailable(&format!("generation {id} is not in the store")),
            Err(error) => unavailable(&format!("generation {id} could not be read: {error}")),
        },
    }
}

fn unavailable(reason: &str) -> ChangeSummary {
    ChangeSummary {
        text: format!("change not summarised: {reason}"),
        source: DiffSource::Unavailable,
    }
}

fn stored_summary(details: &Value) -> Option<String> {
    let text = match details.get("diff_summary")? {
        Value::String(text) => text.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        Value::Object(object) => object.get("summary")?.as_str()?.to_owned(),
        _ => return None,
    };
    let text = text.replace(['\n', '\r'], " ");
    (!text.trim().is_empty()).then_some(text)
}

/// Most finding codes named in a check summary.
const CHECK_CODES_SHOWN: usize = 3;

/// `check: 0 errors, 1 warning (K203)` from a stored `keel check` JSON report
/// (`{"errors": n, "warnings": n, "diagnostics": [{"code", "severity", ..}]}`).
pub fn check_summary(report: &Value) -> String {
    let (Some(errors), Some(warnings)) = (
        report.get("errors").and_then(Value::as_u64),
        report.get("warnings").and_then(Value::as_u64),
    ) else {
        return "check: not recorded".to_owned();
    };
    let mut text = format!(
        "check: {errors} error{}, {warnings} warning{}",
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" }
    );
    let codes: Vec<&str> = report
        .get("diagnostics")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter(|d| d.get("severity").and_then(Value::as_str) != Some("note"))
                .filter_map(|d| d.get("code").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if !codes.is_empty() {
        let mut shown: Vec<&str> = Vec::new();
        for code in codes {
            if !shown.contains(&code) && shown.len() < CHECK_CODES_SHOWN {
                shown.push(code);
            }
        }
        text.push_str(&format!(" ({})", shown.join(", ")));
    }
    text
}

/// `blast radius: 70.0% of 400 sampled requests change service (most: shop.example.com
/// 70.0%); gate refused` from a stored impact report: the `keel-impact` report itself, or an
/// object holding it under `report` next to the gate's verdict under `verdict` or `gate`.
pub fn impact_summary(impact: Option<&Value>) -> String {
    let Some(value) = impact.filter(|v| !v.is_null()) else {
        return "blast radius: not computed".to_owned();
    };
    let report = value.get("report").unwrap_or(value);
    let verdict = value.get("verdict").or_else(|| value.get("gate"));
    let mut parts = Vec::new();
    let total = report.get("total").and_then(Value::as_u64);
    let changes = report
        .get("changes_service")
        .and_then(|a| a.get("share"))
        .and_then(Value::as_f64);
    if let (Some(total), Some(share)) = (total, changes) {
        parts.push(format!(
            "{} of {total} sampled requests change service",
            percent(share)
        ));
    }
    let worst = report
        .get("hosts")
        .and_then(Value::as_array)
        .and_then(|hosts| {
            hosts
                .iter()
                .filter_map(|h| {
                    let share = h.get("changes_service")?.get("share")?.as_f64()?;
                    Some((h.get("host")?.as_str()?, share))
                })
                .max_by(|a, b| a.1.total_cmp(&b.1))
        });
    if let Some((host, share)) = worst.filter(|(_, share)| *share > 0.0) {
        parts.push(format!("most: {host} {}", percent(share)));
    }
    let gate = verdict
        .and_then(|v| v.get("allowed"))
        .and_then(Value::as_bool)
        .map(|allowed| {
            if allowed {
                "gate accepted"
            } else {
                "gate refused"
            }
        });
    match (parts.is_empty(), gate) {
        (true, None) => "blast radius: recorded (format not recognised)".to_owned(),
        (true, Some(gate)) => format!("blast radius: {gate}"),
        (false, None) => format!("blast radius: {}", parts.join("; ")),
        (false, Some(gate)) => format!("blast radius: {}; {gate}", parts.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn check_reports_are_counted() {
        let report = json!({"version": 1, "errors": 0, "warnings": 2, "diagnostics": [
            {"code": "K203", "severity": "warning"}, {"code": "K203", "severity": "warning"},
            {"code": "K900", "severity": "note"}]});
        assert_eq!(check_summary(&report), "check: 0 errors, 2 warnings (K203)");
        assert_eq!(check_summary(&json!({})), "check: not recorded");
    }

    #[test]
    fn impact_reports_are_summarised() {
        let report = json!({"total": 400, "changes_service": {"requests": 280.0, "share": 0.7},
            "hosts": [{"host": "shop.example.com", "changes_service": {"share": 0.7}}]});
        assert_eq!(
            impact_summary(Some(&report)),
            "blast radius: 70.0% of 400 sampled requests change service; most: shop.example.com 70.0%"
        );
        let wrapped = json!({"report": report, "verdict": {"allowed": false}});
        assert!(impact_summary(Some(&wrapped)).ends_with("; gate refused"));
        assert_eq!(impact_summary(None), "blast radius: not computed");
        assert_eq!(
            impact_summary(Some(&json!({"x": 1}))),
            "blast radius: recorded (format not recognised)"
        );
    }

    #[test]
    fn stored_summaries_win() {
        assert_eq!(
            stored_summary(&json!({"diff_summary": ["a", "b"]})),
            Some("a; b".to_owned())
        );
        assert_eq!(
            stored_summary(&json!({"diff_summary": {"summary": "x\ny"}})),
            Some("x y".to_owned())
        );
        assert_eq!(stored_summary(&json!({"diff_summary": "  "})), None);
        assert_eq!(
            Previous::from_details(&json!({"previous_active": null})),
            Previous::Nothing
        );
        assert_eq!(
            Previous::from_details(&json!({"previous_active": 3})),
            Previous::Known(3)
        );
        assert_eq!(Previous::from_details(&json!({})), Previous::Unknown);
    }
}
