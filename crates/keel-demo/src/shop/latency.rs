//! How long a simulated backend takes to answer: a log-normal around a median, with a cut tail.
//!
//! Real service latencies are skewed: most requests land near the median, a few take
//! several times longer. A log-normal gives that shape; the hard ceiling keeps a demo
//! run bounded and its numbers reproducible enough to compare generations.

use std::time::Duration;

/// Spread of the log-normal (σ of the underlying normal): p99 ≈ 3.2 × median (0.5).
pub const DEFAULT_SIGMA: f64 = 0.5;
/// Ceiling of a sample, as a multiple of the median (5×).
pub const DEFAULT_TAIL_CAP: f64 = 5.0;
/// Floor of a sample, as a fraction of the median (0.25×): no backend answers in no time.
pub const FLOOR_FRACTION: f64 = 0.25;

/// Latency of one backend's answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyModel {
    /// Median answer time. Zero means "answer at once" (the `fast` mode for tests).
    pub median: Duration,
    /// σ of the underlying normal distribution; 0 makes every answer take the median.
    pub sigma: f64,
    /// Longest answer time; samples above it are cut to it.
    pub max: Duration,
}

impl LatencyModel {
    /// No added latency at all.
    pub const NONE: LatencyModel = LatencyModel {
        median: Duration::ZERO,
        sigma: 0.0,
        max: Duration::ZERO,
    };

    /// A log-normal around `median` with [`DEFAULT_SIGMA`], cut at [`DEFAULT_TAIL_CAP`] × median.
    pub fn around(median: Duration) -> LatencyModel {
        LatencyModel {
            median,
            sigma: DEFAULT_SIGMA,
            max: median.mul_f64(DEFAULT_TAIL_CAP),
        }
    }

    /// Whether this model adds no latency (no timer is armed).
    pub fn is_instant(&self) -> bool {
        self.median.is_zero() || self.max.is_zero()
    }

    /// One answer time, drawn with `rng`; always within
    /// `[FLOOR_FRACTION × median, max]`.
    pub fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        if self.is_instant() {
            return Duration::ZERO;
        }
        let factor = (self.sigma.max(0.0) * standard_normal(rng)).exp();
        let floor = self.median.mul_f64(FLOOR_FRACTION).min(self.max);
        self.median
            .mul_f64(factor.min(f64::from(u32::MAX)))
            .clamp(floor, self.max)
    }
}

/// A standard normal variate by the Box–Muller transform.
fn standard_normal(rng: &mut fastrand::Rng) -> f64 {
    // 1 - f64() lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_stay_within_floor_and_ceiling() {
        let model = LatencyModel::around(Duration::from_millis(20));
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..10_000 {
            let d = model.sample(&mut rng);
            assert!(d >= Duration::from_millis(5), "{d:?} under the floor");
            assert!(d <= Duration::from_millis(100), "{d:?} over the ceiling");
        }
    }

    #[test]
    fn median_is_near_the_configured_one_and_the_tail_is_longer() {
        let model = LatencyModel::around(Duration::from_millis(40));
        let mut rng = fastrand::Rng::with_seed(11);
        let mut samples: Vec<Duration> = (0..20_001).map(|_| model.sample(&mut rng)).collect();
        samples.sort();
        let median = samples[10_000].as_secs_f64() * 1000.0;
        let p99 = samples[19_800].as_secs_f64() * 1000.0;
        assert!((36.0..44.0).contains(&median), "median {median} ms");
        assert!(
            p99 > 2.0 * median,
            "p99 {p99} ms is not a tail over {median} ms"
        );
    }

    #[test]
    fn none_is_instant() {
        let mut rng = fastrand::Rng::with_seed(1);
        assert!(LatencyModel::NONE.is_instant());
        assert_eq!(LatencyModel::NONE.sample(&mut rng), Duration::ZERO);
    }
}
