//! The in-process detectors: pure functions over windowed counts, each returning the
//! evidence it fired on, or nothing. The watcher decides what they are compared with
//! (a canary against its live primary, a fresh generation against the frozen window of
//! the one it replaced) and turns a finding into an [`crate::Alert`].
//!
//! | detector | signal | fires when | doc |
//! |---|---|---|---|
//! | [`share`] | per host key, each service's share of requests | a share moved more than `share_shift`, with confidence; or an intent bound is broken | `docs/detectors.md#share` |
//! | [`refusal_intent`] (kind `share`) | per `[[intents]]` scope, the share of requests its policies refused (403/429) | the share is over the intent's `max_refused`, with confidence | `docs/detectors.md#share` |
//! | [`route_loss`] (kind `share`) | each route's and each service's share of all requests | one lost nearly all of its share; with both windows on all traffic, half of it (surer, on more evidence) | `docs/detectors.md#share` |
//! | [`errors`] | 5xx + connect failures + misidentified + policy refusals (403/429) per route | Wald's SPRT prefers "jumped" over "as before" and the rate is over `error_rate` | `docs/detectors.md#errors` |
//! | [`identity`] | misidentified responses, identity events | at the first one | `docs/detectors.md#identity` |
//! | [`latency`] | p99 per route from bucket deltas | p99 ≥ `latency_factor` × baseline p99, above a floor | `docs/detectors.md#latency` |
//! | [`handshakes`] | failed TLS handshakes per listener of the generation that served them | the SPRT of [`errors`] prefers "jumped", with at least `MIN_HANDSHAKES`, and the ratio is over `error_rate` | `docs/detectors.md#handshakes` |

pub mod errors;
pub mod handshakes;
pub mod identity;
pub mod latency;
pub mod refusal_intent;
pub mod route_loss;
pub mod share;

use serde::Serialize;

/// Which detector fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// Traffic-share shift or intent breach.
    Share,
    /// Error jump.
    Errors,
    /// A backend identifying as another service.
    Identity,
    /// p99 latency regression.
    Latency,
    /// TLS handshake failures jumped: a certificate the clients refuse, or none.
    Handshakes,
    /// A certificate Keel keeps (ACME) that it cannot renew: raised by the control
    /// plane, not by the sampler, and never a reason for the guard to revert.
    Certificate,
    /// A fleet node serving another generation than the fleet's past `[fleet] drift_alert`:
    /// raised by keel-fleet as a standing condition ([`crate::Watcher::raise_condition`]),
    /// cleared when the node converges, never a reason for the guard to revert.
    FleetDrift,
}

impl Detector {
    /// Every detector.
    pub const ALL: [Detector; 7] = [
        Detector::Share,
        Detector::Errors,
        Detector::Identity,
        Detector::Latency,
        Detector::Handshakes,
        Detector::Certificate,
        Detector::FleetDrift,
    ];

    /// Metric label and JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Share => "share",
            Detector::Errors => "errors",
            Detector::Identity => "identity",
            Detector::Latency => "latency",
            Detector::Handshakes => "handshakes",
            Detector::Certificate => "certificate",
            Detector::FleetDrift => "fleet_drift",
        }
    }
}

/// What a detector found: enough to explain the alarm without looking anything up.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alarm {
    /// The detector.
    pub detector: Detector,
    /// What it is about: a host key, a route, a backend.
    pub subject: String,
    /// One sentence with the numbers.
    pub summary: String,
    /// The numbers, structured.
    pub numbers: serde_json::Value,
}

/// Detector thresholds: `[detectors]` of the active config.
#[derive(Clone, Debug)]
pub struct Thresholds {
    /// Fewest requests (per compared population) before a statistical detector may fire.
    pub min_requests: u64,
    /// Share movement that counts as a shift (0..=1).
    pub share_shift: f64,
    /// Error rate that counts as a jump (0..=1).
    pub error_rate: f64,
    /// p99 factor over baseline that counts as a regression.
    pub latency_factor: f64,
}

impl Thresholds {
    /// The thresholds a config sets.
    pub fn from_config(detectors: &keel_config::Detectors) -> Self {
        Self {
            min_requests: u64::from(detectors.min_requests),
            share_shift: detectors.share_shift,
            error_rate: detectors.error_rate,
            latency_factor: detectors.latency_factor,
        }
    }
}

impl Thresholds {
    /// The stricter of two configs' thresholds, each on its own: the fewer requests, the
    /// smaller shift, error rate and latency factor. The watch of a change uses these,
    /// so an edit cannot loosen the detectors that judge it.
    pub fn stricter(a: &keel_config::Detectors, b: &keel_config::Detectors) -> Self {
        let (a, b) = (Self::from_config(a), Self::from_config(b));
        Self {
            min_requests: a.min_requests.min(b.min_requests),
            share_shift: a.share_shift.min(b.share_shift),
            error_rate: a.error_rate.min(b.error_rate),
            latency_factor: a.latency_factor.min(b.latency_factor),
        }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        use keel_config::defaults as d;
        Self {
            min_requests: u64::from(d::DETECTOR_MIN_REQUESTS),
            share_shift: d::SHARE_SHIFT,
            error_rate: d::ERROR_RATE,
            latency_factor: d::LATENCY_FACTOR,
        }
    }
}

/// Rounds a ratio for alarm text and JSON (4 decimals).
pub(crate) fn round4(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stricter_of_two_configs_is_taken_value_by_value() {
        let parsed = |text: &str| keel_config::parse(text).config.detectors;
        let old = parsed("[detectors]\nshare_shift = 0.2\nerror_rate = 0.5\n");
        let new = parsed("[detectors]\nshare_shift = 0.6\nerror_rate = 0.1\nmin_requests = 500\n");
        let both = Thresholds::stricter(&old, &new);
        assert_eq!(both.share_shift, 0.2);
        assert_eq!(both.error_rate, 0.1);
        assert_eq!(
            both.min_requests,
            u64::from(keel_config::defaults::DETECTOR_MIN_REQUESTS).min(500)
        );
        let swapped = Thresholds::stricter(&new, &old);
        assert_eq!(
            (
                swapped.share_shift,
                swapped.error_rate,
                swapped.min_requests
            ),
            (both.share_shift, both.error_rate, both.min_requests)
        );
    }
}
