//! Reads the `[fleet]` table (model in `crate::fleet`).

use crate::defaults as d;
use crate::fleet::{Fleet, FleetStoreKind, Rollout, RolloutThen};
use crate::reader::{Sink, Table, span_of};
use crate::span::Located;

/// Keys of `[fleet]`.
const FLEET_KEYS: &[&str] = &[
    "store",
    "endpoints",
    "prefix",
    "node",
    "rollout",
    "drift_alert",
];
/// Keys of `[fleet] rollout`.
const ROLLOUT_KEYS: &[&str] = &["first", "then", "watch"];

pub(super) fn fleet(sink: &mut Sink, root: &Table<'_, '_>) -> Option<Fleet> {
    let table = root.table(sink, "fleet", "[fleet]")?;
    table.deny_unknown(sink, FLEET_KEYS);
    let store = match table.string(sink, "store") {
        None => FleetStoreKind::Sqlite,
        Some(text) => match text.value.as_str() {
            "sqlite" => FleetStoreKind::Sqlite,
            "etcd" => FleetStoreKind::Etcd,
            other => {
                sink.invalid(
                    text.span,
                    format!("unknown fleet store `{other}`"),
                    "use \"sqlite\" (one node, the default) or \"etcd\" (a fleet)",
                );
                FleetStoreKind::Sqlite
            }
        },
    };
    let mut endpoints = Vec::new();
    if let Some((items, _)) = table.array(sink, "endpoints") {
        for item in items {
            match item.get_ref() {
                toml::de::DeValue::String(url) if url.starts_with("http://") => {
                    endpoints.push(Located::new(url.to_string(), span_of(item)));
                }
                _ => sink.invalid(
                    span_of(item),
                    "a fleet endpoint must be a string \"http://host:port\"",
                    "write etcd client URLs such as \"http://127.0.0.1:2379\" (TLS to etcd is not supported yet)",
                ),
            }
        }
    }
    if store == FleetStoreKind::Etcd && endpoints.is_empty() {
        sink.invalid(
            table.span,
            "`[fleet] store = \"etcd\"` needs at least one endpoint",
            "add `endpoints = [\"http://127.0.0.1:2379\"]`",
        );
    }
    let prefix = match table.string(sink, "prefix") {
        Some(prefix) if valid_prefix(&prefix.value) => prefix,
        Some(prefix) => {
            sink.invalid(
                prefix.span,
                format!("bad fleet prefix `{}`", prefix.value),
                "start with `/`, do not end with `/`, use letters, digits, `-`, `_`, `.` and `/`",
            );
            Located::new(d::FLEET_PREFIX.to_string(), prefix.span)
        }
        None => Located::new(d::FLEET_PREFIX.to_string(), table.span),
    };
    let node = table.string(sink, "node");
    if let Some(node) = &node
        && !super::valid_name(&node.value)
    {
        sink.invalid(
            node.span,
            format!("bad node name `{}`", node.value),
            "use letters, digits, `-`, `_` and `.` only",
        );
    }
    let rollout = rollout(sink, &table);
    let drift_alert = table
        .duration(sink, "drift_alert", d::FLEET_DRIFT_ALERT)
        .value;
    Some(Fleet {
        store,
        endpoints,
        prefix,
        node,
        rollout,
        drift_alert,
        span: table.span,
    })
}

fn rollout(sink: &mut Sink, fleet: &Table<'_, '_>) -> Rollout {
    let mut rollout = Rollout {
        first: d::FLEET_ROLLOUT_FIRST,
        then: RolloutThen::All,
        watch: d::FLEET_ROLLOUT_WATCH,
    };
    let Some(table) = fleet.table(sink, "rollout", "[fleet] rollout") else {
        return rollout;
    };
    table.deny_unknown(sink, ROLLOUT_KEYS);
    rollout.first = table
        .u32(sink, "first", d::FLEET_ROLLOUT_FIRST, 0, 10_000)
        .value;
    rollout.watch = table.duration(sink, "watch", d::FLEET_ROLLOUT_WATCH).value;
    if let Some(value) = table.get("then") {
        match value.get_ref() {
            toml::de::DeValue::String(s) if s.as_ref() == "all" => rollout.then = RolloutThen::All,
            toml::de::DeValue::Integer(_) => {
                rollout.then = RolloutThen::Nodes(table.u32(sink, "then", 1, 1, 10_000).value);
            }
            _ => sink.invalid(
                span_of(value),
                "`then` must be \"all\" or a number of nodes",
                "write `then = \"all\"` or `then = 5`",
            ),
        }
    }
    rollout
}

fn valid_prefix(prefix: &str) -> bool {
    prefix.len() > 1
        && prefix.len() <= 256
        && prefix.starts_with('/')
        && !prefix.ends_with('/')
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{FleetStoreKind, RolloutThen, parse};

    const LISTENER: &str = "[listeners.web]\naddr = \"127.0.0.1:8080\"\n";

    #[test]
    fn the_issue_example_parses_with_every_key() {
        let parsed = parse(&format!(
            "{LISTENER}[fleet]\nstore = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/keel/shop-prod\"\nnode = \"lb-1\"\nrollout = {{ first = 1, then = \"all\", watch = \"30s\" }}\n"
        ));
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let fleet = parsed.config.fleet.expect("a fleet table");
        assert_eq!(fleet.store, FleetStoreKind::Etcd);
        assert_eq!(fleet.prefix.value, "/keel/shop-prod");
        assert_eq!(fleet.node_name(), "lb-1");
        assert_eq!(fleet.rollout.then, RolloutThen::All);
        assert_eq!(fleet.rollout.watch, Duration::from_secs(30));
        assert_eq!(fleet.drift_alert, crate::defaults::FLEET_DRIFT_ALERT);
    }

    #[test]
    fn no_fleet_table_means_the_single_node_store() {
        let parsed = parse(LISTENER);
        assert!(parsed.diagnostics.is_empty());
        assert!(parsed.config.fleet.is_none());
        let sqlite = parse(&format!("{LISTENER}[fleet]\nstore = \"sqlite\"\n"));
        assert!(sqlite.diagnostics.is_empty(), "{:?}", sqlite.diagnostics);
        assert!(!sqlite.config.fleet.expect("table").is_shared());
    }

    #[test]
    fn bad_fleet_values_are_reported_each() {
        let parsed = parse(&format!(
            "{LISTENER}[fleet]\nstore = \"zookeeper\"\nendpoints = [\"https://x:1\"]\nprefix = \"keel/\"\nrollout = {{ then = true, speed = 2 }}\n"
        ));
        let messages: Vec<&str> = parsed
            .diagnostics
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert!(
            messages.iter().any(|m| m.contains("zookeeper")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("endpoint")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("prefix")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("`then`")),
            "{messages:?}"
        );
        assert!(messages.iter().any(|m| m.contains("speed")), "{messages:?}");
        let etcd = parse(&format!("{LISTENER}[fleet]\nstore = \"etcd\"\n"));
        assert!(etcd.has_errors(), "etcd without endpoints must be refused");
    }
}
