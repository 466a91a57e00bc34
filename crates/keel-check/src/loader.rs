//! The one loader: `keel check`, `keel serve` and `POST /apply` all turn text into a
//! usable config through [`load`], so no caller can skip a check.
//!
//! ```text
//! source ─parse─▶ K0xx ─┬─ errors ─▶ stop (semantic checks skipped, K302)
//!                       └─ clean ──▶ lints K1xx/K2xx ─┬─ unknown references ─▶ stop (K302)
//!                                                     └─ RouteTable ─▶ shadowing, catch-all,
//!                                                                      route tests, intents
//! ```
//!
//! Errors come in two kinds. *Hard* errors ([`is_hard`]) mean the config cannot be
//! compiled or served at all; *policy* errors mean it can be served but breaks a rule
//! (a route aimed at another service's pool, a failing route test, a broken intent, a
//! misidentified backend). `apply --force` may override policy errors through
//! [`Loaded::config_ignoring_policy`]; nothing overrides a hard error.

use std::sync::Arc;

use keel_config::{Config, Diagnostic, Report, Severity, codes, config_dir, parse};
use keel_route::RouteTable;

use crate::{intents, lints, redirects, refusal_intents, route_tests, shadow};

/// The outcome of loading a config.
#[derive(Debug)]
pub struct Loaded {
    /// The config, only when the report has no error at all.
    pub config: Option<Arc<Config>>,
    /// Every finding, in source order within each stage.
    pub report: Report,
    /// The config when it has no hard error (policy errors allowed).
    servable: Option<Arc<Config>>,
}

impl Loaded {
    /// The config when only policy errors (never hard ones) stand in the way: what
    /// `apply --force` may apply. `None` when any hard error was found.
    pub fn config_ignoring_policy(&self) -> Option<Arc<Config>> {
        self.servable.clone()
    }

    /// True when a hard error makes the config unusable even with `--force`.
    pub fn has_hard_errors(&self) -> bool {
        self.servable.is_none()
    }

    /// The policy errors (those `--force` may override).
    pub fn policy_errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.report
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error && !is_hard(d.code))
    }
}

/// True for error codes that make a config impossible to compile or serve: every parse
/// and type error (`K0xx`), unknown references (K101), empty pools (K103), all-zero
/// splits (K104), listener conflicts (K106), and certificates that cannot be served
/// (unreadable K123, key mismatch K122). Other errors are policy errors.
pub fn is_hard(code: &str) -> bool {
    code.starts_with("K0")
        || matches!(
            code,
            codes::UNKNOWN_REFERENCE
                | codes::EMPTY_POOL
                | codes::ZERO_SPLIT
                | codes::LISTENER_CONFLICT
                | codes::CERT_UNREADABLE
                | codes::CERT_KEY_MISMATCH
        )
}

/// Reads every certificate's files (relative to `config_dir`) into the config, and
/// what each leaf says (`Certificate::facts`, for diffs and the certificate blast
/// radius: a file replaced at the same path is a change). Returns K123 for files that
/// cannot be read; an unparsable leaf is left without facts (the lints report it).
pub fn read_certificates(
    config: &mut keel_config::Config,
    config_dir: &std::path::Path,
) -> Vec<Diagnostic> {
    let findings = keel_config::read_certificate_files(&mut config.certificates, config_dir);
    for certificate in config.certificates.values_mut() {
        certificate.facts = certificate
            .files
            .as_ref()
            .and_then(|files| keel_proxy::tls::leaf_summary(&files.chain_pem).ok())
            .map(|leaf| std::sync::Arc::new(leaf.facts()));
    }
    findings
}

/// Parses, validates and checks a config read from `file`; certificate files are read
/// relative to `file`'s directory.
pub fn load(file: &str, source: &str) -> Loaded {
    load_in(file, source, &config_dir(file))
}

/// [`load`] for a config whose relative certificate paths start at `config_dir`
/// rather than at `file`'s directory: a stored generation (reported as `generation N`)
/// restored at start, whose certificates sit beside the config file `keel serve` names.
pub fn load_in(file: &str, source: &str, config_dir: &std::path::Path) -> Loaded {
    load_pinned(file, source, config_dir, &Pinned::new())
}

/// Certificate bytes a caller already has, by certificate name: a stored generation's
/// pinned copies (`keel-control`'s `pins`), served instead of what the files hold now.
pub type Pinned = std::collections::BTreeMap<String, Arc<keel_config::CertificateFiles>>;

/// [`load_in`] with the certificates named in `pinned` taken from there instead of
/// their files: a stored generation rebuilt with the exact bytes it served. Every other
/// certificate is read from its files; all of them are checked alike.
pub fn load_pinned(
    file: &str,
    source: &str,
    config_dir: &std::path::Path,
    pinned: &Pinned,
) -> Loaded {
    let parsed = parse(source);
    let mut report = Report::new(file, source);
    let parse_failed = parsed.has_errors();
    report.extend(parsed.diagnostics);
    if parse_failed {
        report.push(
            Diagnostic::note(
                codes::SKIPPED,
                "semantic checks skipped: the file has parse or type errors",
            )
            .with_note("references, shadowed routes, route tests and intents are checked once the errors above are fixed"),
        );
        return Loaded {
            config: None,
            report,
            servable: None,
        };
    }
    let mut config = parsed.config;
    for (name, files) in pinned {
        if let Some(certificate) = config.certificates.get_mut(name) {
            certificate.files = Some(Arc::clone(files));
        }
    }
    // Certificate files are read once, here: the generation keeps these bytes, so it
    // serves exactly what was checked (paths are relative to the config file).
    let mut findings = read_certificates(&mut config, config_dir);
    // DNS backends become one backend per address here, for the same reason.
    let resolvers = config.server.resolvers.clone();
    findings.extend(keel_config::expand_dns_backends(
        &mut config.pools,
        &resolvers,
    ));
    findings.extend(keel_config::backend_tls::read_backend_tls_files(
        &mut config.pools,
        config_dir,
    ));
    findings.extend(lints::structural(&config));
    let table = if findings.iter().any(|d| d.code == codes::UNKNOWN_REFERENCE) {
        findings.push(
            Diagnostic::note(
                codes::SKIPPED,
                "route analysis skipped: some routes name unknown pools or services",
            )
            .with_note("shadowed routes, the catch-all check, route tests and intents need a routing table, which cannot be built until every reference resolves"),
        );
        None
    } else {
        match RouteTable::compile(&config) {
            Ok(table) => Some(table),
            Err(error) => {
                findings.push(Diagnostic::error(
                    codes::UNKNOWN_REFERENCE,
                    error.to_string(),
                ));
                None
            }
        }
    };
    if let Some(table) = &table {
        // Read the routes once for every table-based stage.
        let analyzer = shadow::Analyzer::for_config(&config, table);
        let analysis = shadow::analyze_with(&analyzer, shadow::MAX_TOTAL_WORK);
        findings.extend(shadow::diagnostics(
            &config,
            &redirects::forgive_shadows(&config, table, analysis),
        ));
        findings.extend(redirects::loop_diagnostics(&config, table));
        findings.extend(shadow::catch_all_diagnostic(
            &config,
            &shadow::catch_all_with(&analyzer),
        ));
        findings.extend(route_tests::diagnostics(&config, table));
        findings.extend(intents::diagnostics_with(&config, &analyzer));
        findings.extend(refusal_intents::diagnostics_with(&config, &analyzer));
    }
    findings.sort_by_key(|d| d.span.map_or(usize::MAX, |s| s.start));
    report.extend(findings);

    let hard = report
        .diagnostics
        .iter()
        .any(|d| d.severity == Severity::Error && is_hard(d.code));
    let config = Arc::new(config);
    Loaded {
        config: (!report.has_errors()).then(|| Arc::clone(&config)),
        servable: (!hard).then_some(config),
        report,
    }
}

/// The report of [`load`], for callers that only print it.
pub fn check(file: &str, source: &str) -> Report {
    load(file, source).report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_and_policy_codes() {
        for code in ["K001", "K006", "K101", "K103", "K104", "K106"] {
            assert!(is_hard(code), "{code}");
        }
        for code in ["K102", "K105", "K107", "K108", "K109", "K201"] {
            assert!(!is_hard(code), "{code}");
        }
    }

    #[test]
    fn parse_errors_skip_semantic_checks() {
        let loaded = load("k.toml", "[listeners.web]\naddr = 5\n");
        assert!(loaded.config.is_none());
        assert!(loaded.has_hard_errors());
        assert_eq!(
            loaded.report.diagnostics.last().map(|d| d.code),
            Some(codes::SKIPPED)
        );
    }
}
