//! K230: node-only keys in a config applied to a fleet.
//!
//! A fleet's generation carries the routing config; each node keeps its own listeners,
//! admin API and `[fleet]` table from its own file (`keel_config::NODE_KEYS`,
//! `docs/fleet.md`). A config applied to the fleet still has to parse on its own, so it
//! names listeners; what this lint flags is a node-only value that will *not* travel: a
//! `[fleet] node` name (always someone's own), and, when the receiving node is known,
//! listener and admin addresses that differ from that node's (it keeps its own).

use keel_config::{Config, Diagnostic, codes};

/// K230 findings for `config` applied to a fleet; `node` is the receiving node's own
/// config when known (an apply), `None` for `keel check --fleet`.
pub fn node_key_findings(config: &Config, node: Option<&Config>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if let Some(name) = config.fleet.as_ref().and_then(|f| f.node.as_ref()) {
        out.push(
            Diagnostic::warning(
                codes::FLEET_NODE_KEY,
                format!("`[fleet] node = \"{}\"` is node-only: a fleet apply does not rename any node", name.value),
            )
            .at(name.span, "stays with the node whose file this is")
            .with_help("leave `[fleet]` out of configs applied to the fleet; each node's own file names it"),
        );
    }
    let Some(node) = node else {
        return out;
    };
    for (name, listener) in &config.listeners {
        let own = node.listeners.get(name).map(|l| l.addr.value);
        if own != Some(listener.addr.value) {
            let keeps = match own {
                Some(addr) => format!("this node keeps {addr}"),
                None => "this node has no such listener".to_string(),
            };
            out.push(
                Diagnostic::warning(
                    codes::FLEET_NODE_KEY,
                    format!("listener `{name}` is node-only: {keeps}, and every other node keeps its own"),
                )
                .at(listener.addr.span, "not applied to any node")
                .with_note("an apply to the fleet never moves a node's sockets (docs/fleet.md)"),
            );
        }
    }
    for (name, own) in &node.listeners {
        if !config.listeners.contains_key(name) {
            out.push(Diagnostic::warning(
                codes::FLEET_NODE_KEY,
                format!(
                    "listener `{name}` ({}) is not in this config: the node keeps it, listeners are node-only",
                    own.addr.value
                ),
            ));
        }
    }
    if config.admin.addr.value != node.admin.addr.value {
        out.push(
            Diagnostic::warning(
                codes::FLEET_NODE_KEY,
                format!(
                    "`[admin] addr` is node-only: this node keeps {}",
                    node.admin.addr.value
                ),
            )
            .at(config.admin.addr.span, "not applied to any node"),
        );
    }
    out
}

/// `config` with the node-only keys (listeners, admin, `[fleet]`) taken from `node`: what
/// a node serves of a fleet generation.
pub fn with_node_keys(config: &Config, node: &Config) -> Config {
    let mut merged = config.clone();
    merged.listeners = node.listeners.clone();
    merged.admin = node.admin.clone();
    merged.fleet = node.fleet.clone();
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        let parsed = keel_config::parse(text);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        parsed.config
    }

    const NODE: &str = "[listeners.web]\naddr = \"127.0.0.1:18080\"\n[admin]\naddr = \"127.0.0.1:19901\"\n[fleet]\nstore = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\nnode = \"lb-2\"\n";

    #[test]
    fn a_node_name_in_a_fleet_apply_is_flagged_even_without_a_node() {
        let config =
            parse("[listeners.web]\naddr = \"127.0.0.1:8080\"\n[fleet]\nnode = \"lb-1\"\n");
        let findings = node_key_findings(&config, None);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].code, codes::FLEET_NODE_KEY);
        assert!(findings[0].message.contains("lb-1"));
    }

    #[test]
    fn listener_and_admin_addresses_that_differ_from_the_node_are_flagged() {
        let node = parse(NODE);
        let applied = parse("[listeners.web]\naddr = \"127.0.0.1:8080\"\n");
        let findings = node_key_findings(&applied, Some(&node));
        let messages: Vec<&str> = findings.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(findings.len(), 2, "{messages:?}");
        assert!(messages[0].contains("127.0.0.1:18080"), "{messages:?}");
        assert!(messages[1].contains("127.0.0.1:19901"), "{messages:?}");
        // The node's own file applied to itself flags only its node name.
        assert_eq!(node_key_findings(&node, Some(&node)).len(), 1);
    }

    #[test]
    fn merging_keeps_the_nodes_sockets_and_the_fleets_routes() {
        let node = parse(NODE);
        let applied = parse("[listeners.web]\naddr = \"127.0.0.1:8080\"\n[services.web]\n");
        let merged = with_node_keys(&applied, &node);
        assert_eq!(merged.listeners["web"].addr.value.port(), 18080);
        assert_eq!(merged.admin.addr.value.port(), 19901);
        assert!(merged.services.contains_key("web"));
        assert!(merged.fleet.as_ref().is_some_and(|f| f.is_shared()));
    }
}
