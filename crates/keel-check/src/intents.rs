//! Traffic-share intents (`[[intents]]`): "at least / at most this share of the
//! traffic for host H (under path prefix P) reaches service S".
//!
//! [`evaluate`] computes the share over any weighted set of requests: the checker feeds
//! it the static request space of [`static_space`]; live detectors can feed it sampled
//! traffic. A request counts toward an intent when its host is H and its path starts
//! with P. It reaches S in the proportion of its route's split weights that go to pools
//! whose `service` is S (the pools' service, not the route's: that is where requests
//! really land). A request no route matches reaches no service.
//!
//! The static space (what `keel check` uses) is: host H; methods GET and POST; no
//! headers (routes that need a header are opt-in cohorts, not plain traffic); and one
//! path per class of paths the routes of H distinguish under P — P itself, P plus a
//! fresh segment, and every exact path, prefix, prefix plus fresh segment and regex
//! sample of those routes that lies under P. Every request of the space weighs the same.

use keel_config::{Config, Diagnostic, Intent, codes};
use keel_route::{MAX_HOST_LEN, RequestShape, RequestView, RouteId, RouteTable, normalize_host};
use serde_json::{Value, json};

use crate::shadow::Analyzer;
use crate::shadow::pred::{HostPred, PathPred, Pred};
use crate::shadow::request_json;
use crate::shadow::space::{Options, for_each_representative};

/// Methods of the static request space.
pub const STATIC_METHODS: [&str; 2] = ["GET", "POST"];
/// Requests that miss the service kept as examples by [`evaluate`].
const MAX_EXAMPLES: usize = 10;

/// A request in scope that does not (entirely) reach the intent's service.
#[derive(Clone, Debug)]
pub struct Elsewhere {
    /// The request.
    pub request: RequestShape,
    /// The route it matched (`None`: 404).
    pub route: Option<RouteId>,
    /// The share of this request's traffic that reaches the service (0..=1).
    pub reaching: f64,
}

/// The share of an intent's traffic that reaches its service.
#[derive(Clone, Debug, Default)]
pub struct IntentShare {
    /// Reaching weight over total weight; `None` when no request was in scope.
    pub share: Option<f64>,
    /// Total weight of the requests in scope.
    pub weight: f64,
    /// Requests in scope.
    pub requests: usize,
    /// The first requests that miss the service, as examples.
    pub elsewhere: Vec<Elsewhere>,
}

impl IntentShare {
    /// True when the share is within the intent's bounds (or nothing was in scope).
    pub fn holds(&self, intent: &Intent) -> bool {
        self.share.is_none_or(|share| {
            intent.min_share.is_none_or(|min| share + 1e-9 >= min)
                && intent.max_share.is_none_or(|max| share <= max + 1e-9)
        })
    }
}

/// True when the request is in the intent's scope: its host and path prefix.
pub fn in_scope(intent: &Intent, request: &impl RequestView) -> bool {
    let mut buffer = [0u8; MAX_HOST_LEN];
    let host = request.host().and_then(|h| normalize_host(h, &mut buffer));
    host == Some(intent.host.as_str())
        && intent
            .path_prefix
            .as_deref()
            .is_none_or(|p| request.path().starts_with(p))
}

/// The share of a route's traffic that lands on pools serving `service`.
pub fn route_share_to_service(
    config: &Config,
    table: &RouteTable,
    route: RouteId,
    service: &str,
) -> f64 {
    table
        .route(route)
        .shares()
        .filter(|(pool, _)| {
            config
                .pools
                .get_index(*pool)
                .is_some_and(|(_, p)| p.service.value == service)
        })
        .map(|(_, share)| share)
        .sum()
}

/// The share of the in-scope, weighted `requests` that reaches the intent's service.
pub fn evaluate(
    table: &RouteTable,
    config: &Config,
    intent: &Intent,
    requests: impl IntoIterator<Item = (RequestShape, f64)>,
) -> IntentShare {
    let mut result = IntentShare::default();
    let mut reaching_weight = 0.0;
    for (request, weight) in requests {
        if !in_scope(intent, &request) || weight.is_nan() || weight <= 0.0 {
            continue;
        }
        let route = table.find(&request);
        let service = intent.service.as_ref().map_or("", |s| s.value.as_str());
        let reaching = route.map_or(0.0, |id| route_share_to_service(config, table, id, service));
        result.requests += 1;
        result.weight += weight;
        reaching_weight += weight * reaching;
        if reaching < 1.0 && result.elsewhere.len() < MAX_EXAMPLES {
            result.elsewhere.push(Elsewhere {
                request,
                route,
                reaching,
            });
        }
    }
    if result.weight > 0.0 {
        result.share = Some(reaching_weight / result.weight);
    }
    result
}

/// The static request space of an intent (see the module docs), each of weight 1.
pub fn static_space(
    config: &Config,
    table: &RouteTable,
    intent: &Intent,
) -> Vec<(RequestShape, f64)> {
    static_space_with(&Analyzer::for_config(config, table), intent)
}

/// [`static_space`] over routes already read and indexed.
pub(crate) fn static_space_with(
    analyzer: &Analyzer<'_>,
    intent: &Intent,
) -> Vec<(RequestShape, f64)> {
    let scope = Pred {
        listeners: Vec::new(),
        host: HostPred::Exact(&intent.host),
        path: PathPred::Prefix(intent.path_prefix.as_deref().unwrap_or("/")),
        methods: Some(STATIC_METHODS.to_vec()),
        headers: Vec::new(),
    };
    let earlier = analyzer.candidates(&scope, analyzer.preds.len());
    let mut space = Vec::new();
    for_each_representative(
        &analyzer.preds,
        &scope,
        &earlier,
        Options {
            header_variants: false,
            ..Options::default()
        },
        |request| {
            space.push((request.clone(), 1.0));
            std::ops::ControlFlow::Continue(())
        },
    );
    space
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn bound_text(intent: &Intent) -> String {
    match (intent.min_share, intent.max_share) {
        (Some(min), Some(max)) => format!("between {} and {}", percent(min), percent(max)),
        (Some(min), None) => format!("at least {}", percent(min)),
        (None, Some(max)) => format!("at most {}", percent(max)),
        (None, None) => "any share".into(),
    }
}

/// K108 for every intent the routing table breaks.
pub fn diagnostics(config: &Config, table: &RouteTable) -> Vec<Diagnostic> {
    diagnostics_with(config, &Analyzer::for_config(config, table))
}

/// [`diagnostics`] over routes already read and indexed.
pub(crate) fn diagnostics_with(config: &Config, analyzer: &Analyzer<'_>) -> Vec<Diagnostic> {
    let table = analyzer.table;
    let mut out = Vec::new();
    for intent in &config.intents {
        // A refusal bound alone (`max_refused`) is judged by `crate::refusal_intents`.
        let Some(service) = intent
            .service
            .as_ref()
            .filter(|_| intent.min_share.is_some() || intent.max_share.is_some())
        else {
            continue;
        };
        let scope = format!(
            "{}{}",
            intent.host,
            intent.path_prefix.as_deref().unwrap_or("/")
        );
        if !config.services.contains_key(service.value.as_str()) {
            out.push(
                Diagnostic::error(
                    codes::INTENT_VIOLATED,
                    format!("intent for {scope} names unknown service `{service}`"),
                )
                .at(service.span, "no service by this name")
                .with_help("name a service declared under [services]"),
            );
            continue;
        }
        let result = evaluate(table, config, intent, static_space_with(analyzer, intent));
        if result.holds(intent) {
            continue;
        }
        let share = result.share.unwrap_or(0.0);
        let mut diagnostic = Diagnostic::error(
            codes::INTENT_VIOLATED,
            format!(
                "intent violated: {} of {scope} traffic reaches `{}`; the intent says {}",
                percent(share),
                service,
                bound_text(intent)
            ),
        )
        .at(intent.span, "this intent does not hold")
        .with_note(format!(
            "computed over {} representative requests (GET and POST, no special headers, one per path class the routes distinguish under {scope}), weighted equally",
            result.requests
        ));
        for example in result.elsewhere.iter().take(5) {
            diagnostic = diagnostic.with_note(describe(config, table, example, &service.value));
        }
        let elsewhere: Vec<Value> = result
            .elsewhere
            .iter()
            .map(|e| {
                json!({
                    "request": request_json(&e.request),
                    "route": e.route.map(|id| &*table.route(id).name),
                    "reaching": e.reaching,
                })
            })
            .collect();
        out.push(
            diagnostic
                .with_help("fix the routes or split weights that send this traffic elsewhere, or change the intent if the traffic is meant to move")
                .with_data(json!({
                    "host": intent.host,
                    "path_prefix": intent.path_prefix,
                    "service": service.value,
                    "share": share,
                    "min_share": intent.min_share,
                    "max_share": intent.max_share,
                    "requests": result.requests,
                    "elsewhere": elsewhere,
                })),
        );
    }
    out
}

fn describe(config: &Config, table: &RouteTable, e: &Elsewhere, service: &str) -> String {
    let Some(id) = e.route else {
        return format!("`{}` matches no route (404)", e.request);
    };
    let route = table.route(id);
    let pools: Vec<String> = route
        .shares()
        .filter(|(_, share)| *share > 0.0)
        .map(|(pool, share)| {
            let (name, serves) = config
                .pools
                .get_index(pool)
                .map_or(("?", "?"), |(n, p)| (n.as_str(), p.service.value.as_str()));
            format!("pool `{name}` of `{serves}` ({})", percent(share))
        })
        .collect();
    format!(
        "`{}` → route `{}` → {}; {} reaches `{service}`",
        e.request,
        route.name,
        pools.join(", "),
        percent(e.reaching)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[listeners.web]
addr = "127.0.0.1:8080"
[services.web]
allow_no_identity = true
[services.checkout]
allow_no_identity = true
[pools.web]
service = "web"
backends = ["127.0.0.1:9001"]
[pools.checkout]
service = "checkout"
backends = ["127.0.0.1:9002"]
[[routes]]
name = "checkout"
host = "shop.example.com"
path_prefix = "/checkout"
methods = ["GET", "POST"]
service = "checkout"
split = [{ pool = "checkout", weight = 3 }, { pool = "web", weight = 7 }]
[[routes]]
name = "web"
service = "web"
pool = "web"
[[intents]]
host = "shop.example.com"
path_prefix = "/checkout"
service = "checkout"
min_share = 0.9
"#;

    #[test]
    fn shares_follow_split_weights_to_the_pools_service() {
        let parsed = keel_config::parse(CONFIG);
        let table = RouteTable::compile(&parsed.config).expect("compiles");
        let intent = &parsed.config.intents[0];
        let space = static_space(&parsed.config, &table, intent);
        assert!(space.iter().all(|(r, _)| in_scope(intent, r)));
        assert!(space.len() >= 4, "{space:?}");
        let result = evaluate(&table, &parsed.config, intent, space);
        let share = result.share.expect("requests in scope");
        assert!((share - 0.3).abs() < 1e-9, "{share}");
        assert!(!result.holds(intent));
    }

    #[test]
    fn weights_and_scope_are_respected() {
        let parsed = keel_config::parse(CONFIG);
        let table = RouteTable::compile(&parsed.config).expect("compiles");
        let intent = &parsed.config.intents[0];
        let traffic = vec![
            (
                RequestShape::new("GET", "shop.example.com", "/checkout/pay"),
                1.0,
            ),
            (
                RequestShape::new("PUT", "shop.example.com", "/checkout/pay"),
                1.0,
            ),
            (
                RequestShape::new("GET", "other.example.com", "/checkout"),
                5.0,
            ),
        ];
        let result = evaluate(&table, &parsed.config, intent, traffic);
        assert_eq!(result.requests, 2);
        let share = result.share.expect("in scope");
        assert!((share - 0.15).abs() < 1e-9, "{share}");
    }
}
