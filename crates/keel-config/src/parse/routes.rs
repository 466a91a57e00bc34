//! `[[routes]]`: the match language and the target of each route.

use std::collections::HashMap;
use std::time::Duration;

use super::policies::{Direction, POLICY_KEYS, header_rules};
use super::{valid_header_name, valid_name};
use crate::codes;
use crate::defaults as d;
use crate::diagnostic::Diagnostic;
use crate::model::{
    HostMatch, PathMatch, PathRegex, Route, RouteAction, SplitEntry, Target, UpgradeProtocol,
};
use crate::reader::{Sink, Table, span_of, wrong_type};
use crate::span::{Located, Span};

const ROUTE_KEYS: &[&str] = &[
    "name",
    "host",
    "path",
    "path_prefix",
    "path_regex",
    "methods",
    "headers",
    "service",
    "pool",
    "split",
    "timeout",
    "retries",
    "body_idle_timeout",
    "also_served_by",
    "upgrades",
    "tunnel_idle_timeout",
    "listener",
    "require_sni",
    "redirect",
];

pub(super) fn routes(sink: &mut Sink, root: &Table<'_, '_>) -> Vec<Route> {
    let Some((items, _)) = root.array(sink, "routes") else {
        return Vec::new();
    };
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let Some(table) = Table::from_value(sink, item, "routes", format!("route #{}", index + 1))
        else {
            continue;
        };
        // Names are checked before the rest, so a duplicate is reported even when the
        // route has other mistakes.
        let mut duplicate = false;
        if let Some(name) = table
            .get("name")
            .and_then(|v| v.get_ref().as_str().map(|s| (s.to_string(), span_of(v))))
        {
            match seen.get(&name.0) {
                Some(first) => {
                    duplicate = true;
                    sink.push(
                        Diagnostic::error(codes::DUPLICATE_NAME, format!("duplicate route name `{}`", name.0))
                            .at(name.1, "second route with this name")
                            .with_related(*first, "first defined here")
                            .with_help("give every route a unique name: tests, metrics and reports refer to routes by name"),
                    );
                }
                None => {
                    seen.insert(name.0, name.1);
                }
            }
        }
        if let Some(route) = route(sink, table)
            && !duplicate
        {
            out.push(route);
        }
    }
    out
}

fn route(sink: &mut Sink, mut table: Table<'_, '_>) -> Option<Route> {
    let keys: Vec<&str> = ROUTE_KEYS.iter().chain(POLICY_KEYS).copied().collect();
    table.deny_unknown(sink, &keys);
    let name = table.required_string(sink, "name", "add name = \"...\" (unique)");
    if let Some(name) = &name {
        table.what = format!("route `{}`", name.value);
        if !valid_name(&name.value) {
            sink.invalid(
                name.span,
                format!("bad route name `{}`", name.value),
                "use letters, digits, `-`, `_` and `.` only",
            );
        }
    }
    let host = host(sink, &table);
    let path = path(sink, &table);
    let methods = methods(sink, &table);
    let headers = headers(sink, &table);
    let action = action(sink, &table, path.as_ref().and_then(Option::as_ref));
    let timeout = table.duration(sink, "timeout", d::ROUTE_TIMEOUT);
    if timeout.value.is_zero() {
        sink.invalid(
            timeout.span,
            "a route timeout must be above zero",
            "write a duration such as \"15s\"",
        );
    }
    let retries = table.u32(sink, "retries", d::ROUTE_RETRIES, 0, d::MAX_ROUTE_RETRIES);
    // Unset, the `[server]` bound applies; a bad value is reported, and the config
    // refused, whatever stands in for it here.
    let body_idle_timeout = table
        .get("body_idle_timeout")
        .is_some()
        .then(|| table.duration(sink, "body_idle_timeout", Duration::ZERO));
    let also_served_by = also_served_by(sink, &table);
    let upgrades = upgrades(sink, &table);
    let tunnel_idle_timeout = table.duration(sink, "tunnel_idle_timeout", d::TUNNEL_IDLE_TIMEOUT);
    if tunnel_idle_timeout.value.is_zero() {
        sink.invalid(
            tunnel_idle_timeout.span,
            "a tunnel idle timeout must be above zero",
            "write a duration such as \"5m\": a tunnel nobody uses must close some time",
        );
    }
    let access = super::policies::access(sink, &table);
    let request_headers = header_rules(sink, &table, Direction::Request);
    let response_headers = header_rules(sink, &table, Direction::Response);
    let listeners = listeners(sink, &table);
    let require_sni = table.bool(sink, "require_sni", false);
    let rate_limit = super::policies::rate_limit(sink, &table);
    let compress = super::policies::compress(sink, &table);
    let rewrite = super::policies::rewrite(sink, &table, path.as_ref().and_then(Option::as_ref));
    Some(Route {
        name: name?,
        span: table.span,
        host,
        path: path?,
        methods: methods?,
        headers,
        action: action?,
        timeout,
        retries,
        body_idle_timeout,
        also_served_by,
        upgrades: upgrades?,
        tunnel_idle_timeout,
        access: access?,
        request_headers: request_headers?,
        response_headers: response_headers?,
        listeners: listeners?,
        require_sni,
        rewrite: rewrite?,
        rate_limit: rate_limit?,
        compress: compress?,
    })
}

/// Forward to `service` through `pool`/`split`, or answer with `respond` or `redirect`.
fn action(
    sink: &mut Sink,
    table: &Table<'_, '_>,
    path: Option<&Located<PathMatch>>,
) -> Option<RouteAction> {
    if table.get("redirect").is_some() {
        if let Some(conflict) = super::redirect::conflict(table) {
            sink.push(conflict);
            return None;
        }
        return super::redirect::redirect(sink, table, path).map(RouteAction::Redirect);
    }
    if table.get("respond").is_some() {
        let forwarding = [
            "service", "pool", "split", "rewrite", "upgrades", "compress",
        ]
        .into_iter()
        .find_map(|key| table.get(key).map(|v| (key, span_of(v))));
        if let Some((key, span)) = forwarding {
            sink.push(
                Diagnostic::error(
                    codes::CONFLICTING_KEYS,
                    format!("{} has both `respond` and `{key}`", table.what),
                )
                .at(span, "a fixed answer is not forwarded")
                .with_help(
                    "keep respond = { .. } to answer from Keel itself, or remove it to forward",
                ),
            );
            return None;
        }
        return super::policies::fixed_answer(sink, table).map(RouteAction::Respond);
    }
    let service = table.required_string(
        sink,
        "service",
        "name the service that must answer this route, e.g. service = \"web\" (or answer it with respond = { status = 200, body = \"..\" } or redirect = { scheme = \"https\" })",
    );
    let target = target(sink, table);
    Some(RouteAction::Forward {
        service: service?,
        target: target?,
    })
}

/// `listener = "https"` or `listener = ["https", "alt"]`: the listeners a route is
/// limited to (names are checked against `[listeners]` by K124). `None`: an error
/// was reported.
fn listeners(sink: &mut Sink, table: &Table<'_, '_>) -> Option<Vec<Located<String>>> {
    let Some(value) = table.get("listener") else {
        return Some(Vec::new());
    };
    if let Some(name) = value.get_ref().as_str() {
        return Some(vec![Located::new(name.to_string(), span_of(value))]);
    }
    let (items, span) = table.array(sink, "listener")?;
    let mut out: Vec<Located<String>> = Vec::new();
    for item in items {
        match item.get_ref().as_str() {
            Some(name) if !out.iter().any(|l| l.value == name) => {
                out.push(Located::new(name.to_string(), span_of(item)));
            }
            Some(_) => {}
            None => {
                wrong_type(sink, item, "listener", "a listener name");
                return None;
            }
        }
    }
    if out.is_empty() {
        sink.invalid(
            span,
            "a route limited to no listener can never match",
            "name at least one listener, or remove `listener` to match on every listener",
        );
        return None;
    }
    Some(out)
}

/// `also_served_by = ["legacy"]`: services that may also answer the route.
fn also_served_by(sink: &mut Sink, table: &Table<'_, '_>) -> Vec<Located<String>> {
    let Some((items, _)) = table.array(sink, "also_served_by") else {
        return Vec::new();
    };
    let mut out: Vec<Located<String>> = Vec::new();
    for item in items {
        match item.get_ref().as_str() {
            Some(name) if !out.iter().any(|s| s.value == name) => {
                out.push(Located::new(name.to_string(), span_of(item)));
            }
            Some(_) => {}
            None => wrong_type(sink, item, "also_served_by", "a service name"),
        }
    }
    out
}

/// `Some(None)`: no upgrades; `None`: an error was reported.
fn upgrades(
    sink: &mut Sink,
    table: &Table<'_, '_>,
) -> Option<Option<Located<Vec<UpgradeProtocol>>>> {
    let Some((items, span)) = table.array(sink, "upgrades") else {
        return if table.get("upgrades").is_some() {
            None
        } else {
            Some(None)
        };
    };
    let known = UpgradeProtocol::ALL
        .map(UpgradeProtocol::name)
        .join("\", \"");
    let mut protocols = Vec::new();
    let mut ok = true;
    for item in items {
        match item.get_ref().as_str() {
            Some(name) => match UpgradeProtocol::from_token(name) {
                Some(protocol) if !protocols.contains(&protocol) => protocols.push(protocol),
                Some(_) => {}
                None => {
                    sink.invalid(
                        span_of(item),
                        format!("unknown upgrade protocol `{name}`"),
                        format!("Keel passes through these upgrades: \"{known}\""),
                    );
                    ok = false;
                }
            },
            None => {
                wrong_type(sink, item, "upgrades", "a string");
                ok = false;
            }
        }
    }
    ok.then_some(Some(Located::new(protocols, span)))
}

/// Parses a host condition: `*` (any), `*.example.com` (suffix) or an exact host.
pub fn parse_host_match(text: &str) -> Result<Option<HostMatch>, String> {
    let host = text.trim().to_ascii_lowercase();
    if host == "*" {
        return Ok(None);
    }
    let (suffix, rest) = match host.strip_prefix('*') {
        Some(rest) => (true, rest.to_string()),
        None => (false, host.clone()),
    };
    if suffix && !rest.starts_with('.') {
        return Err("a wildcard host must look like \"*.example.com\"".into());
    }
    let labels = if suffix { &rest[1..] } else { rest.as_str() };
    let valid = !labels.is_empty()
        && labels.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(format!(
            "`{text}` is not a host name (write it without scheme, port or path)"
        ));
    }
    Ok(Some(if suffix {
        HostMatch::Suffix(rest)
    } else {
        HostMatch::Exact(host)
    }))
}

fn host(sink: &mut Sink, table: &Table<'_, '_>) -> Option<Located<HostMatch>> {
    let text = table.string(sink, "host")?;
    match parse_host_match(&text.value) {
        Ok(host) => host.map(|h| Located::new(h, text.span)),
        Err(reason) => {
            sink.invalid(text.span, reason, "write an exact host such as \"shop.example.com\" or a wildcard such as \"*.example.com\"");
            None
        }
    }
}

/// `Some(None)`: no path condition; `None`: an error was reported.
fn path(sink: &mut Sink, table: &Table<'_, '_>) -> Option<Option<Located<PathMatch>>> {
    let given: Vec<&str> = ["path", "path_prefix", "path_regex"]
        .into_iter()
        .filter(|k| table.get(k).is_some())
        .collect();
    if given.len() > 1 {
        let span = table.get(given[1]).map_or(table.span, span_of);
        sink.push(
            Diagnostic::error(
                codes::CONFLICTING_KEYS,
                format!(
                    "a route takes one of path, path_prefix, path_regex; found {}",
                    given.join(" and ")
                ),
            )
            .at(span, "second path condition")
            .with_help(
                "keep one path condition per route; split the route in two if you need both",
            ),
        );
        return None;
    }
    let Some(key) = given.first() else {
        return Some(None);
    };
    let text = table.string(sink, key)?;
    if *key != "path_regex" && !text.value.starts_with('/') {
        sink.invalid(
            text.span,
            format!("`{key}` must start with `/`"),
            format!("write {key} = \"/{}\"", text.value),
        );
        return None;
    }
    let matcher = match *key {
        "path" => PathMatch::Exact(text.value.clone()),
        "path_prefix" => PathMatch::Prefix(text.value.clone()),
        _ => match compile_path_regex(&text.value) {
            Ok(regex) => PathMatch::Regex(PathRegex {
                source: text.value.clone(),
                regex,
            }),
            Err(reason) => {
                sink.invalid(
                    text.span,
                    format!("bad path_regex: {reason}"),
                    "write a regex that matches the whole path, such as \"/items/[0-9]+\"",
                );
                return None;
            }
        },
    };
    Some(Some(Located::new(matcher, text.span)))
}

/// `Some(None)`: any method; `None`: an error was reported.
fn methods(sink: &mut Sink, table: &Table<'_, '_>) -> Option<Option<Located<Vec<String>>>> {
    let Some((items, span)) = table.array(sink, "methods") else {
        return if table.get("methods").is_some() {
            None
        } else {
            Some(None)
        };
    };
    let mut methods = Vec::new();
    let mut ok = true;
    for item in items {
        match item.get_ref().as_str() {
            Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') => {
                let upper = m.to_ascii_uppercase();
                if !methods.contains(&upper) {
                    methods.push(upper);
                }
            }
            Some(m) => {
                sink.invalid(
                    span_of(item),
                    format!("bad method `{m}`"),
                    "write methods like \"GET\" or \"POST\"",
                );
                ok = false;
            }
            None => {
                wrong_type(sink, item, "methods", "a string");
                ok = false;
            }
        }
    }
    if ok && methods.is_empty() {
        sink.invalid(
            span,
            "an empty method list matches nothing",
            "list methods, or remove `methods` to allow any method",
        );
        ok = false;
    }
    ok.then_some(Some(Located::new(methods, span)))
}

fn headers(sink: &mut Sink, table: &Table<'_, '_>) -> Vec<Located<(String, String)>> {
    let Some(headers) = table.table(sink, "headers", "the headers condition") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, name_span, value) in headers.entries() {
        if !valid_header_name(name) {
            sink.invalid(
                name_span,
                format!("bad header name `{name}`"),
                "use a plain HTTP header name such as \"x-beta\"",
            );
            continue;
        }
        match value.get_ref().as_str() {
            Some(v) => out.push(Located::new(
                (name.to_ascii_lowercase(), v.to_string()),
                Span::new(name_span.start, span_of(value).end),
            )),
            None => wrong_type(sink, value, name, "a string (the exact value to match)"),
        }
    }
    out
}

fn target(sink: &mut Sink, table: &Table<'_, '_>) -> Option<Located<Target>> {
    match (table.get("pool"), table.get("split")) {
        (Some(_), Some(split)) => {
            sink.push(
                Diagnostic::error(codes::CONFLICTING_KEYS, format!("{} has both `pool` and `split`", table.what))
                    .at(span_of(split), "second target")
                    .with_help("use pool = \"...\" for one pool, or split = [...] to share traffic between pools"),
            );
            None
        }
        (Some(_), None) => table.string(sink, "pool").map(|p| {
            let span = p.span;
            Located::new(Target::Pool(p), span)
        }),
        (None, Some(_)) => {
            let (items, span) = table.array(sink, "split")?;
            let mut entries = Vec::new();
            for item in items {
                let Some(entry) = Table::from_value(sink, item, "split", "a split entry") else {
                    continue;
                };
                entry.deny_unknown(sink, &["pool", "weight"]);
                let Some(pool) = entry.required_string(sink, "pool", "add pool = \"...\"") else {
                    continue;
                };
                let weight = entry.u32(sink, "weight", d::BACKEND_WEIGHT, 0, d::MAX_WEIGHT);
                entries.push(SplitEntry { pool, weight });
            }
            if entries.is_empty() {
                sink.invalid(
                    span,
                    "an empty split sends traffic nowhere",
                    "write split = [{ pool = \"a\", weight = 90 }, { pool = \"b\", weight = 10 }]",
                );
                return None;
            }
            Some(Located::new(Target::Split(entries), span))
        }
        (None, None) => {
            sink.push(
                Diagnostic::error(codes::MISSING_KEY, format!("{} has no target", table.what))
                    .at(table.span, "no `pool` or `split`")
                    .with_help("add pool = \"...\" or split = [{ pool = \"...\", weight = 100 }]"),
            );
            None
        }
    }
}

/// Longest `path_regex` source accepted (1,024 bytes).
const MAX_PATH_REGEX_LEN: usize = 1024;
/// Compiled size limit of one `path_regex` (1 MiB): bounds check time and memory.
const PATH_REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a path regex anchored at both ends.
///
/// The source is first compiled alone, so a regex such as `x)|(y` cannot escape the
/// `^(?:…)$` wrapping and match only part of a path.
fn compile_path_regex(source: &str) -> Result<regex::Regex, String> {
    if source.len() > MAX_PATH_REGEX_LEN {
        return Err(format!("longer than {MAX_PATH_REGEX_LEN} bytes"));
    }
    let build = |pattern: &str| {
        regex::RegexBuilder::new(pattern)
            .size_limit(PATH_REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                e.to_string()
                    .lines()
                    .last()
                    .unwrap_or("invalid")
                    .to_string()
            })
    };
    build(source)?;
    build(&format!("^(?:{source})$"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_regexes_stay_anchored() {
        assert!(compile_path_regex("x)|(y").is_err());
        let regex = compile_path_regex("/a|/b").expect("valid");
        assert!(regex.is_match("/b"));
        assert!(!regex.is_match("/bc"));
        assert!(compile_path_regex(&"a".repeat(2000)).is_err());
    }
}
