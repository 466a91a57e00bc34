//! No evidence is not good evidence: which hosts a change affects, and whether the
//! sample has traffic for each.
//!
//! A route is *affected* when its match, service or target differs between the two
//! configs, when it appears or disappears, when its place among the routes both configs
//! share changes, or when a pool it sends to (in either config) changes its service,
//! balance or backends, or the identity of a service it serves changes. The host
//! condition of every affected route (old and new) needs sampled requests: a replay of
//! nothing is no evidence that nothing moves. [`unjudged_hosts`] lists the conditions
//! that have none; the gate refuses them unless forced.

use std::collections::BTreeMap;

use keel_config::{Config, HostMatch, Route};
use keel_route::RequestShape;

/// A host condition with affected routes and no sampled request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unjudged {
    /// The host condition as written (`shop.example.com`, `*.example.com`, `any host`).
    pub host: String,
    /// The affected routes under it.
    pub routes: Vec<String>,
}

/// Host conditions of affected routes with no sampled request (see the module docs).
pub fn unjudged_hosts(old: &Config, new: &Config, sample: &[RequestShape]) -> Vec<Unjudged> {
    let mut hosts: BTreeMap<String, (Option<HostMatch>, Vec<String>)> = BTreeMap::new();
    for route in affected_routes(old, new) {
        let host = route.host.as_ref().map(|h| h.value.clone());
        let key = host
            .as_ref()
            .map_or_else(|| "any host".to_string(), ToString::to_string);
        let entry = hosts.entry(key).or_insert_with(|| (host, Vec::new()));
        if !entry.1.contains(&route.name.value) {
            entry.1.push(route.name.value.clone());
        }
    }
    hosts
        .into_iter()
        .filter(|(_, (host, _))| !sample.iter().any(|r| matches_host(host.as_ref(), &r.host)))
        .map(|(host, (_, routes))| Unjudged { host, routes })
        .collect()
}

fn matches_host(condition: Option<&HostMatch>, host: &str) -> bool {
    match condition {
        None => true,
        Some(HostMatch::Exact(exact)) => host == exact,
        Some(HostMatch::Suffix(suffix)) => host.len() > suffix.len() && host.ends_with(suffix),
    }
}

/// Every affected route, old and new definitions.
fn affected_routes<'a>(old: &'a Config, new: &'a Config) -> Vec<&'a Route> {
    let shared: Vec<&str> = old
        .routes
        .iter()
        .map(|r| r.name.value.as_str())
        .filter(|name| new.routes.iter().any(|r| r.name.value == *name))
        .collect();
    let shared_new: Vec<&str> = new
        .routes
        .iter()
        .map(|r| r.name.value.as_str())
        .filter(|name| shared.contains(name))
        .collect();
    let mut out = Vec::new();
    for route in &new.routes {
        let name = route.name.value.as_str();
        let before = old.routes.iter().find(|r| r.name.value == name);
        let moved =
            shared.iter().position(|n| *n == name) != shared_new.iter().position(|n| *n == name);
        let changed = match before {
            None => true,
            Some(before) => {
                moved
                    || signature(before) != signature(route)
                    || pools_changed(old, new, before)
                    || pools_changed(old, new, route)
            }
        };
        if changed {
            out.push(route);
            out.extend(before);
        }
    }
    for route in &old.routes {
        if !new.routes.iter().any(|r| r.name.value == route.name.value) {
            out.push(route);
        }
    }
    out
}

/// What decides where a route's requests go, as comparable text.
fn signature(route: &Route) -> String {
    format!(
        "{:?}|{}|{:?}|{:?}|{}|{:?}",
        route.host.as_ref().map(|h| h.value.to_string()),
        route
            .path
            .as_ref()
            .map_or_else(String::new, |p| p.value.to_string()),
        route.methods.as_ref().map(|m| &m.value),
        route.headers.iter().map(|h| &h.value).collect::<Vec<_>>(),
        route.service().map_or_else(
            || match (route.respond(), route.redirect()) {
                (Some(answer), _) => answer.value.describe(),
                (None, Some(redirect)) => format!("redirect {}", redirect.value.describe()),
                (None, None) => String::new(),
            },
            |s| s.value.clone()
        ),
        route
            .target_pools()
            .iter()
            .map(|(p, w)| (p.value.as_str(), *w))
            .collect::<Vec<_>>(),
    )
}

/// A pool of `route` whose service, balance or backends differ between the configs,
/// or whose service's identity does.
fn pools_changed(old: &Config, new: &Config, route: &Route) -> bool {
    let identity = |config: &Config, service: &str| {
        config
            .services
            .get(service)
            .and_then(|s| s.identity.as_ref())
            .map(|i| i.value.clone())
    };
    let service = route.service().map_or("", |s| s.value.as_str());
    if identity(old, service) != identity(new, service) {
        return true;
    }
    route.target_pools().iter().any(|(pool, _)| {
        let (before, after) = (
            old.pools.get(pool.value.as_str()),
            new.pools.get(pool.value.as_str()),
        );
        match (before, after) {
            (Some(a), Some(b)) => {
                a.service.value != b.service.value
                    || a.balance != b.balance
                    || a.backends
                        .iter()
                        .map(|x| (x.addr.value, x.weight))
                        .collect::<Vec<_>>()
                        != b.backends
                            .iter()
                            .map(|x| (x.addr.value, x.weight))
                            .collect::<Vec<_>>()
                    || identity(old, &a.service.value) != identity(new, &b.service.value)
            }
            _ => true,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[services.web]
[services.api]
[pools.web]
service = "web"
backends = ["127.0.0.1:9001"]
[pools.api]
service = "api"
backends = ["127.0.0.1:9002"]
[[routes]]
name = "api"
host = "api.example.com"
service = "api"
pool = "api"
[[routes]]
name = "web"
host = "*.example.com"
service = "web"
pool = "web"
"#;

    fn config(text: &str) -> Config {
        keel_config::parse(text).config
    }

    #[test]
    fn a_change_without_traffic_for_its_host_is_unjudged() {
        let old = config(BASE);
        let new = config(&BASE.replace("127.0.0.1:9002", "127.0.0.1:9003"));
        let blog = [RequestShape::new("GET", "blog.example.com", "/")];
        assert_eq!(
            unjudged_hosts(&old, &new, &blog),
            vec![Unjudged {
                host: "api.example.com".into(),
                routes: vec!["api".into()]
            }]
        );
        let api = [RequestShape::new("GET", "api.example.com", "/")];
        assert!(unjudged_hosts(&old, &new, &api).is_empty());
        // Nothing changed: nothing to judge, whatever the sample.
        assert!(unjudged_hosts(&old, &old, &[]).is_empty());
    }

    #[test]
    fn reordered_and_new_routes_are_affected() {
        let old = config(BASE);
        let swapped = BASE.replace(
            "[[routes]]\nname = \"api\"\nhost = \"api.example.com\"\nservice = \"api\"\npool = \"api\"\n",
            "",
        ) + "[[routes]]\nname = \"api\"\nhost = \"api.example.com\"\nservice = \"api\"\npool = \"api\"\n";
        let new = config(&swapped);
        let hosts: Vec<String> = unjudged_hosts(&old, &new, &[])
            .into_iter()
            .map(|u| u.host)
            .collect();
        assert_eq!(hosts, vec!["*.example.com", "api.example.com"]);
    }
}
