//! K103 (a pool that cannot serve: no backends, or none with weight) and K205 (a pool
//! without active health checks).

use keel_config::{Config, Diagnostic, codes, defaults};

pub(super) fn check(config: &Config, out: &mut Vec<Diagnostic>) {
    for pool in config.pools.values() {
        if pool.backends.is_empty() {
            out.push(
                Diagnostic::error(
                    codes::EMPTY_POOL,
                    format!("pool `{}` has no backends", pool.name),
                )
                .at(pool.name.span, "empty pool")
                .with_note("every request routed here would fail with 503")
                .with_help("add backends = [\"127.0.0.1:9001\"], or remove the pool and the routes that use it"),
            );
        } else if pool.backends.iter().all(|b| b.weight == 0) {
            out.push(
                Diagnostic::error(
                    codes::EMPTY_POOL,
                    format!("pool `{}` has no backend with a weight above zero", pool.name),
                )
                .at(pool.name.span, "no backend can be chosen")
                .with_note("a backend with weight 0 takes no traffic, so every request routed here would fail with 503")
                .with_help("give at least one backend a weight of 1 or more"),
            );
        }
        if pool.health.is_none() {
            out.push(
                Diagnostic::warning(
                    codes::NO_HEALTH_CHECK,
                    format!("pool `{}` has no health check", pool.name),
                )
                .at(pool.name.span, "no active health check")
                .with_note(format!(
                    "a dead or wrong backend keeps getting requests until passive ejection notices {} consecutive failures, and its identity is never probed",
                    pool.outlier.consecutive_failures
                ))
                .with_help(format!(
                    "add health = {{ path = \"{}\" }} (probed every {}s by default)",
                    defaults::HEALTH_PATH,
                    defaults::HEALTH_INTERVAL.as_secs()
                )),
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
    fn pools_without_usable_backends_are_errors() {
        let out = run("[pools.empty]\nservice = \"web\"\nbackends = []\nhealth = {}\n");
        assert_eq!(ids(&out), vec![codes::EMPTY_POOL]);
        let out = run(
            "[pools.zero]\nservice = \"web\"\nbackends = [{ addr = \"127.0.0.1:1\", weight = 0 }]\nhealth = {}\n",
        );
        assert_eq!(ids(&out), vec![codes::EMPTY_POOL]);
    }

    #[test]
    fn pools_without_health_checks_are_warnings() {
        let out = run("[pools.blind]\nservice = \"web\"\nbackends = [\"127.0.0.1:9003\"]\n");
        assert_eq!(ids(&out), vec![codes::NO_HEALTH_CHECK]);
        assert!(run("").is_empty());
    }
}
