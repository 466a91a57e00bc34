//! `[[tests]]` (request → expected destination) and `[[intents]]` (traffic-share and
//! refusal bounds).

use super::valid_header_name;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::{Expect, Intent, RouteTest};
use crate::reader::{Sink, Table, span_of};

/// A request written as `METHOD URL`, such as `POST https://shop.example.com/cart?x=1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLine {
    /// Upper-case method.
    pub method: String,
    /// Lower-case host without port.
    pub host: String,
    /// Path without query string.
    pub path: String,
    /// `http` or `https`, as written.
    pub scheme: crate::redirect::RedirectScheme,
    /// The port the URL names, if any.
    pub port: Option<u16>,
    /// The query string (without `?`), if any.
    pub query: Option<String>,
}

/// Parses `METHOD URL` (the URL needs a scheme and a host; the query is dropped).
pub fn parse_request_line(text: &str) -> Result<RequestLine, String> {
    let mut parts = text.split_whitespace();
    let (Some(method), Some(url), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(
            "write the request as \"METHOD URL\", e.g. \"GET https://shop.example.com/\"".into(),
        );
    };
    if !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
        return Err(format!("bad method `{method}`"));
    }
    let (scheme, rest) = url
        .strip_prefix("http://")
        .map(|rest| (crate::redirect::RedirectScheme::Http, rest))
        .or_else(|| {
            url.strip_prefix("https://")
                .map(|rest| (crate::redirect::RedirectScheme::Https, rest))
        })
        .ok_or_else(|| format!("`{url}` needs a scheme: http:// or https://"))?;
    let (authority, path_and_query) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = strip_port(authority).to_ascii_lowercase();
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    let port = authority
        .get(strip_port(authority).len()..)
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|p| p.parse::<u16>().ok());
    let without_fragment = path_and_query.split('#').next().unwrap_or("/");
    let (path, query) = match without_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query.to_string())),
        None => (without_fragment, None),
    };
    Ok(RequestLine {
        method: method.to_ascii_uppercase(),
        host,
        path: path.to_string(),
        scheme,
        port,
        query,
    })
}

/// `host:port` → `host`; `[::1]:80` → `[::1]`.
pub fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |i| &authority[..=i]);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

pub(super) fn tests(sink: &mut Sink, root: &Table<'_, '_>) -> Vec<RouteTest> {
    let Some((items, _)) = root.array(sink, "tests") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Some(table) = Table::from_value(sink, item, "tests", format!("test #{}", index + 1))
        else {
            continue;
        };
        table.deny_unknown(sink, &["request", "headers", "client", "expect"]);
        let Some(request) = table.required_string(
            sink,
            "request",
            "add request = \"GET https://shop.example.com/\"",
        ) else {
            continue;
        };
        let line = match parse_request_line(&request.value) {
            Ok(line) => line,
            Err(reason) => {
                sink.invalid(
                    request.span,
                    reason,
                    "write request = \"GET https://shop.example.com/path\"",
                );
                continue;
            }
        };
        let mut headers = Vec::new();
        if let Some(h) = table.table(sink, "headers", "the test headers") {
            for (name, name_span, value) in h.entries() {
                match value.get_ref().as_str() {
                    Some(v) if valid_header_name(name) => {
                        headers.push((name.to_ascii_lowercase(), v.to_string()))
                    }
                    Some(_) => sink.invalid(
                        name_span,
                        format!("bad header name `{name}`"),
                        "use a plain HTTP header name",
                    ),
                    None => crate::reader::wrong_type(sink, value, name, "a string"),
                }
            }
        }
        let client = match table.string(sink, "client") {
            Some(text) => match text.value.parse::<std::net::IpAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    sink.invalid(
                        text.span,
                        format!("bad client address `{}`", text.value),
                        "write an IPv4 or IPv6 address such as \"203.0.113.9\"",
                    );
                    continue;
                }
            },
            None => None,
        };
        let Some(expect_table) = table.table(sink, "expect", "the test expectation") else {
            if table.get("expect").is_none() {
                sink.push(
                    Diagnostic::error(codes::MISSING_KEY, "a route test needs `expect`")
                        .at(table.span, "no expectation")
                        .with_help("add expect = { route = \"...\" } (or pool, service, status)"),
                );
            }
            continue;
        };
        expect_table.deny_unknown(
            sink,
            &[
                "route",
                "pool",
                "service",
                "status",
                "rewritten_path",
                "location",
            ],
        );
        let expect = Expect {
            route: expect_table.string(sink, "route").map(|v| v.value),
            pool: expect_table.string(sink, "pool").map(|v| v.value),
            service: expect_table.string(sink, "service").map(|v| v.value),
            status: expect_table
                .get("status")
                .map(|_| expect_table.u32(sink, "status", 404, 100, 599).value as u16),
            rewritten_path: expect_table.string(sink, "rewritten_path").map(|v| v.value),
            location: expect_table.string(sink, "location").map(|v| v.value),
        };
        if expect.route.is_none()
            && expect.pool.is_none()
            && expect.service.is_none()
            && expect.status.is_none()
            && expect.rewritten_path.is_none()
            && expect.location.is_none()
        {
            sink.invalid(
                expect_table.span,
                "an empty expectation tests nothing",
                "give route, pool, service, status, rewritten_path or location",
            );
            continue;
        }
        out.push(RouteTest {
            span: table.span,
            method: line.method,
            host: line.host,
            path: line.path,
            scheme: line.scheme,
            port: line.port,
            query: line.query,
            headers,
            client,
            expect,
        });
    }
    out
}

pub(super) fn intents(sink: &mut Sink, root: &Table<'_, '_>) -> Vec<Intent> {
    let Some((items, _)) = root.array(sink, "intents") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Some(table) =
            Table::from_value(sink, item, "intents", format!("intent #{}", index + 1))
        else {
            continue;
        };
        table.deny_unknown(
            sink,
            &[
                "host",
                "path_prefix",
                "service",
                "min_share",
                "max_share",
                "max_refused",
            ],
        );
        let host = table.required_string(sink, "host", "add host = \"shop.example.com\"");
        let path_prefix = table.string(sink, "path_prefix");
        if let Some(p) = &path_prefix
            && !p.value.starts_with('/')
        {
            sink.invalid(
                p.span,
                "`path_prefix` must start with `/`",
                "write path_prefix = \"/\"",
            );
        }
        let min_share = table.fraction(sink, "min_share");
        let max_share = table.fraction(sink, "max_share");
        let max_refused = table.fraction(sink, "max_refused");
        let shares = table.get("min_share").is_some() || table.get("max_share").is_some();
        // A share bound is about one service; a refusal bound is about the scope alone.
        let service = if shares || table.get("service").is_some() {
            let service = table.required_string(sink, "service", "add service = \"web\"");
            if service.is_none() {
                continue;
            }
            service
        } else {
            None
        };
        if !shares && table.get("max_refused").is_none() {
            sink.push(
                Diagnostic::error(
                    codes::MISSING_KEY,
                    "an intent needs `min_share`, `max_share` or `max_refused`",
                )
                .at(table.span, "no bound")
                .with_help(
                    "add min_share = 0.9 (at least 90 % of this traffic reaches the service) or max_refused = 0.01 (policies refuse at most 1 % of it)",
                ),
            );
            continue;
        }
        if let (Some(min), Some(max)) = (min_share, max_share)
            && min > max
        {
            let span = table.get("min_share").map_or(table.span, span_of);
            sink.invalid(
                span,
                "min_share is above max_share",
                "make min_share <= max_share",
            );
            continue;
        }
        let Some(host) = host else {
            continue;
        };
        out.push(Intent {
            span: table.span,
            host: strip_port(&host.value).to_ascii_lowercase(),
            path_prefix: path_prefix.map(|p| p.value),
            service,
            min_share,
            max_share,
            max_refused,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse() {
        let line = parse_request_line("post https://Shop.Example.com:8443/checkout/pay?x=1")
            .expect("valid");
        assert_eq!(
            line,
            RequestLine {
                method: "POST".into(),
                host: "shop.example.com".into(),
                path: "/checkout/pay".into(),
                scheme: crate::redirect::RedirectScheme::Https,
                port: Some(8443),
                query: Some("x=1".into()),
            }
        );
        assert_eq!(
            parse_request_line("GET http://a.b").map(|l| l.path),
            Ok("/".into())
        );
        assert!(parse_request_line("GET /relative").is_err());
        assert!(parse_request_line("GET").is_err());
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("a.b"), "a.b");
    }
}
