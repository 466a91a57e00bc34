//! `[certificates.NAME]` (a chain and a key, as files) and a listener's `tls` table.
//!
//! Only the shape is checked here: that names, paths and versions are well formed and
//! that a listener's `default` is one of its `certificates`. Whether the files exist,
//! parse, match and cover the routes' hosts is `keel-check`'s (lints on certificates).

use indexmap::IndexMap;

use super::named_tables;
use crate::acme::parse_acme;
use crate::codes;
use crate::defaults as d;
use crate::diagnostic::Diagnostic;
use crate::reader::{Sink, Table, span_of};
use crate::span::Located;
use crate::tls::{Certificate, Hsts, ListenerTls, TlsVersion};

/// Reads `[certificates.NAME]` tables in file order.
pub(super) fn certificates(sink: &mut Sink, root: &Table<'_, '_>) -> IndexMap<String, Certificate> {
    named_tables(
        sink,
        root,
        "certificates",
        "certificate",
        |sink, name, table| {
            table.deny_unknown(sink, &["cert", "key", "acme"]);
            if table.get("acme").is_some() {
                return acme_certificate(sink, &table, name);
            }
            let cert = file(sink, &table, "cert", "the PEM chain, leaf first");
            let key = file(sink, &table, "key", "the PEM private key");
            Some(Certificate {
                name,
                span: table.span,
                cert: cert?,
                key: key?,
                files: None,
                facts: None,
                acme: None,
            })
        },
    )
}

/// A certificate obtained by ACME: no files of its own (see [`crate::acme`]).
fn acme_certificate(
    sink: &mut Sink,
    table: &Table<'_, '_>,
    name: Located<String>,
) -> Option<Certificate> {
    for key in ["cert", "key"] {
        if let Some(value) = table.get(key) {
            sink.invalid(
                span_of(value),
                format!("`{key}` and `acme` exclude each other"),
                "remove `cert` and `key`: Keel keeps what ACME issues in its state directory",
            );
        }
    }
    let acme = parse_acme(sink, table)?;
    // What the certificate's `cert`/`key` say for an ACME one: where the state
    // directory keeps them (for `keel diff` and messages; never read from here).
    let stored =
        |file: &str| Located::new(format!("<state-dir>/acme/{}/{file}", name.value), acme.span);
    Some(Certificate {
        span: table.span,
        cert: stored("cert.pem"),
        key: stored("key.pem"),
        files: None,
        acme: Some(acme),
        facts: None,
        name,
    })
}

/// A required, non-empty file path.
fn file(sink: &mut Sink, table: &Table<'_, '_>, key: &str, what: &str) -> Option<Located<String>> {
    let help = format!("add {key} = \"certs/NAME.pem\" ({what}, relative to the config file)");
    let path = table.required_string(sink, key, &help)?;
    if path.value.trim().is_empty() {
        sink.invalid(path.span, format!("`{key}` is empty"), help);
        return None;
    }
    Some(path)
}

/// Reads a listener's optional `tls = { certificates, default, min_version }`.
pub(super) fn listener_tls(sink: &mut Sink, listener: &Table<'_, '_>) -> Option<ListenerTls> {
    let table = listener.table(sink, "tls", "the listener's `tls` table")?;
    table.deny_unknown(sink, &["certificates", "default", "min_version", "hsts"]);
    let mut certificates: Vec<Located<String>> = Vec::new();
    match table.array(sink, "certificates") {
        Some((items, span)) => {
            for item in items {
                match item.get_ref().as_str() {
                    Some(name) if certificates.iter().any(|c| c.value == name) => {
                        sink.push(
                            Diagnostic::error(
                                codes::DUPLICATE_NAME,
                                format!("certificate `{name}` is listed twice"),
                            )
                            .at(span_of(item), "listed again here")
                            .with_help("list each certificate once"),
                        );
                    }
                    Some(name) => certificates.push(Located::new(name.to_string(), span_of(item))),
                    None => sink.invalid(
                        span_of(item),
                        "a certificate is named by a string",
                        "write certificates = [\"shop\", \"api\"]",
                    ),
                }
            }
            if certificates.is_empty() {
                sink.invalid(
                    span,
                    "a TLS listener needs at least one certificate",
                    "write certificates = [\"shop\"] naming a [certificates.shop] table",
                );
                return None;
            }
        }
        None => {
            if table.get("certificates").is_none() {
                sink.push(
                    Diagnostic::error(
                        codes::MISSING_KEY,
                        "the `tls` table is missing `certificates`",
                    )
                    .at(table.span, "`certificates` is required here")
                    .with_help("add certificates = [\"shop\"] naming a [certificates.shop] table"),
                );
            }
            return None;
        }
    }
    let default = match table.string(sink, "default") {
        Some(default) if certificates.iter().any(|c| c.value == default.value) => default,
        Some(default) => {
            sink.invalid(
                default.span,
                format!(
                    "the default certificate `{}` is not among this listener's certificates",
                    default.value
                ),
                "name one of `certificates` as the default, or add it to them",
            );
            return None;
        }
        // One certificate is its own default; with more, a client without SNI must
        // get a certificate someone chose.
        None if certificates.len() == 1 => certificates[0].clone(),
        None => {
            sink.push(
                Diagnostic::error(codes::MISSING_KEY, "the `tls` table is missing `default`")
                    .at(
                        table.span,
                        "`default` is required with more than one certificate",
                    )
                    .with_help(format!(
                        "add default = \"{}\": the certificate for clients without SNI",
                        certificates[0].value
                    )),
            );
            return None;
        }
    };
    let min_version = match table.string(sink, "min_version") {
        None => Located::new(TlsVersion::Tls12, table.span),
        Some(text) => match text.value.as_str() {
            "1.2" => Located::new(TlsVersion::Tls12, text.span),
            "1.3" => Located::new(TlsVersion::Tls13, text.span),
            "1.0" | "1.1" => {
                sink.invalid(
                    text.span,
                    format!("TLS {} is broken and not offered", text.value),
                    format!("use min_version = \"{}\" or \"1.3\"", d::TLS_MIN_VERSION),
                );
                return None;
            }
            other => {
                sink.invalid(
                    text.span,
                    format!("unknown TLS version `{other}`"),
                    "write min_version = \"1.2\" or \"1.3\"",
                );
                return None;
            }
        },
    };
    let hsts = match table.get("hsts") {
        None => None,
        Some(_) => Some(hsts(sink, &table)?),
    };
    Some(ListenerTls {
        span: table.span,
        certificates,
        default,
        min_version,
        hsts,
    })
}

/// `hsts = { max_age = "8760h", include_subdomains = true, preload = false }`.
fn hsts(sink: &mut Sink, tls: &Table<'_, '_>) -> Option<Located<Hsts>> {
    let table = tls.table(sink, "hsts", "the listener's `hsts` table")?;
    table.deny_unknown(sink, &["max_age", "include_subdomains", "preload"]);
    let max_age = table.duration(sink, "max_age", d::HSTS_MAX_AGE);
    if max_age.value.as_secs() == 0 && !max_age.value.is_zero() {
        sink.invalid(
            max_age.span,
            "HSTS counts max_age in whole seconds",
            "write a duration of at least \"1s\" (\"0s\" tells browsers to forget the rule)",
        );
        return None;
    }
    let include_subdomains = table.bool(sink, "include_subdomains", false);
    let preload = table.bool(sink, "preload", false);
    Some(Located::new(
        Hsts {
            max_age: max_age.value,
            include_subdomains,
            preload,
        },
        table.span,
    ))
}
