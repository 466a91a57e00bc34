//! The human rendering of a [`ConfigDiff`]: `+` added, `-` removed, `~` changed, one
//! section per kind of thing, `old → new` for every changed value.

use std::fmt::Write;

use super::{ChangeKind, ConfigDiff, FieldChange, ItemChange};

impl ConfigDiff {
    /// The diff for people.
    pub fn render_human(&self) -> String {
        if self.is_empty() {
            return "no semantic changes\n".to_string();
        }
        let mut out = String::new();
        section(&mut out, "routes", &self.routes);
        section(&mut out, "pools", &self.pools);
        section(&mut out, "services", &self.services);
        section(&mut out, "listeners", &self.listeners);
        section(&mut out, "certificates", &self.certificates);
        if !self.settings.is_empty() {
            out.push_str("settings\n");
            for change in &self.settings {
                let _ = writeln!(out, "  ~ {}", value_line(change));
            }
        }
        let count = self.routes.len()
            + self.pools.len()
            + self.services.len()
            + self.listeners.len()
            + self.certificates.len()
            + self.settings.len();
        let _ = writeln!(out, "{count} change{}", if count == 1 { "" } else { "s" });
        out
    }
}

/// Items named in a [`ConfigDiff::summary_line`] before the rest are counted (4).
const SUMMARY_ITEMS: usize = 4;
/// Changed fields named per item in a summary line (2).
const SUMMARY_FIELDS: usize = 2;

impl ConfigDiff {
    /// The diff on one line, for alerts and logs: the first few items and their first
    /// changed values, e.g. `route web: target pool web → split web 30 / legacy 70; + pool legacy`.
    pub fn summary_line(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let kinds = [
            ("route", &self.routes),
            ("pool", &self.pools),
            ("service", &self.services),
            ("listener", &self.listeners),
            ("certificate", &self.certificates),
        ];
        for (kind, items) in kinds {
            for item in items {
                parts.push(match item.kind {
                    ChangeKind::Added => format!("+ {kind} {}", item.name),
                    ChangeKind::Removed => format!("- {kind} {}", item.name),
                    ChangeKind::Changed => {
                        let fields: Vec<String> = item
                            .fields
                            .iter()
                            .take(SUMMARY_FIELDS)
                            .map(value_line)
                            .collect();
                        let more = item.fields.len().saturating_sub(SUMMARY_FIELDS);
                        format!(
                            "{kind} {}: {}{}",
                            item.name,
                            fields.join(", "),
                            if more > 0 {
                                format!(" (+{more})")
                            } else {
                                String::new()
                            }
                        )
                    }
                });
            }
        }
        parts.extend(self.settings.iter().map(value_line));
        if parts.is_empty() {
            return "no semantic changes".to_string();
        }
        let total = parts.len();
        let mut line = parts
            .into_iter()
            .take(SUMMARY_ITEMS)
            .collect::<Vec<_>>()
            .join("; ");
        if total > SUMMARY_ITEMS {
            let _ = write!(line, "; and {} more", total - SUMMARY_ITEMS);
        }
        line
    }
}

fn section(out: &mut String, title: &str, items: &[ItemChange]) {
    if items.is_empty() {
        return;
    }
    out.push_str(title);
    out.push('\n');
    for item in items {
        let sign = match item.kind {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Changed => '~',
        };
        match &item.summary {
            Some(summary) => {
                let _ = writeln!(out, "  {sign} {}: {summary}", item.name);
            }
            None => {
                let _ = writeln!(out, "  {sign} {}", item.name);
            }
        }
        for change in &item.fields {
            let _ = writeln!(out, "      {}", value_line(change));
        }
    }
}

fn value_line(change: &FieldChange) -> String {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_string());
    format!(
        "{}: {} → {}",
        change.field,
        show(&change.old),
        show(&change.new)
    )
}
