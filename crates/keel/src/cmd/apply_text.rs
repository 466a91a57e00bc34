//! What `keel apply` prints for people, as text (stdout and stderr kept apart), so that
//! the wording can be tested without a server.
//!
//! * A refusal says "refused" (or, for a dry run, "dry run: REFUSED") and what refused it;
//!   "generation N still serves" only when something serves.
//! * A dry run under `--force` that overrode something says it "would be applied because
//!   forced", never that the config "passes check and gate".
//! * A config refused by `keel check` prints the check failure only: no blast radius.
//! * Stages are named as in the JSON (`check`, `gate`, …), never in Debug form, and
//!   durations under a second are in milliseconds.

use std::fmt::Write as _;

use keel_control::{
    ApplyOutcome, ApplyStatus, GuardMode, GuardReport, GuardResult, Refusal, Stage,
};

/// Text for stdout and for stderr.
#[derive(Debug, Default)]
pub(crate) struct Rendered {
    pub(crate) out: String,
    pub(crate) err: String,
}

/// The stage as the JSON names it.
pub(crate) fn stage_name(stage: Stage) -> &'static str {
    stage.name()
}

/// `250 ms`, `1.4 s`.
pub(crate) fn millis(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

fn refusal_line(refusal: &Refusal) -> String {
    match &refusal.code {
        Some(code) => format!("{} {code}: {}", stage_name(refusal.stage), refusal.message),
        None => format!("{}: {}", stage_name(refusal.stage), refusal.message),
    }
}

/// Everything `keel apply` prints for `outcome` (`dry_run`: the request was a dry run).
pub(crate) fn render(outcome: &ApplyOutcome, dry_run: bool) -> Rendered {
    let mut r = Rendered::default();
    let has_findings = outcome.report["diagnostics"]
        .as_array()
        .is_some_and(|d| !d.is_empty());
    let refused_before_swap = outcome.status == ApplyStatus::Refused
        && !outcome.refusals.iter().any(|x| x.stage == Stage::Guard);
    if has_findings || refused_before_swap {
        r.err.push_str(&outcome.report_text);
    }
    let check_refused = outcome.status == ApplyStatus::Refused
        && outcome.refusals.iter().any(|x| x.stage == Stage::Check);
    if !check_refused {
        blast_radius(&mut r, outcome);
    }
    for overridden in &outcome.overridden {
        let _ = writeln!(r.err, "keel: FORCED past {}", refusal_line(overridden));
    }
    let t = &outcome.timings;
    let previous = outcome.previous.map(|p| p.to_string());
    match outcome.status {
        ApplyStatus::Applied => {
            let _ = writeln!(
                r.out,
                "applied: generation {} {} (was {}){}; check {} ms, gate {} ms, compile {} ms, persist {} ms, swap {} µs",
                outcome.generation.unwrap_or(0),
                match outcome.guard.as_ref().map(|g| g.mode) {
                    Some(GuardMode::Canary) => "was promoted from its canary",
                    _ => "is active",
                },
                previous.as_deref().unwrap_or("none"),
                if outcome.forced { ", FORCED" } else { "" },
                t.check_us / 1000,
                t.gate_us / 1000,
                t.compile_us / 1000,
                t.persist_us / 1000,
                t.swap_us
            );
        }
        ApplyStatus::DryRun if outcome.forced => {
            let _ = writeln!(
                r.out,
                "dry run: would be applied because forced (--force overrides {} refusal{}), replacing generation {}; nothing changed",
                outcome.overridden.len(),
                if outcome.overridden.len() == 1 {
                    ""
                } else {
                    "s"
                },
                previous.as_deref().unwrap_or("none")
            );
        }
        ApplyStatus::DryRun => {
            let _ = writeln!(
                r.out,
                "dry run: the config passes check and gate and would replace generation {}; nothing changed",
                previous.as_deref().unwrap_or("none")
            );
        }
        ApplyStatus::Refused => refused(&mut r, outcome, dry_run, previous.as_deref()),
    }
    if let Some(guard) = &outcome.guard {
        guard_lines(&mut r, guard, outcome.generation.unwrap_or(0));
    }
    for note in &outcome.notes {
        let _ = writeln!(r.out, "note: {note}");
    }
    r
}

fn refused(r: &mut Rendered, outcome: &ApplyOutcome, dry_run: bool, previous: Option<&str>) {
    let guard = outcome.refusals.iter().any(|x| x.stage == Stage::Guard);
    let head = if guard {
        "rolled back".to_string()
    } else if dry_run {
        "dry run: REFUSED (an apply would be refused; nothing was recorded)".to_string()
    } else {
        "refused".to_string()
    };
    let recorded = outcome
        .generation
        .map(|g| {
            if guard {
                format!(" (generation {g} is recorded as rolled back)")
            } else {
                format!(" (recorded as rejected generation {g})")
            }
        })
        .unwrap_or_default();
    let _ = writeln!(r.err, "{head}{recorded}:");
    for refusal in &outcome.refusals {
        let _ = writeln!(r.err, "  {}", refusal_line(refusal));
    }
    if outcome.refusals.iter().any(|x| x.stage == Stage::Gate)
        && !outcome.refusals.iter().any(|x| x.stage == Stage::Check)
    {
        let _ = writeln!(
            r.err,
            "hint: if this movement is intended, apply again with --force -m \"why\" (recorded as forced)"
        );
    }
    if let Some(previous) = previous {
        let _ = writeln!(r.err, "generation {previous} still serves");
    }
}

/// The blast-radius report and verdict, when there is something to look at: a refusal
/// or override by the gate, or a dry run. Otherwise one line.
fn blast_radius(r: &mut Rendered, outcome: &ApplyOutcome) {
    let Some(gate) = &outcome.gate else {
        return;
    };
    let overridden = outcome.overridden.iter().any(|x| x.stage == Stage::Gate);
    let involved = overridden || outcome.refusals.iter().any(|x| x.stage == Stage::Gate);
    if involved || outcome.status == ApplyStatus::DryRun {
        if overridden {
            r.err.push_str(
                "keel: the blast-radius gate refused this change; --force overrides it:\n",
            );
        }
        if let Some(text) = keel_control::impact_text(gate) {
            let text = format!("{}\n", text.trim_end());
            if outcome.status == ApplyStatus::DryRun {
                r.out.push_str(&text);
            } else {
                r.err.push_str(&text);
            }
        }
        return;
    }
    let report = &gate["report"];
    if let (Some(total), Some(share)) = (
        report["total"].as_u64(),
        report["changes_service"]["share"].as_f64(),
    ) {
        let _ = writeln!(
            r.out,
            "blast radius: {} of {total} sampled requests change service (limit {})",
            percent(share),
            percent(gate["gate"]["max_shift"].as_f64().unwrap_or(0.0))
        );
    }
}

/// A share as a percentage with one decimal, never `-0.0%`.
pub(crate) fn percent(share: f64) -> String {
    let value = share * 100.0;
    let value = if value.abs() < 0.05 { 0.0 } else { value };
    format!("{value:.1}%")
}

fn guard_lines(r: &mut Rendered, guard: &GuardReport, generation: u64) {
    let baseline = guard
        .baseline
        .map_or("the previous generation".to_string(), |b| {
            format!("generation {b}")
        });
    match guard.result {
        GuardResult::Watching => {
            let watch = guard.stages.first().map_or(0, |s| s.watch_ms);
            let _ = writeln!(
                r.out,
                "guard: watching generation {generation} for {}; if a detector fires Keel swaps {baseline} back by itself \
                 (`keel status` shows the watch; --wait waits for it)",
                millis(watch)
            );
        }
        GuardResult::Promoted => {
            let _ = writeln!(
                r.out,
                "guard: no alarm in {} of watching{}",
                millis(guard.watched_ms),
                if guard.mode == GuardMode::Canary {
                    format!(" through {} steps", guard.stages.len())
                } else {
                    String::new()
                }
            );
        }
        GuardResult::RolledBack => {
            let _ = writeln!(
                r.err,
                "guard: detected after {}, reverted after {}; {baseline} serves",
                millis(guard.detected_after_ms.unwrap_or(0)),
                millis(guard.reverted_after_ms.unwrap_or(0)),
            );
        }
        GuardResult::Cancelled => {
            let _ = writeln!(
                r.err,
                "guard: {}",
                guard.reason.as_deref().unwrap_or("the watch was cancelled")
            );
        }
        GuardResult::Unwatched => r.out.push_str("guard: not watched (see the note)\n"),
        GuardResult::Unproven => {
            let _ = writeln!(
                r.err,
                "guard: UNPROVEN after {}: {}",
                millis(guard.watched_ms),
                guard
                    .reason
                    .as_deref()
                    .unwrap_or("the watch ended without the evidence it waited for")
            );
        }
        GuardResult::Kept => {
            let _ = writeln!(
                r.err,
                "guard: a detector fired, and the generation keeps serving: {}",
                guard.reason.as_deref().unwrap_or("see `keel status`")
            );
        }
        GuardResult::Bypassed => {
            let _ = writeln!(
                r.err,
                "keel: WARNING: generation {generation} serves UNGUARDED (--no-guard): nothing will revert it by itself"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use keel_control::{ApplyOutcome, ApplyStatus, Refusal, Stage, StageTimings};
    use serde_json::json;

    use super::render;

    fn outcome(status: ApplyStatus) -> ApplyOutcome {
        ApplyOutcome {
            status,
            generation: None,
            previous: Some(1),
            forced: false,
            report: json!({"diagnostics": []}),
            report_text: String::new(),
            refusals: Vec::new(),
            overridden: Vec::new(),
            gate: Some(json!({
                "gate": {"allowed": false, "max_shift": 0.25},
                "report": {"total": 64, "changes_service": {"share": -0.0}},
                "text": "REFUSED by the blast-radius gate (2 reasons)\n\nBlast radius on 64 sampled requests",
            })),
            notes: Vec::new(),
            timings: StageTimings::default(),
            guard: None,
        }
    }

    fn gate_refusal() -> Refusal {
        Refusal {
            stage: Stage::Gate,
            code: None,
            message: "70.0% of the sampled requests would change service".into(),
        }
    }

    #[test]
    fn a_forced_dry_run_says_it_would_be_applied_because_forced() {
        let mut forced = outcome(ApplyStatus::DryRun);
        forced.forced = true;
        forced.overridden = vec![gate_refusal(), gate_refusal()];
        let text = render(&forced, true);
        let all = format!("{}{}", text.out, text.err);
        assert!(
            all.contains("dry run: would be applied because forced (--force overrides 2 refusals)"),
            "{all}"
        );
        assert!(!all.contains("passes check and gate"), "{all}");
        assert!(all.contains("keel: FORCED past gate: 70.0%"), "{all}");
        assert!(!all.contains("Gate"), "no Debug stage names: {all}");
    }

    #[test]
    fn a_refused_dry_run_says_refused() {
        let mut refused = outcome(ApplyStatus::Refused);
        refused.refusals = vec![gate_refusal()];
        let text = render(&refused, true);
        assert!(
            text.err.starts_with("dry run: REFUSED") || text.err.contains("\ndry run: REFUSED"),
            "{}",
            text.err
        );
        assert!(text.err.contains("  gate: 70.0%"), "{}", text.err);
        assert!(
            text.err.contains("generation 1 still serves"),
            "{}",
            text.err
        );
    }

    #[test]
    fn a_dry_run_that_fails_check_prints_the_check_failure_only() {
        let mut failed = outcome(ApplyStatus::Refused);
        failed.previous = None;
        failed.report_text = "error[K102]: route `checkout` must be answered by checkout\n".into();
        failed.refusals = vec![Refusal {
            stage: Stage::Check,
            code: Some("K102".into()),
            message: "route `checkout` must be answered by checkout".into(),
        }];
        let text = render(&failed, true);
        let all = format!("{}{}", text.out, text.err);
        assert!(all.contains("error[K102]"), "{all}");
        assert!(all.contains("  check K102: route `checkout`"), "{all}");
        for leak in [
            "blast radius",
            "Blast radius",
            "still serves",
            "[Check",
            "-0.0%",
        ] {
            assert!(!all.contains(leak), "{leak:?} in {all}");
        }
    }

    #[test]
    fn shares_never_print_minus_zero_and_durations_are_in_ms() {
        let plain = outcome(ApplyStatus::Applied);
        let mut plain = plain;
        plain.gate = Some(json!({"gate": {"max_shift": 0.25},
            "report": {"total": 64, "changes_service": {"share": -0.0}}}));
        let text = render(&plain, false);
        assert!(
            text.out
                .contains("blast radius: 0.0% of 64 sampled requests change service (limit 25.0%)"),
            "{}",
            text.out
        );
        assert_eq!(super::millis(57), "57 ms");
        assert_eq!(super::millis(1500), "1.5 s");
    }
}
