//! The semantic diff of two configs: which routes, pools, backends, weights, services,
//! listeners and settings were added, removed or changed, by name, not by line.
//!
//! `keel diff N M` prints it. Routes are compared by name, and a change in their
//! relative order is reported because the first matching route wins. Pools are
//! compared by name and their backends by address. [`ConfigDiff`] serializes as JSON
//! and [`ConfigDiff::render_human`] prints it for people.

mod describe;
mod human;
mod render;

use crate::Config;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use describe::{backends, describe_pool, describe_route, identity, split_arms, target};
use human::human;

/// Added, removed or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// Only in the new config.
    Added,
    /// Only in the old config.
    Removed,
    /// In both, different.
    Changed,
}

/// One named thing (route, pool, service, listener) that differs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemChange {
    /// Added, removed or changed.
    pub kind: ChangeKind,
    /// Its name.
    pub name: String,
    /// One line describing it (for added and removed items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// What changed (for changed items).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// One value that differs; `None` means absent on that side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// What it is (`target`, `backend 127.0.0.1:9001`, `[safety] max_shift`).
    pub field: String,
    /// The old value.
    pub old: Option<String>,
    /// The new value.
    pub new: Option<String>,
}

/// Everything that differs between two configs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigDiff {
    /// Routes, in the new config's order (removed ones last).
    pub routes: Vec<ItemChange>,
    /// Pools.
    pub pools: Vec<ItemChange>,
    /// Services.
    pub services: Vec<ItemChange>,
    /// Listeners.
    pub listeners: Vec<ItemChange>,
    /// Certificates (their files; what the files hold is compared by the data plane).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<ItemChange>,
    /// Other sections: admin, safety, detectors, server, traffic, access log, alerts,
    /// and the number of route tests and intents.
    pub settings: Vec<FieldChange>,
}

impl ConfigDiff {
    /// True when the configs mean the same thing.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
            && self.pools.is_empty()
            && self.services.is_empty()
            && self.listeners.is_empty()
            && self.certificates.is_empty()
            && self.settings.is_empty()
    }

    /// The JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The semantic difference from `old` to `new`.
pub fn semantic_diff(old: &Config, new: &Config) -> ConfigDiff {
    ConfigDiff {
        routes: routes(old, new),
        pools: named(&old.pools, &new.pools, describe_pool, |a, b| {
            let mut fields = Vec::new();
            field(&mut fields, "service", &a.service.value, &b.service.value);
            field(
                &mut fields,
                "balance",
                &human(&a.balance),
                &human(&b.balance),
            );
            field(&mut fields, "draining", &a.draining, &b.draining);
            field(&mut fields, "legacy", &a.legacy, &b.legacy);
            field(&mut fields, "health", &human(&a.health), &human(&b.health));
            field(
                &mut fields,
                "outlier",
                &human(&a.outlier),
                &human(&b.outlier),
            );
            field(
                &mut fields,
                "connect_timeout",
                &human(&a.connect_timeout.value),
                &human(&b.connect_timeout.value),
            );
            field(
                &mut fields,
                "max_idle_per_backend",
                &a.max_idle_per_backend,
                &b.max_idle_per_backend,
            );
            field(
                &mut fields,
                "idle_timeout",
                &human(&a.idle_timeout.value),
                &human(&b.idle_timeout.value),
            );
            field(
                &mut fields,
                "protocol",
                &a.protocol.value,
                &b.protocol.value,
            );
            let tls = |pool: &crate::Pool| {
                pool.tls
                    .as_ref()
                    .map_or_else(|| "plain (no TLS)".to_string(), ToString::to_string)
            };
            field(&mut fields, "tls", &tls(a), &tls(b));
            field(
                &mut fields,
                "max_streams_per_connection",
                &a.max_streams_per_connection,
                &b.max_streams_per_connection,
            );
            field(
                &mut fields,
                "max_connections",
                &a.max_connections,
                &b.max_connections,
            );
            keyed(&mut fields, "backend", &backends(a), &backends(b));
            fields
        }),
        services: named(
            &old.services,
            &new.services,
            |_, s| format!("identity {}", identity(s)),
            |a, b| {
                let mut fields = Vec::new();
                field(&mut fields, "identity", &identity(a), &identity(b));
                field(
                    &mut fields,
                    "verify_responses",
                    &a.verify_responses,
                    &b.verify_responses,
                );
                fields
            },
        ),
        listeners: named(
            &old.listeners,
            &new.listeners,
            |_, l| l.addr.value.to_string(),
            |a, b| {
                let mut fields = Vec::new();
                field(&mut fields, "addr", &a.addr.value, &b.addr.value);
                field(&mut fields, "backlog", &a.backlog, &b.backlog);
                field(&mut fields, "tls", &describe_tls(a), &describe_tls(b));
                fields
            },
        ),
        certificates: named(
            &old.certificates,
            &new.certificates,
            |_, c| describe_certificate(c),
            |a, b| {
                let mut fields = Vec::new();
                field(&mut fields, "cert", &a.cert.value, &b.cert.value);
                field(&mut fields, "key", &a.key.value, &b.key.value);
                certificate_fields(&mut fields, a, b);
                fields
            },
        ),
        settings: settings(old, new),
    }
}

/// A certificate in one line: its files and, once loaded, what its leaf says.
fn describe_certificate(certificate: &crate::Certificate) -> String {
    let files = format!(
        "cert {}, key {}",
        certificate.cert.value, certificate.key.value
    );
    match &certificate.facts {
        None => files,
        Some(facts) => format!("{files}: {}", facts.summary()),
    }
}

/// What changed in the certificate's bytes: the leaf's facts, and whether the key
/// file's bytes changed (never anything of the key itself).
fn certificate_fields(
    fields: &mut Vec<FieldChange>,
    a: &crate::Certificate,
    b: &crate::Certificate,
) {
    if let (Some(x), Some(y)) = (&a.facts, &b.facts) {
        field(fields, "subject", &x.subject, &y.subject);
        field(
            fields,
            "SANs",
            &x.dns_names.join(", "),
            &y.dns_names.join(", "),
        );
        field(fields, "issuer", &x.issuer, &y.issuer);
        field(fields, "not_after", &x.not_after, &y.not_after);
        field(fields, "key type", &x.key_type, &y.key_type);
        field(fields, "sha256", &x.sha256, &y.sha256);
    }
    if let (Some(x), Some(y)) = (&a.files, &b.files)
        && x.key_pem != y.key_pem
    {
        field(fields, "key bytes", &"previous key", &"another key");
    }
}

/// A listener's TLS settings in one line (`none` for plain HTTP).
fn describe_tls(listener: &crate::Listener) -> String {
    match &listener.tls {
        None => "none".to_string(),
        Some(tls) => {
            let names: Vec<&str> = tls.certificates.iter().map(|c| c.value.as_str()).collect();
            let hsts = tls.hsts.as_ref().map_or_else(String::new, |h| {
                format!(", hsts {}", h.value.header_value())
            });
            format!(
                "certificates [{}], default {}, min_version {}{hsts}",
                names.join(", "),
                tls.default.value,
                tls.min_version.value.as_str()
            )
        }
    }
}

fn routes(old: &Config, new: &Config) -> Vec<ItemChange> {
    let old_by_name: IndexMap<&str, (usize, &crate::Route)> = old
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.value.as_str(), (i, r)))
        .collect();
    let new_names: Vec<&str> = new.routes.iter().map(|r| r.name.value.as_str()).collect();
    // Rank among routes present in both: a changed rank changes which route matches first.
    let common_old: Vec<&str> = old
        .routes
        .iter()
        .map(|r| r.name.value.as_str())
        .filter(|n| new_names.contains(n))
        .collect();
    let common_new: Vec<&str> = new_names
        .iter()
        .copied()
        .filter(|n| old_by_name.contains_key(n))
        .collect();
    let mut changes = Vec::new();
    for route in &new.routes {
        let name = route.name.value.as_str();
        let Some((_, before)) = old_by_name.get(name) else {
            changes.push(ItemChange {
                kind: ChangeKind::Added,
                name: name.to_string(),
                summary: Some(describe_route(route)),
                fields: Vec::new(),
            });
            continue;
        };
        let mut fields = Vec::new();
        let (a, b) = (before, route);
        field(&mut fields, "host", &opt(&a.host), &opt(&b.host));
        field(&mut fields, "path", &opt(&a.path), &opt(&b.path));
        let methods = |r: &crate::Route| r.methods.as_ref().map(|m| m.value.join(","));
        field(
            &mut fields,
            "methods",
            &human(&methods(a)),
            &human(&methods(b)),
        );
        let headers = |r: &crate::Route| {
            r.headers
                .iter()
                .map(|h| format!("{}={}", h.value.0, h.value.1))
                .collect::<Vec<_>>()
                .join(",")
        };
        field(&mut fields, "headers", &headers(a), &headers(b));
        let listeners = |r: &crate::Route| {
            if r.listeners.is_empty() {
                "every listener".to_string()
            } else {
                let names: Vec<&str> = r.listeners.iter().map(|l| l.value.as_str()).collect();
                names.join(",")
            }
        };
        field(&mut fields, "listener", &listeners(a), &listeners(b));
        field(&mut fields, "require_sni", &a.require_sni, &b.require_sni);
        let service = |r: &crate::Route| r.service().map(|s| s.value.clone());
        field(
            &mut fields,
            "service",
            &human(&service(a)),
            &human(&service(b)),
        );
        match (split_arms(a), split_arms(b)) {
            (Some(old_arms), Some(new_arms)) => {
                keyed(&mut fields, "weight of", &old_arms, &new_arms)
            }
            _ => field(&mut fields, "target", &target(a), &target(b)),
        }
        field(
            &mut fields,
            "timeout",
            &human(&a.timeout.value),
            &human(&b.timeout.value),
        );
        field(&mut fields, "retries", &a.retries.value, &b.retries.value);
        field(
            &mut fields,
            "body_idle_timeout",
            &human(&a.body_idle_timeout.as_ref().map(|t| t.value)),
            &human(&b.body_idle_timeout.as_ref().map(|t| t.value)),
        );
        let upgrades = |r: &crate::Route| {
            r.upgrades.as_ref().map_or_else(
                || "none".to_string(),
                |u| {
                    u.value
                        .iter()
                        .map(|p| p.name())
                        .collect::<Vec<_>>()
                        .join(",")
                },
            )
        };
        field(&mut fields, "upgrades", &upgrades(a), &upgrades(b));
        field(
            &mut fields,
            "tunnel_idle_timeout",
            &human(&a.tunnel_idle_timeout.value),
            &human(&b.tunnel_idle_timeout.value),
        );
        let access = |r: &crate::Route| {
            r.access.as_ref().map_or_else(
                || "any client".to_string(),
                |a| {
                    let blocks: Vec<String> =
                        a.value.blocks.iter().map(|b| b.value.to_string()).collect();
                    format!("{} {}", a.value.mode.key(), blocks.join(","))
                },
            )
        };
        field(&mut fields, "client addresses", &access(a), &access(b));
        let rules = |r: &Option<crate::span::Located<crate::HeaderRules>>| {
            r.as_ref()
                .map_or_else(|| "none".to_string(), |h| h.value.describe())
        };
        field(
            &mut fields,
            "request_headers",
            &rules(&a.request_headers),
            &rules(&b.request_headers),
        );
        field(
            &mut fields,
            "response_headers",
            &rules(&a.response_headers),
            &rules(&b.response_headers),
        );
        let rewrite = |r: &crate::Route| {
            r.rewrite.as_ref().map_or_else(
                || "none".to_string(),
                |w| format!("path_prefix {}", w.value.path_prefix.value),
            )
        };
        field(&mut fields, "rewrite", &rewrite(a), &rewrite(b));
        let limit = |r: &crate::Route| {
            r.rate_limit
                .as_ref()
                .map_or_else(|| "none".to_string(), |l| l.value.describe())
        };
        field(&mut fields, "rate_limit", &limit(a), &limit(b));
        let compress = |r: &crate::Route| {
            r.compress.as_ref().map_or_else(
                || "none".to_string(),
                |c| {
                    let tokens: Vec<&str> = c.value.iter().map(|c| c.token()).collect();
                    tokens.join(", ")
                },
            )
        };
        field(&mut fields, "compress", &compress(a), &compress(b));
        let rank = |list: &[&str]| list.iter().position(|n| *n == name).map(|i| i + 1);
        if rank(&common_old) != rank(&common_new) {
            fields.push(FieldChange {
                field: "order (first match wins)".to_string(),
                old: rank(&common_old).map(|r| format!("#{r} of the routes in both")),
                new: rank(&common_new).map(|r| format!("#{r} of the routes in both")),
            });
        }
        if !fields.is_empty() {
            changes.push(ItemChange {
                kind: ChangeKind::Changed,
                name: name.to_string(),
                summary: None,
                fields,
            });
        }
    }
    for (name, (_, route)) in &old_by_name {
        if !new_names.contains(name) {
            changes.push(ItemChange {
                kind: ChangeKind::Removed,
                name: name.to_string(),
                summary: Some(describe_route(route)),
                fields: Vec::new(),
            });
        }
    }
    changes
}

/// Added, removed and changed entries of two maps keyed by name.
fn named<T>(
    old: &IndexMap<String, T>,
    new: &IndexMap<String, T>,
    describe: impl Fn(&str, &T) -> String,
    compare: impl Fn(&T, &T) -> Vec<FieldChange>,
) -> Vec<ItemChange> {
    let mut changes = Vec::new();
    for (name, item) in new {
        match old.get(name) {
            None => changes.push(ItemChange {
                kind: ChangeKind::Added,
                name: name.clone(),
                summary: Some(describe(name, item)),
                fields: Vec::new(),
            }),
            Some(before) => {
                let fields = compare(before, item);
                if !fields.is_empty() {
                    changes.push(ItemChange {
                        kind: ChangeKind::Changed,
                        name: name.clone(),
                        summary: None,
                        fields,
                    });
                }
            }
        }
    }
    for (name, item) in old {
        if !new.contains_key(name) {
            changes.push(ItemChange {
                kind: ChangeKind::Removed,
                name: name.clone(),
                summary: Some(describe(name, item)),
                fields: Vec::new(),
            });
        }
    }
    changes
}

/// Compares two keyed lists (backends by address, split arms by pool).
fn keyed(
    fields: &mut Vec<FieldChange>,
    label: &str,
    old: &IndexMap<String, String>,
    new: &IndexMap<String, String>,
) {
    for (key, value) in new {
        if old.get(key) != Some(value) {
            fields.push(FieldChange {
                field: format!("{label} {key}"),
                old: old.get(key).cloned(),
                new: Some(value.clone()),
            });
        }
    }
    for (key, value) in old {
        if !new.contains_key(key) {
            fields.push(FieldChange {
                field: format!("{label} {key}"),
                old: Some(value.clone()),
                new: None,
            });
        }
    }
}

fn field<T: std::fmt::Display + PartialEq + ?Sized>(
    fields: &mut Vec<FieldChange>,
    name: &str,
    old: &T,
    new: &T,
) {
    if old != new {
        fields.push(FieldChange {
            field: name.to_string(),
            old: Some(old.to_string()),
            new: Some(new.to_string()),
        });
    }
}

fn opt<T: std::fmt::Display>(value: &Option<crate::Located<T>>) -> String {
    value
        .as_ref()
        .map_or_else(|| "any".to_string(), |v| v.value.to_string())
}

/// Section settings, compared key by key, written as a config would write them.
fn settings(old: &Config, new: &Config) -> Vec<FieldChange> {
    let mut out = Vec::new();
    macro_rules! keys {
        ($section:literal, $a:expr, $b:expr, [$($key:ident),*]) => {
            $(field(&mut out, concat!("[", $section, "] ", stringify!($key)), &human(&$a.$key), &human(&$b.$key));)*
        };
    }
    keys!("admin", old.admin, new.admin, [metrics_require_token]);
    // A changed read token is a change, but the diff must not print the secret.
    let token = |admin: &crate::model::Admin| admin.read_token.as_ref().map(|t| t.value.clone());
    let (old_token, new_token) = (token(&old.admin), token(&new.admin));
    if old_token != new_token {
        let (before, after) = match (&old_token, &new_token) {
            (Some(_), Some(_)) => ("a token (not shown)", "another token (not shown)"),
            (Some(_), None) => ("a token (not shown)", "none"),
            _ => ("none", "a token (not shown)"),
        };
        field(&mut out, "[admin] read_token", before, after);
    }
    field(
        &mut out,
        "[admin] addr",
        &old.admin.addr.value,
        &new.admin.addr.value,
    );
    keys!(
        "safety",
        old.safety,
        new.safety,
        [
            max_shift,
            watch,
            known_good_after,
            keep_generations,
            promote_steps,
            rolled_back_tunnels,
            tunnel_drain,
            cert_expiry_warning
        ]
    );
    keys!(
        "detectors",
        old.detectors,
        new.detectors,
        [
            enabled,
            window,
            min_requests,
            share_shift,
            error_rate,
            latency_factor
        ]
    );
    keys!(
        "server",
        old.server,
        new.server,
        [
            worker_threads,
            drain_timeout,
            max_header_bytes,
            max_headers,
            header_read_timeout,
            body_idle_timeout,
            idle_spin,
            generation_header
        ]
    );
    let trusted = |c: &Config| {
        c.server
            .trusted_proxies
            .iter()
            .map(|b| b.value.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    field(
        &mut out,
        "[server] trusted_proxies",
        &trusted(old),
        &trusted(new),
    );
    keys!("traffic", old.traffic, new.traffic, [sample_size, window]);
    keys!("access_log", old.access_log, new.access_log, [path]);
    let hooks = |c: &Config| {
        c.alerts
            .webhooks
            .iter()
            .map(|w| w.url.value.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    field(&mut out, "[alerts] webhooks", &hooks(old), &hooks(new));
    field(&mut out, "route tests", &old.tests.len(), &new.tests.len());
    field(&mut out, "intents", &old.intents.len(), &new.intents.len());
    out
}

#[cfg(test)]
mod tests;

/// A config in a few words: `1 listener, 6 routes, 5 pools, 13 backends`.
pub fn describe_config(config: &Config) -> String {
    let plural = |count: usize, noun: &str| {
        if count == 1 {
            format!("1 {noun}")
        } else {
            format!("{count} {noun}s")
        }
    };
    let backends: usize = config.pools.values().map(|p| p.backends.len()).sum();
    [
        plural(config.listeners.len(), "listener"),
        plural(config.routes.len(), "route"),
        plural(config.pools.len(), "pool"),
        plural(backends, "backend"),
    ]
    .join(", ")
}
