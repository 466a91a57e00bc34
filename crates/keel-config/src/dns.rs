//! DNS backends: `backends = [{ host = "web.internal", port = 8080, resolve = "30s" }]`,
//! a name whose A/AAAA addresses are the pool's backends, or `{ srv =
//! "_http._tcp.web.internal" }`, an SRV record whose targets are (parsed in `dns_srv`),
//! re-resolved on a schedule.
//!
//! This module owns the model, the `host` entry's parse, and [`expand_dns_backends`],
//! which the loader calls to turn each name into one [`Backend`] per address (all at the
//! name's span, so findings point at it). The addresses come from the installed
//! [`DnsAddresses`] (`keel serve`'s and `keel check`'s resolver, which keeps the last good
//! answer of every name), or, with none installed (a library caller), from the system
//! resolver (A/AAAA only: SRV names then are K231).

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
    /// Which records name the backends.
    pub record: DnsRecord,
    /// The DNS name (`host`, or the SRV name of `srv`).
    pub host: Located<String>,
    /// The port every address is used with (SRV: 0, each record gives its port).
    pub port: u16,
    /// Time between two resolutions.
    pub resolve: Duration,
    /// The weight of each address (SRV: unused, the records give the weights).
    pub weight: u32,
}

/// The records a [`DnsBackend`] is resolved through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DnsRecord {
    /// `host`: its A and AAAA records, each address with the entry's `port`.
    Address,
    /// `srv`: its SRV records' targets (best priority class), with their ports and weights.
    Srv,
}

/// One address a DNS backend resolved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsTarget {
    /// The address, with the entry's port (A/AAAA) or the record's (SRV).
    pub addr: SocketAddr,
    /// The SRV record's weight as a Keel weight (docs/config.md, `backends`); `None` for an
    /// A/AAAA answer, whose entry's `weight` applies.
    pub weight: Option<u32>,
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

    /// The targets of the SRV record `name` (best priority class, with their ports and
    /// weights), asking `resolvers` if it has none yet. A source without SRV support
    /// says so, which the loader reports as K231.
    fn srv_targets(&self, name: &str, resolvers: &[SocketAddr]) -> Result<Vec<DnsTarget>, String> {
        let _ = (name, resolvers);
        Err("this resolver does not look up SRV records".into())
    }
}

static ADDRESSES: RwLock<Option<Arc<dyn DnsAddresses>>> = RwLock::new(None);

/// Installs the process's source of DNS backend addresses (`keel serve` does).
pub fn install_dns_addresses(source: Arc<dyn DnsAddresses>) {
    *ADDRESSES.write().unwrap_or_else(|p| p.into_inner()) = Some(source);
}

/// Reads `{ host, port, resolve, weight }`.
pub(crate) fn parse_dns_backend(sink: &mut Sink, backend: &Table<'_, '_>) -> Option<DnsBackend> {
    let host = backend.string(sink, "host")?;
    let valid = is_dns_name(&host.value, false);
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
    let resolve = resolve_interval(sink, backend);
    let weight = backend
        .u32(sink, "weight", d::BACKEND_WEIGHT, 0, d::MAX_WEIGHT)
        .value;
    Some(DnsBackend {
        span: backend.span,
        record: DnsRecord::Address,
        host,
        port: u16::try_from(port.value).unwrap_or(u16::MAX),
        resolve,
        weight,
    })
}

/// Whether `name` is a DNS name: labels of letters, digits and `-` (and `_` at a label's
/// start when `underscore` is set), at most 63 bytes each and 253 in all.
pub(crate) fn is_dns_name(name: &str, underscore: bool) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.trim_end_matches('.').split('.').all(|label| {
            let label = if underscore {
                label.strip_prefix('_').unwrap_or(label)
            } else {
                label
            };
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `resolve`, at least `MIN_DNS_RESOLVE_INTERVAL` (an error below it).
pub(crate) fn resolve_interval(sink: &mut Sink, backend: &Table<'_, '_>) -> Duration {
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
    resolve.value.max(d::MIN_DNS_RESOLVE_INTERVAL)
}

/// Adds a [`Backend`] per address of every DNS backend of every pool. A name without
/// addresses is a warning at its `host` or `srv`: the pool serves with its other backends.
pub fn expand_dns_backends(
    pools: &mut indexmap::IndexMap<String, Pool>,
    resolvers: &[SocketAddr],
) -> Vec<Diagnostic> {
    let source = ADDRESSES.read().unwrap_or_else(|p| p.into_inner()).clone();
    let mut findings = Vec::new();
    for pool in pools.values_mut() {
        for dns in &pool.dns_backends {
            let found = match dns.record {
                DnsRecord::Address => address_targets(source.as_deref(), dns, resolvers),
                DnsRecord::Srv => match &source {
                    Some(source) => source.srv_targets(&dns.host.value, resolvers),
                    None => Err("no resolver that looks up SRV records is installed".into()),
                },
            };
            let found = found.and_then(|targets| {
                if targets.is_empty() {
                    Err(match dns.record {
                        DnsRecord::Address => "no A or AAAA record".to_string(),
                        DnsRecord::Srv => "no SRV target with an address".to_string(),
                    })
                } else {
                    Ok(targets)
                }
            });
            match found {
                Ok(targets) => {
                    for target in targets {
                        if !pool.backends.iter().any(|b| b.addr.value == target.addr) {
                            pool.backends.push(Backend {
                                addr: Located::new(target.addr, dns.host.span),
                                weight: target.weight.unwrap_or(dns.weight),
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

/// The A/AAAA addresses of a `host` entry, from `source` or the system resolver.
fn address_targets(
    source: Option<&dyn DnsAddresses>,
    dns: &DnsBackend,
    resolvers: &[SocketAddr],
) -> Result<Vec<DnsTarget>, String> {
    let addresses: Vec<SocketAddr> = match source {
        Some(source) => source.addresses(&dns.host.value, dns.port, resolvers)?,
        None => (dns.host.value.as_str(), dns.port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .map_err(|e| e.to_string())?,
    };
    Ok(addresses
        .into_iter()
        .map(|addr| DnsTarget { addr, weight: None })
        .collect())
}
