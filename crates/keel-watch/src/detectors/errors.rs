//! Error jump: Wald's sequential probability ratio test on the failure rate of a route
//! (5xx answers, connect failures, resets and timeouts, misidentified responses, and
//! requests the route's policies refused: see `evaluate.rs`).
//!
//! Two hypotheses about the candidate's failure probability per request:
//! `H0: p = p0` (as before) and `H1: p = p1` (jumped), with
//! `p0 = max(baseline rate, BASELINE_FLOOR)` — or `error_rate / NO_BASELINE_DIVISOR`
//! without a baseline — and `p1 = max(error_rate, JUMP_FACTOR × p0)`.
//! After `n` requests with `x` failures the log-likelihood ratio is
//!
//! ```text
//! LLR = x·ln(p1/p0) + (n−x)·ln((1−p1)/(1−p0))
//! ```
//!
//! and the test says "jumped" once `LLR ≥ ln((1−β)/α)`, "as before" once
//! `LLR ≤ ln(β/(1−α))`. The SPRT needs, on average, the fewest observations of any
//! test with those error rates: with the defaults, a route that fails every request
//! crosses after 3 requests. Two guards keep it honest: it decides nothing before
//! `min_requests` requests, and it fires only if the observed rate is at least
//! `error_rate` (so "jumped from 0.2 % to 2 %" is evidence, but not an alarm).
//!
//! Why not a multi-window burn rate: burn rates are built for SLO budgets over hours and
//! need a long window to be quiet; a canary lives seconds and has tens of requests, and
//! the SPRT is exactly the "decide with as few samples as possible" tool.

use serde_json::json;

use super::{Alarm, Detector, Thresholds, round4};

/// Probability of calling a jump on traffic that did not change (α = 0.001).
pub const SPRT_ALPHA: f64 = 0.001;
/// Probability of missing a real jump to `p1` (β = 0.01).
pub const SPRT_BETA: f64 = 0.01;
/// Smallest failure rate assumed for a clean baseline (0.002 = 0.2 %).
pub const BASELINE_FLOOR: f64 = 0.002;
/// Largest baseline failure rate the test starts from (0.45 = 45 %).
pub const BASELINE_CEILING: f64 = 0.45;
/// Factor the failure rate must at least grow by to be a jump (2×).
pub const JUMP_FACTOR: f64 = 2.0;
/// Without a baseline, clean traffic is assumed to fail at `error_rate / 5`.
pub const NO_BASELINE_DIVISOR: f64 = 5.0;

/// Requests and failures in a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rate {
    /// Requests.
    pub requests: u64,
    /// Failed requests.
    pub failures: u64,
}

impl Rate {
    /// The failure ratio (0 without requests).
    pub fn ratio(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failures as f64 / self.requests as f64
        }
    }
}

/// The state of the test on one window.
#[derive(Clone, Debug, PartialEq)]
pub enum ErrorVerdict {
    /// Fewer requests than the minimum-volume guard.
    TooFewRequests,
    /// The evidence says "as before".
    Clean,
    /// Not enough evidence either way yet.
    Undecided,
    /// The evidence says "jumped".
    Jump(Alarm),
}

/// `(p0, p1)` for a baseline (used only when it has at least `min_requests` requests).
pub fn hypotheses(baseline: Option<Rate>, thresholds: &Thresholds) -> (f64, f64) {
    let p0 = match baseline {
        Some(b) if b.requests >= thresholds.min_requests.max(1) => b.ratio(),
        _ => thresholds.error_rate / NO_BASELINE_DIVISOR,
    }
    .clamp(BASELINE_FLOOR, BASELINE_CEILING);
    let p1 = thresholds.error_rate.max(JUMP_FACTOR * p0).min(0.99);
    (p0, p1)
}

/// The log-likelihood ratio of "jumped" over "as before".
pub fn log_likelihood_ratio(rate: Rate, p0: f64, p1: f64) -> f64 {
    let successes = rate.requests.saturating_sub(rate.failures) as f64;
    rate.failures as f64 * (p1 / p0).ln() + successes * ((1.0 - p1) / (1.0 - p0)).ln()
}

/// Runs the test on a candidate window against an optional baseline.
pub fn error_jump(
    subject: &str,
    baseline: Option<Rate>,
    candidate: Rate,
    thresholds: &Thresholds,
) -> ErrorVerdict {
    if candidate.requests < thresholds.min_requests.max(1) {
        return ErrorVerdict::TooFewRequests;
    }
    let (p0, p1) = hypotheses(baseline, thresholds);
    let llr = log_likelihood_ratio(candidate, p0, p1);
    let upper = ((1.0 - SPRT_BETA) / SPRT_ALPHA).ln();
    let lower = (SPRT_BETA / (1.0 - SPRT_ALPHA)).ln();
    let observed = candidate.ratio();
    if llr >= upper && observed >= thresholds.error_rate {
        let baseline_text = match baseline {
            Some(b) if b.requests > 0 => {
                format!("{:.1}% of {} before", b.ratio() * 100.0, b.requests)
            }
            _ => "no baseline".to_string(),
        };
        return ErrorVerdict::Jump(Alarm {
            detector: Detector::Errors,
            subject: subject.to_string(),
            summary: format!(
                "{subject}: {} of {} requests failed ({:.1}%; {baseline_text}); SPRT log-likelihood ratio {:.1} ≥ {:.1}",
                candidate.failures,
                candidate.requests,
                observed * 100.0,
                llr,
                upper
            ),
            numbers: json!({
                "requests": candidate.requests,
                "failures": candidate.failures,
                "failure_rate": round4(observed),
                "baseline_requests": baseline.map(|b| b.requests),
                "baseline_failures": baseline.map(|b| b.failures),
                "p0": round4(p0),
                "p1": round4(p1),
                "llr": round4(llr),
                "threshold_llr": round4(upper),
                "error_rate": thresholds.error_rate,
            }),
        });
    }
    if llr <= lower {
        ErrorVerdict::Clean
    } else {
        ErrorVerdict::Undecided
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thresholds(min_requests: u64) -> Thresholds {
        Thresholds {
            min_requests,
            ..Thresholds::default()
        }
    }

    /// Feeds requests one at a time; returns how many it took to fire.
    fn requests_to_fire(
        baseline: Option<Rate>,
        failure_every: u64,
        t: &Thresholds,
        limit: u64,
    ) -> Option<u64> {
        let mut rate = Rate::default();
        for n in 1..=limit {
            rate.requests += 1;
            if n % failure_every == 0 {
                rate.failures += 1;
            }
            if matches!(
                error_jump("route r", baseline, rate, t),
                ErrorVerdict::Jump(_)
            ) {
                return Some(n);
            }
        }
        None
    }

    #[test]
    fn a_route_that_fails_everything_is_decided_within_a_handful_of_requests() {
        let clean = Some(Rate {
            requests: 2_000,
            failures: 2,
        });
        // The likelihood ratio alone crosses after 3 failures (p0 = 0.2%, p1 = 5%)…
        assert_eq!(requests_to_fire(clean, 1, &thresholds(1), 100), Some(3));
        // …and the minimum-volume guard holds it to min_requests.
        assert_eq!(requests_to_fire(clean, 1, &thresholds(20), 100), Some(20));
        // Half the requests failing: still decided at the guard.
        assert_eq!(requests_to_fire(clean, 2, &thresholds(20), 100), Some(20));
    }

    #[test]
    fn a_moderate_jump_takes_more_evidence_but_is_decided() {
        let clean = Some(Rate {
            requests: 2_000,
            failures: 4,
        });
        // 10% failures against a 0.2% baseline.
        let n = requests_to_fire(clean, 10, &thresholds(20), 2_000);
        assert!(matches!(n, Some(n) if n <= 100), "{n:?}");
    }

    #[test]
    fn the_minimum_volume_guard_holds() {
        let t = thresholds(20);
        let all_failed = Rate {
            requests: 19,
            failures: 19,
        };
        assert_eq!(
            error_jump("r", None, all_failed, &t),
            ErrorVerdict::TooFewRequests
        );
    }

    #[test]
    fn a_rate_below_the_threshold_never_fires_even_with_evidence() {
        // 2% failures on 100,000 requests against 0.2%: significant, but under 5%.
        let t = thresholds(20);
        let baseline = Some(Rate {
            requests: 100_000,
            failures: 200,
        });
        let candidate = Rate {
            requests: 100_000,
            failures: 2_000,
        };
        assert!(!matches!(
            error_jump("r", baseline, candidate, &t),
            ErrorVerdict::Jump(_)
        ));
    }

    #[test]
    fn a_noisy_baseline_raises_the_bar() {
        // The baseline already fails 8%: 12% is not a jump (p1 = 16%), 40% is.
        let t = thresholds(20);
        let baseline = Some(Rate {
            requests: 2_000,
            failures: 160,
        });
        let (p0, p1) = hypotheses(baseline, &t);
        assert!((p0 - 0.08).abs() < 1e-9 && (p1 - 0.16).abs() < 1e-9);
        let twelve = Rate {
            requests: 500,
            failures: 60,
        };
        assert!(!matches!(
            error_jump("r", baseline, twelve, &t),
            ErrorVerdict::Jump(_)
        ));
        let forty = Rate {
            requests: 50,
            failures: 20,
        };
        assert!(matches!(
            error_jump("r", baseline, forty, &t),
            ErrorVerdict::Jump(_)
        ));
    }

    #[test]
    fn clean_traffic_with_jitter_never_fires_over_many_windows() {
        // 0.5% failures, 50 requests per 250 ms tick, 40-tick window, 2,000 windows:
        // the realized rate jitters, the test stays quiet.
        let t = Thresholds::default();
        let mut rng = fastrand::Rng::with_seed(7);
        let ticks: Vec<Rate> = (0..2_040)
            .map(|_| {
                let requests = 40 + rng.u64(0..20);
                let failures = (0..requests).filter(|_| rng.f64() < 0.005).count() as u64;
                Rate { requests, failures }
            })
            .collect();
        let baseline = ticks[..40].iter().fold(Rate::default(), |a, r| Rate {
            requests: a.requests + r.requests,
            failures: a.failures + r.failures,
        });
        for start in 40..2_000 {
            let window = ticks[start..start + 40]
                .iter()
                .fold(Rate::default(), |a, r| Rate {
                    requests: a.requests + r.requests,
                    failures: a.failures + r.failures,
                });
            let verdict = error_jump("r", Some(baseline), window, &t);
            assert!(!matches!(verdict, ErrorVerdict::Jump(_)), "{verdict:?}");
        }
    }
}
