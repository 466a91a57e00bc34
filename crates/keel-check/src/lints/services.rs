//! K204 (a service nothing can verify) and K105 (one backend address in pools of two
//! services: one server, two identities — at least one of them is wrong).

use std::collections::HashMap;
use std::net::SocketAddr;

use keel_config::{Config, Diagnostic, Span, codes};

pub(super) fn check(config: &Config, out: &mut Vec<Diagnostic>) {
    for service in config.services.values() {
        if service.identity.is_none() {
            out.push(
                Diagnostic::warning(
                    codes::NO_IDENTITY,
                    format!("service `{}` has no identity", service.name),
                )
                .at(service.name.span, "nothing proves a backend is this service")
                .with_note("health checks and probes cannot tell this service's backends from another application answering on the same address")
                .with_help(format!(
                    "add identity = {{ header = \"x-service\", equals = \"{}\" }} and make the backends send that header",
                    service.name
                )),
            );
        }
    }

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

#[cfg(test)]
mod tests {
    use super::super::test_support::{codes as ids, run_lint};
    use super::*;

    fn run(extra: &str) -> Vec<Diagnostic> {
        run_lint(check, extra)
    }

    #[test]
    fn services_without_identity_are_warnings() {
        assert_eq!(ids(&run("[services.bare]\n")), vec![codes::NO_IDENTITY]);
        assert!(run("").is_empty());
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
