//! Judge the worst case, not the average: the gate's rules per route and per service.
//!
//! A host's average hides a route: the `cart` route can lose all of its traffic to the
//! legacy route (a widened `path_prefix`, a reorder, a dropped `methods` or `headers`
//! match) while that is only 14 % of its host, under `max_shift`. So, on the sample:
//!
//! - **route shift**: of the requests a route served under the old config, more than
//!   `max_shift` would land on another service (or start failing);
//! - **route shadowed**: a route that still exists would lose more than `max_shift` of
//!   its requests to other routes (whatever service answers them);
//! - **service shift**: of the requests a service answered under the old config, more
//!   than `max_shift` would land on another service (or start failing).
//!
//! Each reason carries witness requests from the sample. A route or service with no
//! sampled traffic cannot be judged here (that is the caller's "no evidence" problem).

use keel_config::Config;
use keel_route::RequestShape;

use crate::destination::Failure;
use crate::gate::GateReason;
use crate::report::{ImpactReport, Movement};

/// Most witness requests kept per reason.
const MAX_WITNESSES: usize = 3;

/// The worst-case reasons of `report` (old → `new`) under `max_shift`.
pub(crate) fn worst_case(report: &ImpactReport, new: &Config, max_shift: f64) -> Vec<GateReason> {
    let mut reasons = Vec::new();
    for (route, served) in &report.route_mass {
        let from_route = |m: &&Movement| &m.from.route == route;
        let away: Vec<&Movement> = report
            .movements
            .iter()
            .filter(from_route)
            .filter(|m| m.change.crosses_service())
            .collect();
        let moved: f64 = away.iter().map(|m| m.amount.requests).sum();
        if moved / served > max_shift {
            reasons.push(GateReason::RouteShift {
                route: route.clone(),
                requests: *served,
                share: moved / served,
                max_shift,
                to: destinations(&away, |m| m.to.to_string()),
                witnesses: witnesses(&away),
            });
        }
        if !new.routes.iter().any(|r| &r.name.value == route) {
            continue;
        }
        let taken: Vec<&Movement> = report
            .movements
            .iter()
            .filter(from_route)
            .filter(|m| &m.to.route != route && m.to.failure != Some(Failure::NoRoute))
            .collect();
        let lost: f64 = taken.iter().map(|m| m.amount.requests).sum();
        if lost / served > max_shift {
            reasons.push(GateReason::RouteShadowed {
                route: route.clone(),
                requests: *served,
                share: lost / served,
                by: destinations(&taken, |m| m.to.route.clone()),
                witnesses: witnesses(&taken),
            });
        }
    }
    for service in &report.services {
        if service.service == crate::destination::NONE || service.old.requests <= 0.0 {
            continue;
        }
        let away: Vec<&Movement> = report
            .movements
            .iter()
            .filter(|m| m.from.landing_service() == Some(service.service.as_str()))
            .filter(|m| m.change.crosses_service())
            .collect();
        let moved: f64 = away.iter().map(|m| m.amount.requests).sum();
        let share = moved / service.old.requests;
        if share > max_shift {
            reasons.push(GateReason::ServiceShift {
                service: service.service.clone(),
                requests: service.old.requests,
                share,
                max_shift,
                to: destinations(&away, |m| m.to.to_string()),
                witnesses: witnesses(&away),
            });
        }
    }
    reasons
}

/// Distinct destinations of the movements, largest first (movements are sorted so).
fn destinations(movements: &[&Movement], name: impl Fn(&Movement) -> String) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for movement in movements {
        let name = name(movement);
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn witnesses(movements: &[&Movement]) -> Vec<RequestShape> {
    let mut out: Vec<RequestShape> = Vec::new();
    for example in movements.iter().flat_map(|m| m.examples.iter()) {
        if out.len() == MAX_WITNESSES {
            break;
        }
        if !out.contains(example) {
            out.push(example.clone());
        }
    }
    out
}

/// `GET shop.example.com/cart, GET shop.example.com/cart/1`
pub(crate) fn render_witnesses(witnesses: &[RequestShape]) -> String {
    witnesses
        .iter()
        .map(|w| format!("{} {}{}", w.method, w.host, w.path))
        .collect::<Vec<_>>()
        .join(", ")
}
