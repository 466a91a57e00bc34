//! Route loss, part of the share detector: judge the worst case, not a host's average.
//!
//! A widened `path_prefix`, a reorder, a dropped `methods` match or a host wildcard can
//! hand all of one route's traffic to another route while the host's service mix moves
//! less than `share_shift` (the `cart` route is 14 % of its host). So each route the
//! baseline and the candidate share is compared on its own: with `p_b` and `p_c` its
//! share of all requests in the baseline and the candidate window, it fires when the
//! route lost nearly all of its share (`p_c < (1 − ROUTE_LOSS)·p_b`) with confidence
//! (`p_b − p_c − SHARE_Z·se > 0`, Agresti–Caffo `se` as for shifts), once the
//! candidate has had enough traffic that the route should have seen `min_requests`
//! (`p_b·n_c ≥ min_requests`). Routes only one side has (added or removed by the change)
//! are the gate's business.

use serde_json::json;

use super::share::SHARE_Z;
use super::{Alarm, Detector, Thresholds, round4};

/// Share of its traffic a route must lose to count as starved: nearly all of it (0.8).
/// Half was too little: a canary slice is chosen by sticky key, so when few clients carry
/// a route's traffic its share in the slice can halve by chance (the two-minute clean run
/// saw `checkout` go from 10.6 % to 5.1 % under a harmless change). A route a change
/// starves loses all of it; a partial loss is the gate's to judge before the apply.
pub const ROUTE_LOSS: f64 = 0.8;

/// The route that lost the most of its share, if one lost most of it with confidence.
/// `baseline` and `candidate` are requests per route name, in any order.
pub fn route_loss(
    baseline: &[(&str, u64)],
    candidate: &[(&str, u64)],
    thresholds: &Thresholds,
) -> Option<Alarm> {
    let n_b: u64 = baseline.iter().map(|(_, n)| n).sum();
    let n_c: u64 = candidate.iter().map(|(_, n)| n).sum();
    if n_b == 0 || n_c == 0 {
        return None;
    }
    let mut worst: Option<(f64, Alarm)> = None;
    for (route, x_b) in baseline.iter().copied() {
        let Some(x_c) = candidate.iter().find(|(r, _)| *r == route).map(|(_, n)| *n) else {
            continue;
        };
        let (p_b, p_c) = (x_b as f64 / n_b as f64, x_c as f64 / n_c as f64);
        if p_b * (n_c as f64) < thresholds.min_requests.max(1) as f64
            || x_b < thresholds.min_requests.max(1)
            || p_c >= (1.0 - ROUTE_LOSS) * p_b
        {
            continue;
        }
        let se = (variance(x_b, n_b) + variance(x_c, n_c)).sqrt();
        let excess = p_b - p_c - SHARE_Z * se;
        if excess <= 0.0 || worst.as_ref().is_some_and(|(e, _)| *e >= excess) {
            continue;
        }
        let alarm = Alarm {
            detector: Detector::Share,
            subject: format!("route {route}"),
            summary: format!(
                "route {route} lost most of its traffic: from {:.1}% to {:.1}% of requests ({n_b} → {n_c} requests); another route takes what it should answer",
                p_b * 100.0,
                p_c * 100.0
            ),
            numbers: json!({
                "kind": "route_loss",
                "route": route,
                "baseline_share": round4(p_b),
                "candidate_share": round4(p_c),
                "standard_error": round4(se),
                "baseline_requests": n_b,
                "candidate_requests": n_c,
                "route_loss": ROUTE_LOSS,
            }),
        };
        worst = Some((excess, alarm));
    }
    worst.map(|(_, alarm)| alarm)
}

fn variance(x: u64, n: u64) -> f64 {
    let p = (x as f64 + 1.0) / (n as f64 + 2.0);
    p * (1.0 - p) / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_starved_route_fires_and_noise_does_not() {
        let thresholds = Thresholds::default();
        let before = [("cart", 120), ("web", 880)];
        assert!(route_loss(&before, &[("cart", 110), ("web", 890)], &thresholds).is_none());
        // Halved, as a canary slice chosen by sticky key can by chance: not starved.
        assert!(route_loss(&before, &[("cart", 55), ("web", 945)], &thresholds).is_none());
        let alarm = route_loss(&before, &[("cart", 0), ("web", 1000)], &thresholds);
        assert_eq!(alarm.map(|a| a.subject), Some("route cart".to_string()));
        // Too little candidate traffic to expect min_requests on the route: not yet.
        assert!(route_loss(&before, &[("cart", 0), ("web", 50)], &thresholds).is_none());
        // A route the candidate removed is not this detector's.
        assert!(route_loss(&before, &[("web", 1000)], &thresholds).is_none());
    }
}
