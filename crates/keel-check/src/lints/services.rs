//! K111 (a service nothing can verify, unless it says so), K110 (two services with one identity: a backend
//! of one passes as the other) and K105 (one backend address in pools of two services:
//! one server, two identities — at least one of them is wrong).

use std::collections::HashMap;
use std::net::SocketAddr;

use keel_config::{Config, Diagnostic, Span, codes};

pub(super) fn check(config: &Config, out: &mut Vec<Diagnostic>) {
    for service in config.services.values() {
        if service.identity.is_none() && !service.allow_no_identity {
            out.push(
                Diagnostic::error(
                    codes::NO_IDENTITY,
                    format!("service `{}` has no identity", service.name),
                )
                .at(service.name.span, "nothing proves a backend is this service")
                .with_note("what you lose: new backends are not probed for who they are before an apply swaps, responses are not verified, and a route or pool re-pointed at another application serves it without an alert or a revert")
                .with_help(format!(
                    "add identity = {{ header = \"x-service\", equals = \"{}\" }} and make the backends send that header, or say `allow_no_identity = true` if nothing can prove it",
                    service.name
                )),
            );
        }
    }
    shared_identities(config, out);

    // First pool (and its service) seen at each address.
    let mut first: HashMap<SocketAddr, (&str, &str, Span)> = HashMap::new();
    for pool in config.pools.values() {
        for backend in &pool.backends {
            let addr = backend.addr.value;
            let Some((other_pool, other_service, other_span)) = first.get(&addr).copied() else {
                first.insert(
                    addr,
                    (&pool.name.value, &pool.service.value, backend.addr.span),
                );
                continue;
            };
            if other_service == pool.service.value {
                continue;
            }
            out.push(
                Diagnostic::error(
                    codes::TWO_IDENTITIES,
                    format!(
                        "backend {addr} is in pool `{}` (service `{}`) and in pool `{other_pool}` (service `{other_service}`)",
                        pool.name, pool.service
                    ),
                )
                .at(backend.addr.span, format!("here it must be `{}`", pool.service))
                .with_related(other_span, format!("here it must be `{other_service}`"))
                .with_note("one server cannot be two applications: one of these pools sends requests to the wrong application")
                .with_help("fix the address in the pool that is wrong, so each backend belongs to one service"),
            );
        }
    }
}

/// K110: the first service that claims each identity value, and every later one.
fn shared_identities(config: &Config, out: &mut Vec<Diagnostic>) {
    let mut first: HashMap<(&str, &str), (&str, Span)> = HashMap::new();
    for service in config.services.values() {
        let Some(identity) = &service.identity else {
            continue;
        };
        let key = (
            identity.value.header.as_str(),
            identity.value.equals.as_str(),
        );
        let Some((other, other_span)) = first.get(&key).copied() else {
            first.insert(key, (service.name.value.as_str(), identity.span));
            continue;
        };
        out.push(
            Diagnostic::error(
                codes::SHARED_IDENTITY,
                format!(
                    "services `{}` and `{other}` have the same identity ({} = {:?})",
                    service.name, identity.value.header, identity.value.equals
                ),
            )
            .at(identity.span, format!("here it proves `{}`", service.name))
            .with_related(other_span, format!("here it proves `{other}`"))
            .with_note("a backend of one passes every probe and response check of the other: this is how an edit that points a service at another application's servers hides itself")
            .with_help("give each service its own identity value"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{codes as ids, run_lint};
    use super::*;

    fn run(extra: &str) -> Vec<Diagnostic> {
        run_lint(check, extra)
    }

    #[test]
    fn services_without_identity_are_errors() {
        let out = run("[services.bare]\n");
        assert_eq!(ids(&out), vec![codes::NO_IDENTITY]);
        assert_eq!(out[0].severity, keel_config::Severity::Error);
        assert!(run("").is_empty());
    }

    #[test]
    fn a_service_may_declare_it_has_no_identity() {
        assert!(run("[services.bare]\nallow_no_identity = true\n").is_empty());
    }

    #[test]
    fn two_services_with_one_identity_are_an_error() {
        let out = run("[services.copy]\nidentity = { header = \"x-service\", equals = \"web\" }\n");
        assert_eq!(ids(&out), vec![codes::SHARED_IDENTITY]);
        assert!(
            out[0].message.contains("`copy` and `web`"),
            "{}",
            out[0].message
        );
    }

    #[test]
    fn one_address_in_two_services_is_an_error() {
        let out =
            run("[pools.web2]\nservice = \"api\"\nbackends = [\"127.0.0.1:9001\"]\nhealth = {}\n");
        assert_eq!(ids(&out), vec![codes::TWO_IDENTITIES]);
        assert_eq!(out[0].related.len(), 1);
        // The same address twice in pools of one service is fine (blue/green pools).
        assert!(
            run("[pools.web2]\nservice = \"web\"\nbackends = [\"127.0.0.1:9001\"]\nhealth = {}\n")
                .is_empty()
        );
    }
}
