//! Keel's configuration: the TOML file model, validation into typed values, and
//! diagnostics with positions.
//!
//! ```text
//! keel.toml ──parse()──▶ Parsed { Config, Vec<Diagnostic> } ──keel-check──▶ Report
//! ```
//!
//! [`parse`] reads the whole file and reports every parse and type error at once, each
//! with its span; [`Report`] renders findings for people (`file:line:col`, snippet,
//! caret, fix) and as JSON. Defaults live in [`defaults`], lint ids in [`codes`].

mod acme;
pub mod backend_tls;
pub mod codes;
pub mod defaults;
mod diagnostic;
pub mod diff;
mod dns;
mod dns_srv;
mod duration;
mod fleet;
mod model;
mod parse;
mod policy;
mod reader;
mod redirect;
mod span;
mod tls;

pub use acme::{AcmeCertificate, AcmeChallenge, AcmeMaterial, install_acme_material};
pub use diagnostic::{Diagnostic, Report, Severity};
pub use diff::{ConfigDiff, describe_config, semantic_diff};
pub use dns::{
    DnsAddresses, DnsBackend, DnsRecord, DnsTarget, expand_dns_backends, install_dns_addresses,
};
pub use dns_srv::{MAX_SRV_SERVICE_LEN, srv_name_problem};
pub use duration::{DurationError, format_duration, parse_duration};
pub use fleet::{Fleet, FleetStoreKind, NODE_KEYS, Rollout, RolloutThen};
pub use model::*;
pub use parse::pools::parse_hash_key;
pub use parse::routes::parse_host_match;
pub use parse::tests_intents::{RequestLine, parse_request_line, strip_port};
pub use parse::{Parsed, parse};
pub use policy::{
    Access, AccessMode, Cidr, ContentCoding, FixedAnswer, HeaderRules, KEEL_REQUEST_HEADERS,
    KEEL_RESPONSE_HEADERS, RateKey, RateLimit, Rewrite,
};
pub use redirect::{REDIRECT_STATUSES, Redirect, RedirectRequest, RedirectScheme};
pub use span::{Located, Span, line_col};
pub use tls::{
    Certificate, CertificateFacts, CertificateFiles, Hsts, ListenerTls, MAX_CERTIFICATE_FILE_BYTES,
    TlsVersion, config_dir, read_certificate_files,
};
