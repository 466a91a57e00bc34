//! The replay: every sampled request through both routing tables, its movement
//! computed (see [`crate::coupling`]) and summed into an [`ImpactReport`].
//!
//! Cost: two route lookups per request, plus a few small vectors; each route's
//! destination distribution is computed once per config and cached, so 10,000 requests
//! against 10,000-route configs take milliseconds once the tables are compiled.

use std::collections::HashMap;

use keel_config::Config;
use keel_route::{CompileError, MAX_HOST_LEN, RequestShape, RouteTable, normalize_host};

use crate::coupling::Coupler;
use crate::destination::{Compiled, DestId, Destination, Destinations, Landing, NONE, Resolver};
use crate::report::{
    Amount, Change, FailCount, FailingSummary, HostFlow, HostShift, ImpactReport, LandingShare,
    MAX_EXAMPLES, Movement, Outcome, SCHEMA_VERSION, ServiceShare, round,
};
use crate::sticky::StickyTracker;

/// Host name used for sampled requests that carried none.
pub const NO_HOST: &str = "<no host>";

/// Why a blast radius could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ImpactError {
    /// The old config does not compile into a routing table.
    #[error("the old config does not compile: {0}")]
    OldConfig(#[source] CompileError),
    /// The new config does not compile into a routing table.
    #[error("the new config does not compile: {0}")]
    NewConfig(#[source] CompileError),
}

/// The blast radius of going from `old` to `new`, on `sample`; compiles both tables.
///
/// Both configs should have passed `keel check`; a config that does not compile is an
/// [`ImpactError`], never a panic.
pub fn blast_radius(
    old: &Config,
    new: &Config,
    sample: &[RequestShape],
) -> Result<ImpactReport, ImpactError> {
    let old_table = RouteTable::compile(old).map_err(ImpactError::OldConfig)?;
    let new_table = RouteTable::compile(new).map_err(ImpactError::NewConfig)?;
    Ok(blast_radius_compiled(
        Compiled {
            config: old,
            table: &old_table,
        },
        Compiled {
            config: new,
            table: &new_table,
        },
        sample,
    ))
}

/// Like [`blast_radius`], for callers that hold compiled generations already (the
/// control plane): no recompilation. Each table must be compiled from its config.
pub fn blast_radius_compiled(
    old: Compiled<'_>,
    new: Compiled<'_>,
    sample: &[RequestShape],
) -> ImpactReport {
    let certificates = crate::certificates::certificate_impact(old.config, new.config, sample);
    let mut replay = Replay::new(old, new);
    for (index, request) in sample.iter().enumerate() {
        replay.request(index, request, sample);
    }
    let mut report = replay.finish(sample);
    report.certificates = certificates;
    (report.refusals, report.intent_refusals) = crate::refusals::replay(old, new, sample);
    report
}

#[derive(Default)]
struct MoveAcc {
    mass: f64,
    examples: Vec<usize>,
}

#[derive(Default)]
struct HostAcc {
    requests: usize,
    changes_service: f64,
    flows: HashMap<(DestId, DestId), f64>,
}

struct Replay<'a> {
    old: Resolver<'a>,
    new: Resolver<'a>,
    destinations: Destinations,
    coupler: Coupler,
    flows: Vec<(DestId, DestId, f64)>,
    moves: HashMap<(DestId, DestId), MoveAcc>,
    old_mass: Vec<f64>,
    new_mass: Vec<f64>,
    hosts: HashMap<Box<str>, HostAcc>,
    failing: FailingSummary,
    failing_examples: Vec<usize>,
    sticky: StickyTracker,
    outcomes: Vec<Outcome>,
}

impl<'a> Replay<'a> {
    fn new(old: Compiled<'a>, new: Compiled<'a>) -> Self {
        Self {
            old: Resolver::new(old),
            new: Resolver::new(new),
            destinations: Destinations::default(),
            coupler: Coupler::default(),
            flows: Vec::new(),
            moves: HashMap::new(),
            old_mass: Vec::new(),
            new_mass: Vec::new(),
            hosts: HashMap::new(),
            failing: FailingSummary::default(),
            failing_examples: Vec::new(),
            sticky: StickyTracker::default(),
            outcomes: Vec::new(),
        }
    }

    fn request(&mut self, index: usize, request: &RequestShape, sample: &[RequestShape]) {
        let old_route = self.old.side.table.find(request);
        let new_route = self.new.side.table.find(request);
        let old_dist = self.old.distribution(old_route, &mut self.destinations);
        let new_dist = self.new.distribution(new_route, &mut self.destinations);
        self.coupler.couple(
            old_dist,
            new_dist,
            &self.destinations.pool_key,
            &self.destinations.service_key,
            &mut self.flows,
        );
        let services = &self.destinations.service_key;
        let outcome = Outcome {
            host: host_key(request).into(),
            path: request.path.as_str().into(),
            old: by_service(old_dist, services),
            new: by_service(new_dist, services),
        };
        let size = self.destinations.list.len();
        self.old_mass.resize(size, 0.0);
        self.new_mass.resize(size, 0.0);
        let host = self.hosts.entry(outcome.host.clone()).or_default();
        host.requests += 1;
        for &(from, to, mass) in &self.flows {
            self.old_mass[from as usize] += mass;
            self.new_mass[to as usize] += mass;
            let (before, after) = (
                &self.destinations.list[from as usize],
                &self.destinations.list[to as usize],
            );
            if let (None, None) = (before.failure, after.failure)
                && let (Some(&old_pool), Some(&new_pool)) =
                    (self.old.pool_of.get(&from), self.new.pool_of.get(&to))
            {
                self.sticky.record(
                    request,
                    (self.old.side.config, old_pool),
                    (self.new.side.config, new_pool),
                    mass,
                );
            }
            match (before.failure, after.failure) {
                (None, Some(failure)) => {
                    failure.add_to(&mut self.failing.starting, mass);
                    add_example(&mut self.failing_examples, index, sample);
                }
                (Some(_), Some(failure)) => failure.add_to(&mut self.failing.still, mass),
                (Some(failure), None) => failure.add_to(&mut self.failing.recovering, mass),
                (None, None) => {}
            }
            if from == to {
                continue;
            }
            let movement = self.moves.entry((from, to)).or_default();
            movement.mass += mass;
            add_example(&mut movement.examples, index, sample);
            if services.get(from as usize) != services.get(to as usize) {
                host.changes_service += mass;
                *host.flows.entry((from, to)).or_default() += mass;
            }
        }
        self.outcomes.push(outcome);
    }

    fn finish(self, sample: &[RequestShape]) -> ImpactReport {
        let total = sample.len() as f64;
        let list = &self.destinations.list;
        let mut raw: Vec<((DestId, DestId), MoveAcc)> = self.moves.into_iter().collect();
        raw.sort_by_key(|((from, to), _)| (&list[*from as usize], &list[*to as usize]));
        let (mut moved, mut changes_service) = (0.0, 0.0);
        let mut movements = Vec::with_capacity(raw.len());
        for ((from, to), acc) in raw {
            let (from, to) = (list[from as usize].clone(), list[to as usize].clone());
            let change = Change::between(&from, &to);
            moved += acc.mass;
            if change.crosses_service() {
                changes_service += acc.mass;
            }
            let amount = Amount::of(acc.mass, total);
            if amount.requests > 0.0 {
                movements.push(Movement {
                    from,
                    to,
                    change,
                    amount,
                    examples: acc.examples.iter().map(|i| sample[*i].clone()).collect(),
                });
            }
        }
        movements.sort_by(|a, b| b.amount.requests.total_cmp(&a.amount.requests));

        let mut failing = self.failing;
        for count in [
            &mut failing.starting,
            &mut failing.still,
            &mut failing.recovering,
        ] {
            finish_count(count, total);
        }
        failing.examples = self
            .failing_examples
            .iter()
            .map(|i| sample[*i].clone())
            .collect();

        let sticky = self
            .sticky
            .finish(self.old.side.config, self.new.side.config);
        let mut route_mass: Vec<(String, f64)> = Vec::new();
        for (destination, mass) in list.iter().zip(&self.old_mass) {
            if *mass <= 0.0 || destination.failure == Some(crate::destination::Failure::NoRoute) {
                continue;
            }
            match route_mass.iter_mut().find(|(r, _)| *r == destination.route) {
                Some((_, total)) => *total += mass,
                None => route_mass.push((destination.route.clone(), *mass)),
            }
        }
        ImpactReport {
            schema_version: SCHEMA_VERSION,
            total: sample.len(),
            moved: Amount::of(moved, total),
            changes_service: Amount::of(changes_service, total),
            movements,
            hosts: hosts(self.hosts, list),
            failing,
            services: services(list, &self.old_mass, &self.new_mass, total),
            pools: pools(list, &self.old_mass, &self.new_mass, total),
            sticky,
            certificates: crate::certificates::CertificateImpact::default(),
            refusals: Vec::new(),
            intent_refusals: Vec::new(),
            outcomes: self.outcomes,
            service_names: self.destinations.services,
            route_mass,
        }
    }
}

/// The host a request is grouped under: normalized, or [`NO_HOST`].
fn host_key(request: &RequestShape) -> String {
    let mut buffer = [0u8; MAX_HOST_LEN];
    match normalize_host(&request.host, &mut buffer) {
        Some("") => NO_HOST.to_string(),
        Some(host) => host.to_string(),
        None => request.host.to_ascii_lowercase(),
    }
}

fn by_service(dist: &[(DestId, f64)], services: &[u32]) -> Box<[(u32, f64)]> {
    let mut out: Vec<(u32, f64)> = Vec::with_capacity(dist.len());
    for (dest, mass) in dist {
        let service = services.get(*dest as usize).copied().unwrap_or(u32::MAX);
        match out.iter_mut().find(|(s, _)| *s == service) {
            Some((_, m)) => *m += mass,
            None => out.push((service, *mass)),
        }
    }
    out.into_boxed_slice()
}

/// Keeps the first [`MAX_EXAMPLES`] requests that route differently from each other
/// (sticky keys aside: ten sessions of `POST /checkout/pay` are one example).
fn add_example(examples: &mut Vec<usize>, index: usize, sample: &[RequestShape]) {
    let routes_like = |a: &RequestShape, b: &RequestShape| {
        a.method == b.method && a.host == b.host && a.path == b.path && a.headers == b.headers
    };
    if examples.len() < MAX_EXAMPLES
        && !examples
            .iter()
            .any(|i| routes_like(&sample[*i], &sample[index]))
    {
        examples.push(index);
    }
}

fn finish_count(count: &mut FailCount, total: f64) {
    count.amount = Amount::of(count.amount.requests, total);
    count.no_route = round(count.no_route);
    count.empty_pool = round(count.empty_pool);
}

fn hosts(accs: HashMap<Box<str>, HostAcc>, list: &[Destination]) -> Vec<HostShift> {
    let mut hosts: Vec<HostShift> = accs
        .into_iter()
        .map(|(host, acc)| {
            let requests = acc.requests as f64;
            let mut by_landing: HashMap<(Landing, Landing), f64> = HashMap::new();
            let mut raw: Vec<((DestId, DestId), f64)> = acc.flows.into_iter().collect();
            raw.sort_by_key(|((f, t), _)| (*f, *t));
            for ((from, to), mass) in raw {
                let key = (list[from as usize].landing(), list[to as usize].landing());
                *by_landing.entry(key).or_default() += mass;
            }
            let mut flows: Vec<HostFlow> = by_landing
                .into_iter()
                .map(|((from, to), mass)| HostFlow {
                    from,
                    to,
                    amount: Amount::of(mass, requests),
                })
                .filter(|flow| flow.amount.requests > 0.0)
                .collect();
            flows.sort_by(|a, b| {
                b.amount
                    .requests
                    .total_cmp(&a.amount.requests)
                    .then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to)))
            });
            HostShift {
                host: host.into(),
                requests: acc.requests,
                changes_service: Amount::of(acc.changes_service, requests),
                flows,
            }
        })
        .collect();
    hosts.sort_by(|a, b| {
        b.changes_service
            .share
            .total_cmp(&a.changes_service.share)
            .then_with(|| a.host.cmp(&b.host))
    });
    hosts
}

/// Sums per-destination masses under a grouping key, in destination order.
fn group<K: Ord>(
    list: &[Destination],
    old_mass: &[f64],
    new_mass: &[f64],
    key: impl Fn(&Destination) -> K,
) -> Vec<(K, f64, f64)> {
    let mut out: std::collections::BTreeMap<K, (f64, f64)> = std::collections::BTreeMap::new();
    for (id, dest) in list.iter().enumerate() {
        let entry = out.entry(key(dest)).or_default();
        entry.0 += old_mass.get(id).copied().unwrap_or(0.0);
        entry.1 += new_mass.get(id).copied().unwrap_or(0.0);
    }
    out.into_iter().map(|(k, (o, n))| (k, o, n)).collect()
}

fn services(
    list: &[Destination],
    old_mass: &[f64],
    new_mass: &[f64],
    total: f64,
) -> Vec<ServiceShare> {
    group(list, old_mass, new_mass, |d| {
        d.landing_service().unwrap_or(NONE).to_string()
    })
    .into_iter()
    .map(|(service, o, n)| ServiceShare {
        service,
        old: Amount::of(o, total),
        new: Amount::of(n, total),
    })
    .collect()
}

fn pools(
    list: &[Destination],
    old_mass: &[f64],
    new_mass: &[f64],
    total: f64,
) -> Vec<LandingShare> {
    group(list, old_mass, new_mass, |d| d.landing())
        .into_iter()
        .map(|(landing, o, n)| LandingShare {
            landing,
            old: Amount::of(o, total),
            new: Amount::of(n, total),
        })
        .collect()
}
