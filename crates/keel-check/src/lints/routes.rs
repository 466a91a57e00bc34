//! Per-route settings: K206 (retries on a route that allows non-idempotent methods),
//! K207 (a route timeout shorter than a pool's connect timeout) and K211 (a route for
//! `CONNECT`, which never reaches routing).

use keel_config::{Config, Diagnostic, Route, Span, codes, format_duration};
use keel_route::is_idempotent;

/// Where to point at a route setting: the value if written, else the route's name.
fn setting_span(route: &Route, span: Span) -> Span {
    if span == route.span {
        route.name.span
    } else {
        span
    }
}

pub(super) fn check(config: &Config, out: &mut Vec<Diagnostic>) {
    for route in &config.routes {
        unsafe_retries(route, out);
        short_timeout(config, route, out);
        connect_method(route, out);
    }
}

fn connect_method(route: &Route, out: &mut Vec<Diagnostic>) {
    let Some(methods) = &route.methods else {
        return;
    };
    if !methods.value.iter().any(|m| m == "CONNECT") {
        return;
    }
    out.push(
        Diagnostic::warning(
            codes::CONNECT_ROUTE,
            format!("route `{}` lists CONNECT, which Keel never routes", route.name),
        )
        .at(methods.span, "CONNECT is answered before routing")
        .with_note("Keel opens no tunnels: every CONNECT request gets `501 not-implemented` before any route is matched")
        .with_help("remove CONNECT from `methods`; tunnels need a TCP proxy in front of the backend"),
    );
}

fn unsafe_retries(route: &Route, out: &mut Vec<Diagnostic>) {
    let retries = route.retries.value;
    // Only a retry count someone wrote: the default is safe for every method, since the
    // data plane re-sends a non-idempotent request only when it never reached a
    // backend, and warning on it would flag every catch-all route.
    let written = route.retries.span != route.span;
    if retries == 0 || !written {
        return;
    }
    let allowed = match &route.methods {
        None => "every method".to_string(),
        Some(methods) => {
            let unsafe_methods: Vec<&str> = methods
                .value
                .iter()
                .map(String::as_str)
                .filter(|m| !is_idempotent(m))
                .collect();
            if unsafe_methods.is_empty() {
                return;
            }
            unsafe_methods.join(", ")
        }
    };
    out.push(
        Diagnostic::warning(
            codes::UNSAFE_RETRIES,
            format!(
                "route `{}` retries up to {retries} time{} but allows {allowed}",
                route.name,
                if retries == 1 { "" } else { "s" }
            ),
        )
        .at(setting_span(route, route.retries.span), "retries on non-idempotent methods")
        .with_note("Keel retries a non-idempotent request (POST, PATCH, …) only when it never reached a backend (the connection failed); one that timed out or got a 5xx is not retried, since the backend may have acted on it")
        .with_note("so this route's retry budget does not protect those requests the way it protects GETs")
        .with_help("set retries = 0 if that is intended, or split the route by method so idempotent requests keep their retries and the rest are explicit"),
    );
}

fn short_timeout(config: &Config, route: &Route, out: &mut Vec<Diagnostic>) {
    for (pool_ref, _) in route.target_pools() {
        let Some(pool) = config.pools.get(pool_ref.value.as_str()) else {
            continue;
        };
        let connect = pool.connect_timeout.value;
        if route.timeout.value >= connect {
            continue;
        }
        out.push(
            Diagnostic::warning(
                codes::TIMEOUT_BELOW_CONNECT,
                format!(
                    "route `{}` times out after {}, before pool `{}` may even finish connecting ({})",
                    route.name,
                    format_duration(route.timeout.value),
                    pool.name,
                    format_duration(connect)
                ),
            )
            .at(setting_span(route, route.timeout.span), "shorter than the connect timeout")
            .with_related(
                if pool.connect_timeout.span == pool.span { pool.name.span } else { pool.connect_timeout.span },
                "connect timeout of the pool",
            )
            .with_note("a slow connect uses the whole route budget: the request fails with 504 and no retry can start")
            .with_help("raise the route timeout above the connect timeout, or lower the pool's connect_timeout"),
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
    fn retries_on_post_or_any_method_warn() {
        let route = |extra: &str| {
            format!("[[routes]]\nname = \"r\"\nservice = \"web\"\npool = \"web\"\n{extra}\n")
        };
        assert_eq!(
            ids(&run(&route("retries = 2"))),
            vec![codes::UNSAFE_RETRIES]
        );
        assert_eq!(
            ids(&run(&route("methods = [\"GET\", \"POST\"]\nretries = 1"))),
            vec![codes::UNSAFE_RETRIES]
        );
        assert!(
            run(&route("")).is_empty(),
            "the default retry count is safe"
        );
        assert!(run(&route("methods = [\"GET\", \"PUT\"]")).is_empty());
        assert_eq!(
            ids(&run(&route("methods = [\"GET\", \"CONNECT\"]"))),
            vec![codes::CONNECT_ROUTE]
        );
        assert!(run(&route("retries = 0")).is_empty());
    }

    #[test]
    fn a_timeout_below_the_connect_timeout_warns() {
        let out = run(
            "[pools.slow]\nservice = \"web\"\nbackends = [\"127.0.0.1:9005\"]\nhealth = {}\nconnect_timeout = \"2s\"\n[[routes]]\nname = \"r\"\nservice = \"web\"\npool = \"slow\"\ntimeout = \"500ms\"\nretries = 0\n",
        );
        assert_eq!(ids(&out), vec![codes::TIMEOUT_BELOW_CONNECT]);
        assert!(out[0].message.contains("500ms"), "{}", out[0].message);
    }
}
