//! `[services.NAME]` and `[pools.NAME]`.

use indexmap::IndexMap;
use toml::de::DeValue;

use super::{named_tables, valid_header_name};
use crate::codes;
use crate::defaults as d;
use crate::diagnostic::Diagnostic;
use crate::model::{
    Backend, Balance, HashKey, HealthCheck, Identity, Outlier, Pool, Service, UpstreamProtocol,
};
use crate::reader::{Sink, Table, span_of};
use crate::span::{Located, Span};

pub(super) fn services(sink: &mut Sink, root: &Table<'_, '_>) -> IndexMap<String, Service> {
    named_tables(sink, root, "services", "service", |sink, name, table| {
        table.deny_unknown(sink, &["identity", "verify_responses", "allow_no_identity"]);
        let identity = table
            .table(
                sink,
                "identity",
                format!("the identity of service `{}`", name.value),
            )
            .and_then(|id| {
                id.deny_unknown(sink, &["header", "equals"]);
                let header = id.required_string(sink, "header", "add header = \"x-service\"")?;
                let equals = id.required_string(
                    sink,
                    "equals",
                    "add equals = \"<the name the backend answers with>\"",
                )?;
                if !valid_header_name(&header.value) {
                    sink.invalid(
                        header.span,
                        format!("bad header name `{}`", header.value),
                        "use a plain HTTP header name such as \"x-service\"",
                    );
                    return None;
                }
                Some(Located::new(
                    Identity {
                        header: header.value.to_ascii_lowercase(),
                        equals: equals.value,
                    },
                    id.span,
                ))
            });
        let explicit_verify = table.get("verify_responses").is_some();
        let verify_responses = table.bool(sink, "verify_responses", d::VERIFY_RESPONSES);
        let allow_no_identity = table.bool(sink, "allow_no_identity", false);
        if explicit_verify
            && verify_responses
            && identity.is_none()
            && table.get("identity").is_none()
        {
            sink.push(
                Diagnostic::error(
                    codes::MISSING_KEY,
                    format!(
                        "service `{}` verifies responses but has no identity",
                        name.value
                    ),
                )
                .at(table.span, "verify_responses needs an identity")
                .with_help("add identity = { header = \"x-service\", equals = \"...\" }"),
            );
        }
        Some(Service {
            name,
            identity,
            verify_responses,
            allow_no_identity,
        })
    })
}

pub(super) fn pools(sink: &mut Sink, root: &Table<'_, '_>) -> IndexMap<String, Pool> {
    named_tables(sink, root, "pools", "pool", |sink, name, table| {
        table.deny_unknown(
            sink,
            &[
                "service",
                "balance",
                "hash_key",
                "backends",
                "health",
                "outlier",
                "connect_timeout",
                "max_idle_per_backend",
                "idle_timeout",
                "max_connections",
                "protocol",
                "max_streams_per_connection",
                "tls",
                "draining",
                "legacy",
            ],
        );
        let service = table.required_string(
            sink,
            "service",
            "name the service every backend of this pool is, e.g. service = \"web\"",
        );
        let balance = balance(sink, &table);
        let mut dns_backends = Vec::new();
        let backends = backends(sink, &table, &mut dns_backends);
        let outlier = table
            .table(
                sink,
                "outlier",
                format!("the outlier ejection of pool `{}`", name.value),
            )
            .map_or_else(default_outlier, |o| outlier(sink, &o));
        let connect_timeout = table.duration(sink, "connect_timeout", d::CONNECT_TIMEOUT);
        if connect_timeout.value.is_zero() {
            sink.invalid(
                connect_timeout.span,
                "connect_timeout must be above zero",
                "write a duration such as \"1s\"",
            );
        }
        let idle_timeout = table.duration(sink, "idle_timeout", d::UPSTREAM_IDLE_TIMEOUT);
        if idle_timeout.value.is_zero() {
            sink.invalid(
                idle_timeout.span,
                "idle_timeout must be above zero",
                "write a duration below the backends' own keep-alive timeout, such as \"4s\" \
                 (max_idle_per_backend = 0 turns keep-alive off)",
            );
        }
        let protocol = protocol(sink, &table);
        let health = table
            .table(
                sink,
                "health",
                format!("the health check of pool `{}`", name.value),
            )
            .map(|h| health(sink, &h, protocol.value));
        if protocol.value == UpstreamProtocol::H2 && table.get("tls").is_none() {
            sink.push(
                Diagnostic::error(codes::MISSING_KEY, "protocol = \"h2\" is HTTP/2 over TLS")
                    .at(protocol.span, "this pool has no `tls` table")
                    .with_help(
                        "add tls = { server_name = \"...\" }, or use protocol = \"h2c\" for HTTP/2 without TLS",
                    ),
            );
        }
        let max_streams_per_connection = table.u32(
            sink,
            "max_streams_per_connection",
            d::MAX_STREAMS_PER_CONNECTION,
            1,
            d::MAX_STREAMS_PER_CONNECTION_LIMIT,
        );
        if table.get("max_streams_per_connection").is_some() && !protocol.value.is_h2() {
            sink.push(
                Diagnostic::error(
                    codes::CONFLICTING_KEYS,
                    "`max_streams_per_connection` only applies to HTTP/2 pools",
                )
                .at(
                    max_streams_per_connection.span,
                    "an HTTP/1.1 connection carries one request at a time",
                )
                .with_help("set protocol = \"h2c\" (or \"h2\"), or remove this key"),
            );
        }
        Some(Pool {
            span: table.span,
            service: service?,
            balance,
            backends,
            dns_backends,
            health,
            outlier,
            connect_timeout,
            max_idle_per_backend: table
                .u32(
                    sink,
                    "max_idle_per_backend",
                    d::MAX_IDLE_PER_BACKEND,
                    0,
                    65_536,
                )
                .value,
            idle_timeout,
            max_connections: table
                .u32(
                    sink,
                    "max_connections",
                    d::MAX_CONNECTIONS,
                    0,
                    d::MAX_CONNECTIONS_LIMIT,
                )
                .value,
            protocol,
            max_streams_per_connection: max_streams_per_connection.value,
            tls: crate::backend_tls::pool_tls(sink, &table),
            draining: table.bool(sink, "draining", false),
            legacy: table.bool(sink, "legacy", false),
            name,
        })
    })
}

/// `protocol = "http1" | "h2c" | "h2"`.
fn protocol(sink: &mut Sink, table: &Table<'_, '_>) -> Located<UpstreamProtocol> {
    let Some(text) = table.string(sink, "protocol") else {
        return Located::new(UpstreamProtocol::Http1, table.span);
    };
    let protocol = match text.value.as_str() {
        "http1" => UpstreamProtocol::Http1,
        "h2c" => UpstreamProtocol::H2c,
        "h2" => UpstreamProtocol::H2,
        other => {
            sink.invalid(
                text.span,
                format!("unknown protocol `{other}`"),
                "use \"http1\", \"h2c\" (HTTP/2 without TLS, e.g. gRPC) or \"h2\" (HTTP/2 over TLS)",
            );
            UpstreamProtocol::Http1
        }
    };
    Located::new(protocol, text.span)
}

fn balance(sink: &mut Sink, table: &Table<'_, '_>) -> Balance {
    let algorithm = table.string(sink, "balance");
    let hash_key = table.string(sink, "hash_key");
    let balance = match algorithm.as_ref().map(|a| a.value.as_str()) {
        None | Some("round_robin") => Balance::RoundRobin,
        Some("least_request") => Balance::LeastRequest,
        Some("consistent_hash") => match &hash_key {
            Some(key) => match parse_hash_key(&key.value) {
                Some(parsed) => Balance::ConsistentHash(parsed),
                None => {
                    sink.invalid(
                        key.span,
                        format!("bad hash_key `{}`", key.value),
                        "use \"header:NAME\", \"cookie:NAME\" or \"client_ip\"",
                    );
                    Balance::ConsistentHash(HashKey::ClientIp)
                }
            },
            None => {
                sink.push(
                    Diagnostic::error(codes::MISSING_KEY, "consistent_hash needs a `hash_key`")
                        .at(
                            algorithm.as_ref().map_or(table.span, |a| a.span),
                            "no hash_key for this pool",
                        )
                        .with_help("add hash_key = \"cookie:cart_id\" (or header:NAME, client_ip)"),
                );
                Balance::ConsistentHash(HashKey::ClientIp)
            }
        },
        Some(other) => {
            if let Some(a) = &algorithm {
                sink.invalid(
                    a.span,
                    format!("unknown balance `{other}`"),
                    "use \"round_robin\", \"least_request\" or \"consistent_hash\"",
                );
            }
            Balance::RoundRobin
        }
    };
    if let (Some(key), false) = (&hash_key, matches!(balance, Balance::ConsistentHash(_))) {
        sink.push(
            Diagnostic::error(
                codes::CONFLICTING_KEYS,
                "`hash_key` only applies to balance = \"consistent_hash\"",
            )
            .at(key.span, "ignored by this balance")
            .with_help("remove hash_key, or set balance = \"consistent_hash\""),
        );
    }
    balance
}

/// `header:NAME`, `cookie:NAME` or `client_ip`.
pub fn parse_hash_key(text: &str) -> Option<HashKey> {
    if text == "client_ip" {
        return Some(HashKey::ClientIp);
    }
    let (kind, name) = text.split_once(':')?;
    if name.is_empty() || !valid_header_name(name) {
        return None;
    }
    match kind {
        "header" => Some(HashKey::Header(name.to_ascii_lowercase())),
        "cookie" => Some(HashKey::Cookie(name.to_string())),
        _ => None,
    }
}

fn backends(
    sink: &mut Sink,
    table: &Table<'_, '_>,
    dns: &mut Vec<crate::dns::DnsBackend>,
) -> Vec<Backend> {
    let Some((items, _)) = table.array(sink, "backends") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        if let DeValue::String(text) = item.get_ref() {
            match text.parse() {
                Ok(addr) => out.push(Backend {
                    addr: Located::new(addr, span_of(item)),
                    weight: d::BACKEND_WEIGHT,
                }),
                Err(_) => sink.invalid(
                    span_of(item),
                    format!("bad backend address `{text}`"),
                    "write an IP address and port, such as \"127.0.0.1:9001\"",
                ),
            }
            continue;
        }
        let Some(backend) = Table::from_value(sink, item, "backends", "a backend") else {
            continue;
        };
        if backend.get("host").is_some() {
            backend.deny_unknown(sink, &["host", "port", "resolve", "weight"]);
            dns.extend(crate::dns::parse_dns_backend(sink, &backend));
            continue;
        }
        if backend.get("srv").is_some() {
            // `port` and `weight` are refused by the SRV parse, saying why.
            backend.deny_unknown(sink, &["srv", "resolve", "port", "weight"]);
            dns.extend(crate::dns_srv::parse_srv_backend(sink, &backend));
            continue;
        }
        backend.deny_unknown(sink, &["addr", "weight"]);
        let weight = backend
            .u32(sink, "weight", d::BACKEND_WEIGHT, 0, d::MAX_WEIGHT)
            .value;
        match backend.addr(sink, "addr") {
            Some(addr) => out.push(Backend { addr, weight }),
            None if backend.get("addr").is_none() => sink.push(
                Diagnostic::error(codes::MISSING_KEY, "a backend is missing `addr`")
                    .at(backend.span, "`addr` is required here")
                    .with_help("write { addr = \"127.0.0.1:9001\" }"),
            ),
            None => {}
        }
    }
    out
}

fn health(sink: &mut Sink, table: &Table<'_, '_>, protocol: UpstreamProtocol) -> HealthCheck {
    table.deny_unknown(
        sink,
        &[
            "kind",
            "grpc_service",
            "path",
            "interval",
            "timeout",
            "healthy_after",
            "unhealthy_after",
        ],
    );
    let path = table.string(sink, "path");
    let grpc_service = grpc_health(sink, table, protocol, path.as_ref().map(|p| p.span));
    let path = path.map_or_else(
        || d::HEALTH_PATH.to_string(),
        |p| {
            if !p.value.starts_with('/') {
                sink.invalid(
                    p.span,
                    "a health check path must start with `/`",
                    "write path = \"/healthz\"",
                );
            }
            p.value
        },
    );
    let interval = table.duration(sink, "interval", d::HEALTH_INTERVAL);
    let timeout = table.duration(sink, "timeout", d::HEALTH_TIMEOUT);
    for value in [&interval, &timeout] {
        if value.value.is_zero() {
            sink.invalid(
                value.span,
                "health check durations must be above zero",
                "write a duration such as \"1s\"",
            );
        }
    }
    HealthCheck {
        path,
        grpc_service,
        interval: interval.value.max(std::time::Duration::from_millis(1)),
        timeout: timeout.value.max(std::time::Duration::from_millis(1)),
        healthy_after: table
            .u32(sink, "healthy_after", d::HEALTHY_AFTER, 1, 100)
            .value,
        unhealthy_after: table
            .u32(sink, "unhealthy_after", d::UNHEALTHY_AFTER, 1, 100)
            .value,
    }
}

/// `kind = "http" | "grpc"` and `grpc_service`: the service name a gRPC check asks
/// about, or `None` for an HTTP check.
fn grpc_health(
    sink: &mut Sink,
    table: &Table<'_, '_>,
    protocol: UpstreamProtocol,
    path: Option<Span>,
) -> Option<String> {
    let kind = table.string(sink, "kind");
    let grpc = match &kind {
        None => false,
        Some(k) if k.value == "http" => false,
        Some(k) if k.value == "grpc" => true,
        Some(k) => {
            sink.invalid(
                k.span,
                format!("unknown health check kind `{}`", k.value),
                "write kind = \"http\" (a GET of `path`) or kind = \"grpc\" (grpc.health.v1.Health/Check)",
            );
            false
        }
    };
    let service = table.string(sink, "grpc_service");
    if let Some(kind) = kind.as_ref().filter(|_| grpc) {
        if !protocol.is_h2() {
            sink.push(
                Diagnostic::error(
                    codes::CONFLICTING_KEYS,
                    "a gRPC health check needs an HTTP/2 pool",
                )
                .at(kind.span, "this pool speaks HTTP/1.1 to its backends")
                .with_help("set protocol = \"h2c\" (or \"h2\" with tls) on the pool, or use kind = \"http\""),
            );
        }
        if let Some(path) = path {
            sink.push(
                Diagnostic::error(
                    codes::CONFLICTING_KEYS,
                    "a gRPC health check has no `path`",
                )
                .at(path, "it always calls /grpc.health.v1.Health/Check")
                .with_help("remove `path`; name the gRPC service to ask about with grpc_service = \"...\""),
            );
        }
        return Some(service.map(|s| s.value).unwrap_or_default());
    }
    if let Some(service) = service {
        sink.push(
            Diagnostic::error(
                codes::CONFLICTING_KEYS,
                "`grpc_service` only applies to a gRPC health check",
            )
            .at(service.span, "this health check is an HTTP GET")
            .with_help("add kind = \"grpc\", or remove this key"),
        );
    }
    None
}

fn default_outlier() -> Outlier {
    Outlier {
        consecutive_failures: d::OUTLIER_CONSECUTIVE_FAILURES,
        base_ejection: d::OUTLIER_BASE_EJECTION,
        max_ejection: d::OUTLIER_MAX_EJECTION,
    }
}

fn outlier(sink: &mut Sink, table: &Table<'_, '_>) -> Outlier {
    table.deny_unknown(
        sink,
        &["consecutive_failures", "base_ejection", "max_ejection"],
    );
    Outlier {
        consecutive_failures: table
            .u32(
                sink,
                "consecutive_failures",
                d::OUTLIER_CONSECUTIVE_FAILURES,
                0,
                10_000,
            )
            .value,
        base_ejection: table
            .duration(sink, "base_ejection", d::OUTLIER_BASE_EJECTION)
            .value,
        max_ejection: table
            .duration(sink, "max_ejection", d::OUTLIER_MAX_EJECTION)
            .value,
    }
}
