//! The generated fleet config of the benchmark loads with exactly the findings its
//! shape implies: no errors (every route test and intent holds), one partial-shadow
//! warning per shop (the GET-only wildcard `/api` route behind the exact hosts' `/api/vN`
//! routes, which also take other methods), and a coverage note.

#[path = "../benches/support/synth.rs"]
mod synth;

use keel_config::{Severity, codes};

#[test]
fn the_generated_config_has_exactly_the_expected_findings() {
    let source = synth::config(2_000);
    let loaded = keel_check::load("synth.toml", &source);
    let report = &loaded.report;
    assert_eq!(
        report.count(Severity::Error),
        0,
        "{:#?}",
        report
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .take(3)
            .collect::<Vec<_>>()
    );
    let partly: Vec<&str> = report
        .diagnostics
        .iter()
        .filter(|d| d.code == codes::PARTLY_SHADOWED)
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(partly.len(), 20, "{partly:#?}");
    assert!(
        partly.iter().all(|m| m.starts_with("route `wild")),
        "{partly:#?}"
    );
    assert_eq!(report.count(Severity::Warning), 20);
    assert!(report.diagnostics.iter().any(|d| d.code == codes::COVERAGE));
    assert!(loaded.config.is_some());
}
