//! Redirect routes judged against the routing table: where a redirected request lands
//! once the client follows the `Location` ([`follow`]), which listeners a URL's scheme
//! and port reach ([`listeners_for`], also used by route tests), K125 (a redirect that
//! sends its requests back to itself: a loop clients give up on), and the shadow
//! findings a redirect does not really cause ([`forgive_shadows`]): a redirect from
//! the plain listener to `https` that brings a request back to the route it took it
//! from moves that request, it does not take it.

use keel_config::{Config, Diagnostic, PathMatch, RedirectRequest, RedirectScheme, codes};
use keel_route::{RequestShape, RouteId, RouteTable};
use serde_json::json;

use crate::shadow::{ShadowAnalysis, ShadowKind, request_json};

/// The listeners a URL with `scheme` and `port` reaches: those of the scheme (TLS for
/// `https`), on `port` when it is given; without a port, those on the scheme's default
/// port, or every listener of the scheme when none listens there (a test config on
/// loopback ports, or a port mapping in front of Keel).
pub fn listeners_for(config: &Config, scheme: RedirectScheme, port: Option<u16>) -> Vec<&str> {
    let of_scheme: Vec<(&str, u16)> = config
        .listeners
        .iter()
        .filter(|(_, l)| l.tls.is_some() == (scheme == RedirectScheme::Https))
        .map(|(name, l)| (name.as_str(), l.addr.value.port()))
        .collect();
    let on = |wanted: u16| -> Vec<&str> {
        of_scheme
            .iter()
            .filter(|(_, p)| *p == wanted)
            .map(|(n, _)| *n)
            .collect()
    };
    match port {
        Some(port) => on(port),
        None => {
            let default = on(scheme.default_port());
            if default.is_empty() {
                of_scheme.iter().map(|(n, _)| *n).collect()
            } else {
                default
            }
        }
    }
}

/// A `Location` split into what routing reads.
struct Target {
    scheme: RedirectScheme,
    host: String,
    port: Option<u16>,
    path: String,
}

fn parse_location(location: &str) -> Option<Target> {
    let (scheme, rest) = location.split_once("://")?;
    let scheme = RedirectScheme::parse(scheme)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = keel_config::strip_port(authority);
    let port = authority
        .get(host.len()..)
        .and_then(|p| p.strip_prefix(':'))
        .and_then(|p| p.parse().ok());
    let path = path.split('?').next().unwrap_or("/").to_string();
    Some(Target {
        scheme,
        host: host.to_string(),
        port,
        path,
    })
}

/// A redirect followed: its `Location`, and the route (if any) the new request matches
/// on each listener the `Location` reaches.
#[derive(Clone, Debug)]
pub struct Followed {
    /// The `Location` the client gets.
    pub location: String,
    /// Per listener reached, by name: the route the new request matches there.
    pub landings: Vec<(String, Option<RouteId>)>,
}

impl Followed {
    /// True when the new request lands on `route` on some listener.
    pub fn reaches(&self, route: RouteId) -> bool {
        self.landings.iter().any(|(_, r)| *r == Some(route))
    }
}

/// Where `request`, answered by redirect route `route` on a listener of `scheme`, lands
/// when the client follows the `Location`; `None` when the route does not redirect or
/// has no `Location` for the request.
pub fn follow(
    config: &Config,
    table: &RouteTable,
    route: RouteId,
    request: &RequestShape,
    scheme: RedirectScheme,
) -> Option<Followed> {
    let redirect = &config.routes.get(route)?.redirect()?.value;
    let location = redirect.location(&RedirectRequest {
        scheme,
        authority: Some(&request.host),
        path_and_query: &request.path,
    })?;
    let target = parse_location(&location)?;
    // 301 and 302 are followed with GET by browsers for a POST; 307 and 308 keep it.
    let method = match redirect.status.value {
        301 | 302 if request.method == "POST" => "GET",
        _ => request.method.as_str(),
    };
    let landings = listeners_for(config, target.scheme, target.port)
        .into_iter()
        .map(|listener| {
            let mut next = RequestShape::new(method, &target.host, &target.path);
            next.headers = request.headers.clone();
            next.listener = Some(listener.to_string());
            (listener.to_string(), table.find(&next))
        })
        .collect();
    Some(Followed { location, landings })
}

/// The scheme of a listener: `https` when it terminates TLS.
fn scheme_of(config: &Config, listener: &str) -> RedirectScheme {
    RedirectScheme::of_request(
        config
            .listeners
            .get(listener)
            .is_some_and(|l| l.tls.is_some()),
    )
}

/// Drops the shadow witnesses whose winner is a redirect that brings the request back
/// to the shadowed route once followed; a finding left without witnesses goes, and a
/// fully shadowed route that some witnesses reach again is only partly shadowed.
pub fn forgive_shadows(
    config: &Config,
    table: &RouteTable,
    mut analysis: ShadowAnalysis,
) -> ShadowAnalysis {
    for finding in &mut analysis.findings {
        let before = finding.witnesses.len();
        finding.witnesses.retain(|witness| {
            let on = match &witness.request.listener {
                Some(listener) => vec![listener.clone()],
                None => table
                    .route(witness.winner)
                    .listeners()
                    .iter()
                    .map(|l| l.to_string())
                    .collect(),
            };
            let back = !on.is_empty()
                && on.iter().all(|listener| {
                    follow(
                        config,
                        table,
                        witness.winner,
                        &witness.request,
                        scheme_of(config, listener),
                    )
                    .is_some_and(|followed| followed.reaches(finding.route))
                });
            !back
        });
        if finding.witnesses.len() < before && finding.kind == ShadowKind::FullyShadowed {
            finding.kind = ShadowKind::PartlyShadowed;
        }
    }
    analysis
        .findings
        .retain(|f| !f.witnesses.is_empty() || f.kind == ShadowKind::MatchesNothing);
    analysis
}

/// A request `route` matches, for the loop check: its exact host (or one under its
/// wildcard, or `example.com`), its path, the first of its methods, its headers.
fn representative(config: &Config, route: RouteId) -> Option<RequestShape> {
    let configured = config.routes.get(route)?;
    let host = match configured.host.as_ref().map(|h| &h.value) {
        Some(keel_config::HostMatch::Exact(host)) => host.clone(),
        Some(keel_config::HostMatch::Suffix(suffix)) => format!("www{suffix}"),
        None => "example.com".to_string(),
    };
    let path = match configured.path.as_ref().map(|p| &p.value) {
        None => "/".to_string(),
        Some(PathMatch::Exact(path) | PathMatch::Prefix(path)) => path.clone(),
        Some(PathMatch::Regex(_)) => return None,
    };
    let method = configured
        .methods
        .as_ref()
        .and_then(|m| m.value.first().cloned())
        .unwrap_or_else(|| "GET".to_string());
    let mut request = RequestShape::new(&method, &host, &path);
    for header in &configured.headers {
        request = request.with_header(&header.value.0, &header.value.1);
    }
    Some(request)
}

/// K125: a redirect route whose `Location` brings its own request back to it, on some
/// listener it answers on.
pub fn loop_diagnostics(config: &Config, table: &RouteTable) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (id, route) in config.routes.iter().enumerate() {
        let Some(redirect) = route.redirect() else {
            continue;
        };
        let Some(request) = representative(config, id) else {
            continue;
        };
        let listeners: Vec<&str> = if route.listeners.is_empty() {
            config.listeners.keys().map(String::as_str).collect()
        } else {
            route.listeners.iter().map(|l| l.value.as_str()).collect()
        };
        for listener in listeners {
            let mut on = request.clone();
            on.listener = Some(listener.to_string());
            if table.find(&on) != Some(id) {
                continue;
            }
            let scheme = scheme_of(config, listener);
            let Some(Followed { location, .. }) =
                follow(config, table, id, &on, scheme).filter(|f| f.reaches(id))
            else {
                continue;
            };
            let name = &route.name.value;
            out.push(
                Diagnostic::error(
                    codes::REDIRECT_LOOP,
                    format!("redirect `{name}` sends its own requests back to itself"),
                )
                .at(redirect.span, "the Location matches this route again")
                .with_note(format!(
                    "witness: `{}` on listener `{listener}` gets {} {location}, which route `{name}` takes again",
                    on, redirect.value.status.value
                ))
                .with_help(if route.listeners.is_empty() && redirect.value.scheme.is_some() {
                    "limit the route to the listeners it moves clients away from, e.g. listener = \"http\"".to_string()
                } else {
                    "change the redirect's scheme, host or path_prefix so that the new URL leaves this route".to_string()
                })
                .with_data(json!({
                    "route": name,
                    "listener": listener,
                    "request": request_json(&on),
                    "location": location,
                })),
            );
            break;
        }
    }
    out
}
