//! Route and service loss, part of the share detector: judge the worst case, not a
//! host's average.
//!
//! A widened `path_prefix`, a reorder, a dropped `methods` match or a host wildcard can
//! hand all or part of one route's traffic to another route while the host's service mix
//! moves less than `share_shift` (the `cart` route is 10 % of its host); a route re-pointed
//! at another service's pool, declaring that service, can take most of a small service's
//! traffic the same way. So each route, and each service, that the baseline and the
//! candidate share is compared on its own: with `p_b` and `p_c` its share of all requests
//! in the baseline and the candidate window, a [`LossRule`] fires when it lost at least
//! `loss` of its share (`p_c ≤ (1 − loss)·p_b`) with confidence (`p_b − p_c − z·se > 0`,
//! Agresti–Caffo `se` as for shifts), once the candidate has had enough traffic that it
//! should have seen `evidence × min_requests` (`p_b·n_c`).
//!
//! Two rules ([`loss_rules`]): [`STARVED`] (nearly all lost) on every comparison, and
//! [`PARTIAL`] (half lost, surer, on more evidence) when both windows saw all of the
//! traffic (a full swap, a rollback), not when one is a canary slice chosen by sticky key.
//! Routes only one side has (added or removed by the change) are the gate's business; a
//! service is judged while the candidate's config still has it (one the change deletes
//! lost its traffic on purpose, and the gate counted that before the apply).

use serde_json::json;

use super::share::SHARE_Z;
use super::{Alarm, Detector, Thresholds, round4};

/// Share of its traffic a route or service must lose to count as starved: nearly all of
/// it (0.8). Judged on every comparison, canary slices included. Half was too little
/// there: a canary slice is chosen by sticky key, so when few clients carry a route's
/// traffic its share in the slice can halve by chance (the two-minute clean run saw
/// `checkout` go from 10.6 % to 5.1 % under a harmless change).
pub const ROUTE_LOSS: f64 = 0.8;

/// Share of its traffic a route or service must lose to alarm when both windows saw all
/// of the traffic (a full swap against the frozen window of the generation it replaced,
/// a rollback): half (0.5), "most of it". No sticky key chooses who is counted there, so
/// a harmless change leaves each share where it was up to sampling noise. A named
/// constant rather than `share_shift`: that one is points of a host's mix (a route of 10 %
/// of its host would have to vanish twice over), this one is relative to the route's or
/// service's own share, whatever its size. Smaller losses are the gate's, before the apply
/// (`[safety] max_shift` per route and service).
pub const PARTIAL_LOSS: f64 = 0.5;

/// Standard errors a partial loss must clear (z = 4). With z = 3 and `min_requests` of
/// evidence, a route with 10 % of 1,500 requests "lost half" by chance in about one
/// comparison in 250 (exact binomial sums): too often for a check that runs every tick.
pub const PARTIAL_LOSS_Z: f64 = 4.0;

/// How many times `min_requests` the candidate must have carried for a route or service
/// before a partial loss is judged (3): with z = 4 this keeps a chance alarm below about
/// one comparison in 100,000 for routes of 2–30 % of the traffic, and still decides a
/// two-thirds loss of a 10 % route within about 900 candidate requests.
pub const PARTIAL_LOSS_EVIDENCE: u64 = 3;

/// One rule of this detector: how much of its share something must lose, how surely, on
/// how much evidence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossRule {
    /// Fraction of its share lost (0..1).
    pub loss: f64,
    /// Standard errors the loss must clear.
    pub z: f64,
    /// Multiple of `min_requests` the candidate must have carried for it.
    pub evidence: u64,
}

/// Starvation: [`ROUTE_LOSS`] at z = 3 on `min_requests`.
pub const STARVED: LossRule = LossRule {
    loss: ROUTE_LOSS,
    z: SHARE_Z,
    evidence: 1,
};

/// Partial loss: [`PARTIAL_LOSS`] at [`PARTIAL_LOSS_Z`] on [`PARTIAL_LOSS_EVIDENCE`] times
/// `min_requests`.
pub const PARTIAL: LossRule = LossRule {
    loss: PARTIAL_LOSS,
    z: PARTIAL_LOSS_Z,
    evidence: PARTIAL_LOSS_EVIDENCE,
};

/// The rules of a comparison: starvation always; partial loss too when both windows saw
/// all of the traffic.
pub fn loss_rules(whole_traffic: bool) -> &'static [LossRule] {
    if whole_traffic {
        &[STARVED, PARTIAL]
    } else {
        &[STARVED]
    }
}

/// What lost its traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Losing {
    /// A route (requests it matched).
    Route,
    /// A service (requests that landed on its pools).
    Service,
}

impl Losing {
    fn word(self) -> &'static str {
        match self {
            Losing::Route => "route",
            Losing::Service => "service",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Losing::Route => "route_loss",
            Losing::Service => "service_loss",
        }
    }

    fn consequence(self) -> &'static str {
        match self {
            Losing::Route => "another route takes what it should answer",
            Losing::Service => "its requests land on another service",
        }
    }
}

/// The route that lost the most of its share, if one lost as much as `rule` says with
/// confidence. `baseline` and `candidate` are requests per route name, in any order.
pub fn route_loss(
    baseline: &[(&str, u64)],
    candidate: &[(&str, u64)],
    thresholds: &Thresholds,
    rule: LossRule,
) -> Option<Alarm> {
    share_loss(Losing::Route, baseline, candidate, thresholds, rule)
}

/// The service that lost the most of its share of all requests, if one lost as much as
/// `rule` says with confidence. `candidate` must list every service of the candidate's
/// config (with 0 when no request landed on it): one it does not list is not judged.
pub fn service_loss(
    baseline: &[(&str, u64)],
    candidate: &[(&str, u64)],
    thresholds: &Thresholds,
    rule: LossRule,
) -> Option<Alarm> {
    share_loss(Losing::Service, baseline, candidate, thresholds, rule)
}

fn share_loss(
    losing: Losing,
    baseline: &[(&str, u64)],
    candidate: &[(&str, u64)],
    thresholds: &Thresholds,
    rule: LossRule,
) -> Option<Alarm> {
    let n_b: u64 = baseline.iter().map(|(_, n)| n).sum();
    let n_c: u64 = candidate.iter().map(|(_, n)| n).sum();
    if n_b == 0 || n_c == 0 {
        return None;
    }
    let min = thresholds.min_requests.max(1);
    let mut worst: Option<(f64, Alarm)> = None;
    for (name, x_b) in baseline.iter().copied() {
        let Some(x_c) = candidate.iter().find(|(r, _)| *r == name).map(|(_, n)| *n) else {
            continue;
        };
        let (p_b, p_c) = (x_b as f64 / n_b as f64, x_c as f64 / n_c as f64);
        let evidence = min.saturating_mul(rule.evidence) as f64;
        if p_b * (n_c as f64) < evidence || x_b < min || p_c > (1.0 - rule.loss) * p_b {
            continue;
        }
        let se = (variance(x_b, n_b) + variance(x_c, n_c)).sqrt();
        let excess = p_b - p_c - rule.z * se;
        if excess <= 0.0 || worst.as_ref().is_some_and(|(e, _)| *e >= excess) {
            continue;
        }
        let lost = 1.0 - p_c / p_b;
        let word = losing.word();
        let alarm = Alarm {
            detector: Detector::Share,
            subject: format!("{word} {name}"),
            summary: format!(
                "{word} {name} lost {:.0}% of its traffic: from {:.1}% to {:.1}% of requests ({n_b} → {n_c} requests); {}",
                lost * 100.0,
                p_b * 100.0,
                p_c * 100.0,
                losing.consequence()
            ),
            numbers: json!({
                "kind": losing.kind(),
                word: name,
                "baseline_share": round4(p_b),
                "candidate_share": round4(p_c),
                "lost": round4(lost),
                "standard_error": round4(se),
                "baseline_requests": n_b,
                "candidate_requests": n_c,
                losing.kind(): rule.loss,
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
        let starved = |now: &[(&str, u64)]| route_loss(&before, now, &thresholds, STARVED);
        assert!(starved(&[("cart", 110), ("web", 890)]).is_none());
        // Halved, as a canary slice chosen by sticky key can by chance: not starved.
        assert!(starved(&[("cart", 55), ("web", 945)]).is_none());
        let alarm = starved(&[("cart", 0), ("web", 1000)]);
        assert_eq!(alarm.map(|a| a.subject), Some("route cart".to_string()));
        // Too little candidate traffic to expect min_requests on the route: not yet.
        assert!(starved(&[("cart", 0), ("web", 50)]).is_none());
        // A route the candidate removed is not this detector's.
        assert!(starved(&[("web", 1000)]).is_none());
    }

    #[test]
    fn with_all_traffic_in_both_windows_a_route_that_loses_most_of_it_fires() {
        let thresholds = Thresholds::default();
        let before = [("cart", 90), ("web", 810)];
        let partial = |now: &[(&str, u64)]| route_loss(&before, now, &thresholds, PARTIAL);
        // Three quarters of cart taken by another route, on six seconds at 150/s.
        let alarm = partial(&[("cart", 22), ("web", 878)]).expect("a partial loss");
        assert_eq!(alarm.numbers["kind"], "route_loss");
        assert_eq!(alarm.numbers["route"], "cart");
        assert_eq!(alarm.numbers["route_loss"], PARTIAL_LOSS);
        assert!(
            alarm
                .summary
                .starts_with("route cart lost 76% of its traffic"),
            "{alarm:?}"
        );
        // Not starved, so the rule for canary slices is quiet.
        assert!(route_loss(&before, &[("cart", 22), ("web", 878)], &thresholds, STARVED).is_none());
        // A third lost is not "most of it"; too few requests to be sure is not yet.
        assert!(partial(&[("cart", 60), ("web", 840)]).is_none());
        assert!(partial(&[("cart", 10), ("web", 290)]).is_none());
    }

    /// `n` requests, each cart with probability 10 %, checkout 20 %, web 70 %.
    fn window(rng: &mut fastrand::Rng, n: u64) -> [(&'static str, u64); 3] {
        let mut counts = [0u64; 3];
        for _ in 0..n {
            let u = rng.f64();
            counts[usize::from(u >= 0.1) + usize::from(u >= 0.3)] += 1;
        }
        [
            ("cart", counts[0]),
            ("checkout", counts[1]),
            ("web", counts[2]),
        ]
    }

    #[test]
    fn a_harmless_change_keeps_every_route_and_service_quiet() {
        // Both windows see all of the traffic, sampled independently: 300 to 1,500
        // baseline requests (2 to 10 s at 150/s), 200 to 1,500 candidate requests.
        let thresholds = Thresholds::default();
        let mut rng = fastrand::Rng::with_seed(29);
        for _ in 0..3_000 {
            let (n_b, n_c) = (rng.u64(300..=1_500), rng.u64(200..=1_500));
            let before = window(&mut rng, n_b);
            let now = window(&mut rng, n_c);
            for rule in loss_rules(true) {
                assert_eq!(
                    route_loss(&before, &now, &thresholds, *rule),
                    None,
                    "{before:?} → {now:?}"
                );
                assert_eq!(
                    service_loss(&before, &now, &thresholds, *rule),
                    None,
                    "{before:?} → {now:?}"
                );
            }
        }
    }

    #[test]
    fn a_service_that_loses_most_of_its_traffic_fires_and_a_deleted_one_does_not() {
        let thresholds = Thresholds::default();
        let before = [("checkout", 450), ("legacy", 150), ("web", 900)];
        // checkout's main route re-pointed at legacy: 30% → 10% of requests.
        let now = [("checkout", 50), ("legacy", 100), ("web", 350)];
        let alarm = service_loss(&before, &now, &thresholds, PARTIAL).expect("service loss");
        assert_eq!(alarm.numbers["kind"], "service_loss");
        assert_eq!(alarm.numbers["service"], "checkout");
        assert!(
            alarm.summary.contains("land on another service"),
            "{alarm:?}"
        );
        // The same on a canary slice is not starvation.
        assert!(service_loss(&before, &now, &thresholds, STARVED).is_none());
        // A service the candidate's config no longer has is not judged.
        let deleted = [("legacy", 150), ("web", 350)];
        assert!(service_loss(&before, &deleted, &thresholds, PARTIAL).is_none());
    }
}
