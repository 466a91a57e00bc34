//! K101 (a name that points nowhere: a service, pool or listener) and K102 (a route aimed at a pool of another
//! service: the March-15 misconfiguration).

use keel_config::{Config, Diagnostic, Located, codes};

use super::suggestion;

pub(super) fn check(config: &Config, out: &mut Vec<Diagnostic>) {
    for pool in config.pools.values() {
        unknown_service(config, &pool.service, &format!("pool `{}`", pool.name), out);
    }
    for route in &config.routes {
        let what = format!("route `{}`", route.name);
        for listener in &route.listeners {
            if !config.listeners.contains_key(listener.value.as_str()) {
                out.push(
                    Diagnostic::error(
                        codes::UNKNOWN_REFERENCE,
                        format!("{what} is limited to unknown listener `{}`", listener.value),
                    )
                    .at(listener.span, "no listener by this name")
                    .with_help(format!(
                        "declare [listeners.{}] or name an existing listener{}",
                        listener.value,
                        suggestion(&listener.value, config.listeners.keys().map(String::as_str))
                    )),
                );
            }
        }
        // A route Keel answers itself (`respond`, `redirect`) names no service and no pool.
        let (Some(service), Some(target)) = (route.service(), route.target()) else {
            continue;
        };
        unknown_service(config, service, &what, out);
        for also in &route.also_served_by {
            unknown_service(config, also, &format!("{what} (also_served_by)"), out);
        }
        for (pool_ref, weight) in target.value.pools() {
            let Some(pool) = config.pools.get(pool_ref.value.as_str()) else {
                out.push(
                    Diagnostic::error(
                        codes::UNKNOWN_REFERENCE,
                        format!("{what} sends to unknown pool `{}`", pool_ref.value),
                    )
                    .at(pool_ref.span, "no pool by this name")
                    .with_help(format!(
                        "declare [pools.{}] or name an existing pool{}",
                        pool_ref.value,
                        suggestion(&pool_ref.value, config.pools.keys().map(String::as_str))
                    )),
                );
                continue;
            };
            // A declared migration (`also_served_by`) may send to that service's pools:
            // the identity detector accepts its answers there too.
            let declared = route
                .also_served_by
                .iter()
                .any(|s| s.value == pool.service.value);
            if pool.service.value != service.value
                && !declared
                && config.services.contains_key(service.value.as_str())
            {
                let share = route_share(route, weight);
                out.push(
                    Diagnostic::error(
                        codes::SERVICE_MISMATCH,
                        format!(
                            "{what} must be answered by service `{}`, but pool `{}` serves `{}`",
                            service, pool.name, pool.service
                        ),
                    )
                    .at(pool_ref.span, format!("pool of service `{}`", pool.service))
                    .with_related(service.span, "the service this route promises")
                    .with_related(pool.service.span, format!("pool `{}` serves this", pool.name))
                    .with_note(format!(
                        "{share} of this route's requests would reach backends of `{}`",
                        pool.service
                    ))
                    .with_help(format!(
                        "send the route to a pool of service `{}`, change the route's service if `{}` really should answer, or declare a migration with also_served_by = [\"{}\"]",
                        service, pool.service, pool.service
                    )),
                );
            }
        }
    }
}

fn route_share(route: &keel_config::Route, weight: u32) -> String {
    let total: u32 = route.target_pools().iter().map(|(_, w)| *w).sum();
    if total == 0 {
        return "none".into();
    }
    format!("{:.0}%", f64::from(weight) * 100.0 / f64::from(total))
}

fn unknown_service(
    config: &Config,
    service: &Located<String>,
    what: &str,
    out: &mut Vec<Diagnostic>,
) {
    if config.services.contains_key(service.value.as_str()) {
        return;
    }
    out.push(
        Diagnostic::error(
            codes::UNKNOWN_REFERENCE,
            format!("{what} names unknown service `{}`", service.value),
        )
        .at(service.span, "no service by this name")
        .with_help(format!(
            "declare [services.{}] (with its identity) or name an existing service{}",
            service.value,
            suggestion(&service.value, config.services.keys().map(String::as_str))
        )),
    );
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{codes as ids, run_lint};
    use super::*;

    fn run(extra: &str) -> Vec<Diagnostic> {
        run_lint(check, extra)
    }

    #[test]
    fn unknown_pools_and_services_are_errors_with_suggestions() {
        let out = run("[[routes]]\nname = \"r\"\nservice = \"wbe\"\npool = \"apii\"\n");
        assert_eq!(
            ids(&out),
            vec![codes::UNKNOWN_REFERENCE, codes::UNKNOWN_REFERENCE]
        );
        assert!(
            out[0]
                .help
                .as_deref()
                .unwrap_or("")
                .contains("did you mean `web`")
        );
        assert!(
            out[1]
                .help
                .as_deref()
                .unwrap_or("")
                .contains("did you mean `api`")
        );
    }

    #[test]
    fn a_split_arm_of_another_service_is_a_mismatch() {
        let out = run(
            "[[routes]]\nname = \"r\"\nservice = \"web\"\nsplit = [{ pool = \"web\", weight = 3 }, { pool = \"api\", weight = 7 }]\n",
        );
        assert_eq!(ids(&out), vec![codes::SERVICE_MISMATCH]);
        assert!(out[0].notes[0].starts_with("70%"), "{:?}", out[0].notes);
    }

    #[test]
    fn matching_services_are_clean() {
        assert!(run("[[routes]]\nname = \"r\"\nservice = \"api\"\npool = \"api\"\n").is_empty());
    }
}
