//! The small sections: listeners, admin, safety, detectors, alerts, access log,
//! server and traffic sample.

use indexmap::IndexMap;

use super::named_tables;
use crate::codes;
use crate::defaults as d;
use crate::diagnostic::Diagnostic;
use crate::duration::format_duration;
use crate::model::{
    AccessLog, Admin, Alerts, Detectors, Listener, RolledBackTunnels, Safety, Server, Traffic,
    Webhook,
};
use crate::reader::{Sink, Table, span_of};

/// Longest `[server] idle_spin` accepted (1 millisecond): the spin is a pause for
/// events to gather, not a replacement for sleeping.
const MAX_IDLE_SPIN: std::time::Duration = std::time::Duration::from_millis(1);

pub(super) fn listeners(sink: &mut Sink, root: &Table<'_, '_>) -> IndexMap<String, Listener> {
    let listeners = named_tables(sink, root, "listeners", "listener", |sink, name, table| {
        table.deny_unknown(sink, &["addr", "backlog", "tls", "proxy_protocol"]);
        let addr = table.addr(sink, "addr").or_else(|| {
            if table.get("addr").is_none() {
                sink.push(
                    Diagnostic::error(
                        codes::MISSING_KEY,
                        format!("listener `{}` is missing `addr`", name.value),
                    )
                    .at(table.span, "`addr` is required here")
                    .with_help("add addr = \"127.0.0.1:8080\""),
                );
            }
            None
        })?;
        let backlog = table
            .u32(sink, "backlog", d::LISTEN_BACKLOG, 1, d::MAX_LISTEN_BACKLOG)
            .value;
        let tls = super::certificates::listener_tls(sink, &table);
        let proxy_protocol = table.bool(sink, "proxy_protocol", d::PROXY_PROTOCOL);
        Some(Listener {
            name,
            addr,
            backlog,
            tls,
            proxy_protocol,
        })
    });
    if listeners.is_empty() && root.get("listeners").is_none() {
        sink.push(
            Diagnostic::error(codes::MISSING_KEY, "the config declares no listener")
                .at(crate::span::Span::new(0, 0), "no [listeners] table")
                .with_help("add [listeners.web] with addr = \"127.0.0.1:8080\""),
        );
    }
    listeners
}

pub(super) fn admin(sink: &mut Sink, root: &Table<'_, '_>) -> Option<Admin> {
    let table = root.table(sink, "admin", "[admin]")?;
    table.deny_unknown(sink, &["addr", "metrics_require_token", "read_token"]);
    let addr = match table.addr(sink, "addr") {
        Some(addr) => addr,
        None => super::default_admin().addr,
    };
    Some(Admin {
        addr,
        metrics_require_token: table.bool(sink, "metrics_require_token", d::METRICS_REQUIRE_TOKEN),
        read_token: table.string(sink, "read_token"),
    })
}

pub(super) fn safety(sink: &mut Sink, root: &Table<'_, '_>) -> Safety {
    let mut safety = Safety {
        max_shift: d::MAX_SHIFT,
        watch: d::WATCH,
        known_good_after: d::KNOWN_GOOD_AFTER,
        keep_generations: d::KEEP_GENERATIONS,
        promote_steps: d::PROMOTE_STEPS.to_vec(),
        drift_window: d::DRIFT_WINDOW,
        rolled_back_tunnels: if d::ROLLED_BACK_TUNNELS_DRAIN {
            RolledBackTunnels::Drain
        } else {
            RolledBackTunnels::Keep
        },
        tunnel_drain: d::TUNNEL_DRAIN,
        cert_expiry_warning: d::CERT_EXPIRY_WARNING,
    };
    let Some(table) = root.table(sink, "safety", "[safety]") else {
        return safety;
    };
    table.deny_unknown(
        sink,
        &[
            "max_shift",
            "watch",
            "known_good_after",
            "keep_generations",
            "promote_steps",
            "drift_window",
            "rolled_back_tunnels",
            "tunnel_drain",
            "cert_expiry_warning",
        ],
    );
    safety.drift_window = table.duration(sink, "drift_window", d::DRIFT_WINDOW).value;
    safety.cert_expiry_warning = table
        .duration(sink, "cert_expiry_warning", d::CERT_EXPIRY_WARNING)
        .value;
    safety.max_shift = table.fraction(sink, "max_shift").unwrap_or(d::MAX_SHIFT);
    safety.watch = table.duration(sink, "watch", d::WATCH).value;
    safety.known_good_after = table
        .duration(sink, "known_good_after", d::KNOWN_GOOD_AFTER)
        .value;
    safety.keep_generations = table
        .u32(sink, "keep_generations", d::KEEP_GENERATIONS, 1, 1000)
        .value;
    if let Some((items, span)) = table.array(sink, "promote_steps") {
        let mut steps = Vec::new();
        for item in items {
            match item
                .get_ref()
                .as_integer()
                .and_then(|i| i.as_str().parse::<u32>().ok())
            {
                Some(step) if (1..=100).contains(&step) => steps.push(step),
                _ => sink.invalid(
                    crate::reader::span_of(item),
                    "a promotion step must be a percentage from 1 to 100",
                    "write steps like [25, 50, 100]",
                ),
            }
        }
        if steps.windows(2).any(|w| w[0] >= w[1]) || steps.last() != Some(&100) {
            sink.invalid(
                span,
                "promotion steps must rise and end at 100",
                "write steps like [25, 50, 100]",
            );
        } else {
            safety.promote_steps = steps;
        }
    }
    if let Some(text) = table.string(sink, "rolled_back_tunnels") {
        match text.value.as_str() {
            "keep" => safety.rolled_back_tunnels = RolledBackTunnels::Keep,
            "drain" => safety.rolled_back_tunnels = RolledBackTunnels::Drain,
            other => sink.invalid(
                text.span,
                format!("unknown rolled_back_tunnels `{other}`"),
                "write \"drain\" (close them after tunnel_drain) or \"keep\" (leave them open)",
            ),
        }
    }
    safety.tunnel_drain = table.duration(sink, "tunnel_drain", d::TUNNEL_DRAIN).value;
    safety
}

pub(super) fn detectors(sink: &mut Sink, root: &Table<'_, '_>) -> Detectors {
    let mut detectors = Detectors {
        enabled: d::DETECTORS_ENABLED,
        window: d::DETECTOR_WINDOW,
        min_requests: d::DETECTOR_MIN_REQUESTS,
        share_shift: d::SHARE_SHIFT,
        error_rate: d::ERROR_RATE,
        latency_factor: d::LATENCY_FACTOR,
    };
    let Some(table) = root.table(sink, "detectors", "[detectors]") else {
        return detectors;
    };
    table.deny_unknown(
        sink,
        &[
            "enabled",
            "window",
            "min_requests",
            "share_shift",
            "error_rate",
            "latency_factor",
        ],
    );
    detectors.enabled = table.bool(sink, "enabled", d::DETECTORS_ENABLED);
    detectors.window = table.duration(sink, "window", d::DETECTOR_WINDOW).value;
    detectors.min_requests = table
        .u32(sink, "min_requests", d::DETECTOR_MIN_REQUESTS, 1, 1_000_000)
        .value;
    detectors.share_shift = table
        .fraction(sink, "share_shift")
        .unwrap_or(d::SHARE_SHIFT);
    detectors.error_rate = table.fraction(sink, "error_rate").unwrap_or(d::ERROR_RATE);
    detectors.latency_factor = table.positive(sink, "latency_factor", d::LATENCY_FACTOR);
    detectors
}

pub(super) fn alerts(sink: &mut Sink, root: &Table<'_, '_>) -> Alerts {
    let mut alerts = Alerts::default();
    let Some(table) = root.table(sink, "alerts", "[alerts]") else {
        return alerts;
    };
    table.deny_unknown(sink, &["webhooks"]);
    let Some((items, _)) = table.array(sink, "webhooks") else {
        return alerts;
    };
    for item in items {
        let Some(hook) = Table::from_value(sink, item, "webhooks", "a webhook") else {
            continue;
        };
        hook.deny_unknown(sink, &["url", "timeout", "attempts"]);
        let Some(url) =
            hook.required_string(sink, "url", "add url = \"http://127.0.0.1:9000/hook\"")
        else {
            continue;
        };
        if !url.value.starts_with("http://") {
            sink.invalid(
                url.span,
                format!("unsupported webhook URL `{}`", url.value),
                "use an http:// URL (https webhooks come with TLS support)",
            );
            continue;
        }
        alerts.webhooks.push(Webhook {
            url,
            timeout: hook.duration(sink, "timeout", d::WEBHOOK_TIMEOUT).value,
            attempts: hook
                .u32(sink, "attempts", d::WEBHOOK_ATTEMPTS, 1, 100)
                .value,
        });
    }
    alerts
}

pub(super) fn access_log(sink: &mut Sink, root: &Table<'_, '_>) -> AccessLog {
    let Some(table) = root.table(sink, "access_log", "[access_log]") else {
        return AccessLog::default();
    };
    table.deny_unknown(sink, &["path"]);
    AccessLog {
        path: table
            .string(sink, "path")
            .map(|p| p.value)
            .filter(|p| !p.is_empty()),
    }
}

pub(super) fn server(sink: &mut Sink, root: &Table<'_, '_>) -> Server {
    let mut server = Server {
        worker_threads: d::WORKER_THREADS,
        drain_timeout: d::DRAIN_TIMEOUT,
        max_header_bytes: d::MAX_HEADER_BYTES,
        max_headers: d::MAX_HEADERS,
        header_read_timeout: d::HEADER_READ_TIMEOUT,
        body_idle_timeout: d::BODY_IDLE_TIMEOUT,
        idle_spin: d::IDLE_SPIN,
        generation_header: d::GENERATION_HEADER,
        trusted_proxies: Vec::new(),
        resolvers: Vec::new(),
    };
    let Some(table) = root.table(sink, "server", "[server]") else {
        return server;
    };
    table.deny_unknown(
        sink,
        &[
            "worker_threads",
            "drain_timeout",
            "max_header_bytes",
            "max_headers",
            "header_read_timeout",
            "body_idle_timeout",
            "idle_spin",
            "generation_header",
            "trusted_proxies",
            "resolvers",
        ],
    );
    server.worker_threads = table
        .u32(sink, "worker_threads", d::WORKER_THREADS, 0, 1024)
        .value;
    server.drain_timeout = table
        .duration(sink, "drain_timeout", d::DRAIN_TIMEOUT)
        .value;
    server.max_header_bytes = table
        .u32(
            sink,
            "max_header_bytes",
            d::MAX_HEADER_BYTES,
            8192,
            1024 * 1024,
        )
        .value;
    server.max_headers = table
        .u32(sink, "max_headers", d::MAX_HEADERS, 8, 1000)
        .value;
    server.header_read_timeout = table
        .duration(sink, "header_read_timeout", d::HEADER_READ_TIMEOUT)
        .value;
    server.body_idle_timeout = table
        .duration(sink, "body_idle_timeout", d::BODY_IDLE_TIMEOUT)
        .value;
    let idle_spin = table.duration(sink, "idle_spin", d::IDLE_SPIN);
    server.idle_spin = if idle_spin.value > MAX_IDLE_SPIN {
        sink.invalid(
            idle_spin.span,
            format!(
                "`idle_spin` of {} is longer than the {} allowed",
                format_duration(idle_spin.value),
                format_duration(MAX_IDLE_SPIN)
            ),
            "spin for microseconds (\"20us\"), or write \"0s\" to sleep at once",
        );
        d::IDLE_SPIN
    } else {
        idle_spin.value
    };
    server.generation_header = table.bool(sink, "generation_header", d::GENERATION_HEADER);
    if let Some((blocks, _)) = super::policies::cidr_list(sink, &table, "trusted_proxies") {
        server.trusted_proxies = blocks;
    }
    if let Some((items, _)) = table.array(sink, "resolvers") {
        for item in items {
            match item.get_ref().as_str().map(str::parse) {
                Some(Ok(addr)) => server.resolvers.push(addr),
                _ => sink.invalid(
                    span_of(item),
                    "a resolver is an IP address and port",
                    "write resolvers = [\"10.0.0.2:53\"]",
                ),
            }
        }
    }
    server
}

pub(super) fn traffic(sink: &mut Sink, root: &Table<'_, '_>) -> Traffic {
    let mut traffic = Traffic {
        sample_size: d::TRAFFIC_SAMPLE_SIZE,
        window: d::TRAFFIC_SAMPLE_WINDOW,
    };
    let Some(table) = root.table(sink, "traffic", "[traffic]") else {
        return traffic;
    };
    table.deny_unknown(sink, &["sample_size", "window"]);
    traffic.sample_size = table
        .u32(sink, "sample_size", d::TRAFFIC_SAMPLE_SIZE, 0, 1_000_000)
        .value;
    traffic.window = table
        .duration(sink, "window", d::TRAFFIC_SAMPLE_WINDOW)
        .value;
    traffic
}
