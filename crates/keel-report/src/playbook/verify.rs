//! How to verify a rollback: the `keel status` line to look for, the metrics that must agree,
//! and a real request through a listener whose `x-keel-generation` header names the generation.
//!
//! Metric names are the ones `keel-watch` exports (one source of truth would be its names
//! module; this crate does not depend on it, so they are repeated here as constants).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use keel_config::{Config, HostMatch};
use keel_store::GenerationId;
use serde::Serialize;

use crate::text::shell_word;

/// Requests served, labelled by generation (and route, pool, backend, status class).
pub const METRIC_REQUESTS_TOTAL: &str = "keel_requests_total";
/// The generation serving all traffic (a gauge).
pub const METRIC_ACTIVE_GENERATION: &str = "keel_active_generation";
/// Each backend's state (labelled by pool, backend and state).
pub const METRIC_BACKEND_STATE: &str = "keel_backend_state";
/// Response header naming the generation that routed a request.
const GENERATION_HEADER: &str = "x-keel-generation";

/// One verification step: shell commands to run and what their output must show.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyStep {
    /// What the step checks.
    pub title: String,
    /// Commands, each one line.
    pub commands: Vec<String>,
    /// What to look for in their output.
    pub expect: Vec<String>,
}

/// The steps for a rollback from `active` to `target` (`None`s before anything is applied).
pub(super) fn steps(
    config: Option<&Config>,
    admin_url: &str,
    target: Option<GenerationId>,
    active: Option<GenerationId>,
) -> Vec<VerifyStep> {
    let admin = admin_url.trim_end_matches('/');
    let target_text = target.map_or("N".to_owned(), |t| t.to_string());
    let mut steps = vec![VerifyStep {
        title: "The admin API serves the target generation".to_owned(),
        commands: vec![format!("keel status --admin {}", shell_word(admin))],
        expect: vec![
            format!("the active generation line names generation {target_text}"),
            "every backend line of the pools you expect to serve says healthy".to_owned(),
        ],
    }];
    let token = config.is_some_and(|c| c.admin.metrics_require_token);
    let auth = if token {
        " -H \"authorization: Bearer $KEEL_ADMIN_TOKEN\""
    } else {
        ""
    };
    let metrics_url = shell_word(&format!("{admin}/metrics"));
    let mut expect = vec![format!("`{METRIC_ACTIVE_GENERATION} {target_text}`")];
    expect.push(format!(
        "`{METRIC_REQUESTS_TOTAL}{{generation=\"{target_text}\",…}}` rising between two runs"
    ));
    if let Some(active) = active.filter(|a| Some(*a) != target) {
        expect.push(format!(
            "`{METRIC_REQUESTS_TOTAL}{{generation=\"{active}\",…}}` no longer rising"
        ));
    }
    expect.push(format!(
        "`{METRIC_BACKEND_STATE}` reports the target's backends as healthy, none misidentified"
    ));
    steps.push(VerifyStep {
        title: "The metrics agree".to_owned(),
        commands: vec![
            format!(
                "curl -s{auth} {metrics_url} | grep -E '^({METRIC_ACTIVE_GENERATION}|{METRIC_REQUESTS_TOTAL}|{METRIC_BACKEND_STATE})'"
            ),
        ],
        expect,
    });
    if let Some(step) = config.and_then(|c| request_step(c, &target_text)) {
        steps.push(step);
    }
    steps
}

/// A request through the first listener to the first route with an exact host.
fn request_step(config: &Config, target: &str) -> Option<VerifyStep> {
    if !config.server.generation_header {
        return None;
    }
    let listener = config.listeners.values().next()?;
    let addr = loopback_for(listener.addr.value);
    let host = config
        .routes
        .iter()
        .find_map(|r| match r.host.as_ref().map(|h| &h.value) {
            Some(HostMatch::Exact(host)) => Some(host.clone()),
            _ => None,
        });
    let host_header = host.map_or(String::new(), |h| {
        format!(" -H {}", shell_word(&format!("host: {h}")))
    });
    Some(VerifyStep {
        title: "A real request is routed by the target generation".to_owned(),
        commands: vec![format!(
            "curl -s -o /dev/null -D -{host_header} {} | grep -i {GENERATION_HEADER}",
            shell_word(&format!("http://{addr}/"))
        )],
        expect: vec![format!("`{GENERATION_HEADER}: {target}`")],
    })
}

/// A listener bound to the unspecified address is reached on loopback.
fn loopback_for(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}
