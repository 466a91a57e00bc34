//! Does every request find a route? Asked as a shadow question: a virtual catch-all
//! route appended after every real route is unreachable exactly when the real routes
//! together match every request. A representative that reaches it is a request the
//! data plane answers with `404` and `keel-error: no-route`.

use std::ops::ControlFlow;

use keel_config::Config;
use keel_route::{RequestShape, RouteId, RouteTable};

use super::Analyzer;
use super::pred::Pred;
use super::space::{Options, for_each_representative};

/// Whether every request has a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatchAll {
    /// This route matches every request by itself.
    Route(RouteId),
    /// No single route matches everything, but together the routes do (proved).
    Covered,
    /// This request matches no route.
    Missing(Box<RequestShape>),
    /// Every request tried has a route, but regexes or the enumeration budget leave
    /// others undecided.
    Unknown,
}

/// Finds a catch-all route, or a request no route matches.
pub fn catch_all(config: &Config, table: &RouteTable) -> CatchAll {
    catch_all_with(&Analyzer::for_config(config, table))
}

/// [`catch_all`] over routes already read and indexed.
pub(crate) fn catch_all_with(analyzer: &Analyzer<'_>) -> CatchAll {
    if let Some(id) = analyzer.preds.iter().position(Pred::is_catch_all) {
        return CatchAll::Route(id);
    }
    let everything = Pred::any();
    let end = analyzer.preds.len();
    let earlier = analyzer.candidates(&everything, end);
    let mut missing = None;
    let enumeration = for_each_representative(
        &analyzer.preds,
        &everything,
        &earlier,
        Options::default(),
        |request| match analyzer.route_of(request, &earlier, end) {
            Some(_) => ControlFlow::Continue(()),
            None => {
                missing = Some(request.clone());
                ControlFlow::Break(())
            }
        },
    );
    match missing {
        Some(request) => CatchAll::Missing(Box::new(request)),
        None if enumeration.exact => CatchAll::Covered,
        None => CatchAll::Unknown,
    }
}
