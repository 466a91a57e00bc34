//! Findings about a config: errors and warnings with a lint id, a position, what is
//! wrong and how to fix it.
//!
//! Parsing, validation, lints, route tests and probes all speak [`Diagnostic`], so a
//! report is one list whatever produced it. [`Report`] renders it for people (through
//! codespan-reporting, with a source snippet and a caret) and as the stable JSON
//! schema documented in `docs/lints.md`.

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;
use serde::Serialize;

use crate::span::{Span, line_col};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The config must not be applied.
    Error,
    /// The config may be applied, but probably does not do what its author meant.
    Warning,
    /// Information, such as route coverage.
    Note,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnostic {
    /// Stable lint id, such as `K101`.
    pub code: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// One line: what is wrong.
    pub message: String,
    /// Where it is, if it has a place in the source.
    #[serde(skip)]
    pub span: Option<Span>,
    /// A short label shown under the caret.
    pub label: String,
    /// Other places that explain the finding (the earlier route that shadows, …).
    #[serde(skip)]
    pub related: Vec<(Span, String)>,
    /// Extra lines of explanation (a witness request, expected vs got, …).
    pub notes: Vec<String>,
    /// How to fix it.
    pub help: Option<String>,
    /// Structured detail for machines (a witness request, expected vs got, a computed
    /// share); its shape per lint id is documented in `docs/lints.md`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Diagnostic {
    /// A finding of the given severity.
    pub fn new(code: &'static str, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            code,
            severity,
            message: message.into(),
            span: None,
            label: String::new(),
            related: Vec::new(),
            notes: Vec::new(),
            help: None,
            data: None,
        }
    }

    /// An error.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, Severity::Error, message)
    }

    /// A warning.
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, Severity::Warning, message)
    }

    /// A note.
    pub fn note(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, Severity::Note, message)
    }

    /// Points the finding at `span`, with a label under the caret.
    pub fn at(mut self, span: Span, label: impl Into<String>) -> Self {
        self.span = Some(span);
        self.label = label.into();
        self
    }

    /// Adds another place that explains the finding.
    pub fn with_related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }

    /// Adds a line of explanation.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Says how to fix it.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Attaches structured detail for the JSON report.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }

    fn to_codespan(&self) -> cs::Diagnostic<()> {
        let severity = match self.severity {
            Severity::Error => cs::Severity::Error,
            Severity::Warning => cs::Severity::Warning,
            Severity::Note => cs::Severity::Note,
        };
        let mut labels = Vec::new();
        if let Some(span) = self.span {
            labels.push(cs::Label::primary((), span.range()).with_message(&self.label));
        }
        for (span, label) in &self.related {
            labels.push(cs::Label::secondary((), span.range()).with_message(label));
        }
        let mut notes = self.notes.clone();
        if let Some(help) = &self.help {
            notes.push(format!("help: {help}"));
        }
        cs::Diagnostic::new(severity)
            .with_code(self.code)
            .with_message(&self.message)
            .with_labels(labels)
            .with_notes(notes)
    }
}

/// Every finding about one config source.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The file name findings are reported against.
    pub file: String,
    /// The source text, for snippets and positions.
    pub source: String,
    /// The findings, in the order they were made.
    pub diagnostics: Vec<Diagnostic>,
}

/// The JSON form of one finding (schema version 1, documented in `docs/lints.md`).
#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    #[serde(flatten)]
    diagnostic: &'a Diagnostic,
    file: &'a str,
    line: Option<usize>,
    column: Option<usize>,
    span: Option<[usize; 2]>,
    related: Vec<JsonRelated<'a>>,
}

#[derive(Serialize)]
struct JsonRelated<'a> {
    line: usize,
    column: usize,
    span: [usize; 2],
    label: &'a str,
}

/// The JSON report: `{"version":1,"file":..,"errors":n,"warnings":n,"diagnostics":[..]}`.
#[derive(Serialize)]
struct JsonReport<'a> {
    version: u32,
    file: &'a str,
    errors: usize,
    warnings: usize,
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

impl Report {
    /// An empty report about `source`, read from `file`.
    pub fn new(file: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            source: source.into(),
            diagnostics: Vec::new(),
        }
    }

    /// Adds a finding.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// Adds many findings.
    pub fn extend(&mut self, diagnostics: impl IntoIterator<Item = Diagnostic>) {
        self.diagnostics.extend(diagnostics);
    }

    /// Number of findings of a severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }

    /// True when any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.count(Severity::Error) > 0
    }

    /// `file:line:column` of a span.
    pub fn position(&self, span: Span) -> String {
        let (line, column) = line_col(&self.source, span.start);
        format!("{}:{line}:{column}", self.file)
    }

    /// Human output: findings grouped by severity (errors, then warnings, then notes),
    /// each with its lint id, position, snippet, caret, explanation and fix.
    pub fn render_human(&self) -> String {
        let files = SimpleFile::new(self.file.as_str(), self.source.as_str());
        let config = term::Config::default();
        let mut out = String::new();
        let mut ordered: Vec<&Diagnostic> = self.diagnostics.iter().collect();
        ordered.sort_by_key(|d| d.severity);
        for diagnostic in ordered {
            if let Some(span) = diagnostic.span {
                out.push_str(&format!("{}: ", self.position(span)));
            }
            let rendered = term::emit_into_string(&config, &files, &diagnostic.to_codespan())
                .unwrap_or_else(|_| {
                    format!(
                        "{}[{}]: {}\n",
                        diagnostic.severity_word(),
                        diagnostic.code,
                        diagnostic.message
                    )
                });
            out.push_str(&rendered);
            out.push('\n');
        }
        out.push_str(&self.summary_line());
        out.push('\n');
        out
    }

    /// `2 errors, 1 warning` or `ok: no findings`.
    pub fn summary_line(&self) -> String {
        let errors = self.count(Severity::Error);
        let warnings = self.count(Severity::Warning);
        if errors == 0 && warnings == 0 {
            return format!("{}: ok, no errors or warnings", self.file);
        }
        format!(
            "{}: {errors} error{}, {warnings} warning{}",
            self.file,
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        )
    }

    /// The stable JSON schema (version 1).
    pub fn to_json(&self) -> serde_json::Value {
        let diagnostics = self
            .diagnostics
            .iter()
            .map(|d| {
                let (line, column) = match d.span {
                    Some(span) => {
                        let (l, c) = line_col(&self.source, span.start);
                        (Some(l), Some(c))
                    }
                    None => (None, None),
                };
                JsonDiagnostic {
                    diagnostic: d,
                    file: &self.file,
                    line,
                    column,
                    span: d.span.map(|s| [s.start, s.end]),
                    related: d
                        .related
                        .iter()
                        .map(|(span, label)| {
                            let (line, column) = line_col(&self.source, span.start);
                            JsonRelated {
                                line,
                                column,
                                span: [span.start, span.end],
                                label,
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        let report = JsonReport {
            version: 1,
            file: &self.file,
            errors: self.count(Severity::Error),
            warnings: self.count(Severity::Warning),
            diagnostics,
        };
        serde_json::to_value(report).unwrap_or(serde_json::Value::Null)
    }
}

impl Diagnostic {
    fn severity_word(&self) -> &'static str {
        match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_output_names_position_code_and_fix() {
        let mut report = Report::new("keel.toml", "[pools.a]\nservice = \"x\"\n");
        report.push(
            Diagnostic::error("K101", "unknown service `x`")
                .at(Span::new(20, 23), "no such service")
                .with_help("declare [services.x]"),
        );
        let text = report.render_human();
        assert!(text.contains("keel.toml:2:11"), "{text}");
        assert!(text.contains("K101"), "{text}");
        assert!(text.contains("^^^"), "{text}");
        assert!(text.contains("help: declare [services.x]"), "{text}");
        assert!(text.contains("1 error, 0 warnings"), "{text}");
    }

    #[test]
    fn json_output_has_line_and_column() {
        let mut report = Report::new("k.toml", "a\nbc\n");
        report.push(Diagnostic::warning("K201", "w").at(Span::new(3, 4), "here"));
        let json = report.to_json();
        assert_eq!(json["version"], 1);
        assert_eq!(json["warnings"], 1);
        assert_eq!(json["diagnostics"][0]["line"], 2);
        assert_eq!(json["diagnostics"][0]["column"], 2);
        assert_eq!(json["diagnostics"][0]["code"], "K201");
        assert_eq!(json["diagnostics"][0]["severity"], "warning");
    }
}
