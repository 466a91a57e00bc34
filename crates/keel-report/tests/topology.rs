//! The topology diagram: colours by live state, service mismatches, grouping for larger configs,
//! and an SVG laid out by the graph library.

use keel_report::{
    BackendHealth, COLLAPSE_ROUTES_ABOVE, GROUP_BY_HOST_ABOVE, LiveStates, LiveView, NodeKind,
    Topology,
};

/// A shop with `routes` routes over 4 hosts and 6 pools of 3 backends; route 0 is sent to a pool
/// of another service, route 5 is split.
pub fn big_config(routes: usize) -> keel_config::Config {
    let mut text = String::from(
        "[listeners.web]\naddr = \"0.0.0.0:8080\"\n[listeners.tls]\naddr = \"127.0.0.1:8443\"\n",
    );
    for s in 0..6 {
        text.push_str(&format!("[services.s{s}]\n"));
        text.push_str(&format!(
            "[pools.p{s}]\nservice = \"s{s}\"\nbackends = [{{ addr = \"127.0.{s}.1:80\" }}, {{ addr = \"127.0.{s}.2:80\" }}, {{ addr = \"127.0.{s}.3:80\", weight = 0 }}]\n"
        ));
    }
    let hosts = ["shop.example.com", "api.example.com", "*.cdn.example.com"];
    for r in 0..routes {
        let service = r % 6;
        text.push_str(&format!("[[routes]]\nname = \"r{r}\"\n"));
        if r % 4 != 3 {
            text.push_str(&format!("host = \"{}\"\n", hosts[r % 4]));
        }
        text.push_str(&format!(
            "path_prefix = \"/p{r}\"\nservice = \"s{service}\"\n"
        ));
        match r {
            0 => text.push_str("pool = \"p1\"\n"),
            5 => text.push_str(
                "split = [{ pool = \"p5\", weight = 70 }, { pool = \"p4\", weight = 30 }]\n",
            ),
            _ => text.push_str(&format!("pool = \"p{service}\"\n")),
        }
    }
    let parsed = keel_config::parse(&text);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    parsed.config
}

fn live() -> LiveView {
    let mut states = LiveStates::new("test");
    states.insert("p0", "127.0.0.1:80", BackendHealth::Healthy);
    states.insert("p0", "127.0.0.2:80", BackendHealth::Misidentified);
    states.insert("p1", "127.0.1.1:80", BackendHealth::Ejected);
    LiveView::Known(states)
}

#[test]
fn small_configs_draw_each_route_with_host_and_path() {
    let config = big_config(GROUP_BY_HOST_ABOVE);
    let topology = Topology::build(&config, &live());
    assert!(!topology.grouped_by_host && !topology.collapsed);
    let count = |kind| topology.nodes.iter().filter(|n| n.kind == kind).count();
    assert_eq!(count(NodeKind::Listener), 1);
    assert_eq!(count(NodeKind::Route), GROUP_BY_HOST_ABOVE);
    assert_eq!(count(NodeKind::Pool), 6);
    assert_eq!(count(NodeKind::Backend), 18);
    let listener = &topology.nodes[0];
    assert_eq!(
        listener.lines,
        ["listeners", "web 0.0.0.0:8080", "tls 127.0.0.1:8443"]
    );
    let route = |name: &str| {
        topology
            .nodes
            .iter()
            .position(|n| n.lines[0] == format!("route {name}"))
            .expect("route")
    };
    assert_eq!(topology.nodes[route("r1")].lines[1], "api.example.com /p1*");
    assert_eq!(topology.nodes[route("r3")].lines[1], "any host /p3*");
    let state = |pool_index: usize, addr: &str| {
        let pool = topology
            .nodes
            .iter()
            .position(|n| n.lines[0] == format!("pool p{pool_index}"))
            .expect("pool");
        topology
            .edges
            .iter()
            .filter(|e| e.from == pool)
            .map(|e| &topology.nodes[e.to])
            .find(|n| n.lines[0] == addr)
            .and_then(|n| n.state)
    };
    assert_eq!(state(0, "127.0.0.1:80"), Some(BackendHealth::Healthy));
    assert_eq!(state(0, "127.0.0.2:80"), Some(BackendHealth::Misidentified));
    assert_eq!(state(1, "127.0.1.1:80"), Some(BackendHealth::Ejected));
    assert_eq!(state(2, "127.0.2.1:80"), Some(BackendHealth::Unknown));

    let warnings: Vec<_> = topology.edges.iter().filter(|e| e.warning).collect();
    assert_eq!(warnings.len(), 2);
    assert_eq!(warnings[0].from, route("r0"));
    assert_eq!(
        warnings[0].label.as_deref(),
        Some("expects s0 · pool serves s1")
    );
    // The split sends 30% of route r5 (service s5) to a pool of s4: the March-15 mistake.
    let split: Vec<_> = topology
        .edges
        .iter()
        .filter(|e| e.from == route("r5"))
        .map(|e| (e.label.clone(), e.warning))
        .collect();
    assert_eq!(
        split,
        [
            (Some("70%".to_owned()), false),
            (Some("30% · expects s5 · pool serves s4".to_owned()), true)
        ]
    );

    let mermaid = topology.to_mermaid();
    assert!(mermaid.starts_with("flowchart LR\n"));
    assert!(mermaid.contains("classDef misidentified fill:#e8554e"));
    assert!(mermaid.contains("-->|\"70%\"|"));
    assert!(mermaid.contains("linkStyle "));
}

#[test]
fn twenty_routes_are_grouped_by_host_and_render_to_svg() {
    let config = big_config(20);
    let topology = Topology::build(&config, &live());
    assert!(topology.grouped_by_host && !topology.collapsed);
    let hosts: Vec<&str> = topology
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Host)
        .map(|n| n.lines[0].as_str())
        .collect();
    assert_eq!(
        hosts,
        [
            "host shop.example.com",
            "host api.example.com",
            "host *.cdn.example.com",
            "any host"
        ]
    );
    let svg = topology.to_svg().expect("svg");
    assert!(svg.contains("<svg ") && svg.trim_end().ends_with("</svg>"));
    for needle in [
        "pool p5",
        "route r19",
        "host *.cdn.example.com",
        "#e8554e",
        "#d62728",
        "route to a pool of another service",
    ] {
        assert!(svg.contains(needle), "{needle} missing");
    }
    if let Ok(path) = std::env::var("KEEL_TOPOLOGY_SVG") {
        std::fs::write(path, &svg).expect("write svg");
    }
}

#[test]
fn very_large_configs_collapse_routes_per_host() {
    let config = big_config(2_000);
    let topology = Topology::build(
        &config,
        &LiveView::Unknown {
            reason: "offline".into(),
        },
    );
    assert!(topology.collapsed && 2_000 > COLLAPSE_ROUTES_ABOVE);
    assert!(topology.nodes.len() < 50, "{} nodes", topology.nodes.len());
    let groups: Vec<&str> = topology
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::RouteGroup)
        .map(|n| n.lines[0].as_str())
        .collect();
    assert_eq!(groups, ["500 routes"; 4]);
    assert!(topology.edges.iter().any(|e| e.warning));
    assert!(
        topology
            .nodes
            .iter()
            .filter_map(|n| n.state)
            .all(|s| s == BackendHealth::Unknown)
    );
    assert!(topology.to_svg().is_ok());
}

#[test]
fn hostile_names_stay_inside_their_labels() {
    // Names are restricted by the parser; paths are not.
    let text = "[listeners.web]\naddr = \"127.0.0.1:8080\"\n[services.web]\n[pools.web]\nservice = \"web\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n[[routes]]\nname = \"x\"\npath_prefix = \"/</text><script>|\\\"]#<b>\"\nservice = \"web\"\npool = \"web\"\n";
    let parsed = keel_config::parse(text);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let topology = Topology::build(&parsed.config, &LiveView::Unknown { reason: "x".into() });
    let mermaid = topology.to_mermaid();
    assert!(
        !mermaid.contains("<b>") && !mermaid.contains("<script>"),
        "{mermaid}"
    );
    let svg = topology.to_svg().expect("svg");
    assert!(!svg.contains("<script>") && !svg.contains("<b>"));
    assert!(svg.contains("&lt;script&gt;"));
}
