//! Runs the detectors over sampled series: a candidate against its baseline during an
//! apply, or the active generation on its own in the background watch.
//!
//! Order matters only for which alarm is reported when several would fire: identity
//! first (the most direct evidence), then TLS handshakes (a certificate the clients
//! refuse fails connections before any request is counted), errors, share, intents,
//! latency.

use std::collections::HashSet;

use keel_config::Config;
use keel_proxy::stats::Outcome;

use crate::detectors::errors::{ErrorVerdict, Rate, error_jump};
use crate::detectors::handshakes::{Counted, handshake_jump};
use crate::detectors::identity::{Misidentified, misidentified_responses};
use crate::detectors::latency::latency_regression;
use crate::detectors::refusal_intent::{RefusalBound, refusal_breach, refusal_scope};
use crate::detectors::route_loss::{loss_rules, route_loss, service_loss};
use crate::detectors::share::{
    ALL_HOSTS, IntentBound, ShareTable, intent_breach, intent_scope, share_shift,
};
use crate::detectors::{Alarm, Thresholds};
use crate::window::{Series, WindowView, failures, requests};

/// Misidentified responses per (route, backend) in a series' window.
pub(crate) fn misidentified(series: &Series) -> Vec<Misidentified> {
    let view = series.window();
    let mut out = Vec::new();
    for (r, route) in series.shape.routes.iter().enumerate() {
        for (a, arm) in route.arms.iter().enumerate() {
            for (b, addr) in arm.backends.iter().enumerate() {
                let counts = view.backend(r, a, b);
                let count = counts[Outcome::Misidentified as usize];
                if count > 0 {
                    out.push(Misidentified {
                        route: route.name.to_string(),
                        expected: route.service.clone(),
                        pool: arm.pool.to_string(),
                        backend: *addr,
                        count,
                        requests: requests(&counts),
                    });
                }
            }
        }
    }
    out
}

fn rate(counts: &[u64; 7]) -> Rate {
    Rate {
        requests: requests(counts),
        failures: failures(counts),
    }
}

/// A route's rate for the error test: its failures plus the requests its policies
/// refused, so that a change refusing clients it used to serve (a deny that matches
/// everyone, a rate limit ten times too low) is a jump like a wave of 5xx.
fn route_rate(view: &WindowView<'_>, route: usize) -> Rate {
    let mut rate = rate(&view.route(route));
    rate.failures += view.refused(route);
    rate
}

/// The whole generation's rate for the error test, refusals included.
fn total_rate(view: &WindowView<'_>) -> Rate {
    let mut total = rate(&view.total());
    total.failures += (0..view.route_count())
        .map(|r| view.refused(r))
        .sum::<u64>();
    total
}

/// The first alarm of a candidate compared with its baseline, if any. A change never
/// chooses its own judge: the thresholds are the stricter of the baseline's config and
/// the candidate's, and the intents of both are watched. `whole_traffic`: both windows
/// saw all of the traffic (no canary slice), so partial route and service losses are
/// judged too.
pub(crate) fn compare(
    baseline: Option<&Series>,
    candidate: &Series,
    baseline_config: &Config,
    config: &Config,
    whole_traffic: bool,
) -> Option<Alarm> {
    let thresholds = Thresholds::stricter(&baseline_config.detectors, &config.detectors);
    let known: HashSet<(String, std::net::SocketAddr)> = baseline
        .map(misidentified)
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.route, m.backend))
        .collect();
    let fresh: Vec<Misidentified> = misidentified(candidate)
        .into_iter()
        .filter(|m| !known.contains(&(m.route.clone(), m.backend)))
        .collect();
    if let Some(alarm) = misidentified_responses(&fresh) {
        return Some(alarm);
    }
    let view = candidate.window();
    let base_view = baseline.map(Series::window);
    if let Some(alarm) = handshakes(base_view.as_ref(), &view, &thresholds) {
        return Some(alarm);
    }
    if let Some(alarm) = errors(baseline, base_view.as_ref(), candidate, &view, &thresholds) {
        return Some(alarm);
    }
    if let (Some(baseline), Some(base_view)) = (baseline, base_view.as_ref()) {
        let before = ShareTable::from_window(&baseline.shape, base_view);
        let now = ShareTable::from_window(&candidate.shape, &view);
        if let Some(alarm) = share_shift(&before, &now, &thresholds) {
            return Some(alarm);
        }
        let (routes_before, routes_now) = (
            route_requests(baseline, base_view),
            route_requests(candidate, &view),
        );
        let (services_before, services_now) = (
            service_requests(&before, None),
            service_requests(&now, Some(config)),
        );
        for rule in loss_rules(whole_traffic) {
            if let Some(alarm) = route_loss(&routes_before, &routes_now, &thresholds, *rule)
                .or_else(|| service_loss(&services_before, &services_now, &thresholds, *rule))
            {
                return Some(alarm);
            }
        }
    }
    if let Some(alarm) = intents(candidate, &view, config, &thresholds)
        .into_iter()
        .chain(intents(candidate, &view, baseline_config, &thresholds))
        .next()
    {
        return Some(alarm);
    }
    let (baseline, base_view) = (baseline?, base_view?);
    for (r, route) in candidate.shape.routes.iter().enumerate() {
        let Some(b) = baseline.shape.route_id(&route.name) else {
            continue;
        };
        if let Some(alarm) = latency_regression(
            &route.name,
            &base_view.latency(b),
            &view.latency(r),
            &thresholds,
        ) {
            return Some(alarm);
        }
    }
    None
}

/// Requests per route name in a window.
fn route_requests<'a>(series: &'a Series, view: &WindowView<'_>) -> Vec<(&'a str, u64)> {
    series
        .shape
        .routes
        .iter()
        .enumerate()
        .map(|(r, route)| (&*route.name, requests(&view.route(r))))
        .collect()
}

/// Requests per service over all hosts; with `config`, every service it declares is
/// listed (0 when no request landed on it), so a service that lost all of it is judged.
fn service_requests<'a>(table: &'a ShareTable, config: Option<&'a Config>) -> Vec<(&'a str, u64)> {
    let landed = table.host(ALL_HOSTS);
    let mut counts: Vec<(&str, u64)> = landed
        .into_iter()
        .flatten()
        .map(|(service, n)| (service.as_str(), *n))
        .collect();
    if let Some(config) = config {
        for service in config.services.keys() {
            if !counts.iter().any(|(s, _)| *s == service.as_str()) {
                counts.push((service.as_str(), 0));
            }
        }
    }
    counts
}

/// Error jumps per route, then for the whole generation.
fn errors(
    baseline: Option<&Series>,
    base_view: Option<&WindowView<'_>>,
    candidate: &Series,
    view: &WindowView<'_>,
    thresholds: &Thresholds,
) -> Option<Alarm> {
    let base_total = base_view.map(total_rate);
    for (r, route) in candidate.shape.routes.iter().enumerate() {
        let same_route = baseline
            .zip(base_view)
            .and_then(|(b, v)| b.shape.route_id(&route.name).map(|id| route_rate(v, id)))
            .filter(|r| r.requests >= thresholds.min_requests);
        let reference = same_route.or(base_total);
        let subject = format!("route {}", route.name);
        if let ErrorVerdict::Jump(alarm) =
            error_jump(&subject, reference, route_rate(view, r), thresholds)
        {
            return Some(alarm);
        }
    }
    let ErrorVerdict::Jump(mut alarm) = error_jump(
        &format!("generation {}", candidate.id),
        base_total,
        total_rate(view),
        thresholds,
    ) else {
        return None;
    };
    // No single route has enough volume yet: name the one failing most.
    let worst = (0..view.route_count())
        .map(|r| (r, route_rate(view, r)))
        .max_by_key(|(_, rate)| rate.failures)
        .filter(|(_, rate)| rate.failures > 0);
    if let Some((r, worst)) = worst
        && let Some(route) = candidate.shape.routes.get(r)
    {
        alarm.summary.push_str(&format!(
            "; most failures on route {}: {} of {}",
            route.name, worst.failures, worst.requests
        ));
        alarm.numbers["worst_route"] = serde_json::json!({
            "route": &*route.name,
            "requests": worst.requests,
            "failures": worst.failures,
        });
    }
    Some(alarm)
}

/// A jump of failed TLS handshakes on a listener of the candidate, against the same
/// listener in the baseline window (every failure reason counts).
fn handshakes(
    base_view: Option<&WindowView<'_>>,
    view: &WindowView<'_>,
    thresholds: &Thresholds,
) -> Option<Alarm> {
    let before = base_view.map(WindowView::handshakes).unwrap_or_default();
    view.handshakes().into_iter().find_map(|now| {
        let baseline = before.iter().find(|b| b.listener == now.listener);
        handshake_jump(
            &format!("listener {}", now.listener),
            baseline,
            &now,
            Counted::Every,
            thresholds,
        )
    })
}

/// Intent breaches of a generation's window: each intent's `max_refused` (policies
/// refusing more of its scope than it allows), then its service share bounds.
fn intents(
    series: &Series,
    view: &WindowView<'_>,
    config: &Config,
    thresholds: &Thresholds,
) -> Vec<Alarm> {
    config
        .intents
        .iter()
        .flat_map(|intent| {
            let refusals = intent.max_refused.and_then(|max_refused| {
                let bound = RefusalBound {
                    host: &intent.host,
                    path_prefix: intent.path_prefix.as_deref(),
                    max_refused,
                };
                refusal_breach(
                    &bound,
                    &refusal_scope(&series.shape, view, &bound),
                    thresholds,
                )
            });
            refusals
                .into_iter()
                .chain(share_intent(series, view, intent, thresholds))
        })
        .collect()
}

/// A share intent's breach (`min_share`/`max_share` of a service), if it has one.
fn share_intent(
    series: &Series,
    view: &WindowView<'_>,
    intent: &keel_config::Intent,
    thresholds: &Thresholds,
) -> Option<Alarm> {
    let service = intent.service.as_ref()?;
    if intent.min_share.is_none() && intent.max_share.is_none() {
        return None;
    }
    let bound = IntentBound {
        host: &intent.host,
        path_prefix: intent.path_prefix.as_deref(),
        service: &service.value,
        min_share: intent.min_share,
        max_share: intent.max_share,
    };
    let counts = intent_scope(&series.shape, view, bound.host, bound.path_prefix);
    intent_breach(&bound, &counts, thresholds)
}

/// Every alarm of a generation watched on its own (no baseline): misidentified
/// responses, handshakes its certificates failed, error jumps per route, intent
/// breaches.
pub(crate) fn continuous(series: &Series, config: &Config) -> Vec<Alarm> {
    let thresholds = Thresholds::from_config(&config.detectors);
    let view = series.window();
    let mut alarms: Vec<Alarm> = misidentified_responses(&misidentified(series))
        .into_iter()
        .collect();
    alarms.extend(view.handshakes().into_iter().filter_map(|now| {
        handshake_jump(
            &format!("listener {}", now.listener),
            None,
            &now,
            Counted::CertificateOnly,
            &thresholds,
        )
    }));
    for (r, route) in series.shape.routes.iter().enumerate() {
        if let ErrorVerdict::Jump(alarm) = error_jump(
            &format!("route {}", route.name),
            None,
            rate(&view.route(r)),
            &thresholds,
        ) {
            alarms.push(alarm);
        }
    }
    alarms.extend(intents(series, &view, config, &thresholds));
    alarms
}
