//! Refusal intents (`[[intents]] max_refused = 0.01`) as `keel check` judges them:
//! "the policies refuse at most this share of the requests for host H (under path
//! prefix P)".
//!
//! Statically there is no client address and no arrival time, so only the rules that
//! refuse a request whoever sends it can be counted: an `allow` list with no block, or
//! a `deny` list that matches every IPv4 and every IPv6 address (K213's "every
//! client"). The requests are the intent's static request space (see
//! [`crate::intents::static_space`]), each weighing the same; a request counts as
//! refused when the route it matches has such a rule. Rules that refuse some clients,
//! and rate limits, are judged on sampled traffic by the blast-radius gate
//! (`keel_impact`), which replays them with each request's client and time.

use keel_config::{AccessMode, Config, Diagnostic, Intent, Route, codes};
use keel_route::{RequestShape, RouteId};
use serde_json::json;

use crate::shadow::Analyzer;
use crate::shadow::request_json;

/// Refused requests written out as notes (JSON has up to [`MAX_WITNESSES`]).
const MAX_NOTES: usize = 5;
/// Refused requests kept as witnesses.
const MAX_WITNESSES: usize = 10;

/// What a route's address rule does to every client, if it refuses them all.
pub fn refuses_everyone(route: &Route) -> Option<&'static str> {
    let access = &route.access.as_ref()?.value;
    match access.mode {
        AccessMode::Allow if access.blocks.is_empty() => Some("allow list is empty"),
        AccessMode::Deny => {
            let everything = |v4: bool| {
                access
                    .blocks
                    .iter()
                    .any(|b| b.value.is_everything() && b.value.network.is_ipv4() == v4)
            };
            (everything(true) && everything(false)).then_some("deny list matches every address")
        }
        AccessMode::Allow => None,
    }
}

/// The static share of an intent's requests refused whoever sends them.
#[derive(Clone, Debug, Default)]
pub struct RefusedShare {
    /// Requests in the static space.
    pub requests: usize,
    /// The refused ones (up to [`MAX_WITNESSES`]), with the route that refuses them.
    pub witnesses: Vec<(RequestShape, RouteId)>,
    /// How many were refused.
    pub refused: usize,
}

impl RefusedShare {
    /// `refused / requests`; `None` when the space is empty.
    pub fn share(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.refused as f64 / self.requests as f64)
    }
}

/// Counts the refused requests of an intent's static space.
pub(crate) fn evaluate(config: &Config, analyzer: &Analyzer<'_>, intent: &Intent) -> RefusedShare {
    let mut result = RefusedShare::default();
    for (request, _) in crate::intents::static_space_with(analyzer, intent) {
        result.requests += 1;
        let Some(id) = analyzer.table.find(&request) else {
            continue;
        };
        if config.routes.get(id).and_then(refuses_everyone).is_some() {
            result.refused += 1;
            if result.witnesses.len() < MAX_WITNESSES {
                result.witnesses.push((request, id));
            }
        }
    }
    result
}

/// K108 for every `max_refused` the config's rules break on the static space.
pub(crate) fn diagnostics_with(config: &Config, analyzer: &Analyzer<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for intent in &config.intents {
        let Some(max) = intent.max_refused else {
            continue;
        };
        let result = evaluate(config, analyzer, intent);
        let Some(share) = result.share() else {
            continue;
        };
        if share <= max + 1e-9 {
            continue;
        }
        let scope = format!(
            "{}{}",
            intent.host,
            intent.path_prefix.as_deref().unwrap_or("/")
        );
        let name = |id: RouteId| analyzer.table.route(id).name.to_string();
        let mut diagnostic = Diagnostic::error(
            codes::INTENT_VIOLATED,
            format!(
                "intent violated: the policies refuse {} of {scope} traffic to every client; the intent says at most {}",
                percent(share),
                percent(max)
            ),
        )
        .at(intent.span, "this intent does not hold")
        .with_note(format!(
            "{} of {} representative requests (GET and POST, one per path class the routes distinguish under {scope}) match a route whose address rule refuses every client",
            result.refused, result.requests
        ));
        for (request, id) in result.witnesses.iter().take(MAX_NOTES) {
            let why = config
                .routes
                .get(*id)
                .and_then(refuses_everyone)
                .unwrap_or("refuses");
            diagnostic = diagnostic.with_note(format!(
                "`{request}` → route `{}`: its {why} (403)",
                name(*id)
            ));
        }
        let witnesses: Vec<serde_json::Value> = result
            .witnesses
            .iter()
            .map(|(request, id)| json!({ "request": request_json(request), "route": name(*id) }))
            .collect();
        out.push(
            diagnostic
                .with_help("list the address blocks you mean, or raise max_refused if these requests are meant to be refused")
                .with_data(json!({
                    "host": intent.host,
                    "path_prefix": intent.path_prefix,
                    "refused": share,
                    "max_refused": max,
                    "requests": result.requests,
                    "witnesses": witnesses,
                })),
        );
    }
    out
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_route::RouteTable;

    fn config(rule: &str, max: f64) -> String {
        format!(
            "[listeners.web]\naddr = \"127.0.0.1:8080\"\n[services.web]\nallow_no_identity = true\n\
             [pools.web]\nservice = \"web\"\nbackends = [\"127.0.0.1:9001\"]\n\
             [[routes]]\nname = \"admin\"\nhost = \"shop.example.com\"\npath_prefix = \"/admin\"\n\
             service = \"web\"\npool = \"web\"\n{rule}\n\
             [[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\n\
             [[intents]]\nhost = \"shop.example.com\"\nmax_refused = {max}\n"
        )
    }

    fn judged(rule: &str, max: f64) -> (RefusedShare, Vec<Diagnostic>) {
        let parsed = keel_config::parse(&config(rule, max));
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let table = RouteTable::compile(&parsed.config).expect("compiles");
        let analyzer = Analyzer::for_config(&parsed.config, &table);
        let intent = &parsed.config.intents[0];
        (
            evaluate(&parsed.config, &analyzer, intent),
            diagnostics_with(&parsed.config, &analyzer),
        )
    }

    #[test]
    fn a_deny_all_counts_its_routes_requests_as_refused() {
        let (result, findings) = judged("deny = [\"0.0.0.0/0\", \"::/0\"]", 0.01);
        let share = result.share().expect("requests in scope");
        assert!(share > 0.0 && share < 1.0, "{share}");
        assert!(
            result
                .witnesses
                .iter()
                .all(|(r, _)| r.path.starts_with("/admin"))
        );
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].code, codes::INTENT_VIOLATED);
        assert!(findings[0].message.contains("at most 1.0%"), "{findings:?}");
    }

    #[test]
    fn rules_that_refuse_only_some_clients_are_left_to_the_gate() {
        let (result, findings) = judged("deny = [\"10.0.0.0/8\"]", 0.0);
        assert_eq!(result.refused, 0);
        assert!(findings.is_empty(), "{findings:?}");
        let (result, findings) = judged("deny = [\"0.0.0.0/0\"]", 0.0);
        assert_eq!(result.refused, 0, "IPv6 clients are still served");
        assert!(findings.is_empty());
        let (_, findings) = judged("allow = []", 1.0);
        assert!(findings.is_empty(), "max_refused = 1 allows everything");
    }
}
