//! K104 (a split whose weights are all zero) and K209 (a route sending most of its
//! traffic to pools marked `draining` or `legacy`).

use keel_config::{Config, Diagnostic, Target, codes};

/// Share of a route's traffic to retired pools above which K209 fires (0.5 = 50 %).
const RETIRED_SHARE_LIMIT: f64 = 0.5;

pub(super) fn check(config: &Config, out: &mut Vec<Diagnostic>) {
    for route in &config.routes {
        let Some(target) = route.target() else {
            continue;
        };
        let arms = target.value.pools();
        let total: u32 = arms.iter().map(|(_, w)| *w).sum();
        if total == 0 {
            if let Target::Split(_) = target.value {
                out.push(
                    Diagnostic::error(
                        codes::ZERO_SPLIT,
                        format!(
                            "route `{}` splits with weights that are all zero",
                            route.name
                        ),
                    )
                    .at(target.span, "no arm can be chosen")
                    .with_help("give at least one arm a weight above zero"),
                );
            }
            continue;
        }
        let mut retired_share = 0.0;
        let mut retired = Vec::new();
        for (pool_ref, weight) in &arms {
            let Some(pool) = config.pools.get(pool_ref.value.as_str()) else {
                continue;
            };
            if (pool.draining || pool.legacy) && *weight > 0 {
                retired_share += f64::from(*weight) / f64::from(total);
                let mark = if pool.draining { "draining" } else { "legacy" };
                retired.push((pool.name.value.as_str(), mark, pool_ref.span));
            }
        }
        if retired_share > RETIRED_SHARE_LIMIT {
            let names: Vec<String> = retired
                .iter()
                .map(|(pool, mark, _)| format!("{mark} pool `{pool}`"))
                .collect();
            let mut diagnostic = Diagnostic::warning(
                codes::SPLIT_TO_RETIRED_POOL,
                format!(
                    "route `{}` sends {:.0}% of its traffic to {}",
                    route.name,
                    retired_share * 100.0,
                    names.join(" and ")
                ),
            )
            .at(target.span, "most traffic goes to a retired pool")
            .with_help("shift the weights toward the current pool, or clear the draining/legacy mark if the pool is in service again");
            for (pool, mark, span) in &retired {
                diagnostic = diagnostic.with_related(*span, format!("`{pool}` is marked {mark}"));
            }
            out.push(diagnostic);
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

    const OLD: &str = "[pools.old]\nservice = \"web\"\nbackends = [\"127.0.0.1:9009\"]\nhealth = {}\nlegacy = true\n";

    #[test]
    fn all_zero_weights_are_an_error() {
        let out = run(
            "[[routes]]\nname = \"r\"\nservice = \"web\"\nsplit = [{ pool = \"web\", weight = 0 }]\n",
        );
        assert_eq!(ids(&out), vec![codes::ZERO_SPLIT]);
    }

    #[test]
    fn most_traffic_to_a_legacy_pool_is_a_warning() {
        let split = |old: u32, new: u32| {
            format!(
                "{OLD}[[routes]]\nname = \"r\"\nservice = \"web\"\nsplit = [{{ pool = \"old\", weight = {old} }}, {{ pool = \"web\", weight = {new} }}]\n"
            )
        };
        let out = run(&split(70, 30));
        assert_eq!(ids(&out), vec![codes::SPLIT_TO_RETIRED_POOL]);
        assert!(out[0].message.contains("70%"), "{}", out[0].message);
        assert!(run(&split(50, 50)).is_empty(), "exactly half is not most");
    }
}
