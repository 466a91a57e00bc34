//! The policy keys of a `[[routes]]` entry: `allow = [..]` / `deny = [..]` (client
//! address blocks), `request_headers` / `response_headers` (`{ set, remove }`),
//! `respond = { status, body, content_type }`, `rewrite = { path_prefix }`,
//! `rate_limit = { .. }` and `compress = ["gzip", "br"]`.
//! Types live in [`crate::policy`].

use super::valid_header_name;
use crate::codes;
use crate::defaults as d;
use crate::diagnostic::Diagnostic;
use crate::model::PathMatch;
use crate::policy::{
    Access, AccessMode, Cidr, ContentCoding, FixedAnswer, HeaderRules, KEEL_REQUEST_HEADERS,
    KEEL_RESPONSE_HEADERS, RateKey, RateLimit, Rewrite,
};
use crate::reader::{Sink, Table, span_of, wrong_type};
use crate::span::{Located, Span};

/// The route keys this module reads.
pub(super) const POLICY_KEYS: &[&str] = &[
    "allow",
    "deny",
    "request_headers",
    "response_headers",
    "respond",
    "rewrite",
    "rate_limit",
    "compress",
];

/// The keys of a rate limit table.
const RATE_LIMIT_KEYS: &[&str] = &["requests", "per", "burst", "key"];

/// The keys of a fixed answer table.
const FIXED_ANSWER_KEYS: &[&str] = &["status", "body", "content_type"];

/// The keys of a rewrite table.
const REWRITE_KEYS: &[&str] = &["path_prefix"];

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
    let (blocks, span) = cidr_list(sink, table, key)?;
    Some(Some(Located::new(Access { mode, blocks }, span)))
}

/// An array of address blocks (`["10.0.0.0/8", "::1"]`), each once, in file order;
/// `None` when an error was reported.
pub(super) fn cidr_list(
    sink: &mut Sink,
    table: &Table<'_, '_>,
    key: &str,
) -> Option<(Vec<Located<Cidr>>, Span)> {
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
    ok.then_some((blocks, span))
}

/// `respond = { status = 200, body = "ok\n", content_type = "text/plain" }`; `None`:
/// an error was reported.
pub(super) fn fixed_answer(sink: &mut Sink, table: &Table<'_, '_>) -> Option<Located<FixedAnswer>> {
    let answer = table.table(sink, "respond", "`respond`")?;
    answer.deny_unknown(sink, FIXED_ANSWER_KEYS);
    if answer.get("status").is_none() {
        sink.push(
            Diagnostic::error(codes::MISSING_KEY, "`respond` is missing `status`")
                .at(answer.span, "`status` is required here")
                .with_help("write respond = { status = 200, body = \"ok\\n\" }"),
        );
        return None;
    }
    let status = answer.u32(sink, "status", 200, 100, 599);
    let mut ok = true;
    if status.value == 101 {
        sink.invalid(
            status.span,
            "a fixed answer cannot be `101 Switching Protocols`",
            "answer with a final status such as 200, 404 or 503",
        );
        ok = false;
    }
    let body = answer.string(sink, "body").map(|b| b.value);
    if answer.get("body").is_some() && body.is_none() {
        ok = false;
    }
    let body = body.unwrap_or_default();
    if body.len() > d::MAX_FIXED_ANSWER_BODY {
        sink.invalid(
            answer.get("body").map_or(answer.span, span_of),
            format!("a fixed answer's body is {} bytes", body.len()),
            format!(
                "keep it at most {} bytes: every generation holds it in memory; serve larger files from a pool",
                d::MAX_FIXED_ANSWER_BODY
            ),
        );
        ok = false;
    }
    let content_type = match answer.string(sink, "content_type") {
        Some(text) if valid_header_value(&text.value) && !text.value.is_empty() => text.value,
        Some(text) => {
            sink.invalid(
                text.span,
                "bad `content_type`",
                "write a media type such as \"text/plain\" or \"application/json\"",
            );
            ok = false;
            String::new()
        }
        None if answer.get("content_type").is_some() => {
            ok = false;
            String::new()
        }
        None => d::FIXED_ANSWER_CONTENT_TYPE.to_string(),
    };
    let status = Located::new(u16::try_from(status.value).unwrap_or(200), status.span);
    ok.then(|| {
        Located::new(
            FixedAnswer {
                status,
                body,
                content_type,
            },
            answer.span,
        )
    })
}

/// `rewrite = { path_prefix = "/v2" }`: only on a route matched by `path_prefix`.
/// `Some(None)`: none; `None`: an error was reported.
pub(super) fn rewrite(
    sink: &mut Sink,
    table: &Table<'_, '_>,
    path: Option<&Located<PathMatch>>,
) -> Option<Option<Located<Rewrite>>> {
    let Some(rewrite) = table.table(sink, "rewrite", "`rewrite`") else {
        return if table.get("rewrite").is_some() {
            None
        } else {
            Some(None)
        };
    };
    rewrite.deny_unknown(sink, REWRITE_KEYS);
    let Some(prefix) = rewrite.string(sink, "path_prefix") else {
        if rewrite.get("path_prefix").is_none() {
            sink.push(
                Diagnostic::error(codes::MISSING_KEY, "`rewrite` is missing `path_prefix`")
                    .at(rewrite.span, "`path_prefix` is required here")
                    .with_help("write rewrite = { path_prefix = \"/v2\" }"),
            );
        }
        return None;
    };
    if !prefix.value.starts_with('/')
        || prefix.value.contains(['?', '#'])
        || !prefix.value.bytes().all(|b| b.is_ascii_graphic())
    {
        sink.invalid(
            prefix.span,
            format!("bad rewrite prefix `{}`", prefix.value),
            "write a path starting with `/`, without spaces, query or fragment, such as \"/v2\"",
        );
        return None;
    }
    if !matches!(path.map(|p| &p.value), Some(PathMatch::Prefix(_))) {
        sink.invalid(
            rewrite.span,
            format!("{} has a `rewrite` but no `path_prefix`", table.what),
            "a rewrite replaces the prefix the route matched: match with path_prefix = \"/api\"",
        );
        return None;
    }
    Some(Some(Located::new(
        Rewrite {
            path_prefix: prefix,
        },
        rewrite.span,
    )))
}

/// `rate_limit = { requests = 100, per = "1s", burst = 50, key = "client_ip" }`.
/// `Some(None)`: none; `None`: an error was reported.
pub(super) fn rate_limit(
    sink: &mut Sink,
    table: &Table<'_, '_>,
) -> Option<Option<Located<RateLimit>>> {
    let Some(limit) = table.table(sink, "rate_limit", "`rate_limit`") else {
        return if table.get("rate_limit").is_some() {
            None
        } else {
            Some(None)
        };
    };
    limit.deny_unknown(sink, RATE_LIMIT_KEYS);
    if limit.get("requests").is_none() {
        sink.push(
            Diagnostic::error(codes::MISSING_KEY, "`rate_limit` is missing `requests`")
                .at(limit.span, "`requests` is required here")
                .with_help("write rate_limit = { requests = 100, per = \"1s\" }"),
        );
        return None;
    }
    let errors = sink.diagnostics.len();
    let requests = limit.u32(sink, "requests", 1, 1, d::MAX_RATE_LIMIT_REQUESTS);
    let per = limit.duration(sink, "per", d::RATE_LIMIT_PER);
    if per.value.is_zero() || per.value > d::MAX_RATE_LIMIT_PER {
        sink.invalid(
            per.span,
            "a rate limit period must be above zero and at most a day",
            "write a period such as \"1s\" or \"1m\"",
        );
    }
    let burst = limit.u32(sink, "burst", requests.value, 1, d::MAX_RATE_LIMIT_REQUESTS);
    let key = match limit.string(sink, "key") {
        None => RateKey::ClientIp,
        Some(text) => match rate_key(&text.value) {
            Ok(key) => key,
            Err(reason) => {
                sink.invalid(
                    text.span,
                    reason,
                    "write key = \"client_ip\", \"header:x-api-key\", \"cookie:session\" or \"route\"",
                );
                RateKey::Route
            }
        },
    };
    (sink.diagnostics.len() == errors).then(|| {
        Some(Located::new(
            RateLimit {
                requests: requests.value,
                per: per.value,
                burst: burst.value,
                key,
            },
            limit.span,
        ))
    })
}

fn rate_key(text: &str) -> Result<RateKey, String> {
    match text {
        "client_ip" => return Ok(RateKey::ClientIp),
        "route" => return Ok(RateKey::Route),
        _ => {}
    }
    let (kind, name) = text
        .split_once(':')
        .ok_or_else(|| format!("unknown rate limit key `{text}`"))?;
    if !valid_header_name(name) {
        return Err(format!("bad name `{name}` in rate limit key `{text}`"));
    }
    match kind {
        "header" => Ok(RateKey::Header(name.to_ascii_lowercase())),
        "cookie" => Ok(RateKey::Cookie(name.to_string())),
        _ => Err(format!("unknown rate limit key `{text}`")),
    }
}

/// `compress = ["gzip", "br"]`: the codings, each once, in file order. `Some(None)`:
/// none; `None`: an error was reported.
pub(super) fn compress(
    sink: &mut Sink,
    table: &Table<'_, '_>,
) -> Option<Option<Located<Vec<ContentCoding>>>> {
    let Some((items, span)) = table.array(sink, "compress") else {
        return if table.get("compress").is_some() {
            None
        } else {
            Some(None)
        };
    };
    let known = ContentCoding::ALL.map(ContentCoding::token).join("\", \"");
    let mut codings = Vec::new();
    let mut ok = true;
    for item in items {
        match item.get_ref().as_str() {
            Some(token) => match ContentCoding::from_token(token) {
                Some(coding) if !codings.contains(&coding) => codings.push(coding),
                Some(_) => {}
                None => {
                    sink.invalid(
                        span_of(item),
                        format!("unknown content coding `{token}` in `compress`"),
                        format!("Keel compresses with \"{known}\""),
                    );
                    ok = false;
                }
            },
            None => {
                wrong_type(sink, item, "compress", "a content coding such as \"gzip\"");
                ok = false;
            }
        }
    }
    if ok && codings.is_empty() {
        sink.invalid(
            span,
            "an empty `compress` list compresses nothing",
            format!("list codings such as compress = [\"{known}\"], or remove `compress`"),
        );
        ok = false;
    }
    ok.then_some(Some(Located::new(codings, span)))
}
