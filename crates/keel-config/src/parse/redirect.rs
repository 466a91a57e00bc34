//! `redirect = { scheme, host, port, path_prefix, status }` on a `[[routes]]` entry: a
//! route Keel answers with a redirect (types and the `Location` rule in
//! [`crate::redirect`]). Forwarding keys beside it are refused in `routes.rs`, as for
//! `respond`.

use crate::codes;
use crate::defaults as d;
use crate::diagnostic::Diagnostic;
use crate::model::{HostMatch, PathMatch};
use crate::reader::{Sink, Table, span_of};
use crate::redirect::{REDIRECT_STATUSES, Redirect, RedirectScheme};
use crate::span::Located;

/// The keys of a redirect table.
const REDIRECT_KEYS: &[&str] = &["scheme", "host", "port", "path_prefix", "status"];

/// The route keys that forward, which a redirect route cannot have.
pub(super) const FORWARDING_KEYS: &[&str] =
    &["service", "pool", "split", "respond", "rewrite", "upgrades"];

/// Reads `redirect` of a route whose path condition is `path`; `None`: an error was
/// reported.
pub(super) fn redirect(
    sink: &mut Sink,
    table: &Table<'_, '_>,
    path: Option<&Located<PathMatch>>,
) -> Option<Located<Redirect>> {
    let rule = table.table(sink, "redirect", "`redirect`")?;
    let errors = sink.diagnostics.len();
    rule.deny_unknown(sink, REDIRECT_KEYS);
    let status = rule.u32(sink, "status", u32::from(d::REDIRECT_STATUS), 300, 399);
    let status = Located::new(
        u16::try_from(status.value).unwrap_or(d::REDIRECT_STATUS),
        status.span,
    );
    if rule.get("status").is_some() && !REDIRECT_STATUSES.contains(&status.value) {
        sink.invalid(
            status.span,
            format!("a redirect's status cannot be {}", status.value),
            "use 301 or 308 (permanent) or 302 or 307 (temporary); 307 and 308 keep the method and body",
        );
    }
    let scheme =
        rule.string(sink, "scheme")
            .and_then(|text| match RedirectScheme::parse(&text.value) {
                Some(scheme) => Some(Located::new(scheme, text.span)),
                None => {
                    sink.invalid(
                        text.span,
                        format!("unknown redirect scheme `{}`", text.value),
                        "write scheme = \"https\" or scheme = \"http\"",
                    );
                    None
                }
            });
    let host = rule.string(sink, "host").and_then(|text| {
        match super::routes::parse_host_match(&text.value) {
            Ok(Some(HostMatch::Exact(host))) => Some(Located::new(host, text.span)),
            _ => {
                sink.invalid(
                    text.span,
                    format!("`{}` is not a host a redirect can name", text.value),
                    "write one host name without scheme, port, path or wildcard, such as \"www.example.com\"",
                );
                None
            }
        }
    });
    let port = rule.get("port").map(|_| {
        let port = rule.u32(sink, "port", 0, 1, u32::from(u16::MAX));
        Located::new(u16::try_from(port.value).unwrap_or(0), port.span)
    });
    let path_prefix = rule.string(sink, "path_prefix");
    if let Some(prefix) = &path_prefix
        && (!prefix.value.starts_with('/')
            || prefix.value.contains(['?', '#'])
            || !prefix.value.bytes().all(|b| b.is_ascii_graphic()))
    {
        sink.invalid(
            prefix.span,
            format!("bad redirect path prefix `{}`", prefix.value),
            "write a path starting with `/`, without spaces, query or fragment, such as \"/new\"",
        );
    }
    let matched = match path.map(|p| &p.value) {
        None => String::new(),
        Some(PathMatch::Prefix(prefix) | PathMatch::Exact(prefix)) => prefix.clone(),
        Some(PathMatch::Regex(_)) => {
            if let Some(prefix) = &path_prefix {
                sink.invalid(
                    prefix.span,
                    format!("{} matches a path_regex, so a redirect has no prefix to replace", table.what),
                    "match with path_prefix = \"/old\" (or path = \"/old\") to redirect to path_prefix = \"/new\"",
                );
            }
            String::new()
        }
    };
    if scheme.is_none()
        && host.is_none()
        && path_prefix.is_none()
        && ["scheme", "host", "path_prefix"]
            .iter()
            .all(|key| rule.get(key).is_none())
    {
        sink.push(
            Diagnostic::error(codes::MISSING_KEY, "`redirect` changes nothing")
                .at(rule.span, "needs scheme, host or path_prefix")
                .with_help("write redirect = { scheme = \"https\" } (or host = \"www.example.com\", path_prefix = \"/new\")"),
        );
    }
    (sink.diagnostics.len() == errors).then(|| {
        Located::new(
            Redirect {
                status,
                scheme,
                host,
                port,
                path_prefix,
                matched,
            },
            rule.span,
        )
    })
}

/// The error for a forwarding key beside `redirect`, if there is one.
pub(super) fn conflict(table: &Table<'_, '_>) -> Option<Diagnostic> {
    let (key, span) = FORWARDING_KEYS
        .iter()
        .find_map(|key| table.get(key).map(|v| (*key, span_of(v))))?;
    Some(
        Diagnostic::error(
            codes::CONFLICTING_KEYS,
            format!("{} has both `redirect` and `{key}`", table.what),
        )
        .at(span, "a redirected request is not forwarded")
        .with_help("keep redirect = { .. } to send clients elsewhere, or remove it to forward"),
    )
}
