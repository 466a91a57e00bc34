//! The tunnel series of a scrape: open tunnels per generation and route and per
//! generation, pool and backend, tunnels opened, and tunnels Keel closed (idle or
//! drained after a rollback). Read from each live generation's `Tunnels` counters;
//! like the request series, zero values are left out, so a generation without tunnels
//! adds nothing.

use std::sync::Arc;

use keel_proxy::Generation;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::names;

/// Encodes the four tunnel families for `generations`.
pub(crate) fn encode_tunnels(
    encoder: &mut DescriptorEncoder,
    generations: &[Arc<Generation>],
) -> Result<(), std::fmt::Error> {
    let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    let mut open = encoder.encode_descriptor(
        names::OPEN_TUNNELS,
        "Tunnels (upgraded connections such as WebSockets) open now, by the generation that routed them and their route.",
        None,
        MetricType::Gauge,
    )?;
    for generation in generations {
        let id = generation.id.to_string();
        for route_id in 0..generation.route_count() {
            let Some(count) = generation.tunnels.route(route_id) else {
                continue;
            };
            if count.open() == 0 {
                continue;
            }
            let route = &*generation.table.route(route_id).name;
            let labels = [("generation", id.as_str()), ("route", route)];
            open.encode_family(&labels)?
                .encode_gauge(&gauge(count.open()))?;
        }
    }
    let mut by_backend = encoder.encode_descriptor(
        names::OPEN_BACKEND_TUNNELS,
        "Tunnels open now, by the generation that routed them, pool and backend.",
        None,
        MetricType::Gauge,
    )?;
    for generation in generations {
        let id = generation.id.to_string();
        for (pool_id, pool) in generation.pools.iter().enumerate() {
            for (index, backend) in pool.backends.iter().enumerate() {
                let open = generation
                    .tunnels
                    .backend(pool_id, index)
                    .map_or(0, |c| c.open());
                if open == 0 {
                    continue;
                }
                let addr = backend.addr.to_string();
                let labels = [
                    ("generation", id.as_str()),
                    ("pool", &*pool.name),
                    ("backend", addr.as_str()),
                ];
                by_backend
                    .encode_family(&labels)?
                    .encode_gauge(&gauge(open))?;
            }
        }
    }
    let mut opened = encoder.encode_descriptor(
        names::TUNNELS,
        "Tunnels opened, by the generation that routed them and their route.",
        None,
        MetricType::Counter,
    )?;
    for generation in generations {
        let id = generation.id.to_string();
        for route_id in 0..generation.route_count() {
            let count = generation.tunnels.route(route_id).map_or(0, |c| c.opened());
            if count == 0 {
                continue;
            }
            let route = &*generation.table.route(route_id).name;
            let labels = [("generation", id.as_str()), ("route", route)];
            opened
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, u64, u64>(&count, None)?;
        }
    }
    let mut closed = encoder.encode_descriptor(
        names::TUNNELS_CLOSED,
        "Tunnels Keel closed: idle for their route's tunnel_idle_timeout, or drained after a rollback away from their generation.",
        None,
        MetricType::Counter,
    )?;
    for generation in generations {
        let id = generation.id.to_string();
        let tunnels = &generation.tunnels;
        for (reason, count) in [
            ("idle", tunnels.idle_closed()),
            ("drained", tunnels.drained()),
        ] {
            if count == 0 {
                continue;
            }
            let labels = [("generation", id.as_str()), ("reason", reason)];
            closed
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, u64, u64>(&count, None)?;
        }
    }
    Ok(())
}
