//! The policy series of a scrape: requests each route's traffic policies refused, by
//! generation, route and policy (`address`: its `allow`/`deny` list answered `403`;
//! `rate_limit`: its rate limit answered `429`). Read from each live generation's
//! route counters; zero values are left out, so a generation without policies adds
//! nothing. A jump after a change (a deny that matches everyone) shows here per
//! generation, next to the `4xx` class of `keel_requests_total`. Redirect routes'
//! answers are counted here too (`keel_redirects_total`, by generation and route), and
//! the answers each route's `compress` compressed, by coding.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use keel_proxy::Generation;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::names;

/// Encodes the policy refusal family for `generations`.
pub(crate) fn encode_policy_refusals(
    encoder: &mut DescriptorEncoder,
    generations: &[Arc<Generation>],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        names::POLICY_REFUSALS,
        "Requests a route's policies refused, by generation, route and policy (address: 403 from allow/deny; rate_limit: 429).",
        None,
        MetricType::Counter,
    )?;
    for generation in generations {
        let id = generation.id.to_string();
        for (route_id, route) in generation.stats.routes.iter().enumerate() {
            let limited = route.rate_limited.load(Relaxed);
            let address = route.policy_refused.load(Relaxed).saturating_sub(limited);
            let name = &*generation.table.route(route_id).name;
            for (policy, count) in [("address", address), ("rate_limit", limited)] {
                if count == 0 {
                    continue;
                }
                let labels = [
                    ("generation", id.as_str()),
                    ("route", name),
                    ("policy", policy),
                ];
                metric
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&count, None)?;
            }
        }
    }
    Ok(())
}

/// Encodes the redirect family for `generations`: each redirect route's answers.
pub(crate) fn encode_redirects(
    encoder: &mut DescriptorEncoder,
    generations: &[Arc<Generation>],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        names::REDIRECTS,
        "Requests a redirect route answered with its redirect (301/302/307/308), by generation and route.",
        None,
        MetricType::Counter,
    )?;
    for generation in generations {
        let id = generation.id.to_string();
        for (route_id, route) in generation.stats.routes.iter().enumerate() {
            let count = route.redirected.load(Relaxed);
            if count == 0 {
                continue;
            }
            let labels = [
                ("generation", id.as_str()),
                ("route", &*generation.table.route(route_id).name),
            ];
            metric
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, u64, u64>(&count, None)?;
        }
    }
    Ok(())
}

/// Encodes the compressed-answer family for `generations` (zero values left out).
pub(crate) fn encode_compressed(
    encoder: &mut DescriptorEncoder,
    generations: &[Arc<Generation>],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        names::COMPRESSED_RESPONSES,
        "Answers a route's compress compressed, by generation, route and encoding (gzip, br).",
        None,
        MetricType::Counter,
    )?;
    for generation in generations {
        let id = generation.id.to_string();
        for (route_id, route) in generation.stats.routes.iter().enumerate() {
            let name = &*generation.table.route(route_id).name;
            for coding in keel_config::ContentCoding::ALL {
                let count = route.compressed[coding.index()].load(Relaxed);
                if count == 0 {
                    continue;
                }
                let labels = [
                    ("generation", id.as_str()),
                    ("route", name),
                    ("encoding", coding.token()),
                ];
                metric
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&count, None)?;
            }
        }
    }
    Ok(())
}
