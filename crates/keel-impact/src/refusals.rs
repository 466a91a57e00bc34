//! What a change's traffic policies refuse on the sample. Each sampled request that
//! carries its client address is judged by its route's `allow`/`deny` rule under the
//! old and the new config, and each that carries its arrival time by its route's rate
//! limit, replayed in arrival order with one exact token bucket per key (keys
//! `client_ip` and `route`; a limit keyed on a header or cookie is not replayed, as the
//! sample does not keep those values). Per host: the share of sampled requests the new
//! config refuses (`403` or `429`) that the old one served. The gate refuses a change
//! whose share exceeds `max_shift` for some host.
//!
//! For each scope (host and path prefix) of an `[[intents]]` entry with `max_refused`,
//! in either config, the same replay counts every sampled request in scope that each
//! config refuses, newly or not ([`ScopeRefusals`]): the gate refuses a change whose
//! new config refuses more than `max_refused` of them.

use std::collections::HashMap;

use keel_config::{Config, RateKey};
use keel_route::{MAX_HOST_LEN, RequestShape, normalize_host};
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

/// Sampled requests an intent's scope covers, and what each config refuses of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ScopeRefusals {
    /// The intent's host.
    pub host: String,
    /// The intent's path prefix.
    pub path_prefix: Option<String>,
    /// Sampled requests in scope.
    pub requests: usize,
    /// Of those, refused by the new config.
    pub refused: usize,
    /// Of those, refused by the old config.
    pub old_refused: usize,
    /// What refuses them under the new config.
    pub by: Vec<String>,
    /// The first sampled requests the new config refuses (up to [`MAX_SCOPE_WITNESSES`]).
    pub witnesses: Vec<RequestShape>,
}

impl ScopeRefusals {
    /// `refused / requests` under the new config (`old`: the old one); `None` when no
    /// sampled request is in scope.
    pub fn share(&self, old: bool) -> Option<f64> {
        let refused = if old { self.old_refused } else { self.refused };
        (self.requests > 0).then(|| refused as f64 / self.requests as f64)
    }

    fn covers(&self, request: &RequestShape) -> bool {
        let mut buffer = [0u8; MAX_HOST_LEN];
        normalize_host(&request.host, &mut buffer) == Some(self.host.as_str())
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| request.path.starts_with(p))
    }
}

impl ScopeRefusals {
    /// `intent broken: policies may refuse at most 1.0% of requests to shop.example.com/api; ...`.
    pub fn describe_breach(&self, max_refused: f64) -> String {
        let percent = crate::gate::percent;
        let witnesses: Vec<String> = self.witnesses.iter().map(|w| format!("`{w}`")).collect();
        format!(
            "intent broken: policies may refuse at most {} of requests to {}{}; with the new config \
             they refuse {} of the {} sampled ones (was {}), by {}; e.g. {}",
            percent(max_refused),
            self.host,
            self.path_prefix.as_deref().unwrap_or(""),
            percent(self.share(false).unwrap_or(0.0)),
            self.requests,
            percent(self.share(true).unwrap_or(0.0)),
            self.by.join(", "),
            witnesses.join(", ")
        )
    }
}

/// The gate's reasons (and notes) for the `max_refused` intents among `intents`.
pub(crate) fn intent_reasons(
    report: &crate::report::ImpactReport,
    intents: &[keel_config::Intent],
    reasons: &mut Vec<crate::gate::GateReason>,
    notes: &mut Vec<String>,
) {
    for intent in intents {
        let Some(max_refused) = intent.max_refused else {
            continue;
        };
        let scope = report
            .intent_refusals
            .iter()
            .find(|s| s.host == intent.host && s.path_prefix == intent.path_prefix);
        let Some((scope, share)) = scope.and_then(|s| Some((s, s.share(false)?))) else {
            notes.push(format!(
                "no sampled request goes to {}{}: intent max_refused not judged",
                intent.host,
                intent.path_prefix.as_deref().unwrap_or("")
            ));
            continue;
        };
        if share > max_refused + 1e-9 {
            reasons.push(crate::gate::GateReason::RefusalIntent {
                refusals: scope.clone(),
                max_refused,
            });
        }
    }
}

/// Witness requests kept per refusal-intent scope.
pub const MAX_SCOPE_WITNESSES: usize = 3;

/// The scopes of the `max_refused` intents of both configs, each once.
fn scopes(old: &Config, new: &Config) -> Vec<ScopeRefusals> {
    let mut out: Vec<ScopeRefusals> = Vec::new();
    for intent in old.intents.iter().chain(&new.intents) {
        if intent.max_refused.is_none()
            || out
                .iter()
                .any(|s| s.host == intent.host && s.path_prefix == intent.path_prefix)
        {
            continue;
        }
        out.push(ScopeRefusals {
            host: intent.host.clone(),
            path_prefix: intent.path_prefix.clone(),
            ..ScopeRefusals::default()
        });
    }
    out
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
    if take_token(buckets.entry((id, key)), &limit.value, at) {
        return None;
    }
    Some(format!("route `{name}`'s rate limit"))
}

/// One request arriving at `at` (ms) on a key's exact token bucket `(tokens, last_ms)`,
/// created full: `true` when it takes a token (served), `false` for a `429`.
pub(crate) fn take_token<K>(
    bucket: std::collections::hash_map::Entry<'_, K, (f64, u64)>,
    limit: &keel_config::RateLimit,
    at: u64,
) -> bool {
    let burst = f64::from(limit.burst.max(1));
    let per_ms = limit.per_second() / 1000.0;
    let (tokens, last) = bucket.or_insert((burst, at));
    *tokens = (*tokens + at.saturating_sub(*last) as f64 * per_ms).min(burst);
    *last = at.max(*last);
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        return true;
    }
    false
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

/// Per host with newly refused requests, the most refused first; and the refusals in
/// each `max_refused` intent's scope.
pub(crate) fn replay(
    old: Compiled<'_>,
    new: Compiled<'_>,
    sample: &[RequestShape],
) -> (Vec<HostRefusals>, Vec<ScopeRefusals>) {
    let mut scopes = scopes(old.config, new.config);
    if !has_policies(new.config) && !has_policies(old.config) && scopes.is_empty() {
        return (Vec::new(), scopes);
    }
    let mut order: Vec<&RequestShape> = sample.iter().collect();
    order.sort_by_key(|r| r.at_ms.unwrap_or(0));
    let (mut old_buckets, mut new_buckets) = (HashMap::new(), HashMap::new());
    let mut hosts: HashMap<&str, HostAcc<'_>> = HashMap::new();
    for request in order {
        let before = refusal(old, request, &mut old_buckets);
        let after = refusal(new, request, &mut new_buckets);
        for scope in scopes.iter_mut().filter(|s| s.covers(request)) {
            scope.requests += 1;
            scope.old_refused += usize::from(before.is_some());
            if let Some(by) = &after {
                scope.refused += 1;
                if !scope.by.contains(by) {
                    scope.by.push(by.clone());
                }
                if scope.witnesses.len() < MAX_SCOPE_WITNESSES {
                    scope.witnesses.push(request.clone());
                }
            }
        }
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
    (out, scopes)
}
