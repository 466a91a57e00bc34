//! One-line descriptions of routes, pools and services, and the keyed views (backends
//! by address, split arms by pool) the diff compares.

use crate::{Pool, Route, Service, Target};
use indexmap::IndexMap;

/// `host shop.example.com, path_prefix "/checkout", methods GET,POST → pool checkout (service checkout)`.
pub(super) fn describe_route(route: &Route) -> String {
    let mut parts = Vec::new();
    if let Some(host) = &route.host {
        parts.push(format!("host {}", host.value));
    }
    if let Some(path) = &route.path {
        parts.push(path.value.to_string());
    }
    if let Some(methods) = &route.methods {
        parts.push(format!("methods {}", methods.value.join(",")));
    }
    for header in &route.headers {
        parts.push(format!("header {}={}", header.value.0, header.value.1));
    }
    if !route.listeners.is_empty() {
        let names: Vec<&str> = route.listeners.iter().map(|l| l.value.as_str()).collect();
        parts.push(format!("listener {}", names.join(",")));
    }
    if route.require_sni {
        parts.push("SNI = host".to_string());
    }
    let matches = if parts.is_empty() {
        "every request".to_string()
    } else {
        parts.join(", ")
    };
    match route.service() {
        Some(service) => format!("{matches} → {} (service {})", target(route), service.value),
        None => format!("{matches} → {}", target(route)),
    }
}

/// `service web, round robin, 2 backends`.
pub(super) fn describe_pool(_name: &str, pool: &Pool) -> String {
    let mut text = format!(
        "service {}, {}, {} backend{}",
        pool.service.value,
        super::human::human(&pool.balance),
        pool.backends.len(),
        if pool.backends.len() == 1 { "" } else { "s" }
    );
    if pool.draining {
        text.push_str(", draining");
    }
    if pool.legacy {
        text.push_str(", legacy");
    }
    text
}

/// `header x-service = web`, or `none`.
pub(super) fn identity(service: &Service) -> String {
    service.identity.as_ref().map_or_else(
        || "none".to_string(),
        |i| format!("header {} = {}", i.value.header, i.value.equals),
    )
}

/// `pool web`, `split web:70 (70%), web-v2:30 (30%)`, `answer 200 text/plain (3 bytes)`
/// or `redirect 308 to https://{host}{path}`.
pub(super) fn target(route: &Route) -> String {
    let Some(target) = route.target() else {
        if let Some(redirect) = route.redirect() {
            return format!("redirect {}", redirect.value.describe());
        }
        return route
            .respond()
            .map_or_else(String::new, |a| format!("answer {}", a.value.describe()));
    };
    match &target.value {
        Target::Pool(pool) => format!("pool {}", pool.value),
        Target::Split(_) => {
            let arms = split_arms(route).unwrap_or_default();
            let list: Vec<String> = arms.iter().map(|(p, w)| format!("{p}:{w}")).collect();
            format!("split {}", list.join(", "))
        }
    }
}

/// Split arms by pool: `"70 (70%)"`; `None` for a single-pool target.
pub(super) fn split_arms(route: &Route) -> Option<IndexMap<String, String>> {
    let Target::Split(entries) = &route.target()?.value else {
        return None;
    };
    let total: u64 = entries.iter().map(|e| u64::from(e.weight.value)).sum();
    Some(
        entries
            .iter()
            .map(|e| {
                let share = if total == 0 {
                    0.0
                } else {
                    100.0 * f64::from(e.weight.value) / total as f64
                };
                (
                    e.pool.value.clone(),
                    format!("{} ({share:.0}%)", e.weight.value),
                )
            })
            .collect(),
    )
}

/// Backends by address: `"weight 2"`. A repeated address gets a `#2` suffix.
pub(super) fn backends(pool: &Pool) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    for backend in &pool.backends {
        let mut key = backend.addr.value.to_string();
        let mut n = 1;
        while out.contains_key(&key) {
            n += 1;
            key = format!("{}#{n}", backend.addr.value);
        }
        out.insert(key, format!("weight {}", backend.weight));
    }
    out
}
