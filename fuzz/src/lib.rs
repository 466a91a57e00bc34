//! The bodies of Keel's fuzz targets, one function per target, each taking arbitrary
//! bytes. A target panics only when Keel breaks a promise: a parser that panics on input
//! it reads from the network or a file, or a check whose answer contradicts what it is
//! documented to do. Two drivers run them:
//!
//! - `fuzz_targets/*.rs`: libFuzzer through cargo-fuzz (nightly), coverage-guided;
//! - `src/bin/smoke.rs`: a bounded run on stable without coverage, of the corpus and
//!   random mutations of it (what CI runs, through `fuzz/run.sh --smoke`).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Version};
use keel_proxy::fuzzing;

/// Most headers an input's request head may have (hyper's own default array is 100).
const MAX_HEADERS: usize = 100;

/// A fuzz target: any bytes in, a panic when Keel breaks a promise.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/run.sh` and the corpus directories name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("check", check),
    ("host", host),
    ("hop_by_hop", hop_by_hop),
    ("traffic", traffic),
];

/// `keel_check::load` on any text, and both renderings of its report.
pub fn check(data: &[u8]) {
    let source = String::from_utf8_lossy(data);
    let loaded = keel_check::load("fuzz.toml", &source);
    let _ = loaded.report.render_human();
    let _ = loaded.report.to_json();
}

/// `refuse.rs` on a request head parsed the way hyper parses it (httparse): a refusal is
/// a 400 or a 501, `CONNECT` is always refused, two `Host` headers are always refused,
/// and a request with one plain `Host` (letters, digits, `.`, `-`, a port) and no
/// userinfo is never refused.
pub fn host(data: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = head.parse(data) else {
        return;
    };
    let (Some(method), Some(path), Some(minor)) = (head.method, head.path, head.version) else {
        return;
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .version(if minor == 0 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        });
    for h in head.headers.iter() {
        // hyper answers 400 itself for a name or value `http` refuses: Keel never sees it.
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) else {
            return;
        };
        builder = builder.header(name, value);
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let refusal = fuzzing::refusal(&parts);
    if let Some((failure, detail)) = refusal {
        let status = failure.status();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_IMPLEMENTED,
            "a refusal answered {status}"
        );
        assert!(!detail.is_empty(), "a refusal without a reason");
    }
    if parts.method == Method::CONNECT {
        assert!(refusal.is_some(), "CONNECT was not refused");
    }
    let hosts: Vec<&HeaderValue> = parts.headers.get_all(header::HOST).iter().collect();
    if hosts.len() > 1 {
        assert!(
            refusal.is_some(),
            "{} Host headers were not refused",
            hosts.len()
        );
    }
    let plain = |v: &HeaderValue| {
        !v.is_empty()
            && v.as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
    };
    let userinfo = parts
        .uri
        .authority()
        .is_some_and(|a| a.as_str().contains('@'));
    if parts.method != Method::CONNECT && hosts.len() == 1 && plain(hosts[0]) && !userinfo {
        assert!(refusal.is_none(), "a plain Host was refused: {refusal:?}");
    }
}

/// `headers.rs`'s hop-by-hop removal on a backend answer's headers, read as `name: value`
/// lines: afterwards no hop-by-hop header is left, nor any header `Connection` named, and
/// an announced keep-alive timeout is whole seconds that fit a `u32`.
pub fn hop_by_hop(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n').take(MAX_HEADERS) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    let announced = fuzzing::strip_hop_by_hop(&mut headers);
    for name in [
        "connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "keep-alive",
        "proxy-connection",
    ] {
        assert!(!headers.contains_key(name), "`{name}` survived");
    }
    // Every header `Connection` names goes (a header named `close` too, RFC 9110
    // §7.6.1), except those Keel relies on whatever the sender says.
    for name in named
        .iter()
        .filter(|name| !fuzzing::kept_whatever_connection_says(name.as_str()))
    {
        assert!(
            !headers.contains_key(name),
            "`{name}`, named by Connection, survived"
        );
    }
    if let Some(timeout) = announced {
        assert_eq!(timeout.subsec_nanos(), 0, "a timeout of partial seconds");
        assert!(
            timeout.as_secs() <= u64::from(u32::MAX),
            "a timeout past u32"
        );
    }
}

/// The traffic-file reader (`keel diff --traffic`, `keel apply --dry-run`) on any bytes:
/// an error names a line of the input, and a success has no more requests than lines.
pub fn traffic(data: &[u8]) {
    match keel_impact::parse_traffic_bytes(data, "fuzz.jsonl") {
        Ok(traffic) => {
            let lines = data.split(|&b| b == b'\n').count();
            assert!(traffic.requests.len() <= lines, "more requests than lines");
        }
        Err(keel_impact::TrafficError::BadLine { line, .. }) => {
            let lines = data.split(|&b| b == b'\n').count();
            assert!(line >= 1 && line <= lines, "line {line} of {lines}");
        }
        Err(keel_impact::TrafficError::Read { .. }) => {}
    }
}
