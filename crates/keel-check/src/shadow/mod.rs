//! Shadowed routes: which routes earlier routes take requests from, proved with a
//! witness request that the real routing table sends to the earlier route.
//!
//! For each route B (in file order) the analysis:
//! 1. finds the earlier routes C that may match a common request (host and first path
//!    segment index, then the cheap pairwise test of `Pred::may_intersect`);
//! 2. enumerates one representative request per equivalence class of the conditions of
//!    B and C that B matches (module `space`);
//! 3. routes each representative — with `RouteTable::find`, the function the data
//!    plane uses, whenever a route of C matches it — and records which earlier route
//!    wins it. The work is bounded ([`MAX_TOTAL_WORK`]); a cut-short route never gets K201.
//!
//! Verdicts:
//! - **fully shadowed** (K201): every representative is won by an earlier route, and the
//!   representatives cover every class (no regex involved, no budget cut) — so no request
//!   can reach B. Routes that can match no request at all are reported the same way;
//! - **may be fully shadowed** (K203): every representative tried is won by an earlier
//!   route, but regexes (or the budget) mean untried requests might still reach B;
//! - **partly shadowed** (K202): some requests reach B, and an earlier route that is not
//!   a carve-out of B (its requests are not all B's requests) wins others. An earlier,
//!   narrower route inside B, such as `/api/v2` before `/api`, is the normal way to carve
//!   out an exception and is not reported.

mod catch_all;
mod classes;
mod index;
pub(crate) mod pred;
pub(crate) mod regex_sample;
mod report;
pub(crate) mod space;

use std::ops::ControlFlow;

use keel_config::Config;
use keel_route::{RequestShape, RouteId, RouteTable};

pub(crate) use catch_all::catch_all_with;
pub use catch_all::{CatchAll, catch_all};
pub(crate) use index::Analyzer;
pub use report::{catch_all_diagnostic, diagnostics, request_json};
use space::{MAX_REPRESENTATIVES, Options, for_each_representative};

/// How a route is shadowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShadowKind {
    /// No request at all satisfies the route's conditions.
    MatchesNothing,
    /// Every request the route matches is taken by earlier routes (proved).
    FullyShadowed,
    /// Every request tried is taken by earlier routes; regexes or the enumeration budget
    /// leave the rest undecided.
    MayBeFullyShadowed,
    /// Some of the route's requests reach it; others go to earlier routes that are not
    /// carve-outs of it.
    PartlyShadowed,
}

/// A request that shows a shadowing: the shadowed route matches it on its own, and the
/// routing table sends it to `winner`, an earlier route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// The request.
    pub request: RequestShape,
    /// The earlier route that gets it.
    pub winner: RouteId,
}

/// One shadowed route.
#[derive(Clone, Debug)]
pub struct ShadowFinding {
    /// The shadowed route.
    pub route: RouteId,
    /// How it is shadowed.
    pub kind: ShadowKind,
    /// One witness per earlier route that takes its requests (for a partly shadowed
    /// route: per earlier route that is not a carve-out), in file order.
    pub witnesses: Vec<Witness>,
    /// Representative requests tried.
    pub representatives: usize,
}

/// Work the whole analysis may do, counted as representative requests times the
/// earlier routes each is tested against (20,000,000; the realistic 10,000-route
/// benchmark table needs about 900,000), so a pathological table is still checked in
/// bounded time.
pub const MAX_TOTAL_WORK: usize = 20_000_000;
/// Representatives a route still gets once the work budget is spent (16) — only routes
/// with at most [`CANDIDATES_AFTER_BUDGET`] earlier candidates; others are skipped.
/// A cut-short route can be reported as K202 or K203, never as a K201 the enumeration
/// did not prove.
pub const REPRESENTATIVES_AFTER_BUDGET: usize = 16;
/// Earlier candidate routes above which a route is skipped once the budget is spent (64).
pub const CANDIDATES_AFTER_BUDGET: usize = 64;

/// The outcome of the shadow analysis of a whole table.
#[derive(Clone, Debug, Default)]
pub struct ShadowAnalysis {
    /// Shadowed routes, in file order.
    pub findings: Vec<ShadowFinding>,
    /// Representative requests tried in total.
    pub representatives: usize,
    /// Representatives times the earlier routes each was tested against.
    pub work: usize,
    /// The first route analysed after the work budget ran out, if it did.
    pub budget_ran_out_at: Option<RouteId>,
    /// Routes not analysed at all because the budget had run out.
    pub skipped: Vec<RouteId>,
}

/// Shadow analysis of every route of `config`, compiled as `table`.
pub fn analyze(config: &Config, table: &RouteTable) -> ShadowAnalysis {
    analyze_with(&Analyzer::for_config(config, table), MAX_TOTAL_WORK)
}

/// [`analyze`] over routes already read and indexed, within a work budget.
pub(crate) fn analyze_with(analyzer: &Analyzer<'_>, budget: usize) -> ShadowAnalysis {
    let mut analysis = ShadowAnalysis::default();
    for route in 0..analyzer.preds.len() {
        let earlier = analyzer.candidates(&analyzer.preds[route], route);
        let per_request = earlier.len().max(1);
        let affordable = budget.saturating_sub(analysis.work) / per_request;
        let limit = if affordable >= REPRESENTATIVES_AFTER_BUDGET {
            affordable.min(MAX_REPRESENTATIVES)
        } else {
            analysis.budget_ran_out_at.get_or_insert(route);
            if earlier.len() > CANDIDATES_AFTER_BUDGET {
                analysis.skipped.push(route);
                continue;
            }
            REPRESENTATIVES_AFTER_BUDGET
        };
        let (finding, tried) = analyze_route(analyzer, route, &earlier, limit);
        analysis.representatives += tried;
        analysis.work += tried * per_request;
        analysis.findings.extend(finding);
    }
    analysis
}

/// The finding about one route, if any, and the representatives tried.
fn analyze_route(
    analyzer: &Analyzer<'_>,
    route: RouteId,
    earlier: &[usize],
    limit: usize,
) -> (Option<ShadowFinding>, usize) {
    let pred = &analyzer.preds[route];
    // Earlier routes not inside this one: the only ones worth a partial-shadow warning.
    let overlapping: Vec<usize> = earlier
        .iter()
        .copied()
        .filter(|id| !pred.contains(&analyzer.preds[*id]))
        .collect();
    let mut matched = false;
    let mut reaches = false;
    let mut witnesses: Vec<Witness> = Vec::new();
    let mut overlapping_witnessed = 0;
    let enumeration = for_each_representative(
        &analyzer.preds,
        pred,
        earlier,
        Options {
            limit,
            ..Options::default()
        },
        |request| {
            matched = true;
            match analyzer.route_of(request, earlier, route) {
                Some(winner) if winner < route && !witnesses.iter().any(|w| w.winner == winner) => {
                    if overlapping.binary_search(&winner).is_ok() {
                        overlapping_witnessed += 1;
                    }
                    witnesses.push(Witness {
                        request: request.clone(),
                        winner,
                    });
                }
                // Already witnessed.
                Some(winner) if winner < route => {}
                Some(winner) if winner == route => reaches = true,
                // The table disagrees with the checker's reading of the route: claim
                // nothing from this request.
                _ => {}
            }
            if reaches && overlapping_witnessed == overlapping.len() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    witnesses.sort_by_key(|w| w.winner);
    let tried = enumeration.visited;
    let kind = match (matched, reaches, enumeration.exact) {
        (false, _, true) => ShadowKind::MatchesNothing,
        (false, _, false) => return (None, tried),
        (true, false, true) => ShadowKind::FullyShadowed,
        (true, false, false) => ShadowKind::MayBeFullyShadowed,
        (true, true, _) => {
            witnesses.retain(|w| overlapping.binary_search(&w.winner).is_ok());
            if witnesses.is_empty() {
                return (None, tried);
            }
            ShadowKind::PartlyShadowed
        }
    };
    let finding = ShadowFinding {
        route,
        kind,
        witnesses,
        representatives: tried,
    };
    (Some(finding), tried)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(routes: &str) -> (Config, Vec<ShadowFinding>) {
        let source = format!(
            "[listeners.web]\naddr = \"127.0.0.1:8080\"\n[services.web]\nallow_no_identity = true\n[pools.web]\nservice = \"web\"\nbackends = [\"127.0.0.1:9001\"]\n{routes}"
        );
        let parsed = keel_config::parse(&source);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let table = RouteTable::compile(&parsed.config).expect("compiles");
        let found = analyze(&parsed.config, &table).findings;
        (parsed.config, found)
    }

    fn route(name: &str, conditions: &str) -> String {
        format!("[[routes]]\nname = \"{name}\"\n{conditions}\nservice = \"web\"\npool = \"web\"\n")
    }

    #[test]
    fn a_union_of_earlier_routes_shadows_fully() {
        let (_, found) = findings(
            &[
                route("get", "host = \"a.com\"\nmethods = [\"GET\"]"),
                route("post", "host = \"a.com\"\nmethods = [\"POST\"]"),
                route(
                    "both",
                    "host = \"a.com\"\npath_prefix = \"/x\"\nmethods = [\"GET\", \"POST\"]",
                ),
            ]
            .concat(),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].route, 2);
        assert_eq!(found[0].kind, ShadowKind::FullyShadowed);
        let winners: Vec<_> = found[0].witnesses.iter().map(|w| w.winner).collect();
        assert_eq!(winners, vec![0, 1]);
    }

    #[test]
    fn routes_on_other_listeners_do_not_shadow() {
        let (_, found) = findings(
            &[
                route("plain", "listener = \"http\""),
                route("tls", "host = \"a.com\"\nlistener = \"https\""),
                route("plain-a", "host = \"a.com\"\nlistener = [\"http\"]"),
            ]
            .concat(),
        );
        // `tls` is never taken by the catch-all of another listener; `plain-a` is.
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].route, 2);
        assert_eq!(found[0].kind, ShadowKind::FullyShadowed);
        let winners: Vec<_> = found[0].witnesses.iter().map(|w| w.winner).collect();
        assert_eq!(winners, vec![0]);
    }

    #[test]
    fn carve_outs_are_not_reported_but_overlaps_are() {
        let (_, found) = findings(
            &[
                route("v2", "path_prefix = \"/api/v2\""),
                route("api", "path_prefix = \"/api\""),
            ]
            .concat(),
        );
        assert!(found.is_empty(), "{found:?}");
        let (_, found) = findings(
            &[
                route("get-api", "path_prefix = \"/api\"\nmethods = [\"GET\"]"),
                route("v2", "host = \"a.com\"\npath_prefix = \"/api/v2\""),
            ]
            .concat(),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, ShadowKind::PartlyShadowed);
        let w = &found[0].witnesses[0];
        assert_eq!(w.winner, 0);
        assert_eq!(w.request.method, "GET");
        assert!(w.request.path.starts_with("/api/v2"));
    }

    #[test]
    fn regexes_only_may_shadow() {
        let (_, found) = findings(
            &[
                route("items", "path_regex = \"/items/[0-9]+\""),
                route("item-7", "path = \"/items/7\""),
                route("digits", "path_regex = \"/items/[0-9]\""),
            ]
            .concat(),
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            found[0].kind,
            ShadowKind::FullyShadowed,
            "an exact path is decided"
        );
        assert_eq!(found[1].kind, ShadowKind::MayBeFullyShadowed);
    }

    #[test]
    fn a_spent_budget_is_reported_and_never_proves_full_shadowing() {
        // Every route overlaps every earlier one through a header of its own.
        let routes: String = (0..120)
            .map(|i| route(&format!("r{i}"), &format!("headers = {{ h{i} = \"1\" }}")))
            .collect();
        let source = format!(
            "[listeners.web]\naddr = \"127.0.0.1:8080\"\n[services.web]\nallow_no_identity = true\n[pools.web]\nservice = \"web\"\nbackends = [\"127.0.0.1:9001\"]\n{routes}"
        );
        let parsed = keel_config::parse(&source);
        let table = RouteTable::compile(&parsed.config).expect("compiles");
        let analyzer = Analyzer::for_config(&parsed.config, &table);
        let analysis = analyze_with(&analyzer, 2_000);
        let ran_out = analysis.budget_ran_out_at.expect("budget spent");
        assert!(ran_out > 1 && ran_out < 120, "{ran_out}");
        assert!(!analysis.skipped.is_empty());
        assert!(analysis.work < 2_000 + 64 * 16 * 120);
        assert!(
            analysis
                .findings
                .iter()
                .all(|f| f.kind != ShadowKind::FullyShadowed),
            "no route here is fully shadowed"
        );
        let notes = report::diagnostics(&parsed.config, &analysis);
        assert!(notes.iter().any(|d| d.code == keel_config::codes::SKIPPED));
    }

    #[test]
    fn conflicting_headers_match_nothing() {
        let (_, found) = findings(&route(
            "never",
            "headers = { \"X-A\" = \"1\", \"x-a\" = \"2\" }",
        ));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, ShadowKind::MatchesNothing);
    }
}
