//! Identity probes of the backends a change brings in, judged against every identity
//! of the old and the new config.
//!
//! An identity belongs to a service, not to one config edit: a backend new to a
//! generation (an address its service did not have, or any backend of a service whose
//! identity changed) is probed once, and the identity value it answers with is
//! compared with the identities of every service in the active config *and* in the
//! candidate. A backend that answers as another service's identity, old or new, is
//! named with that service, so an edit that rewrites a service's `identity.equals` to
//! the value its new (wrong) servers answer with is caught before the swap.
//!
//! The controller runs this before every swap, whether or not the pool has health
//! checks; [`IdentityFinding::refusal`] is the reason it refuses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keel_config::{Config, Identity, defaults};
use tokio::sync::Semaphore;

use super::MAX_CONCURRENT_PROBES;

/// Which config declared an identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The active (old) config.
    Active,
    /// The candidate (new) config.
    Candidate,
}

impl Side {
    fn words(self) -> &'static str {
        match self {
            Side::Active => "in the active config",
            Side::Candidate => "in this config",
        }
    }
}

/// One backend new to a generation, to be probed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBackend {
    /// Its pool in the candidate.
    pub pool: String,
    /// The pool's service.
    pub service: String,
    /// Its address.
    pub addr: SocketAddr,
    /// The header the probe reads.
    pub header: String,
    /// The identity its service declares in the candidate, if any.
    pub expected: Option<String>,
    /// Probe path: the pool's health path, or [`defaults::IDENTITY_PROBE_PATH`].
    pub path: String,
    /// The service a gRPC health check asks about, when the pool's check is gRPC: the
    /// probe then calls `grpc.health.v1.Health/Check` instead of `GET path`.
    pub grpc_service: Option<String>,
    /// Probe timeout: the pool's health timeout, or [`defaults::IDENTITY_PROBE_TIMEOUT`].
    pub timeout: Duration,
    /// The pool's protocol: the probe speaks it, as the health checks do.
    pub protocol: keel_config::UpstreamProtocol,
    /// The pool's TLS settings: the probe goes through them.
    pub tls: Option<keel_config::backend_tls::BackendTls>,
}

/// What the probe of one new backend showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityFinding {
    /// The backend.
    pub backend: NewBackend,
    /// The identity value it answered with, if any.
    pub seen: Option<String>,
    /// Why it must not be swapped in, if it must not.
    pub refusal: Option<String>,
    /// A remark that does not refuse (unreachable, nothing to prove).
    pub note: Option<String>,
}

/// Every (service, identity, side) of the two configs.
fn identities<'a>(old: Option<&'a Config>, new: &'a Config) -> Vec<(&'a str, &'a Identity, Side)> {
    let mut out = Vec::new();
    for (config, side) in old
        .map(|c| (c, Side::Active))
        .into_iter()
        .chain([(new, Side::Candidate)])
    {
        for (name, service) in &config.services {
            if let Some(identity) = &service.identity {
                out.push((name.as_str(), &identity.value, side));
            }
        }
    }
    out
}

fn identity_of<'a>(config: &'a Config, service: &str) -> Option<&'a Identity> {
    config
        .services
        .get(service)
        .and_then(|s| s.identity.as_ref())
        .map(|i| &i.value)
}

/// The backends of `new` that `old` did not have with the same service identity: new
/// addresses, and every backend of a service whose identity changed. Without `old`
/// (a first start) every backend is new.
pub fn new_backends(old: Option<&Config>, new: &Config) -> Vec<NewBackend> {
    let known: Vec<(SocketAddr, &str, Option<&Identity>)> = old
        .map(|old| {
            old.pools
                .values()
                .flat_map(|pool| {
                    let identity = identity_of(old, &pool.service.value);
                    pool.backends
                        .iter()
                        .map(move |b| (b.addr.value, pool.service.value.as_str(), identity))
                })
                .collect()
        })
        .unwrap_or_default();
    let any_header = identities(old, new)
        .first()
        .map(|(_, identity, _)| identity.header.clone());
    let mut out: Vec<NewBackend> = Vec::new();
    for pool in new.pools.values() {
        let service = pool.service.value.as_str();
        let own = identity_of(new, service);
        // A service that dropped its identity is still asked with its old header: what
        // its new backends answer can still be another service's identity.
        let header = own
            .or_else(|| old.and_then(|o| identity_of(o, service)))
            .map(|i| i.header.clone())
            .or_else(|| any_header.clone());
        let Some(header) = header else {
            continue;
        };
        for backend in &pool.backends {
            let addr = backend.addr.value;
            let seen_before = known
                .iter()
                .any(|(a, s, identity)| *a == addr && *s == service && *identity == own);
            if seen_before || out.iter().any(|b| b.addr == addr && b.service == service) {
                continue;
            }
            out.push(NewBackend {
                protocol: pool.protocol.value,
                tls: pool.tls.clone(),
                pool: pool.name.value.clone(),
                service: service.to_string(),
                addr,
                header: header.clone(),
                expected: own.map(|i| i.equals.clone()),
                path: pool.health.as_ref().map_or_else(
                    || defaults::IDENTITY_PROBE_PATH.to_string(),
                    |h| h.path.clone(),
                ),
                grpc_service: pool.health.as_ref().and_then(|h| h.grpc_service.clone()),
                timeout: pool
                    .health
                    .as_ref()
                    .map_or(defaults::IDENTITY_PROBE_TIMEOUT, |h| h.timeout),
            });
        }
    }
    out
}

/// Judges one probe answer (`seen` identity, `status`) of `backend` against every
/// identity of the two configs.
pub fn judge(
    backend: &NewBackend,
    seen: Option<&str>,
    status: Option<u16>,
    detail: &str,
    old: Option<&Config>,
    new: &Config,
) -> (Option<String>, Option<String>) {
    let who = format!(
        "backend {} of pool `{}` (service `{}`)",
        backend.addr, backend.pool, backend.service
    );
    let claimed_by = |value: &str| {
        identities(old, new)
            .into_iter()
            .find(|(service, identity, _)| {
                *service != backend.service
                    && identity.header == backend.header
                    && identity.equals == value
            })
            .map(|(service, _, side)| (service, side))
    };
    match seen {
        Some(value) => {
            if let Some((other, side)) = claimed_by(value) {
                return (
                    Some(format!(
                        "{who} answers as `{value}`: the identity of service `{other}` {}",
                        side.words()
                    )),
                    None,
                );
            }
            match &backend.expected {
                Some(expected) if expected != value => (
                    Some(format!("{who} answers as `{value}`, expected `{expected}`")),
                    None,
                ),
                _ => (None, None),
            }
        }
        None => match (&backend.expected, status) {
            (Some(expected), Some(code)) if (200..300).contains(&code) => (
                Some(format!(
                    "{who} answers without a `{}` header: it cannot prove it is `{expected}`",
                    backend.header
                )),
                None,
            ),
            (Some(_), _) => (
                None,
                Some(format!(
                    "{who}: identity not proven before the swap ({detail})"
                )),
            ),
            (None, _) => (None, None),
        },
    }
}

/// Probes every backend `new` brings in (see [`new_backends`]), at most
/// [`MAX_CONCURRENT_PROBES`] at once, and judges each answer.
pub async fn probe_new_backends(old: Option<&Config>, new: &Config) -> Vec<IdentityFinding> {
    let backends = new_backends(old, new);
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, backend) in backends.iter().enumerate() {
        let permits = Arc::clone(&permits);
        let backend = backend.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let ask = Identity {
                header: backend.header.clone(),
                equals: backend.expected.clone().unwrap_or_default(),
            };
            let transport =
                crate::probe::Transport::of_parts(backend.protocol, backend.tls.as_ref());
            let tls = match &transport.tls {
                Some(Ok(tls)) => Some(tls),
                _ => None,
            };
            let outcome = keel_proxy::probe::probe_backend_over(
                backend.protocol,
                tls,
                backend.addr,
                match &backend.grpc_service {
                    Some(service) => keel_proxy::probe::ProbeTarget::GrpcHealth(service),
                    None => keel_proxy::probe::ProbeTarget::Get(&backend.path),
                },
                Some(&ask),
                backend.timeout,
            )
            .await;
            (index, outcome)
        });
    }
    let mut findings: Vec<Option<IdentityFinding>> = vec![None; backends.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, outcome)) = joined
            && let Some(backend) = backends.get(index)
        {
            let (refusal, note) = judge(
                backend,
                outcome.identity_seen.as_deref(),
                outcome.status,
                &outcome.detail,
                old,
                new,
            );
            findings[index] = Some(IdentityFinding {
                backend: backend.clone(),
                seen: outcome.identity_seen,
                refusal,
                note,
            });
        }
    }
    findings.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(checkout_equals: &str, checkout_addr: &str) -> Config {
        let text = format!(
            r#"
[services.checkout]
identity = {{ header = "x-service", equals = "{checkout_equals}" }}
[services.legacy]
identity = {{ header = "x-service", equals = "legacy" }}
[pools.checkout]
service = "checkout"
backends = ["{checkout_addr}"]
[pools.legacy]
service = "legacy"
backends = ["127.0.0.1:9002"]
[[routes]]
name = "all"
service = "checkout"
pool = "checkout"
"#
        );
        keel_config::parse(&text).config
    }

    #[test]
    fn only_addresses_or_identities_a_change_brings_in_are_new() {
        let old = config("checkout", "127.0.0.1:9001");
        assert!(new_backends(Some(&old), &old).is_empty());
        assert_eq!(new_backends(None, &old).len(), 2);
        let moved = config("checkout", "127.0.0.1:9002");
        let new = new_backends(Some(&old), &moved);
        assert_eq!(new.len(), 1);
        assert_eq!(
            (new[0].pool.as_str(), new[0].expected.as_deref()),
            ("checkout", Some("checkout"))
        );
        // Same address, rewritten identity: probed again.
        let renamed = config("shop", "127.0.0.1:9001");
        assert_eq!(new_backends(Some(&old), &renamed).len(), 1);
    }

    #[test]
    fn another_services_old_identity_is_named() {
        let old = config("checkout", "127.0.0.1:9001");
        let mut new = config("legacy", "127.0.0.1:9002");
        // Even when the legacy service's identity changes in the same edit, its old
        // value still belongs to it.
        if let Some(legacy) = new.services.get_mut("legacy")
            && let Some(identity) = legacy.identity.as_mut()
        {
            identity.value.equals = "legacy-v2".into();
        }
        let backend = &new_backends(Some(&old), &new)[0];
        let (refusal, _) = judge(backend, Some("legacy"), Some(200), "", Some(&old), &new);
        let refusal = refusal.expect("refused");
        assert!(
            refusal.contains("the identity of service `legacy` in the active config"),
            "{refusal}"
        );
        let (wrong, _) = judge(backend, Some("other"), Some(200), "", Some(&old), &new);
        assert!(wrong.is_some_and(|w| w.contains("expected `legacy`")));
        let (silent, _) = judge(backend, None, Some(200), "", Some(&old), &new);
        assert!(silent.is_some());
        let (down, note) = judge(backend, None, None, "connect failed", Some(&old), &new);
        assert!(down.is_none() && note.is_some());
    }
}
