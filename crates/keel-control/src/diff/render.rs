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
            + self.settings.len();
        let _ = writeln!(out, "{count} change{}", if count == 1 { "" } else { "s" });
        out
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
