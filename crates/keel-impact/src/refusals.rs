//! What a change's traffic policies refuse on the sample. Each sampled request that
//! carries its client address is judged by its route's `allow`/`deny` rule under the
//! old and the new config, and each that carries its arrival time by its route's rate
//! limit, replayed in arrival order with one exact token bucket per key (keys
//! `client_ip` and `route`; a limit keyed on a header or cookie is not replayed, as the
//! sample does not keep those values). Per host: the share of sampled requests the new
//! config refuses (`403` or `429`) that the old one served. The gate refuses a change
//! whose share exceeds `max_shift` for some host.

use std::collections::HashMap;

use keel_config::{Config, RateKey};
use keel_route::RequestShape;
use serde::Serialize;

use crate::destination::Compiled;

/// One host's newly refused requests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostRefusals {
    /// The host.
    pub host: String,
    /// Sampled requests to the host.
    pub requests: usize,
    /// Of those, refused by the new config and served by the old.
    pub newly_refused: usize,
    /// `newly_refused / requests`.
    pub share: f64,
    /// What refuses them: `route `api`'s deny list`, `route `api`'s rate limit`.
    pub by: Vec<String>,
    /// A sampled request newly refused.
    pub witness: RequestShape,
}

impl HostRefusals {
    /// `a new policy would refuse 38.0% of sampled requests to shop.example.com (19 of 50: ...)`.
    pub fn describe(&self) -> String {
        format!(
            "the new policies would refuse {} of sampled requests to {} ({} of {}: {})",
            crate::gate::percent(self.share),
            if self.host.is_empty() {
                "<no host>"
            } else {
                &self.host
            },
            self.newly_refused,
            self.requests,
            self.by.join(", ")
        )
    }
}

/// Why one config refuses a request, if it does.
fn refusal(
    side: Compiled<'_>,
    request: &RequestShape,
    buckets: &mut HashMap<(usize, String), (f64, u64)>,
) -> Option<String> {
    let id = side.table.find(request)?;
    let route = side.config.routes.get(id)?;
    let name = &route.name.value;
    if let (Some(access), Some(client)) = (&route.access, request.client)
        && !access.value.admits(client)
    {
        return Some(format!("route `{name}`'s {} list", access.value.mode.key()));
    }
    let (limit, at) = (route.rate_limit.as_ref()?, request.at_ms?);
    let key = match &limit.value.key {
        RateKey::ClientIp => request.client?.to_string(),
        RateKey::Route => String::new(),
        RateKey::Header(_) | RateKey::Cookie(_) => return None,
    };
    let burst = f64::from(limit.value.burst.max(1));
    let per_ms = limit.value.per_second() / 1000.0;
    let (tokens, last) = buckets.entry((id, key)).or_insert((burst, at));
    *tokens = (*tokens + at.saturating_sub(*last) as f64 * per_ms).min(burst);
    *last = at.max(*last);
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        return None;
    }
    Some(format!("route `{name}`'s rate limit"))
}

/// True when some route of the config has an address rule or a rate limit.
fn has_policies(config: &Config) -> bool {
    config
        .routes
        .iter()
        .any(|r| r.access.is_some() || r.rate_limit.is_some())
}

/// Per host while replaying: requests, newly refused, by what, the first witness.
type HostAcc<'a> = (usize, usize, Vec<String>, Option<&'a RequestShape>);

/// Per host with newly refused requests, the most refused first.
pub(crate) fn replay(
    old: Compiled<'_>,
    new: Compiled<'_>,
    sample: &[RequestShape],
) -> Vec<HostRefusals> {
    if !has_policies(new.config) {
        return Vec::new();
    }
    let mut order: Vec<&RequestShape> = sample.iter().collect();
    order.sort_by_key(|r| r.at_ms.unwrap_or(0));
    let (mut old_buckets, mut new_buckets) = (HashMap::new(), HashMap::new());
    let mut hosts: HashMap<&str, HostAcc<'_>> = HashMap::new();
    for request in order {
        let before = refusal(old, request, &mut old_buckets);
        let after = refusal(new, request, &mut new_buckets);
        let entry = hosts.entry(request.host.as_str()).or_default();
        entry.0 += 1;
        if let (None, Some(by)) = (before, after) {
            entry.1 += 1;
            if !entry.2.contains(&by) {
                entry.2.push(by);
            }
            entry.3.get_or_insert(request);
        }
    }
    let mut out: Vec<HostRefusals> = hosts
        .into_iter()
        .filter_map(|(host, (requests, refused, by, witness))| {
            Some(HostRefusals {
                host: host.to_string(),
                requests,
                newly_refused: refused,
                share: refused as f64 / requests.max(1) as f64,
                by,
                witness: witness?.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.host.cmp(&b.host)));
    out
}
