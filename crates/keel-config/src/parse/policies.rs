//! The policy keys of a `[[routes]]` entry: `allow = [..]` / `deny = [..]` (client
//! address blocks) and `request_headers` / `response_headers` (`{ set, remove }`).
//! Types live in [`crate::policy`].

use super::valid_header_name;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::policy::{
    Access, AccessMode, Cidr, HeaderRules, KEEL_REQUEST_HEADERS, KEEL_RESPONSE_HEADERS,
};
use crate::reader::{Sink, Table, span_of, wrong_type};
use crate::span::{Located, Span};

/// The route keys this module reads.
pub(super) const POLICY_KEYS: &[&str] = &["allow", "deny", "request_headers", "response_headers"];

/// The keys of a header rule table.
const HEADER_RULE_KEYS: &[&str] = &["set", "remove"];

/// Which way a header rule applies.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// `request_headers`: on the request Keel forwards.
    Request,
    /// `response_headers`: on the answer the client gets.
    Response,
}

impl Direction {
    fn key(self) -> &'static str {
        match self {
            Direction::Request => "request_headers",
            Direction::Response => "response_headers",
        }
    }
}

/// A header value Keel can send: visible ASCII, spaces and tabs, no line break, no
/// leading or trailing whitespace (which HTTP would strip or reject).
fn valid_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        && value.trim() == value
}

/// `Some(None)`: no rules; `None`: an error was reported.
pub(super) fn header_rules(
    sink: &mut Sink,
    table: &Table<'_, '_>,
    direction: Direction,
) -> Option<Option<Located<HeaderRules>>> {
    let key = direction.key();
    let Some(rules) = table.table(sink, key, format!("`{key}`")) else {
        return if table.get(key).is_some() {
            None
        } else {
            Some(None)
        };
    };
    rules.deny_unknown(sink, HEADER_RULE_KEYS);
    let mut ok = true;
    let mut out = HeaderRules::default();
    let name_ok = |sink: &mut Sink, name: &str, span, verb: &str| {
        if !valid_header_name(name) {
            sink.invalid(
                span,
                format!("bad header name `{name}` in `{key}`"),
                "use a plain HTTP header name such as \"x-shop\"",
            );
            return false;
        }
        let lower = name.to_ascii_lowercase();
        let (own, why) = match direction {
            Direction::Request => (
                KEEL_REQUEST_HEADERS,
                "Keel writes host, x-request-id and x-forwarded-* itself: routing, logs and backends rely on them",
            ),
            Direction::Response => (
                KEEL_RESPONSE_HEADERS,
                "Keel writes keel-error and x-keel-generation itself: clients, tests and post-mortems rely on them",
            ),
        };
        if own.contains(&lower.as_str()) {
            let side = match direction {
                Direction::Request => "request",
                Direction::Response => "response",
            };
            sink.invalid(span, format!("a {side} rule cannot {verb} `{lower}`"), why);
            return false;
        }
        true
    };
    if let Some(set) = rules.table(sink, "set", format!("`{key}.set`")) {
        for (name, name_span, value) in set.entries() {
            if !name_ok(sink, name, name_span, "set") {
                ok = false;
                continue;
            }
            let Some(text) = value.get_ref().as_str() else {
                wrong_type(sink, value, name, "a string (the header's value)");
                ok = false;
                continue;
            };
            if !valid_header_value(text) {
                sink.invalid(
                    span_of(value),
                    format!("bad value for header `{name}`"),
                    "write visible ASCII characters and spaces, without line breaks or surrounding spaces",
                );
                ok = false;
                continue;
            }
            let lower = name.to_ascii_lowercase();
            out.set.retain(|h| h.value.0 != lower);
            out.set.push(Located::new(
                (lower, text.to_string()),
                Span::new(name_span.start, span_of(value).end),
            ));
        }
    } else if rules.get("set").is_some() {
        ok = false;
    }
    if let Some((items, _)) = rules.array(sink, "remove") {
        for item in items {
            let Some(name) = item.get_ref().as_str() else {
                wrong_type(sink, item, "remove", "a header name");
                ok = false;
                continue;
            };
            if !name_ok(sink, name, span_of(item), "remove") {
                ok = false;
                continue;
            }
            let lower = name.to_ascii_lowercase();
            if !out.remove.iter().any(|r| r.value == lower) {
                out.remove.push(Located::new(lower, span_of(item)));
            }
        }
    } else if rules.get("remove").is_some() {
        ok = false;
    }
    ok.then_some(Some(Located::new(out, rules.span)))
}

/// `Some(None)`: no address rule; `None`: an error was reported.
pub(super) fn access(sink: &mut Sink, table: &Table<'_, '_>) -> Option<Option<Located<Access>>> {
    let (mode, key) = match (table.get("allow"), table.get("deny")) {
        (Some(_), Some(deny)) => {
            sink.push(
                Diagnostic::error(
                    codes::CONFLICTING_KEYS,
                    format!("{} has both `allow` and `deny`", table.what),
                )
                .at(span_of(deny), "second address rule")
                .with_help(
                    "keep one list: allow = [...] serves only those clients, deny = [...] refuses only those",
                ),
            );
            return None;
        }
        (Some(_), None) => (AccessMode::Allow, "allow"),
        (None, Some(_)) => (AccessMode::Deny, "deny"),
        (None, None) => return Some(None),
    };
    let (items, span) = table.array(sink, key)?;
    let mut blocks: Vec<Located<Cidr>> = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        let Some(text) = item.get_ref().as_str() else {
            wrong_type(sink, item, key, "an address block such as \"10.0.0.0/8\"");
            ok = false;
            continue;
        };
        match Cidr::parse(text) {
            Ok(block) => {
                if !blocks.iter().any(|b| b.value == block) {
                    blocks.push(Located::new(block, span_of(item)));
                }
            }
            Err(reason) => {
                sink.invalid(
                    span_of(item),
                    format!("bad address block in `{key}`: {reason}"),
                    "write an address block such as \"10.0.0.0/8\", \"2001:db8::/32\" or one address \"192.0.2.7\"",
                );
                ok = false;
            }
        }
    }
    ok.then_some(Some(Located::new(Access { mode, blocks }, span)))
}
