//! Lints that read the config alone (no routing table): references, pools, services,
//! splits, listeners, the admin API's address, per-route settings, route policies and redirects. Each file owns a few lint ids and their
//! unit tests; [`structural`] runs them all.

mod admin;
mod certificates;
mod listeners;
mod policies;
mod pools;
mod protocols;
mod redirects;
mod references;
mod routes;
mod services;
mod splits;

use keel_config::{Config, Diagnostic};

/// Every table-free lint over `config`, in a stable order.
pub(crate) fn structural(config: &Config) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    references::check(config, &mut out);
    pools::check(config, &mut out);
    services::check(config, &mut out);
    splits::check(config, &mut out);
    listeners::check(config, &mut out);
    admin::check(config, &mut out);
    routes::check(config, &mut out);
    certificates::check(config, &mut out);
    policies::check(config, &mut out);
    protocols::check(config, &mut out);
    redirects::check(config, &mut out);
    out
}

/// "did you mean `x`?" for a misspelt name, when one name is close (at most two
/// edits, transpositions included, and shorter than the name itself).
pub(crate) fn suggestion<'a>(wrong: &str, names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|name| (strsim::osa_distance(wrong, name), name))
        .filter(|(distance, name)| *distance <= 2 && *distance < name.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| format!(" (did you mean `{name}`?)"))
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Parses a snippet and runs the structural lints over it.
    use keel_config::{Config, Diagnostic};

    /// A listener, two services with identities, and a pool for each, before `extra`.
    pub(crate) const BASE: &str = r#"
[listeners.web]
addr = "127.0.0.1:8080"
[services.web]
identity = { header = "x-service", equals = "web" }
[services.api]
identity = { header = "x-service", equals = "api" }
[pools.web]
service = "web"
backends = ["127.0.0.1:9001"]
health = { path = "/healthz" }
[pools.api]
service = "api"
backends = ["127.0.0.1:9002"]
health = { path = "/healthz" }
"#;

    pub(crate) fn config(extra: &str) -> Config {
        let parsed = keel_config::parse(&format!("{BASE}{extra}"));
        assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
        parsed.config
    }

    /// Runs one lint over `BASE` plus `extra`.
    pub(crate) fn run_lint(
        lint: fn(&Config, &mut Vec<Diagnostic>),
        extra: &str,
    ) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        lint(&config(extra), &mut out);
        out
    }

    pub(crate) fn codes(diagnostics: &[Diagnostic]) -> Vec<&'static str> {
        diagnostics.iter().map(|d| d.code).collect()
    }
}
