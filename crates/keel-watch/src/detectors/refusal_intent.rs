//! Refusal intents judged live (kind `share`): the share of requests in an
//! `[[intents]]` entry's scope that the routes' traffic policies refused (`403` from
//! `allow`/`deny`, `429` from `rate_limit`), against the entry's `max_refused`.
//!
//! The gate judges the same bound on the replayed sample before an apply; this detector
//! judges it on live traffic while a change is watched (and in the background watch),
//! so a forced apply, or a limit the sample did not show the danger of, is reverted by
//! the guard. It complements the [`super::errors`] detector, which counts refusals as
//! failures but fires only on a jump over `error_rate`: an intent may allow far less.
//!
//! Scope as for share intents ([`super::share::intent_scope`]): the routes whose host
//! key is the intent's host and, with a path prefix, whose literal path lies under it.
//! With `n` requests in scope and `x` of them refused, it fires when
//! `x/n − SHARE_Z·sqrt(p̃(1−p̃)/n) > max_refused` (the adjusted share `p̃ = (x+1)/(n+2)`,
//! as the share detector uses) and `n ≥ min_requests`: a bound of 1 % broken by a deny
//! of a quarter of the clients fires after a few dozen requests, a share jittering just
//! over the bound does not.

use serde_json::json;

use super::share::{SHARE_Z, adjusted_variance};
use super::{Alarm, Detector, Thresholds, round4};
use crate::shape::Shape;
use crate::window::{WindowView, requests};

/// An intent's refusal bound.
#[derive(Clone, Copy, Debug)]
pub struct RefusalBound<'a> {
    /// The intent's host.
    pub host: &'a str,
    /// The intent's path prefix.
    pub path_prefix: Option<&'a str>,
    /// The largest share of requests in scope the policies may refuse (0..=1).
    pub max_refused: f64,
}

/// Requests and refusals of one route in an intent's scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeRoute {
    /// The route.
    pub route: String,
    /// Its requests in the window (refused ones included).
    pub requests: u64,
    /// Of those, refused by its policies.
    pub refused: u64,
}

/// Per route in the scope of `bound` (same rule as share intents).
pub fn refusal_scope(
    shape: &Shape,
    view: &WindowView<'_>,
    bound: &RefusalBound<'_>,
) -> Vec<ScopeRoute> {
    shape
        .routes
        .iter()
        .enumerate()
        .filter(|(_, route)| route.host == bound.host)
        .filter(|(_, route)| {
            bound
                .path_prefix
                .is_none_or(|prefix| route.path.as_deref().is_some_and(|p| p.starts_with(prefix)))
        })
        .map(|(r, route)| ScopeRoute {
            route: route.name.to_string(),
            requests: requests(&view.route(r)),
            refused: view.refused(r),
        })
        .collect()
}

/// Fires when the refused share in scope is above `max_refused` with confidence.
pub fn refusal_breach(
    bound: &RefusalBound<'_>,
    routes: &[ScopeRoute],
    thresholds: &Thresholds,
) -> Option<Alarm> {
    let n: u64 = routes.iter().map(|r| r.requests).sum();
    if n < thresholds.min_requests.max(1) {
        return None;
    }
    let x: u64 = routes.iter().map(|r| r.refused).sum::<u64>().min(n);
    let share = x as f64 / n as f64;
    if share - SHARE_Z * adjusted_variance(x, n).sqrt() <= bound.max_refused {
        return None;
    }
    let scope = format!("{}{}", bound.host, bound.path_prefix.unwrap_or(""));
    let worst = routes.iter().max_by_key(|r| r.refused);
    Some(Alarm {
        detector: Detector::Share,
        subject: scope.clone(),
        summary: format!(
            "intent for {scope}: policies refused {:.1}% of {n} requests (403/429), above its \
             max_refused of {:.1}%{}",
            share * 100.0,
            bound.max_refused * 100.0,
            worst.map_or_else(String::new, |w| format!(
                "; most on route {}: {} of {}",
                w.route, w.refused, w.requests
            ))
        ),
        numbers: json!({
            "kind": "refusal_intent",
            "host": bound.host,
            "path_prefix": bound.path_prefix,
            "share": round4(share),
            "requests": n,
            "refused": x,
            "max_refused": bound.max_refused,
            "by_route": routes
                .iter()
                .map(|r| json!({ "route": r.route, "requests": r.requests, "refused": r.refused }))
                .collect::<Vec<_>>(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(max_refused: f64) -> RefusalBound<'static> {
        RefusalBound {
            host: "shop.example.com",
            path_prefix: None,
            max_refused,
        }
    }

    fn routes(requests: u64, refused: u64) -> Vec<ScopeRoute> {
        vec![ScopeRoute {
            route: "shop".into(),
            requests,
            refused,
        }]
    }

    #[test]
    fn a_quarter_refused_breaks_a_one_percent_bound_on_a_few_dozen_requests() {
        let alarm = refusal_breach(&bound(0.01), &routes(40, 10), &Thresholds::default());
        let alarm = alarm.expect("fires");
        assert_eq!(alarm.numbers["kind"], "refusal_intent");
        assert!(
            alarm
                .summary
                .contains("policies refused 25.0% of 40 requests"),
            "{}",
            alarm.summary
        );
    }

    #[test]
    fn a_share_just_over_the_bound_needs_more_evidence() {
        // 2 % refused against a 1 % bound: not sure on 200 requests, sure on 20,000.
        assert!(refusal_breach(&bound(0.01), &routes(200, 4), &Thresholds::default()).is_none());
        assert!(
            refusal_breach(&bound(0.01), &routes(20_000, 400), &Thresholds::default()).is_some()
        );
    }

    #[test]
    fn too_few_requests_or_a_share_within_the_bound_is_quiet() {
        let t = Thresholds::default();
        assert!(refusal_breach(&bound(0.01), &routes(t.min_requests - 1, 10), &t).is_none());
        assert!(refusal_breach(&bound(0.5), &routes(1_000, 100), &t).is_none());
        assert!(refusal_breach(&bound(0.01), &[], &t).is_none());
    }
}
