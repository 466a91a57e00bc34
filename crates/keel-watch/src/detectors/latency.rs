//! Latency regression: a route's p99 (time to response headers) in the candidate window
//! against the same route's p99 in the baseline window.
//!
//! Quantiles come from the data plane's fixed buckets (1, 2, 5, 10, 25, 50, 100, 250,
//! 500 ms, 1, 2.5, 5, 10 s, +Inf) with [`bucket_quantile`]: the p99 is the upper bound
//! of the bucket holding the 99th-percentile request. It fires when
//!
//! * both windows have at least `max(min_requests, LATENCY_MIN_SAMPLES)` requests (a
//!   p99 of 20 requests is just the maximum, and of 130 it is the second-slowest request),
//! * candidate p99 ≥ `latency_factor` × baseline p99 (with the default factor 3 that is
//!   at least two bucket steps, so one-bucket jitter never fires), and
//! * candidate p99 exceeds [`LATENCY_FLOOR_MICROS`]: going from a 1 ms to a 5 ms bucket
//!   is a factor 5 nobody should be paged for.

use keel_proxy::stats::bucket_quantile;
use serde_json::json;

use super::{Alarm, Detector, Thresholds};

/// Fewest requests on each side before a p99 is compared (500 requests): the p99 then
/// rests on at least five slow requests, not on the one or two a busy host delays.
pub const LATENCY_MIN_SAMPLES: u64 = 500;
/// A candidate p99 at or below this never alarms (50 ms, in microseconds).
pub const LATENCY_FLOOR_MICROS: u64 = 50_000;

/// Non-cumulative latency bucket counts.
pub type Buckets = [u64; 14];

/// Compares a route's p99 with its baseline.
pub fn latency_regression(
    route: &str,
    baseline: &Buckets,
    candidate: &Buckets,
    thresholds: &Thresholds,
) -> Option<Alarm> {
    let needed = thresholds.min_requests.max(LATENCY_MIN_SAMPLES);
    let (n_b, n_c): (u64, u64) = (baseline.iter().sum(), candidate.iter().sum());
    if n_b < needed || n_c < needed {
        return None;
    }
    let before = bucket_quantile(baseline, 0.99)?;
    let now = bucket_quantile(candidate, 0.99)?;
    if now <= LATENCY_FLOOR_MICROS || (now as f64) < thresholds.latency_factor * before as f64 {
        return None;
    }
    Some(Alarm {
        detector: Detector::Latency,
        subject: route.to_string(),
        summary: format!(
            "route {route}: p99 ≤ {} ms now, ≤ {} ms before ({n_c} and {n_b} requests; factor {})",
            micros_to_ms(now),
            micros_to_ms(before),
            thresholds.latency_factor
        ),
        numbers: json!({
            "route": route,
            "p99_ms": micros_to_ms(now),
            "baseline_p99_ms": micros_to_ms(before),
            "requests": n_c,
            "baseline_requests": n_b,
            "latency_factor": thresholds.latency_factor,
        }),
    })
}

/// A bucket bound in milliseconds (+Inf as `f64::INFINITY`, rendered `null` in JSON).
fn micros_to_ms(micros: u64) -> f64 {
    if micros == u64::MAX {
        f64::INFINITY
    } else {
        micros as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_proxy::stats::LATENCY_BUCKETS_MICROS;

    /// Buckets of `n` observations drawn by `draw` (in microseconds).
    fn buckets(n: usize, mut draw: impl FnMut() -> u64) -> Buckets {
        let mut out = [0; 14];
        for _ in 0..n {
            let micros = draw();
            let i = LATENCY_BUCKETS_MICROS
                .iter()
                .position(|b| micros <= *b)
                .unwrap_or(13);
            out[i] += 1;
        }
        out
    }

    #[test]
    fn a_slow_route_fires() {
        let t = Thresholds::default();
        let mut rng = fastrand::Rng::with_seed(3);
        let before = buckets(1_000, || 20_000 + rng.u64(0..30_000));
        let after = buckets(500, || 200_000 + rng.u64(0..300_000));
        let alarm = latency_regression("web", &before, &after, &t);
        assert!(alarm.is_some());
    }

    #[test]
    fn jitter_and_fast_routes_do_not_fire() {
        let t = Thresholds::default();
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..2_000 {
            // Loopback-fast with a long tail: p99 hops between 1, 2 and 5 ms buckets.
            let before = buckets(400, || 300 + rng.u64(0..700) + rng.u64(0..3) * 1_500);
            let after = buckets(400, || 300 + rng.u64(0..700) + rng.u64(0..4) * 1_500);
            assert_eq!(latency_regression("web", &before, &after, &t), None);
            // 30-80 ms with jitter.
            let before = buckets(400, || 30_000 + rng.u64(0..50_000));
            let after = buckets(400, || 30_000 + rng.u64(0..60_000));
            assert_eq!(latency_regression("web", &before, &after, &t), None);
        }
    }

    #[test]
    fn too_few_requests_do_not_fire() {
        let t = Thresholds::default();
        let before = buckets(1_000, || 20_000);
        let after = buckets(499, || 900_000);
        assert_eq!(latency_regression("web", &before, &after, &t), None);
    }
}
