//! DNS backends (`{ host, port, resolve }` and `{ srv, resolve }`): the names' last good
//! addresses, and the task that re-resolves them and applies a changed answer as a new
//! generation.
//!
//! [`DnsCache`] is the loader's [`DnsAddresses`]: a name it has an answer for gets that
//! answer (the last good one), so loading a config never waits on DNS, and a name that
//! stops resolving keeps serving its old addresses. A name seen for the first time is
//! resolved there and then, bounded by `DNS_TIMEOUT`. [`run_dns`] re-resolves every
//! name of the active config on its `resolve` schedule with hickory-resolver (SRV names
//! through `dns_srv`, which also owns what priority and weight become); when an
//! answer changes, it updates the cache and applies the active config text again, so the
//! new addresses go through the identity probes, the gate and the guard like any change.
//! First answers, changes and failures are `dns` store events.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};
use keel_config::defaults as d;
use keel_config::{DnsAddresses, DnsBackend, DnsRecord, DnsTarget, install_dns_addresses};
use keel_store::NewEvent;
use serde_json::json;

use crate::{ApplyRequest, ApplyStatus, Controller};

/// Store event kind of DNS results, changes and failures.
pub const DNS_EVENT_KIND: &str = "dns";
/// Author and origin of the applies a DNS change makes.
pub const DNS_AUTHOR: &str = "dns";

/// What is resolved: a `host` with its port, or an SRV name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Name {
    Address(String, u16),
    Srv(String),
}

impl Name {
    fn of(dns: &DnsBackend) -> Self {
        match dns.record {
            DnsRecord::Address => Self::Address(dns.host.value.clone(), dns.port),
            DnsRecord::Srv => Self::Srv(dns.host.value.clone()),
        }
    }

    /// How events name it: `web.internal:8080`, `SRV _http._tcp.web.internal`.
    fn label(&self) -> String {
        match self {
            Self::Address(host, port) => format!("{host}:{port}"),
            Self::Srv(name) => format!("SRV {name}"),
        }
    }

    async fn resolve(&self, resolvers: &[SocketAddr]) -> Result<Vec<DnsTarget>, String> {
        match self {
            Self::Address(host, port) => Ok(resolve(host, *port, resolvers)
                .await?
                .into_iter()
                .map(|addr| DnsTarget { addr, weight: None })
                .collect()),
            Self::Srv(name) => crate::dns_srv::resolve_srv(name, resolvers).await,
        }
    }
}

/// `address` or `address (weight N)` (an SRV answer's).
fn show(targets: &[DnsTarget]) -> Vec<String> {
    targets
        .iter()
        .map(|target| match target.weight {
            Some(weight) => format!("{} (weight {weight})", target.addr),
            None => target.addr.to_string(),
        })
        .collect()
}

/// The last good addresses of every DNS backend name.
#[derive(Debug, Default)]
pub struct DnsCache {
    answers: Mutex<HashMap<Name, Vec<DnsTarget>>>,
}

impl DnsCache {
    /// A cache installed as the loader's source of addresses (call before the first load).
    pub fn install() -> Arc<Self> {
        let cache = Arc::new(Self::default());
        install_dns_addresses(cache.clone());
        cache
    }

    fn get(&self, name: &Name) -> Option<Vec<DnsTarget>> {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Keeps `addresses` for `name`; returns the previous answer.
    fn set(&self, name: Name, addresses: Vec<DnsTarget>) -> Option<Vec<DnsTarget>> {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, addresses)
    }
}

impl DnsCache {
    /// The last good answer of `name`, or, at first sight (a start, or an apply adding
    /// the name), a resolution there and then: the loader is synchronous, so on a thread
    /// of its own with a runtime of its own.
    fn known_or_resolve(
        &self,
        name: Name,
        resolvers: &[SocketAddr],
    ) -> Result<Vec<DnsTarget>, String> {
        if let Some(known) = self.get(&name) {
            return Ok(known);
        }
        let (asked, resolvers) = (name.clone(), resolvers.to_vec());
        let found = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(asked.resolve(&resolvers))
        })
        .join()
        .map_err(|_| "the resolver thread failed".to_string())??;
        self.set(name, found.clone());
        Ok(found)
    }
}

impl DnsAddresses for DnsCache {
    fn addresses(
        &self,
        host: &str,
        port: u16,
        resolvers: &[SocketAddr],
    ) -> Result<Vec<SocketAddr>, String> {
        let found = self.known_or_resolve(Name::Address(host.to_string(), port), resolvers)?;
        Ok(found.into_iter().map(|target| target.addr).collect())
    }

    fn srv_targets(&self, name: &str, resolvers: &[SocketAddr]) -> Result<Vec<DnsTarget>, String> {
        self.known_or_resolve(Name::Srv(name.to_string()), resolvers)
    }
}

/// The addresses of `host` with `port`, sorted, from `resolvers` (empty: the system's).
async fn resolve(
    host: &str,
    port: u16,
    resolvers: &[SocketAddr],
) -> Result<Vec<SocketAddr>, String> {
    let resolver = resolver(resolvers)?;
    let lookup = tokio::time::timeout(d::DNS_TIMEOUT, resolver.lookup_ip(fqdn(host)))
        .await
        .map_err(|_| format!("no answer within {:?}", d::DNS_TIMEOUT))?
        .map_err(|e| e.to_string())?;
    let mut addresses: Vec<SocketAddr> =
        lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect();
    addresses.sort();
    addresses.dedup();
    if addresses.is_empty() {
        return Err("no A or AAAA record".into());
    }
    Ok(addresses)
}

/// `name` with a trailing dot: a name with one is not searched in the local domains.
pub(crate) fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// A resolver asking `resolvers` (empty: the system's).
pub(crate) fn resolver(resolvers: &[SocketAddr]) -> Result<TokioResolver, String> {
    let builder = if resolvers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| e.to_string())?
    } else {
        let servers = resolvers
            .iter()
            .map(|addr| {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                server
            })
            .collect();
        Resolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    builder.build().map_err(|e| e.to_string())
}

/// Re-resolves the DNS backends of the active config until `shutdown` (see the module doc).
pub async fn run_dns(
    controller: Controller,
    cache: Arc<DnsCache>,
    config_file: Option<std::path::PathBuf>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut next: HashMap<Name, tokio::time::Instant> = HashMap::new();
    let mut failing: HashMap<Name, bool> = HashMap::new();
    tokio::pin!(shutdown);
    loop {
        let mut sleep = d::DNS_RESOLVE_INTERVAL;
        let mut changed = Vec::new();
        if let Some(active) = controller.active() {
            let config = active.generation.config.clone();
            let now = tokio::time::Instant::now();
            for pool in config.pools.values() {
                for dns in &pool.dns_backends {
                    let name = Name::of(dns);
                    let due = next.get(&name).copied().unwrap_or(now);
                    if due > now {
                        sleep = sleep.min(due - now);
                        continue;
                    }
                    next.insert(name.clone(), now + dns.resolve);
                    sleep = sleep.min(dns.resolve);
                    let result = tokio::select! {
                        () = &mut shutdown => return,
                        result = name.resolve(&config.server.resolvers) => result,
                    };
                    if let Some(change) =
                        observe(&controller, &cache, &mut failing, &name, result).await
                    {
                        changed.push(change);
                    }
                }
            }
        }
        if !changed.is_empty() {
            apply_changes(&controller, config_file.as_deref(), &changed).await;
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Records one resolution; returns a description when the answer changed.
async fn observe(
    controller: &Controller,
    cache: &DnsCache,
    failing: &mut HashMap<Name, bool>,
    name: &Name,
    result: Result<Vec<DnsTarget>, String>,
) -> Option<String> {
    let label = name.label();
    match result {
        Ok(addresses) => {
            let was_failing = failing.insert(name.clone(), false).unwrap_or(false);
            let previous = cache.set(name.clone(), addresses.clone());
            let shown = show(&addresses);
            match previous {
                Some(old) if old == addresses => {
                    if was_failing {
                        record(
                            controller,
                            format!(
                                "DNS: {label} resolves again, unchanged: {}",
                                shown.join(", ")
                            ),
                            json!({"name": label, "addresses": shown, "step": "recovered"}),
                        )
                        .await;
                    }
                    None
                }
                Some(old) => {
                    let old = show(&old);
                    let summary = format!(
                        "DNS: {label} changed from {} to {}",
                        old.join(", "),
                        shown.join(", ")
                    );
                    record(controller, summary.clone(), json!({"name": label, "addresses": shown, "previous": old, "step": "changed"})).await;
                    Some(summary)
                }
                None => {
                    record(
                        controller,
                        format!("DNS: {label} resolves to {}", shown.join(", ")),
                        json!({"name": label, "addresses": shown, "step": "resolved"}),
                    )
                    .await;
                    None
                }
            }
        }
        Err(error) => {
            // Only the first failure of a streak is an event: the last good addresses
            // keep serving meanwhile.
            if !failing.insert(name.clone(), true).unwrap_or(false) {
                let kept = show(&cache.get(name).unwrap_or_default());
                let summary = format!(
                    "DNS: {label} does not resolve ({error}); keeping its last good addresses: {}",
                    if kept.is_empty() {
                        "none".to_string()
                    } else {
                        kept.join(", ")
                    }
                );
                tracing::warn!("{summary}");
                record(
                    controller,
                    summary,
                    json!({"name": label, "error": error, "kept": kept, "step": "failed"}),
                )
                .await;
            }
            None
        }
    }
}

/// Applies the active config again so that the loader reads the new answers.
async fn apply_changes(
    controller: &Controller,
    config_file: Option<&std::path::Path>,
    changed: &[String],
) {
    let Some(active) = controller.active() else {
        return;
    };
    let request = ApplyRequest {
        config_text: active.config_text.to_string(),
        author: DNS_AUTHOR.to_string(),
        message: changed.join("; "),
        origin: DNS_AUTHOR.to_string(),
        file_name: config_file.map_or_else(
            || format!("generation {}", active.id()),
            |file| file.display().to_string(),
        ),
        ..ApplyRequest::default()
    };
    match controller.apply(request).await {
        Ok(outcome) if outcome.status == ApplyStatus::Applied => tracing::info!(
            generation = outcome.generation,
            "DNS change applied: {}",
            changed.join("; ")
        ),
        Ok(outcome) => tracing::error!(
            "DNS change refused; the active generation keeps the old addresses\n{}",
            outcome.report_text
        ),
        Err(error) => tracing::error!(%error, "DNS change: apply failed"),
    }
}

async fn record(controller: &Controller, summary: String, details: serde_json::Value) {
    let event = NewEvent::new(DNS_EVENT_KIND, summary).details(details);
    if let Err(error) = controller.with_store(move |s| s.append_event(event)).await {
        tracing::warn!(%error, "cannot record a DNS event");
    }
}
