//! Traffic-share shift: per host key, the share of requests that reach each service
//! (the service of the pool the request landed in, not the one the route expected),
//! compared with a baseline and with the declared `[[intents]]`.
//!
//! For a host with `n_b` baseline and `n_c` candidate requests, of which `x_b` and `x_c`
//! reached service `s`, the shift is `Δ = x_c/n_c − x_b/n_b`, and its standard error is
//! `se = sqrt(p̃_b(1−p̃_b)/n_b + p̃_c(1−p̃_c)/n_c)` with the Agresti–Caffo adjusted
//! shares `p̃ = (x+1)/(n+2)` (so a share of exactly 0 or 1 still has an error). The
//! detector fires when the shift exceeds the threshold *with confidence*:
//! `|Δ| − SHARE_Z·se > share_shift`, both sides having at least `min_requests`.
//! A 70-point shift clears that with 20 requests; a 50/50 split jittering on 20
//! requests would need a 67-point swing.
//!
//! Hosts are host keys (see [`crate::shape`]); an extra key, [`ALL_HOSTS`], compares
//! the service mix of all traffic, which catches a route that changed its host
//! condition and so moved its traffic to another key.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Alarm, Detector, Thresholds, round4};
use crate::shape::Shape;
use crate::window::{WindowView, requests};

/// A shift must beat the threshold by this many standard errors (z = 3).
pub const SHARE_Z: f64 = 3.0;
/// Host key of the all-traffic comparison.
pub const ALL_HOSTS: &str = "(all hosts)";

/// Requests per service, per host key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShareTable {
    hosts: BTreeMap<String, BTreeMap<String, u64>>,
}

impl ShareTable {
    /// Counts `n` requests of `host` that reached `service` (and adds them to the
    /// all-traffic key).
    pub fn add(&mut self, host: &str, service: &str, n: u64) {
        if n == 0 {
            return;
        }
        for key in [host, ALL_HOSTS] {
            *self
                .hosts
                .entry(key.to_string())
                .or_default()
                .entry(service.to_string())
                .or_default() += n;
        }
    }

    /// The table of a window: every request that reached a backend, counted under its
    /// route's host key and its pool's service.
    pub fn from_window(shape: &Shape, view: &WindowView<'_>) -> Self {
        let mut table = Self::default();
        for (r, route) in shape.routes.iter().enumerate() {
            for (a, arm) in route.arms.iter().enumerate() {
                table.add(&route.host, &arm.service, requests(&view.arm(r, a)));
            }
        }
        table
    }

    /// Requests per service of one host key.
    pub fn host(&self, host: &str) -> Option<&BTreeMap<String, u64>> {
        self.hosts.get(host)
    }
}

/// Requests per service in the scope of an intent: routes whose host key is the
/// intent's host and, if the intent has a path prefix, whose literal path lies under it.
pub fn intent_scope(
    shape: &Shape,
    view: &WindowView<'_>,
    host: &str,
    path_prefix: Option<&str>,
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (r, route) in shape.routes.iter().enumerate() {
        if route.host != host {
            continue;
        }
        if let Some(prefix) = path_prefix
            && !route.path.as_deref().is_some_and(|p| p.starts_with(prefix))
        {
            continue;
        }
        for (a, arm) in route.arms.iter().enumerate() {
            *counts.entry(arm.service.clone()).or_default() += requests(&view.arm(r, a));
        }
    }
    counts
}

/// Adjusted share and its variance term `p̃(1−p̃)/n`.
pub(crate) fn adjusted_variance(x: u64, n: u64) -> f64 {
    let p = (x as f64 + 1.0) / (n as f64 + 2.0);
    p * (1.0 - p) / n.max(1) as f64
}

/// The largest confident shift between two tables, if one exceeds the threshold.
pub fn share_shift(
    baseline: &ShareTable,
    candidate: &ShareTable,
    thresholds: &Thresholds,
) -> Option<Alarm> {
    let per_host = candidate
        .hosts
        .iter()
        .filter(|(h, _)| h.as_str() != ALL_HOSTS);
    let all = candidate
        .hosts
        .iter()
        .filter(|(h, _)| h.as_str() == ALL_HOSTS);
    // A real host key names the problem better; the all-traffic key is the fallback.
    for group in [per_host.collect::<Vec<_>>(), all.collect()] {
        if let Some(alarm) = worst_shift(baseline, &group, thresholds) {
            return Some(alarm);
        }
    }
    None
}

fn worst_shift(
    baseline: &ShareTable,
    hosts: &[(&String, &BTreeMap<String, u64>)],
    thresholds: &Thresholds,
) -> Option<Alarm> {
    let mut worst: Option<(f64, Alarm)> = None;
    for (host, now) in hosts.iter().copied() {
        let Some(before) = baseline.hosts.get(host) else {
            continue;
        };
        let n_b: u64 = before.values().sum();
        let n_c: u64 = now.values().sum();
        if n_b < thresholds.min_requests.max(1) || n_c < thresholds.min_requests.max(1) {
            continue;
        }
        let services = before.keys().chain(now.keys());
        for service in services {
            let x_b = before.get(service).copied().unwrap_or(0);
            let x_c = now.get(service).copied().unwrap_or(0);
            let (p_b, p_c) = (x_b as f64 / n_b as f64, x_c as f64 / n_c as f64);
            let shift = p_c - p_b;
            let se = (adjusted_variance(x_b, n_b) + adjusted_variance(x_c, n_c)).sqrt();
            let excess = shift.abs() - SHARE_Z * se - thresholds.share_shift;
            if excess <= 0.0 || worst.as_ref().is_some_and(|(e, _)| *e >= excess) {
                continue;
            }
            let alarm = Alarm {
                detector: Detector::Share,
                subject: host.clone(),
                summary: format!(
                    "host {host}: service {service} went from {:.1}% to {:.1}% of requests (threshold {:.0} points; {}; {n_b} → {n_c} requests)",
                    p_b * 100.0,
                    p_c * 100.0,
                    thresholds.share_shift * 100.0,
                    mix(before, n_b, now, n_c),
                ),
                numbers: json!({
                    "kind": "shift",
                    "host": host,
                    "service": service,
                    "baseline_share": round4(p_b),
                    "candidate_share": round4(p_c),
                    "shift": round4(shift),
                    "standard_error": round4(se),
                    "baseline_requests": n_b,
                    "candidate_requests": n_c,
                    "baseline_by_service": before,
                    "candidate_by_service": now,
                    "share_shift": thresholds.share_shift,
                }),
            };
            worst = Some((excess, alarm));
        }
    }
    worst.map(|(_, alarm)| alarm)
}

/// Every service's share before → after, e.g. `web 80.0%→34.7%, legacy-web 0.0%→45.3%`.
fn mix(before: &BTreeMap<String, u64>, n_b: u64, now: &BTreeMap<String, u64>, n_c: u64) -> String {
    let mut services: Vec<&String> = before.keys().chain(now.keys()).collect();
    services.sort();
    services.dedup();
    services
        .iter()
        .map(|s| {
            let b = before.get(*s).copied().unwrap_or(0) as f64 / n_b.max(1) as f64;
            let c = now.get(*s).copied().unwrap_or(0) as f64 / n_c.max(1) as f64;
            format!("{s} {:.1}%→{:.1}%", b * 100.0, c * 100.0)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A declared share bound, as the detector needs it.
#[derive(Clone, Debug)]
pub struct IntentBound<'a> {
    /// The host.
    pub host: &'a str,
    /// Optional path prefix.
    pub path_prefix: Option<&'a str>,
    /// The service whose share is bounded.
    pub service: &'a str,
    /// Lowest allowed share.
    pub min_share: Option<f64>,
    /// Highest allowed share.
    pub max_share: Option<f64>,
}

/// Fires when the live share of the intent's service is outside its bounds by more
/// than `SHARE_Z` standard errors.
pub fn intent_breach(
    intent: &IntentBound<'_>,
    counts: &BTreeMap<String, u64>,
    thresholds: &Thresholds,
) -> Option<Alarm> {
    let n: u64 = counts.values().sum();
    if n < thresholds.min_requests.max(1) {
        return None;
    }
    let x = counts.get(intent.service).copied().unwrap_or(0);
    let share = x as f64 / n as f64;
    let margin = SHARE_Z * adjusted_variance(x, n).sqrt();
    let (bound, broken) = match (intent.min_share, intent.max_share) {
        (Some(min), _) if share + margin < min => (min, "below its minimum"),
        (_, Some(max)) if share - margin > max => (max, "above its maximum"),
        _ => return None,
    };
    let scope = match intent.path_prefix {
        Some(prefix) => format!("{}{prefix}", intent.host),
        None => intent.host.to_string(),
    };
    Some(Alarm {
        detector: Detector::Share,
        subject: scope.clone(),
        summary: format!(
            "intent for {scope}: service {} gets {:.1}% of {n} requests, {broken} of {:.1}%",
            intent.service,
            share * 100.0,
            bound * 100.0
        ),
        numbers: json!({
            "kind": "intent",
            "host": intent.host,
            "path_prefix": intent.path_prefix,
            "service": intent.service,
            "share": round4(share),
            "requests": n,
            "min_share": intent.min_share,
            "max_share": intent.max_share,
            "by_service": counts,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(host: &str, counts: &[(&str, u64)]) -> ShareTable {
        let mut t = ShareTable::default();
        for (service, n) in counts {
            t.add(host, service, *n);
        }
        t
    }

    #[test]
    fn a_seventy_percent_misroute_fires_on_few_requests() {
        let t = Thresholds::default();
        let baseline = table("shop", &[("web", 400)]);
        // 20 canary requests, 14 of them on legacy-web.
        let candidate = table("shop", &[("web", 6), ("legacy-web", 14)]);
        let alarm = share_shift(&baseline, &candidate, &t);
        let alarm = alarm
            .as_ref()
            .map(|a| (&a.numbers["service"], &a.numbers["host"]));
        assert!(
            matches!(alarm, Some((s, h)) if (s == "legacy-web" || s == "web") && h == "shop"),
            "{alarm:?}"
        );
    }

    #[test]
    fn clean_traffic_with_jitter_does_not_fire() {
        // A 50/50 split, 20 to 60 requests per window, 5,000 windows.
        let t = Thresholds::default();
        let mut rng = fastrand::Rng::with_seed(11);
        let baseline = table("shop", &[("web", 200), ("web-next", 200)]);
        for _ in 0..5_000 {
            let n = 20 + rng.u64(0..40);
            let next = (0..n).filter(|_| rng.bool()).count() as u64;
            let candidate = table("shop", &[("web", n - next), ("web-next", next)]);
            assert_eq!(
                share_shift(&baseline, &candidate, &t),
                None,
                "{candidate:?}"
            );
        }
    }

    #[test]
    fn the_minimum_volume_guard_holds() {
        let t = Thresholds::default();
        let baseline = table("shop", &[("web", 400)]);
        let candidate = table("shop", &[("legacy-web", 19)]);
        assert_eq!(share_shift(&baseline, &candidate, &t), None);
        let candidate = table("shop", &[("legacy-web", 20)]);
        assert!(share_shift(&baseline, &candidate, &t).is_some());
    }

    #[test]
    fn a_shift_just_over_the_threshold_needs_enough_requests_to_be_sure() {
        let t = Thresholds::default();
        let baseline = table("shop", &[("web", 8_000), ("legacy-web", 2_000)]);
        // 25 points more on legacy: not sure on 100 requests, sure on 5,000.
        let small = table("shop", &[("web", 55), ("legacy-web", 45)]);
        assert_eq!(share_shift(&baseline, &small, &t), None);
        let large = table("shop", &[("web", 2_750), ("legacy-web", 2_250)]);
        assert!(share_shift(&baseline, &large, &t).is_some());
    }

    #[test]
    fn intents_fire_outside_their_bounds_only() {
        let t = Thresholds::default();
        let intent = IntentBound {
            host: "shop",
            path_prefix: Some("/checkout"),
            service: "checkout",
            min_share: Some(0.9),
            max_share: None,
        };
        let fine: BTreeMap<String, u64> = [("checkout".to_string(), 100)].into();
        assert_eq!(intent_breach(&intent, &fine, &t), None);
        let broken: BTreeMap<String, u64> =
            [("checkout".to_string(), 30), ("legacy-web".to_string(), 70)].into();
        assert!(intent_breach(&intent, &broken, &t).is_some());
        let few: BTreeMap<String, u64> = [("legacy-web".to_string(), 5)].into();
        assert_eq!(intent_breach(&intent, &few, &t), None);
    }
}
