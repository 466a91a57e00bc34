//! The policy side of route test expectations, once a route matched: the status the
//! route's policies give the test request (`403` from its address rule for the test's
//! `client`, a fixed answer's or a redirect's own status, `429` for a route with a rate
//! limit), the path its `rewrite` forwards (`rewritten_path`) and a redirect's
//! `Location` (`location`, built by the data plane's rule from the test URL's scheme,
//! host, port, path and query). The data plane judges in the same order: address rule,
//! then rate limit, then fixed answer, redirect or forwarding.

use keel_config::{Route, RouteTest};

/// Failures of `test`'s policy expectations against the route it matched.
pub(crate) fn failures(route: &Route, test: &RouteTest, out: &mut Vec<String>) {
    let expect = &test.expect;
    let name = &route.name.value;
    let refused = match (&route.access, test.client) {
        (Some(access), Some(client)) => !access.value.admits(client),
        _ => false,
    };
    if let Some(status) = expect.status.filter(|s| *s != 404) {
        if refused {
            if status != 403 {
                out.push(format!(
                    "expected status {status}, got 403: route `{name}` refuses client {} (its `{}` list)",
                    client_text(test),
                    access_key(route)
                ));
            }
        } else if status == 403 {
            out.push(match (&route.access, test.client) {
                (None, _) => format!("expected 403, but route `{name}` has no allow or deny list"),
                (Some(_), None) => format!(
                    "expected 403, but the test names no client: add client = \"203.0.113.9\" to judge route `{name}`'s `{}` list",
                    access_key(route)
                ),
                (Some(_), Some(client)) => format!(
                    "expected 403, but route `{name}` serves client {client} (its `{}` list)",
                    access_key(route)
                ),
            });
        } else if status == 429 {
            if route.rate_limit.is_none() {
                out.push(format!(
                    "expected 429, but route `{name}` has no rate_limit"
                ));
            }
        } else if let Some(answer) = route.respond()
            && answer.value.status.value != status
        {
            out.push(format!(
                "expected status {status}, got {} (the fixed answer of route `{name}`)",
                answer.value.status.value
            ));
        } else if let Some(redirect) = route.redirect()
            && redirect.value.status.value != status
        {
            out.push(format!(
                "expected status {status}, got {} (the redirect of route `{name}`)",
                redirect.value.status.value
            ));
        }
    }
    if let Some(expected) = &expect.location {
        match route.redirect() {
            None => out.push(format!(
                "expected location `{expected}`, but route `{name}` does not redirect"
            )),
            Some(redirect) => {
                let got = redirect
                    .value
                    .location(&test_redirect_request(test).as_request());
                match got {
                    Some(got) if &got == expected => {}
                    Some(got) => out.push(format!(
                        "expected location `{expected}`, got `{got}` (the redirect of route `{name}`)"
                    )),
                    None => out.push(format!(
                        "expected location `{expected}`, but route `{name}` has no Location for this request's host"
                    )),
                }
            }
        }
    }
    if let Some(expected) = &expect.rewritten_path {
        let got = match (&route.rewrite, &route.path) {
            (Some(rewrite), Some(path)) => match &path.value {
                keel_config::PathMatch::Prefix(prefix) => rewrite.value.apply(prefix, &test.path),
                _ => None,
            },
            _ => None,
        }
        .unwrap_or_else(|| test.path.clone());
        if route.answers_itself() {
            out.push(format!(
                "expected rewritten path `{expected}`, but route `{name}` answers itself (nothing is forwarded)"
            ));
        } else if &got != expected {
            out.push(format!(
                "expected rewritten path `{expected}`, got `{got}` (route `{name}`)"
            ));
        }
    }
}

/// The owned parts of a test's request a redirect reads.
struct TestRedirectRequest {
    scheme: keel_config::RedirectScheme,
    authority: String,
    path_and_query: String,
}

impl TestRedirectRequest {
    fn as_request(&self) -> keel_config::RedirectRequest<'_> {
        keel_config::RedirectRequest {
            scheme: self.scheme,
            authority: Some(&self.authority),
            path_and_query: &self.path_and_query,
        }
    }
}

fn test_redirect_request(test: &RouteTest) -> TestRedirectRequest {
    TestRedirectRequest {
        scheme: test.scheme,
        authority: match test.port {
            Some(port) => format!("{}:{port}", test.host),
            None => test.host.clone(),
        },
        path_and_query: match &test.query {
            Some(query) => format!("{}?{query}", test.path),
            None => test.path.clone(),
        },
    }
}

fn client_text(test: &RouteTest) -> String {
    test.client
        .map_or_else(|| "?".to_string(), |c| c.to_string())
}

fn access_key(route: &Route) -> &'static str {
    route.access.as_ref().map_or("", |a| a.value.mode.key())
}
