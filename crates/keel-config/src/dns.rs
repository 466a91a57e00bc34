//! DNS backends: `backends = [{ host = "web.internal", port = 8080, resolve = "30s" }]`,
//! a name whose A/AAAA addresses are the pool's backends, re-resolved on a schedule.
//!
//! This module owns the model, its parse, and [`expand_dns_backends`], which the loader
//! calls to turn each name into one [`Backend`] per address (all at the name's span, so
//! findings point at it). The addresses come from the installed [`DnsAddresses`]
//! (`keel serve`'s resolver, which keeps the last good answer of every name), or, with
//! none installed (a bare `keel check`), from the system resolver.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::codes;
use crate::defaults as d;
use crate::diagnostic::Diagnostic;
use crate::model::{Backend, Pool};
use crate::reader::{Sink, Table};
use crate::span::{Located, Span};

/// A backend given by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DnsBackend {
    /// The span of the backend's table.
    pub span: Span,
    /// The DNS name.
    pub host: Located<String>,
    /// The port every address is used with.
    pub port: u16,
    /// Time between two resolutions.
    pub resolve: Duration,
    /// The weight of each address.
    pub weight: u32,
}

/// Where the loader gets a name's addresses (see the module doc).
pub trait DnsAddresses: Send + Sync {
    /// The addresses of `host` (with `port`), asking `resolvers` (`[server] resolvers`;
    /// empty: the system's) if it has none yet.
    fn addresses(
        &self,
        host: &str,
        port: u16,
        resolvers: &[SocketAddr],
    ) -> Result<Vec<SocketAddr>, String>;
}

static ADDRESSES: RwLock<Option<Arc<dyn DnsAddresses>>> = RwLock::new(None);

/// Installs the process's source of DNS backend addresses (`keel serve` does).
pub fn install_dns_addresses(source: Arc<dyn DnsAddresses>) {
    *ADDRESSES.write().unwrap_or_else(|p| p.into_inner()) = Some(source);
}

/// Reads `{ host, port, resolve, weight }`.
pub(crate) fn parse_dns_backend(sink: &mut Sink, backend: &Table<'_, '_>) -> Option<DnsBackend> {
    let host = backend.string(sink, "host")?;
    let valid = !host.value.is_empty()
        && host.value.len() <= 253
        && host.value.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if host.value.parse::<std::net::IpAddr>().is_ok() {
        // An IP literal looks like a name of digit labels, but nothing resolves it: the
        // pool would start with no backend although `keel check` let it pass.
        sink.invalid(
            host.span,
            format!("`{}` is an IP address, not a DNS name", host.value),
            format!(
                "write {{ addr = \"{}:PORT\" }} (or the address string)",
                host.value
            ),
        );
        return None;
    }
    if !valid {
        sink.invalid(
            host.span,
            format!("`{}` is not a DNS name", host.value),
            "write host = \"web.internal\" (an IP address goes in `addr`)",
        );
        return None;
    }
    let port = backend.u32(sink, "port", 0, 1, u32::from(u16::MAX));
    if backend.get("port").is_none() {
        sink.push(
            Diagnostic::error(codes::MISSING_KEY, "a DNS backend is missing `port`")
                .at(backend.span, "`port` is required with `host`")
                .with_help("write { host = \"web.internal\", port = 8080 }"),
        );
        return None;
    }
    let resolve = backend.duration(sink, "resolve", d::DNS_RESOLVE_INTERVAL);
    if resolve.value < d::MIN_DNS_RESOLVE_INTERVAL {
        sink.invalid(
            resolve.span,
            format!(
                "resolving more often than every {:?} only loads the DNS servers",
                d::MIN_DNS_RESOLVE_INTERVAL
            ),
            "write resolve = \"30s\"",
        );
    }
    let weight = backend
        .u32(sink, "weight", d::BACKEND_WEIGHT, 0, d::MAX_WEIGHT)
        .value;
    Some(DnsBackend {
        span: backend.span,
        host,
        port: u16::try_from(port.value).unwrap_or(u16::MAX),
        resolve: resolve.value.max(d::MIN_DNS_RESOLVE_INTERVAL),
        weight,
    })
}

/// Adds a [`Backend`] per address of every DNS backend of every pool. A name without
/// addresses is a warning at its `host`: the pool serves with its other backends.
pub fn expand_dns_backends(
    pools: &mut indexmap::IndexMap<String, Pool>,
    resolvers: &[SocketAddr],
) -> Vec<Diagnostic> {
    let source = ADDRESSES.read().unwrap_or_else(|p| p.into_inner()).clone();
    let mut findings = Vec::new();
    for pool in pools.values_mut() {
        for dns in &pool.dns_backends {
            let found = match &source {
                Some(source) => source.addresses(&dns.host.value, dns.port, resolvers),
                None => (dns.host.value.as_str(), dns.port)
                    .to_socket_addrs()
                    .map(Iterator::collect)
                    .map_err(|e| e.to_string()),
            };
            let found = found.and_then(|addresses| {
                if addresses.is_empty() {
                    Err("no A or AAAA record".to_string())
                } else {
                    Ok(addresses)
                }
            });
            match found {
                Ok(addresses) => {
                    for addr in addresses {
                        if !pool.backends.iter().any(|b| b.addr.value == addr) {
                            pool.backends.push(Backend {
                                addr: Located::new(addr, dns.host.span),
                                weight: dns.weight,
                            });
                        }
                    }
                }
                Err(reason) => findings.push(
                    Diagnostic::warning(
                        codes::DNS_UNRESOLVED,
                        format!("`{}` does not resolve: {reason}", dns.host.value),
                    )
                    .at(dns.host.span, "no address for this name")
                    .with_help("check the name and `[server] resolvers`"),
                ),
            }
        }
    }
    findings
}
