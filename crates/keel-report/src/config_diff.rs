//! A small semantic summary of what changed between two configs: listeners, services, pools
//! (and their backends) and routes added, removed or changed, and route order (first match
//! wins, so reordering is a change). Used by the timeline and the playbook when the apply event
//! carries no `diff_summary` of its own.
//!
//! This is deliberately a summary for people, not the control plane's full diff: it names what
//! changed and the before → after of the fields that decide where traffic goes.

use std::collections::BTreeSet;

use indexmap::IndexMap;
use keel_config::{Balance, Config, Pool, Route, Target, format_duration};
use serde::Serialize;

/// Most items named in [`ConfigChange::summary`] before "and N more".
pub const SUMMARY_ITEMS: usize = 4;

/// What kind of thing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Subject {
    /// A `[listeners.NAME]`.
    Listener,
    /// A `[services.NAME]`.
    Service,
    /// A `[pools.NAME]`.
    Pool,
    /// A `[[routes]]` entry.
    Route,
    /// The order of the routes that exist in both configs.
    RouteOrder,
}

impl Subject {
    fn word(self) -> &'static str {
        match self {
            Subject::Listener => "listener",
            Subject::Service => "service",
            Subject::Pool => "pool",
            Subject::Route => "route",
            Subject::RouteOrder => "route order",
        }
    }
}

/// How one item changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", content = "fields", rename_all = "kebab-case")]
pub enum ItemChange {
    /// It is new.
    Added,
    /// It is gone.
    Removed,
    /// It exists in both; each string is one field's `before → after`.
    Changed(Vec<String>),
}

/// One changed item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeItem {
    /// What kind of thing.
    pub subject: Subject,
    /// Its name (empty for [`Subject::RouteOrder`]).
    pub name: String,
    /// How it changed.
    pub change: ItemChange,
}

impl ChangeItem {
    /// One line, e.g. `route checkout: pool checkout-v2 → pool web`.
    pub fn describe(&self) -> String {
        let head = if self.name.is_empty() {
            self.subject.word().to_owned()
        } else {
            format!("{} {}", self.subject.word(), self.name)
        };
        match &self.change {
            ItemChange::Added => format!("+{head}"),
            ItemChange::Removed => format!("-{head}"),
            ItemChange::Changed(fields) => format!("{head}: {}", fields.join(", ")),
        }
    }
}

/// Everything that changed between two configs, in a stable order (listeners, services, pools,
/// routes, route order; file order within each).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigChange {
    /// The changed items.
    pub items: Vec<ChangeItem>,
}

impl ConfigChange {
    /// True when nothing that decides routing changed (comments, tests or tuning may have).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// One line for timelines: the first [`SUMMARY_ITEMS`] items, `; `-separated.
    pub fn summary(&self) -> String {
        if self.items.is_empty() {
            return "no listener, service, pool or route changed".to_owned();
        }
        let mut parts: Vec<String> = self
            .items
            .iter()
            .take(SUMMARY_ITEMS)
            .map(ChangeItem::describe)
            .collect();
        if self.items.len() > SUMMARY_ITEMS {
            parts.push(format!("and {} more", self.items.len() - SUMMARY_ITEMS));
        }
        parts.join("; ")
    }
}

/// A first generation's shape, e.g. `1 listener, 2 routes, 2 pools, 4 backends`.
pub fn describe_config(config: &Config) -> String {
    let backends: usize = config.pools.values().map(|p| p.backends.len()).sum();
    [
        plural(config.listeners.len(), "listener"),
        plural(config.routes.len(), "route"),
        plural(config.pools.len(), "pool"),
        plural(backends, "backend"),
    ]
    .join(", ")
}

/// What changed from `old` to `new`.
pub fn diff_configs(old: &Config, new: &Config) -> ConfigChange {
    let mut items = Vec::new();
    diff_named(
        &mut items,
        Subject::Listener,
        &old.listeners,
        &new.listeners,
        |a, b| {
            let mut fields = Vec::new();
            field(&mut fields, "addr", a.addr.value, b.addr.value);
            fields
        },
    );
    diff_named(
        &mut items,
        Subject::Service,
        &old.services,
        &new.services,
        |a, b| {
            let mut fields = Vec::new();
            let identity = |s: &keel_config::Service| {
                s.identity.as_ref().map_or("none".to_owned(), |i| {
                    format!("{}={}", i.value.header, i.value.equals)
                })
            };
            field(&mut fields, "identity", identity(a), identity(b));
            field(
                &mut fields,
                "verify_responses",
                a.verify_responses,
                b.verify_responses,
            );
            fields
        },
    );
    diff_named(
        &mut items,
        Subject::Pool,
        &old.pools,
        &new.pools,
        pool_fields,
    );
    let (old_routes, new_routes) = (routes_by_name(old), routes_by_name(new));
    diff_named(
        &mut items,
        Subject::Route,
        &old_routes,
        &new_routes,
        |a, b| route_fields(a, b),
    );
    let new_names: BTreeSet<&str> = new.routes.iter().map(|r| r.name.value.as_str()).collect();
    let old_names: BTreeSet<&str> = old.routes.iter().map(|r| r.name.value.as_str()).collect();
    let kept_old: Vec<&str> = old
        .routes
        .iter()
        .map(|r| r.name.value.as_str())
        .filter(|n| new_names.contains(n))
        .collect();
    let kept_new: Vec<&str> = new
        .routes
        .iter()
        .map(|r| r.name.value.as_str())
        .filter(|n| old_names.contains(n))
        .collect();
    if kept_old != kept_new {
        items.push(ChangeItem {
            subject: Subject::RouteOrder,
            name: String::new(),
            change: ItemChange::Changed(vec![format!(
                "{} → {}",
                kept_old.join(", "),
                kept_new.join(", ")
            )]),
        });
    }
    ConfigChange { items }
}

fn routes_by_name(config: &Config) -> IndexMap<String, &Route> {
    config
        .routes
        .iter()
        .map(|r| (r.name.value.clone(), r))
        .collect()
}

fn diff_named<T>(
    items: &mut Vec<ChangeItem>,
    subject: Subject,
    old: &IndexMap<String, T>,
    new: &IndexMap<String, T>,
    compare: impl Fn(&T, &T) -> Vec<String>,
) {
    for (name, before) in old {
        let change = match new.get(name) {
            None => ItemChange::Removed,
            Some(after) => {
                let fields = compare(before, after);
                if fields.is_empty() {
                    continue;
                }
                ItemChange::Changed(fields)
            }
        };
        items.push(ChangeItem {
            subject,
            name: name.clone(),
            change,
        });
    }
    for name in new.keys().filter(|name| !old.contains_key(*name)) {
        items.push(ChangeItem {
            subject,
            name: name.clone(),
            change: ItemChange::Added,
        });
    }
}

fn pool_fields(a: &Pool, b: &Pool) -> Vec<String> {
    let mut fields = Vec::new();
    field(&mut fields, "service", &a.service.value, &b.service.value);
    field(
        &mut fields,
        "balance",
        balance(&a.balance),
        balance(&b.balance),
    );
    let backends = |p: &Pool| -> Vec<(String, u32)> {
        p.backends
            .iter()
            .map(|b| (b.addr.value.to_string(), b.weight))
            .collect()
    };
    let (before, after) = (backends(a), backends(b));
    for (addr, weight) in &before {
        match after.iter().find(|(other, _)| other == addr) {
            None => fields.push(format!("-backend {addr}")),
            Some((_, new_weight)) if new_weight != weight => {
                fields.push(format!("backend {addr} weight {weight} → {new_weight}"));
            }
            Some(_) => {}
        }
    }
    for (addr, _) in after
        .iter()
        .filter(|(x, _)| !before.iter().any(|(y, _)| x == y))
    {
        fields.push(format!("+backend {addr}"));
    }
    let health = |p: &Pool| {
        p.health.as_ref().map_or("none".to_owned(), |h| {
            format!("{} every {}", h.path, format_duration(h.interval))
        })
    };
    field(&mut fields, "health", health(a), health(b));
    field(&mut fields, "draining", a.draining, b.draining);
    field(&mut fields, "legacy", a.legacy, b.legacy);
    if a.outlier != b.outlier {
        fields.push("outlier ejection settings".to_owned());
    }
    field(
        &mut fields,
        "connect_timeout",
        format_duration(a.connect_timeout.value),
        format_duration(b.connect_timeout.value),
    );
    fields
}

fn route_fields(a: &Route, b: &Route) -> Vec<String> {
    let mut fields = Vec::new();
    let host = |r: &Route| {
        r.host
            .as_ref()
            .map_or("any".to_owned(), |h| h.value.to_string())
    };
    let path = |r: &Route| {
        r.path
            .as_ref()
            .map_or("any".to_owned(), |p| p.value.to_string())
    };
    let methods = |r: &Route| {
        r.methods
            .as_ref()
            .map_or("any".to_owned(), |m| m.value.join(","))
    };
    let headers = |r: &Route| {
        let list: Vec<String> = r
            .headers
            .iter()
            .map(|h| format!("{}={}", h.value.0, h.value.1))
            .collect();
        if list.is_empty() {
            "none".to_owned()
        } else {
            list.join(",")
        }
    };
    field(&mut fields, "host", host(a), host(b));
    field(&mut fields, "path", path(a), path(b));
    field(&mut fields, "methods", methods(a), methods(b));
    field(&mut fields, "headers", headers(a), headers(b));
    field(&mut fields, "service", &a.service.value, &b.service.value);
    let (before, after) = (target(&a.target.value), target(&b.target.value));
    if before != after {
        fields.push(format!("{before} → {after}"));
    }
    field(
        &mut fields,
        "timeout",
        format_duration(a.timeout.value),
        format_duration(b.timeout.value),
    );
    field(&mut fields, "retries", a.retries.value, b.retries.value);
    fields
}

/// `pool web` or `split web:70, checkout:30`.
pub(crate) fn target(target: &Target) -> String {
    match target {
        Target::Pool(pool) => format!("pool {}", pool.value),
        Target::Split(entries) => {
            let arms: Vec<String> = entries
                .iter()
                .map(|e| format!("{}:{}", e.pool.value, e.weight.value))
                .collect();
            format!("split {}", arms.join(", "))
        }
    }
}

fn balance(balance: &Balance) -> String {
    match balance {
        Balance::RoundRobin => "round_robin".to_owned(),
        Balance::LeastRequest => "least_request".to_owned(),
        Balance::ConsistentHash(key) => format!("consistent_hash({key})"),
    }
}

fn field<T: PartialEq + std::fmt::Display>(fields: &mut Vec<String>, name: &str, a: T, b: T) {
    if a != b {
        fields.push(format!("{name} {a} → {b}"));
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
