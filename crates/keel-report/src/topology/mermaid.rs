//! The topology as Mermaid `flowchart LR` text: one quoted node per graph node, edge labels for
//! split shares and service mismatches, and one `classDef` per backend state so GitHub, GitLab
//! and most Markdown viewers colour the backends.

use std::fmt::Write as _;

use super::{NodeKind, Topology};
use crate::live::BackendHealth;

pub(super) fn render(topology: &Topology) -> String {
    let mut out = String::from("flowchart LR\n");
    for (index, node) in topology.nodes.iter().enumerate() {
        let label = node
            .lines
            .iter()
            .map(|line| escape(line))
            .collect::<Vec<_>>()
            .join("<br/>");
        let (open, close) = match node.kind {
            NodeKind::Listener => ("([", "])"),
            NodeKind::Host => ("[/", "/]"),
            NodeKind::Pool => ("[[", "]]"),
            _ => ("[", "]"),
        };
        let _ = writeln!(out, "  n{index}{open}\"{label}\"{close}");
    }
    let mut warnings = Vec::new();
    for (index, edge) in topology.edges.iter().enumerate() {
        match &edge.label {
            Some(label) => {
                let _ = writeln!(
                    out,
                    "  n{} -->|\"{}\"| n{}",
                    edge.from,
                    escape(label),
                    edge.to
                );
            }
            None => {
                let _ = writeln!(out, "  n{} --> n{}", edge.from, edge.to);
            }
        }
        if edge.warning {
            warnings.push(index.to_string());
        }
    }
    for state in BackendHealth::ALL {
        let members: Vec<String> = topology
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.state == Some(state))
            .map(|(i, _)| format!("n{i}"))
            .collect();
        if !members.is_empty() {
            let _ = writeln!(
                out,
                "  classDef {} fill:{},stroke:#333",
                state.as_str(),
                state.fill()
            );
            let _ = writeln!(out, "  class {} {}", members.join(","), state.as_str());
        }
    }
    if !warnings.is_empty() {
        let _ = writeln!(
            out,
            "  linkStyle {} stroke:#d62728,stroke-width:3px",
            warnings.join(",")
        );
    }
    out
}

/// Mermaid labels are quoted; quotes, angle brackets, `#`, `|` and backticks are written as
/// Mermaid entity codes so a name can never end the label or inject markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            '|' => out.push_str("#124;"),
            '`' => out.push_str("#96;"),
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn labels_cannot_break_out() {
        assert_eq!(escape("a\"b<c>#|`"), "a#quot;b#lt;c#gt;#35;#124;#96;");
    }
}
