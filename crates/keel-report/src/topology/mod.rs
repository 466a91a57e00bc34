//! `Topology`: listeners → routes → pools → backends as a graph, with each backend coloured by
//! its live state, rendered as Mermaid text ([`Topology::to_mermaid`]) and as an SVG laid out by
//! the `layout-rs` graph library ([`Topology::to_svg`]).
//!
//! Keel's routes are shared by every listener, so the listeners are one column feeding the
//! routes (several listeners are drawn as one node listing them all, to avoid an edge from each
//! listener to each route). To stay readable as configs grow:
//!
//! * up to [`GROUP_BY_HOST_ABOVE`] routes: listener → route (labelled with host and path);
//! * more: listener → host → route (labelled with path);
//! * more than [`COLLAPSE_ROUTES_ABOVE`]: listener → host → one "N routes" node per host.
//!
//! A route whose target pool serves another service than the route expects (the March-15
//! mistake) gets a red edge labelled with both services.

mod mermaid;
mod svg;

use indexmap::IndexMap;
use keel_config::{Config, HostMatch, Route};
use serde::Serialize;

use crate::live::{BackendHealth, LiveView};

/// Above this many routes, routes are grouped under one node per host (10 routes).
pub const GROUP_BY_HOST_ABOVE: usize = 10;
/// Above this many routes, each host's routes are drawn as one node (60 routes).
pub const COLLAPSE_ROUTES_ABOVE: usize = 60;

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// One listener, or all of them in one node.
    Listener,
    /// The routes of one host (or of any host).
    Host,
    /// One route.
    Route,
    /// Several routes of one host, collapsed.
    RouteGroup,
    /// A pool.
    Pool,
    /// A backend of a pool.
    Backend,
}

/// A node: its kind, its label lines, and for backends their state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopologyNode {
    /// What it stands for.
    pub kind: NodeKind,
    /// Label lines, first line the name.
    pub lines: Vec<String>,
    /// For backends: the live state (`Unknown` when not known).
    pub state: Option<BackendHealth>,
}

/// An edge between two nodes (indexes into [`Topology::nodes`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopologyEdge {
    /// Source node index.
    pub from: usize,
    /// Target node index.
    pub to: usize,
    /// A label: a split share, a route count, or a service mismatch.
    pub label: Option<String>,
    /// The route sends traffic to a pool of another service.
    pub warning: bool,
}

/// The graph of one config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Topology {
    /// Nodes, in column order (listeners, hosts, routes, pools, backends).
    pub nodes: Vec<TopologyNode>,
    /// Edges.
    pub edges: Vec<TopologyEdge>,
    /// Routes are grouped under host nodes.
    pub grouped_by_host: bool,
    /// Each host's routes are collapsed into one node.
    pub collapsed: bool,
}

impl Topology {
    /// The graph of `config`, backends coloured by `live`.
    pub fn build(config: &Config, live: &LiveView) -> Topology {
        let grouped_by_host = config.routes.len() > GROUP_BY_HOST_ABOVE;
        let collapsed = config.routes.len() > COLLAPSE_ROUTES_ABOVE;
        let mut graph = Topology {
            nodes: Vec::new(),
            edges: Vec::new(),
            grouped_by_host,
            collapsed,
        };
        let entry = graph.listener_node(config);
        let mut upstream: Vec<(usize, &Route)> = Vec::new();
        if grouped_by_host {
            let mut hosts: IndexMap<String, Vec<&Route>> = IndexMap::new();
            for route in &config.routes {
                hosts.entry(host_label(route)).or_default().push(route);
            }
            for (host, routes) in hosts {
                let host_node = graph.node(NodeKind::Host, vec![host], None);
                graph.edge(entry, host_node, None, false);
                if collapsed {
                    let group = graph.node(
                        NodeKind::RouteGroup,
                        vec![format!("{} routes", routes.len())],
                        None,
                    );
                    graph.edge(host_node, group, None, false);
                    upstream.extend(routes.into_iter().map(|r| (group, r)));
                } else {
                    for route in routes {
                        let lines = vec![
                            format!("route {}", route.name.value),
                            match_label(route, false),
                        ];
                        let node = graph.node(NodeKind::Route, lines, None);
                        graph.edge(host_node, node, None, false);
                        upstream.push((node, route));
                    }
                }
            }
        } else {
            for route in &config.routes {
                let lines = vec![
                    format!("route {}", route.name.value),
                    match_label(route, true),
                ];
                let node = graph.node(NodeKind::Route, lines, None);
                graph.edge(entry, node, None, false);
                upstream.push((node, route));
            }
        }
        let mut pools: IndexMap<&str, usize> = IndexMap::new();
        for (name, pool) in &config.pools {
            let mut lines = vec![
                format!("pool {name}"),
                format!("service {}", pool.service.value),
            ];
            if pool.draining {
                lines.push("draining".to_owned());
            }
            if pool.legacy {
                lines.push("legacy".to_owned());
            }
            pools.insert(name.as_str(), graph.node(NodeKind::Pool, lines, None));
        }
        graph.route_edges(config, &upstream, &pools);
        for (name, pool) in &config.pools {
            let Some(&pool_node) = pools.get(name.as_str()) else {
                continue;
            };
            for backend in &pool.backends {
                let addr = backend.addr.value.to_string();
                let state = live.state(name, &addr);
                let mut lines = vec![addr, state.as_str().to_owned()];
                if backend.weight != 1 {
                    lines[1] = format!("{} · weight {}", state.as_str(), backend.weight);
                }
                let node = graph.node(NodeKind::Backend, lines, Some(state));
                graph.edge(pool_node, node, None, false);
            }
        }
        graph
    }

    /// The graph as a Mermaid `flowchart LR`, for a ```` ```mermaid ```` block.
    pub fn to_mermaid(&self) -> String {
        mermaid::render(self)
    }

    /// The graph as a self-contained SVG document laid out by `layout-rs`, with a legend.
    pub fn to_svg(&self) -> Result<String, crate::ReportError> {
        svg::render(self)
    }

    fn node(&mut self, kind: NodeKind, lines: Vec<String>, state: Option<BackendHealth>) -> usize {
        self.nodes.push(TopologyNode { kind, lines, state });
        self.nodes.len() - 1
    }

    fn edge(&mut self, from: usize, to: usize, label: Option<String>, warning: bool) {
        self.edges.push(TopologyEdge {
            from,
            to,
            label,
            warning,
        });
    }

    fn listener_node(&mut self, config: &Config) -> usize {
        let listeners: Vec<String> = config
            .listeners
            .iter()
            .map(|(name, l)| format!("{name} {}", l.addr.value))
            .collect();
        let lines = match listeners.len() {
            0 => vec!["no listeners".to_owned()],
            1 => vec![format!("listener {}", listeners[0])],
            _ => std::iter::once("listeners".to_owned())
                .chain(listeners)
                .collect(),
        };
        self.node(NodeKind::Listener, lines, None)
    }

    /// Route (or route group) → pool edges: split shares as labels, service mismatches in red,
    /// one edge per (source, pool) pair.
    fn route_edges(
        &mut self,
        config: &Config,
        upstream: &[(usize, &Route)],
        pools: &IndexMap<&str, usize>,
    ) {
        let mut seen: IndexMap<(usize, usize), (usize, Option<String>, bool)> = IndexMap::new();
        for (source, route) in upstream {
            let targets = route.target_pools();
            let expected = route.service().map_or("", |s| s.value.as_str());
            let total: u64 = targets.iter().map(|(_, w)| u64::from(*w)).sum();
            let arms = targets.len();
            for (pool_name, weight) in targets {
                let Some(&pool_node) = pools.get(pool_name.value.as_str()) else {
                    continue;
                };
                let served = config
                    .pools
                    .get(&pool_name.value)
                    .map(|p| p.service.value.as_str());
                let share = (arms > 1 && total > 0)
                    .then(|| format!("{}%", u64::from(weight) * 100 / total));
                let mismatch = served.filter(|s| *s != expected).map(|s| {
                    let prefix = share.as_ref().map_or(String::new(), |p| format!("{p} · "));
                    format!("{prefix}expects {expected} · pool serves {s}")
                });
                let slot = seen.entry((*source, pool_node)).or_insert((0, None, false));
                slot.0 += 1;
                if mismatch.is_some() {
                    slot.2 = true;
                }
                slot.1 = mismatch.or(share).or(slot.1.take());
            }
        }
        for ((from, to), (count, label, warning)) in seen {
            let label = if self.collapsed && !warning {
                Some(format!(
                    "{count} route{}",
                    if count == 1 { "" } else { "s" }
                ))
            } else {
                label
            };
            self.edge(from, to, label, warning);
        }
    }
}

fn host_label(route: &Route) -> String {
    route
        .host
        .as_ref()
        .map_or("any host".to_owned(), |h| match &h.value {
            HostMatch::Exact(host) => format!("host {host}"),
            HostMatch::Suffix(suffix) => format!("host *{suffix}"),
        })
}

/// `shop.example.com /checkout* GET,POST`: what the route matches.
fn match_label(route: &Route, with_host: bool) -> String {
    let mut parts = Vec::new();
    if with_host {
        parts.push(
            route
                .host
                .as_ref()
                .map_or("any host".to_owned(), |h| h.value.to_string()),
        );
    }
    parts.push(match route.path.as_ref().map(|p| &p.value) {
        None => "any path".to_owned(),
        Some(keel_config::PathMatch::Exact(path)) => path.clone(),
        Some(keel_config::PathMatch::Prefix(prefix)) => format!("{prefix}*"),
        Some(keel_config::PathMatch::Regex(regex)) => format!("~{}", regex.source),
    });
    if let Some(methods) = &route.methods {
        parts.push(methods.value.join(","));
    }
    if !route.headers.is_empty() {
        parts.push(format!("+{} header match", route.headers.len()));
    }
    parts.join(" ")
}
