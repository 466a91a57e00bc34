//! Per-generation traffic counters: the raw material of metrics and detectors.
//!
//! Every generation owns its counters, so "what did generation 7 serve" is a read, not
//! a query: a canary and its baseline are compared by reading two generations. The hot
//! path only does relaxed atomic increments on counters allocated at compile time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use keel_route::RouteTable;

/// Outcome classes counted per destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// 1xx response.
    Informational = 0,
    /// 2xx response.
    Success = 1,
    /// 3xx response.
    Redirect = 2,
    /// 4xx response.
    ClientError = 3,
    /// 5xx response from the backend.
    ServerError = 4,
    /// No usable response: connect failure, reset, or timeout.
    ConnectFailure = 5,
    /// The response identified as another application.
    Misidentified = 6,
}

impl Outcome {
    /// Every outcome, in counter order.
    pub const ALL: [Outcome; 7] = [
        Outcome::Informational,
        Outcome::Success,
        Outcome::Redirect,
        Outcome::ClientError,
        Outcome::ServerError,
        Outcome::ConnectFailure,
        Outcome::Misidentified,
    ];

    /// The class of an HTTP status.
    #[inline]
    pub fn of_status(status: u16) -> Self {
        match status {
            100..=199 => Outcome::Informational,
            200..=299 => Outcome::Success,
            300..=399 => Outcome::Redirect,
            400..=499 => Outcome::ClientError,
            _ => Outcome::ServerError,
        }
    }

    /// Metric label: `1xx` … `5xx`, `connect_failure`, `misidentified`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Informational => "1xx",
            Outcome::Success => "2xx",
            Outcome::Redirect => "3xx",
            Outcome::ClientError => "4xx",
            Outcome::ServerError => "5xx",
            Outcome::ConnectFailure => "connect_failure",
            Outcome::Misidentified => "misidentified",
        }
    }

    /// True for outcomes the error detector counts as failures.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Outcome::ServerError | Outcome::ConnectFailure | Outcome::Misidentified
        )
    }
}

/// One counter per [`Outcome`].
#[derive(Debug, Default)]
pub struct OutcomeCounters {
    counts: [AtomicU64; 7],
}

impl OutcomeCounters {
    /// Counts one outcome.
    #[inline]
    pub fn record(&self, outcome: Outcome) {
        self.counts[outcome as usize].fetch_add(1, Relaxed);
    }

    /// Current count of an outcome.
    pub fn get(&self, outcome: Outcome) -> u64 {
        self.counts[outcome as usize].load(Relaxed)
    }

    /// Sum over all outcomes.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Sum over failure outcomes.
    pub fn failures(&self) -> u64 {
        Outcome::ALL
            .iter()
            .filter(|o| o.is_failure())
            .map(|o| self.get(*o))
            .sum()
    }
}

/// Upper bounds of the latency buckets, in microseconds (the last bucket is +Inf).
pub const LATENCY_BUCKETS_MICROS: [u64; 14] = [
    1_000,
    2_000,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    u64::MAX,
];

/// A fixed-bucket latency histogram (time to response headers).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; 14],
    sum_micros: AtomicU64,
}

impl LatencyHistogram {
    /// Records one observation.
    #[inline]
    pub fn observe(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let index = LATENCY_BUCKETS_MICROS
            .iter()
            .position(|b| micros <= *b)
            .unwrap_or(13);
        self.buckets[index].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    /// Non-cumulative bucket counts.
    pub fn buckets(&self) -> [u64; 14] {
        std::array::from_fn(|i| self.buckets[i].load(Relaxed))
    }

    /// Sum of all observations, in microseconds.
    pub fn sum_micros(&self) -> u64 {
        self.sum_micros.load(Relaxed)
    }
}

/// Quantile (0..=1) of a set of non-cumulative bucket counts, as the bucket's upper
/// bound in microseconds; `None` without observations.
pub fn bucket_quantile(buckets: &[u64; 14], quantile: f64) -> Option<u64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * quantile).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(LATENCY_BUCKETS_MICROS[i]);
        }
    }
    Some(u64::MAX)
}

/// Counters of one route.
#[derive(Debug)]
pub struct RouteStats {
    /// Per target pool (in the route's target order), per backend of that pool.
    pub targets: Box<[Box<[OutcomeCounters]>]>,
    /// Outcomes that never reached a backend (no healthy backend, empty pool).
    pub unassigned: OutcomeCounters,
    /// Time to response headers, per target pool (in the route's target order). One
    /// histogram per arm rather than one per route plus one per pool: the hot path
    /// still observes once, and the route's view is the sum read at scrape time.
    pub target_latency: Box<[LatencyHistogram]>,
    /// Requests the route's traffic policies refused (also counted in `unassigned` by
    /// their status): the input a refusal detector and metrics read per route.
    pub policy_refused: AtomicU64,
    /// Of those, the requests its rate limit answered `429` (the rest were refused by
    /// its address rule, `403`).
    pub rate_limited: AtomicU64,
    /// Requests the route answered with its `redirect` (also counted in `unassigned`
    /// by their status, the `3xx` class).
    pub redirected: AtomicU64,
    /// Answers the route's `compress` compressed, per coding in
    /// [`keel_config::ContentCoding::ALL`] order (`gzip`, `br`).
    pub compressed: [AtomicU64; 2],
}

impl RouteStats {
    /// Non-cumulative latency bucket counts of the whole route (every target summed).
    pub fn latency_buckets(&self) -> [u64; 14] {
        let mut out = [0; 14];
        for histogram in self.target_latency.iter() {
            for (sum, n) in out.iter_mut().zip(histogram.buckets()) {
                *sum += n;
            }
        }
        out
    }

    /// Sum of the route's observations, in microseconds.
    pub fn latency_sum_micros(&self) -> u64 {
        self.target_latency
            .iter()
            .map(LatencyHistogram::sum_micros)
            .sum()
    }

    /// Sum of every outcome of the route.
    pub fn totals(&self) -> [u64; 7] {
        let mut out = [0; 7];
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            out[i] = self.unassigned.get(*outcome)
                + self
                    .targets
                    .iter()
                    .flat_map(|t| t.iter())
                    .map(|c| c.get(*outcome))
                    .sum::<u64>();
        }
        out
    }
}

/// Counters of one generation.
#[derive(Debug)]
pub struct GenerationStats {
    /// Per route, in file order.
    pub routes: Box<[RouteStats]>,
    /// Requests no route matched (answered 404).
    pub unrouted: AtomicU64,
    /// Requests refused before routing: an ambiguous, missing or malformed host, or a
    /// method Keel cannot proxy (answered 400 or 501).
    pub refused: AtomicU64,
}

impl GenerationStats {
    /// Counters for every route, target pool and backend of a table.
    pub(crate) fn new(table: &RouteTable, backends_per_pool: &[usize]) -> Self {
        let routes = table
            .routes()
            .iter()
            .map(|route| RouteStats {
                targets: route
                    .targets
                    .iter()
                    .map(|(pool, _)| {
                        let n = backends_per_pool.get(*pool).copied().unwrap_or(0);
                        (0..n).map(|_| OutcomeCounters::default()).collect()
                    })
                    .collect(),
                unassigned: OutcomeCounters::default(),
                target_latency: route
                    .targets
                    .iter()
                    .map(|_| LatencyHistogram::default())
                    .collect(),
                policy_refused: AtomicU64::new(0),
                rate_limited: AtomicU64::new(0),
                redirected: AtomicU64::new(0),
                compressed: Default::default(),
            })
            .collect();
        Self {
            routes,
            unrouted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Requests counted so far, routed, unrouted or refused.
    pub fn requests(&self) -> u64 {
        self.unrouted.load(Relaxed)
            + self.refused.load(Relaxed)
            + self
                .routes
                .iter()
                .map(|r| r.totals().iter().sum::<u64>())
                .sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_bucket_bounds() {
        let h = LatencyHistogram::default();
        for ms in [1, 1, 1, 1, 1, 1, 1, 1, 1, 40] {
            h.observe(Duration::from_millis(ms));
        }
        let b = h.buckets();
        assert_eq!(bucket_quantile(&b, 0.5), Some(1_000));
        assert_eq!(bucket_quantile(&b, 0.99), Some(50_000));
        assert_eq!(bucket_quantile(&[0; 14], 0.99), None);
    }

    #[test]
    fn a_route_latency_is_the_sum_of_its_arms() {
        let route = RouteStats {
            targets: Box::new([]),
            unassigned: OutcomeCounters::default(),
            target_latency: (0..2).map(|_| LatencyHistogram::default()).collect(),
            policy_refused: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            redirected: AtomicU64::new(0),
            compressed: Default::default(),
        };
        route.target_latency[0].observe(Duration::from_millis(1));
        route.target_latency[1].observe(Duration::from_millis(40));
        route.target_latency[1].observe(Duration::from_millis(40));
        assert_eq!(route.target_latency[1].buckets().iter().sum::<u64>(), 2);
        let buckets = route.latency_buckets();
        assert_eq!(buckets.iter().sum::<u64>(), 3);
        assert_eq!(bucket_quantile(&buckets, 0.3), Some(1_000));
        assert_eq!(bucket_quantile(&buckets, 0.99), Some(50_000));
        assert_eq!(route.latency_sum_micros(), 81_000);
    }

    #[test]
    fn outcome_classes() {
        assert_eq!(Outcome::of_status(204), Outcome::Success);
        assert_eq!(Outcome::of_status(503), Outcome::ServerError);
        assert!(Outcome::ConnectFailure.is_failure());
        assert!(!Outcome::ClientError.is_failure());
    }
}
