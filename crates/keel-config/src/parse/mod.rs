//! From TOML text to a validated [`Config`], reporting every problem at once.
//!
//! ```text
//! keel.toml ──toml::de::DeTable (spanned)──▶ Table reader ──▶ Config + Vec<Diagnostic>
//! ```
//!
//! Each section is read on its own; a bad entry is reported and skipped (or given its
//! default), so one typo never hides the next. Semantic lints (references, shadowing,
//! tests) are not here: they live in `keel-check`, which calls this first.

mod certificates;
mod fleet;
mod policies;
pub(crate) mod pools;
mod redirect;
pub(crate) mod routes;
mod sections;
pub(crate) mod tests_intents;

use indexmap::IndexMap;
use toml::de::DeTable;

use crate::codes;
use crate::defaults;
use crate::diagnostic::Diagnostic;
use crate::model::{Admin, Config};
use crate::reader::{Sink, Table, span_of};
use crate::span::{Located, Span};

/// Top-level keys a config may have.
const TOP_LEVEL_KEYS: &[&str] = &[
    "listeners",
    "certificates",
    "admin",
    "services",
    "pools",
    "routes",
    "tests",
    "intents",
    "safety",
    "detectors",
    "alerts",
    "access_log",
    "server",
    "traffic",
    "fleet",
];

/// The outcome of parsing: the config as far as it could be read, and every finding.
///
/// When `diagnostics` holds an error, `config` is incomplete (bad entries were skipped)
/// and must not be served; it is returned so later stages can still be tried in tests.
#[derive(Debug)]
pub struct Parsed {
    /// The config, with bad entries skipped.
    pub config: Config,
    /// Every parse and type error, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    /// True when parsing found an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == crate::Severity::Error)
    }
}

/// Parses and type-checks a config source.
pub fn parse(source: &str) -> Parsed {
    let mut sink = Sink::default();
    let (document, syntax_errors) = DeTable::parse_recoverable(source);
    for error in syntax_errors {
        let span = error.span().map_or(Span::new(0, 0), Span::from);
        sink.push(
            Diagnostic::error(
                codes::SYNTAX,
                format!("invalid TOML: {}", error.message().trim()),
            )
            .at(span, "here")
            .with_help("fix the TOML syntax; see docs/config.md for the expected shape"),
        );
    }
    let root = Table::root(document.get_ref(), span_of(&document));
    root.deny_unknown(&mut sink, TOP_LEVEL_KEYS);

    let listeners = sections::listeners(&mut sink, &root);
    let certificates = certificates::certificates(&mut sink, &root);
    let admin = sections::admin(&mut sink, &root);
    let services = pools::services(&mut sink, &root);
    let pools = pools::pools(&mut sink, &root);
    let routes = routes::routes(&mut sink, &root);
    let tests = tests_intents::tests(&mut sink, &root);
    let intents = tests_intents::intents(&mut sink, &root);
    let safety = sections::safety(&mut sink, &root);
    let detectors = sections::detectors(&mut sink, &root);
    let alerts = sections::alerts(&mut sink, &root);
    let access_log = sections::access_log(&mut sink, &root);
    let server = sections::server(&mut sink, &root);
    let traffic = sections::traffic(&mut sink, &root);
    let fleet = fleet::fleet(&mut sink, &root);

    let mut diagnostics = sink.diagnostics;
    diagnostics.sort_by_key(|d| d.span.map_or(usize::MAX, |s| s.start));
    Parsed {
        config: Config {
            listeners,
            certificates,
            admin: admin.unwrap_or_else(default_admin),
            services,
            pools,
            routes,
            tests,
            intents,
            safety,
            detectors,
            alerts,
            access_log,
            server,
            traffic,
            fleet,
        },
        diagnostics,
    }
}

fn default_admin() -> Admin {
    let addr = defaults::ADMIN_ADDR
        .parse()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 9901)));
    Admin {
        addr: Located::new(addr, Span::default()),
        metrics_require_token: defaults::METRICS_REQUIRE_TOKEN,
        read_token: None,
    }
}

/// Reads a `[section.NAME]` map of tables in file order, reporting non-tables.
pub(crate) fn named_tables<'a, 'i, T>(
    sink: &mut Sink,
    root: &Table<'a, 'i>,
    section: &str,
    singular: &str,
    mut read: impl FnMut(&mut Sink, Located<String>, Table<'a, 'i>) -> Option<T>,
) -> IndexMap<String, T> {
    let mut out = IndexMap::new();
    let Some(table) = root.table(sink, section, format!("[{section}]")) else {
        return out;
    };
    for (name, name_span, value) in table.entries() {
        if !valid_name(name) {
            sink.invalid(
                name_span,
                format!("bad {singular} name `{name}`"),
                "use letters, digits, `-`, `_` and `.` only",
            );
            continue;
        }
        let Some(entry) = Table::from_value(sink, value, name, format!("{singular} `{name}`"))
        else {
            continue;
        };
        if let Some(item) = read(sink, Located::new(name.to_string(), name_span), entry) {
            out.insert(name.to_string(), item);
        }
    }
    out
}

/// Names of listeners, services, pools and routes: printable, shell- and URL-safe.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Valid HTTP header name characters (RFC 9110 token).
pub(crate) fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
