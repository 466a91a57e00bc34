//! The lint K219: a route's rate limit below the rate its sampled traffic arrives at.
//!
//! [`rate_limit_findings`] replays a traffic sample (requests that carry `at_ms`, in
//! arrival order) through one config: each request goes to the route the config's table
//! picks, past its address rule, into the route's rate limit, with one exact token
//! bucket per key, as the data plane keeps them (and as the gate's replay does, see
//! `refusals`). A route whose limit would answer `429` to at least
//! [`MIN_REFUSED_SHARE`] of its replayed requests gets a warning at its `rate_limit`
//! (file:line:col), saying what share and the sample's peak rate per second.
//!
//! Not replayed, and said in a note when they are all a limit has: requests without an
//! arrival time (hand-written traffic), limits keyed on a header or cookie (the sample
//! does not keep those values) and, for `key = "client_ip"`, requests without a client
//! address.

use std::collections::HashMap;

use keel_config::{Config, Diagnostic, RateKey, codes};
use keel_route::{RequestShape, RouteTable};
use serde_json::json;

use crate::refusals::take_token;

/// The share of a route's replayed requests its limit must refuse for K219 to fire
/// (a fraction; `0.0` would fire on a single unlucky burst, so one in a thousand).
pub const MIN_REFUSED_SHARE: f64 = 0.001;

/// The window the peak rate is measured over, in milliseconds.
pub const PEAK_WINDOW_MS: u64 = 1_000;

/// Per limited route while replaying.
#[derive(Default)]
struct RouteReplay {
    /// Replayed requests (routed here, admitted by the address rule, with a key).
    replayed: usize,
    /// Of those, answered `429`.
    refused: usize,
    /// Requests routed here that could not be replayed (no time, no key value).
    unreplayable: usize,
    /// Arrival times of the replayed requests, for the peak rate.
    arrivals: Vec<u64>,
}

/// K219 findings (and notes on what could not be replayed) for `config` on `sample`;
/// none for a config whose routing table does not compile (the loader says why).
pub fn rate_limit_findings(config: &Config, sample: &[RequestShape]) -> Vec<Diagnostic> {
    if config.routes.iter().all(|r| r.rate_limit.is_none()) {
        return Vec::new();
    }
    let Ok(table) = RouteTable::compile(config) else {
        return Vec::new();
    };
    let mut order: Vec<&RequestShape> = sample.iter().collect();
    order.sort_by_key(|r| r.at_ms.unwrap_or(0));
    let mut buckets: HashMap<(usize, String), (f64, u64)> = HashMap::new();
    let mut routes: HashMap<usize, RouteReplay> = HashMap::new();
    for request in order {
        let Some(id) = table.find(request) else {
            continue;
        };
        let Some(route) = config.routes.get(id) else {
            continue;
        };
        let Some(limit) = &route.rate_limit else {
            continue;
        };
        if let (Some(access), Some(client)) = (&route.access, request.client)
            && !access.value.admits(client)
        {
            continue;
        }
        let entry = routes.entry(id).or_default();
        let key = match &limit.value.key {
            RateKey::ClientIp => request.client.map(|c| c.to_string()),
            RateKey::Route => Some(String::new()),
            RateKey::Header(_) | RateKey::Cookie(_) => None,
        };
        let (Some(key), Some(at)) = (key, request.at_ms) else {
            entry.unreplayable += 1;
            continue;
        };
        entry.replayed += 1;
        entry.arrivals.push(at);
        if !take_token(buckets.entry((id, key)), &limit.value, at) {
            entry.refused += 1;
        }
    }
    let mut ids: Vec<usize> = routes.keys().copied().collect();
    ids.sort_unstable();
    let mut out = Vec::new();
    for id in ids {
        let (Some(route), Some(replay)) = (config.routes.get(id), routes.get(&id)) else {
            continue;
        };
        let Some(limit) = &route.rate_limit else {
            continue;
        };
        let name = &route.name.value;
        if replay.replayed == 0 {
            out.push(Diagnostic::note(
                codes::RATE_LIMIT_BELOW_TRAFFIC,
                format!(
                    "route `{name}`'s rate limit was not replayed: none of its {} sampled \
                     requests {}",
                    replay.unreplayable,
                    match limit.value.key {
                        RateKey::Header(_) | RateKey::Cookie(_) =>
                            "can be: the sample keeps no header or cookie values to key on",
                        _ => "has both an arrival time and a value for the limit's key",
                    }
                ),
            ));
            continue;
        }
        let share = replay.refused as f64 / replay.replayed as f64;
        if replay.refused == 0 || share < MIN_REFUSED_SHARE {
            continue;
        }
        let peak = peak_per_window(&replay.arrivals);
        out.push(
            Diagnostic::warning(
                codes::RATE_LIMIT_BELOW_TRAFFIC,
                format!(
                    "route `{name}`'s rate limit ({}) would have answered 429 to {} of its \
                     {} sampled requests (replayed with their arrival times)",
                    limit.value.describe(),
                    crate::gate::percent(share),
                    replay.replayed
                ),
            )
            .at(limit.span, "below the route's observed rate")
            .with_note(format!(
                "{} of {} replayed requests refused; the sample peaks at {peak} requests to \
                 the route in one second{}",
                replay.refused,
                replay.replayed,
                if replay.unreplayable > 0 {
                    format!(
                        "; {} more had no arrival time or key value and were not replayed",
                        replay.unreplayable
                    )
                } else {
                    String::new()
                }
            ))
            .with_help(
                "raise `requests` or `burst` above the observed rate, or keep the limit if \
                 refusing this traffic is the intent",
            )
            .with_data(json!({
                "route": name,
                "replayed": replay.replayed,
                "refused": replay.refused,
                "share": share,
                "peak_per_second": peak,
            })),
        );
    }
    out
}

/// The most arrivals in any [`PEAK_WINDOW_MS`] window (`arrivals` sorted ascending).
fn peak_per_window(arrivals: &[u64]) -> usize {
    let mut start = 0;
    let mut peak = 0;
    for (end, &at) in arrivals.iter().enumerate() {
        while at.saturating_sub(arrivals[start]) >= PEAK_WINDOW_MS {
            start += 1;
        }
        peak = peak.max(end + 1 - start);
    }
    peak
}
