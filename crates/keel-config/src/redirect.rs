//! Redirect routes: `redirect = { scheme, host, port, path_prefix, status }` answers a
//! matched request with a `3xx` and a `Location` built from the request and the rule.
//!
//! One rule ([`Redirect::location`]) builds the `Location` for the data plane, for
//! `keel check` (route tests' `expect.location`, the redirect-loop lint) and for the
//! blast radius, so what is checked is what is served.
//!
//! The request's own host is used only when the rule names none, and only after it is
//! normalised as routing normalises it (port and a trailing dot dropped, lower case)
//! and found to be a plain host name or IP literal: a `Host` header carrying anything
//! else gets no `Location` (the data plane answers `400`), so no request byte can
//! inject a header or point the redirect at another authority.

use crate::span::Located;

/// A redirect status Keel sends: 301, 302, 307 or 308 (308 unless `status` says).
pub const REDIRECT_STATUSES: [u16; 4] = [301, 302, 307, 308];

/// Longest host name a `Location` carries (255 bytes, as routing reads hosts).
const MAX_LOCATION_HOST: usize = 255;

/// The scheme a redirect sends the client to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RedirectScheme {
    /// `http`.
    Http,
    /// `https`.
    Https,
}

impl RedirectScheme {
    /// The scheme's name, as written in a URL.
    pub fn name(self) -> &'static str {
        match self {
            RedirectScheme::Http => "http",
            RedirectScheme::Https => "https",
        }
    }

    /// The scheme a request came in with: `https` over TLS, `http` otherwise.
    pub fn of_request(tls: bool) -> Self {
        if tls {
            RedirectScheme::Https
        } else {
            RedirectScheme::Http
        }
    }

    /// The port a URL of this scheme means when it names none (80 or 443).
    pub fn default_port(self) -> u16 {
        match self {
            RedirectScheme::Http => 80,
            RedirectScheme::Https => 443,
        }
    }

    /// `http` or `https`, without regard to case.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "http" => Some(RedirectScheme::Http),
            "https" => Some(RedirectScheme::Https),
            _ => None,
        }
    }
}

/// A route's redirect rule: each part it names replaces the request's; the query is kept.
#[derive(Clone, Debug)]
pub struct Redirect {
    /// 301, 302, 307 or 308.
    pub status: Located<u16>,
    /// The scheme to send the client to; `None`: the request's.
    pub scheme: Option<Located<RedirectScheme>>,
    /// The host to send the client to (lower case); `None`: the request's.
    pub host: Option<Located<String>>,
    /// The port; `None`: the request's when scheme and host are kept, else the scheme's
    /// default (never written when it is the scheme's default).
    pub port: Option<Located<u16>>,
    /// What replaces the path the route matched (its `path_prefix` or exact `path`;
    /// nothing on a route without a path condition); `None`: the path is kept.
    pub path_prefix: Option<Located<String>>,
    /// The part of the request path `path_prefix` replaces ("" when the route has no
    /// path condition).
    pub matched: String,
}

/// The request a redirect answers, as [`Redirect::location`] reads it.
#[derive(Clone, Copy, Debug)]
pub struct RedirectRequest<'a> {
    /// The scheme it came in with.
    pub scheme: RedirectScheme,
    /// Its host as sent (`Host` or the target's authority), port included; `None`
    /// when it had none.
    pub authority: Option<&'a str>,
    /// Its path and query, as sent.
    pub path_and_query: &'a str,
}

impl Redirect {
    /// The `Location` for `request`, or `None` when the rule needs the request's host
    /// and it is missing or not a plain host name (the data plane answers `400`).
    pub fn location(&self, request: &RedirectRequest<'_>) -> Option<String> {
        let scheme = self.scheme.as_ref().map_or(request.scheme, |s| s.value);
        let request_host = request.authority.map(split_authority);
        let host = match &self.host {
            Some(host) => host.value.clone(),
            None => safe_host(request_host?.0)?,
        };
        let port = match &self.port {
            Some(port) => Some(port.value),
            None if self.scheme.is_none() && self.host.is_none() => {
                request_host.and_then(|(_, port)| port)
            }
            None => None,
        }
        .filter(|p| *p != scheme.default_port());
        let path_and_query = if request.path_and_query.starts_with('/') {
            request.path_and_query
        } else {
            // `*` (OPTIONS) or an empty target: the site's root.
            "/"
        };
        let path = match &self.path_prefix {
            Some(new) => crate::policy::replace_prefix(&new.value, &self.matched, path_and_query)
                .unwrap_or_else(|| path_and_query.to_string()),
            None => path_and_query.to_string(),
        };
        let mut out = format!("{}://{host}", scheme.name());
        if let Some(port) = port {
            out.push(':');
            out.push_str(&port.to_string());
        }
        out.push_str(&path);
        // The path comes from a parsed request target (no controls, no spaces); one
        // that still carries a byte a header cannot is refused rather than sent.
        out.bytes().all(|b| b.is_ascii_graphic()).then_some(out)
    }

    /// `308 to https://{host}/new…`: how diffs, reports and the blast radius show it.
    pub fn describe(&self) -> String {
        let scheme = self.scheme.as_ref().map_or("{scheme}", |s| s.value.name());
        let host = self.host.as_ref().map_or("{host}", |h| h.value.as_str());
        let port = self
            .port
            .as_ref()
            .map_or_else(String::new, |p| format!(":{}", p.value));
        let path = self
            .path_prefix
            .as_ref()
            .map_or("{path}", |p| p.value.as_str());
        format!("{} to {scheme}://{host}{port}{path}", self.status.value)
    }
}

/// `host[:port]` → host and port (an IP literal keeps its brackets). A port that is
/// not a number is left in the host, which [`safe_host`] then refuses.
fn split_authority(authority: &str) -> (&str, Option<u16>) {
    let host = crate::strip_port(authority);
    let port = authority
        .get(host.len()..)
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|p| p.parse::<u16>().ok());
    (host, port)
}

/// The request's host as a `Location` may carry it: lower case, without a trailing
/// dot, made only of letters, digits, `-`, `.` and `_`, or an IP literal in brackets
/// (hex digits, `:` and `.`); `None` for anything else.
fn safe_host(host: &str) -> Option<String> {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host.is_empty() || host.len() > MAX_LOCATION_HOST {
        return None;
    }
    let plain = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|inner| {
            !inner.is_empty()
                && inner
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        });
    (plain || literal).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Span;

    fn at<T>(value: T) -> Located<T> {
        Located::new(value, Span::new(0, 0))
    }

    fn rule(scheme: Option<RedirectScheme>, host: Option<&str>, prefix: Option<&str>) -> Redirect {
        Redirect {
            status: at(308),
            scheme: scheme.map(at),
            host: host.map(|h| at(h.to_string())),
            port: None,
            path_prefix: prefix.map(|p| at(p.to_string())),
            matched: "/old".into(),
        }
    }

    fn request<'a>(authority: Option<&'a str>, path: &'a str) -> RedirectRequest<'a> {
        RedirectRequest {
            scheme: RedirectScheme::Http,
            authority,
            path_and_query: path,
        }
    }

    #[test]
    fn scheme_host_and_prefix_replace_the_requests_and_the_query_is_kept() {
        let https = rule(Some(RedirectScheme::Https), None, None);
        assert_eq!(
            https
                .location(&request(Some("Shop.Example.com:8080"), "/x?q=1"))
                .as_deref(),
            Some("https://shop.example.com/x?q=1"),
            "a new scheme drops the request's port"
        );
        let moved = rule(None, Some("www.example.com"), Some("/new"));
        assert_eq!(
            moved
                .location(&request(Some("shop.example.com"), "/old/a?b=c"))
                .as_deref(),
            Some("http://www.example.com/new/a?b=c")
        );
        let path_only = rule(None, None, Some("/new"));
        assert_eq!(
            path_only
                .location(&request(Some("shop.example.com:8080"), "/old"))
                .as_deref(),
            Some("http://shop.example.com:8080/new"),
            "scheme and host kept: the port is kept too"
        );
        let mut port = rule(Some(RedirectScheme::Https), None, None);
        port.port = Some(at(8443));
        assert_eq!(
            port.location(&request(Some("[::1]:80"), "*")).as_deref(),
            Some("https://[::1]:8443/")
        );
        port.port = Some(at(443));
        assert_eq!(
            port.location(&request(Some("a.com"), "/")).as_deref(),
            Some("https://a.com/"),
            "the scheme's default port is not written"
        );
    }

    #[test]
    fn a_request_host_that_is_not_a_plain_name_gets_no_location() {
        let https = rule(Some(RedirectScheme::Https), None, None);
        for host in [
            "evil.com/x",
            "a.com\r\nset-cookie: x=1",
            "a b",
            "a.com:x",
            "[::1",
            "",
        ] {
            assert_eq!(https.location(&request(Some(host), "/")), None, "{host:?}");
        }
        assert_eq!(https.location(&request(None, "/")), None);
        let fixed = rule(Some(RedirectScheme::Https), Some("www.example.com"), None);
        assert_eq!(
            fixed.location(&request(None, "/p")).as_deref(),
            Some("https://www.example.com/p"),
            "a rule with its own host needs none from the request"
        );
        assert_eq!(fixed.location(&request(None, "/a\u{7f}")), None);
    }
}
