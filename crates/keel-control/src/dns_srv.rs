//! SRV lookups for `{ srv = "_http._tcp.web.internal" }` backends: the record's targets
//! of the best priority class that has an address, each address with its record's port
//! and weight.
//!
//! Priority: only the lowest-numbered class serves (RFC 2782: a client must use the
//! best class it can reach); a class none of whose targets resolves (or whose targets
//! are all `.`, "no service here") gives way to the next. Health checks and outlier
//! ejection then act within that class: a class that resolves but is down does not fail
//! over to the next one (a re-resolution picks the next class once the records change).
//!
//! Weight: the RFC's 0–65535 becomes a Keel weight in proportion, scaled down when a
//! class's largest weight is above `MAX_WEIGHT`; a 0 becomes 1 (the RFC gives weight 0 "a
//! very small chance", and a Keel weight of 0 would give none), so a class of all-0
//! weights is served evenly. Every address of a target gets the target's weight; two
//! records reaching the same address add up (capped at `MAX_WEIGHT`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;
use keel_config::DnsTarget;
use keel_config::defaults as d;

/// One SRV record, as far as Keel uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SrvRecord {
    pub(crate) priority: u16,
    pub(crate) weight: u16,
    pub(crate) port: u16,
    /// The target's name; `None` for `.` (the service is not offered at this name).
    pub(crate) target: Option<String>,
}

/// The targets of the SRV record `name` from `resolvers` (empty: the system's), bounded
/// by `DNS_TIMEOUT` in all, sorted by address.
pub(crate) async fn resolve_srv(
    name: &str,
    resolvers: &[SocketAddr],
) -> Result<Vec<DnsTarget>, String> {
    let resolver = crate::dns::resolver(resolvers)?;
    let fqdn = crate::dns::fqdn(name);
    tokio::time::timeout(d::DNS_TIMEOUT, lookup(&resolver, &fqdn))
        .await
        .map_err(|_| format!("no answer within {:?}", d::DNS_TIMEOUT))?
}

async fn lookup(resolver: &TokioResolver, name: &str) -> Result<Vec<DnsTarget>, String> {
    let answer = resolver.srv_lookup(name).await.map_err(|e| e.to_string())?;
    let records: Vec<SrvRecord> = answer
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => Some(SrvRecord {
                priority: srv.priority,
                weight: srv.weight,
                port: srv.port,
                target: (!srv.target.is_root()).then(|| srv.target.to_ascii()),
            }),
            _ => None,
        })
        .collect();
    if records.is_empty() {
        return Err("no SRV record".into());
    }
    let mut unresolved = Vec::new();
    for class in classes(records) {
        let weights = keel_weights(&class.iter().map(|r| r.weight).collect::<Vec<_>>());
        let mut found = Vec::new();
        for (record, weight) in class.iter().zip(weights) {
            let Some(target) = &record.target else {
                continue;
            };
            match resolver.lookup_ip(crate::dns::fqdn(target)).await {
                Ok(ips) => found.extend(
                    ips.iter()
                        .map(|ip| (SocketAddr::new(ip, record.port), weight)),
                ),
                Err(error) => unresolved.push(format!("{target}: {error}")),
            }
        }
        if !found.is_empty() {
            return Ok(merge(found));
        }
    }
    Err(if unresolved.is_empty() {
        "every SRV target is `.` (no service at this name)".to_string()
    } else {
        format!("no SRV target resolves ({})", unresolved.join("; "))
    })
}

/// The records grouped by priority, best (lowest) first, each class in record order.
pub(crate) fn classes(records: Vec<SrvRecord>) -> Vec<Vec<SrvRecord>> {
    let mut by_priority: BTreeMap<u16, Vec<SrvRecord>> = BTreeMap::new();
    for record in records {
        by_priority.entry(record.priority).or_default().push(record);
    }
    by_priority.into_values().collect()
}

/// One class's SRV weights as Keel weights (see the module doc).
pub(crate) fn keel_weights(weights: &[u16]) -> Vec<u32> {
    let largest = u64::from(weights.iter().copied().max().unwrap_or(0));
    let max = u64::from(d::MAX_WEIGHT);
    weights
        .iter()
        .map(|&weight| {
            let weight = u64::from(weight);
            let scaled = if largest > max {
                (weight * max).div_ceil(largest)
            } else {
                weight
            };
            u32::try_from(scaled.clamp(1, max)).unwrap_or(d::MAX_WEIGHT)
        })
        .collect()
}

/// One target per address, sorted, weights of repeated addresses added (capped).
fn merge(found: Vec<(SocketAddr, u32)>) -> Vec<DnsTarget> {
    let mut merged: BTreeMap<SocketAddr, u32> = BTreeMap::new();
    for (addr, weight) in found {
        let total = merged.entry(addr).or_insert(0);
        *total = total.saturating_add(weight).min(d::MAX_WEIGHT);
    }
    merged
        .into_iter()
        .map(|(addr, weight)| DnsTarget {
            addr,
            weight: Some(weight),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 80,
            target: Some(target.to_string()),
        }
    }

    #[test]
    fn the_best_priority_class_comes_first() {
        let grouped = classes(vec![
            record(20, 1, "c"),
            record(10, 1, "a"),
            record(10, 5, "b"),
        ]);
        let names: Vec<Vec<&str>> = grouped
            .iter()
            .map(|class| class.iter().filter_map(|r| r.target.as_deref()).collect())
            .collect();
        assert_eq!(names, [vec!["a", "b"], vec!["c"]]);
    }

    #[test]
    fn srv_weights_keep_their_proportions_within_keel_bounds() {
        assert_eq!(keel_weights(&[3, 1]), [3, 1]);
        assert_eq!(keel_weights(&[0, 0]), [1, 1]);
        assert_eq!(keel_weights(&[0, 100]), [1, 100]);
        assert_eq!(keel_weights(&[65535, 32768, 0]), [d::MAX_WEIGHT, 5001, 1]);
    }

    #[test]
    fn repeated_addresses_add_their_weights() {
        let addr: SocketAddr = "10.0.0.1:80".parse().expect("addr");
        let other: SocketAddr = "10.0.0.0:80".parse().expect("addr");
        let merged = merge(vec![(addr, 2), (other, 1), (addr, 3)]);
        assert_eq!(
            merged,
            [
                DnsTarget {
                    addr: other,
                    weight: Some(1)
                },
                DnsTarget {
                    addr,
                    weight: Some(5)
                }
            ]
        );
    }
}
