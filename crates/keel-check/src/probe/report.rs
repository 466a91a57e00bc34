//! Probe rows as findings (K109 misidentified, K210 down), as a table for people and as
//! JSON for CI. Pure: no I/O.

use keel_config::{Diagnostic, codes};
use serde_json::{Value, json};

use super::{ProbeRow, Verdict};

/// K109 for every misidentified backend, K210 for every one that is down.
pub fn probe_diagnostics(rows: &[ProbeRow]) -> Vec<Diagnostic> {
    rows.iter().filter_map(diagnostic).collect()
}

fn diagnostic(row: &ProbeRow) -> Option<Diagnostic> {
    let outcome = &row.outcome;
    let what = format!("backend {} of pool `{}`", row.backend, row.pool);
    let diagnostic = match outcome.verdict {
        Verdict::Ok => return None,
        Verdict::Misidentified => Diagnostic::error(
            codes::MISIDENTIFIED_BACKEND,
            format!(
                "{what} does not answer as service `{}`: {}",
                row.service, outcome.detail
            ),
        )
        .at(row.span, "this address answers as another application")
        .with_note("requests for this service would reach the wrong application; Keel gives a misidentified backend no traffic, so the pool runs short")
        .with_help("fix the backend address in this pool, or make the backend send its identity header"),
        Verdict::Down => Diagnostic::warning(
            codes::BACKEND_DOWN,
            format!("{what} is down: {}", outcome.detail),
        )
        .at(row.span, "probe failed")
        .with_help("start the backend or fix its address; Keel sends it no traffic until health checks pass"),
    };
    Some(diagnostic.with_data(row_json(row)))
}

fn row_json(row: &ProbeRow) -> Value {
    json!({
        "pool": row.pool,
        "service": row.service,
        "backend": row.backend.to_string(),
        "reachable": row.outcome.reachable,
        "status": row.outcome.status,
        "identity_expected": row.expected_identity.as_ref().map(|i| json!({ "header": i.header, "equals": i.equals })),
        "identity_seen": row.outcome.identity_seen,
        "verdict": row.outcome.verdict,
        "detail": row.outcome.detail,
    })
}

/// The rows as a JSON array (the `probes` field of `keel check --probe --format json`).
pub fn rows_json(rows: &[ProbeRow]) -> Value {
    Value::Array(rows.iter().map(row_json).collect())
}

/// The rows as an aligned text table: pool, backend, reachable, status, identity seen,
/// verdict.
pub fn render_table(rows: &[ProbeRow]) -> String {
    let header = [
        "pool",
        "backend",
        "reachable",
        "status",
        "identity seen",
        "verdict",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|row| {
            let o = &row.outcome;
            [
                row.pool.clone(),
                row.backend.to_string(),
                if o.reachable { "yes" } else { "no" }.to_string(),
                o.status.map_or("-".to_string(), |s| s.to_string()),
                match (&row.expected_identity, &o.identity_seen) {
                    (None, _) => "(no identity)".to_string(),
                    (Some(_), None) => "-".to_string(),
                    (Some(_), Some(seen)) => seen.escape_debug().to_string(),
                },
                o.verdict.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(&header.map(String::from));
    for row in &cells {
        line(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::ProbeOutcome;
    use super::*;
    use keel_config::{Identity, Span};

    fn row(verdict: Verdict, seen: Option<&str>) -> ProbeRow {
        ProbeRow {
            pool: "api".into(),
            service: "api".into(),
            backend: "127.0.0.1:9002".parse().expect("addr"),
            span: Span::new(3, 9),
            expected_identity: Some(Identity {
                header: "x-service".into(),
                equals: "api".into(),
            }),
            outcome: ProbeOutcome {
                reachable: verdict != Verdict::Down,
                status: (verdict != Verdict::Down).then_some(200),
                identity_seen: seen.map(String::from),
                verdict,
                detail: "d".into(),
            },
        }
    }

    #[test]
    fn verdicts_map_to_codes() {
        let rows = [
            row(Verdict::Ok, Some("api")),
            row(Verdict::Misidentified, Some("web")),
            row(Verdict::Down, None),
        ];
        let found: Vec<_> = probe_diagnostics(&rows).iter().map(|d| d.code).collect();
        assert_eq!(
            found,
            vec![codes::MISIDENTIFIED_BACKEND, codes::BACKEND_DOWN]
        );
    }

    #[test]
    fn the_table_has_a_row_per_backend() {
        let table = render_table(&[row(Verdict::Misidentified, Some("web"))]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("pool"));
        assert!(lines[1].contains("127.0.0.1:9002"));
        assert!(lines[1].contains("web"));
        assert!(lines[1].ends_with("misidentified"));
    }
}
