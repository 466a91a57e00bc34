//! Traffic files: the three formats, mixed; errors that name file and line; the
//! partial last line of a log being written.

use std::io::Write as _;

use keel_impact::{FormatCounts, TrafficError, parse_traffic, parse_traffic_bytes, read_traffic};
use keel_route::RequestShape;

const MIXED: &str = r#"# hand-written, sampled and logged requests in one file

GET https://Shop.Example.com:8443/cart?coupon=1
{"method":"POST","host":"shop.example.com","path":"/checkout/pay","headers":[["X-Beta","1"]],"hash_key":"cart-7"}
{"time":"2024-03-15T10:00:00Z","request_id":"r-1","method":"GET","host":"shop.example.com:8080","path":"/products/3?ref=mail","status":200,"duration_ms":12,"bytes":512,"route":"web","pool":"web","backend":"127.0.0.1:9101","generation":7,"retries":0,"headers":{"x-beta":"1"},"hash_key":"c9"}
   {"time":"2024-03-15T10:00:01Z","request_id":"r-2","method":"GET","host":"","path":"/","status":404,"duration_ms":0,"bytes":0,"route":null,"pool":null,"backend":null,"generation":7,"retries":0}
post http://blog.example.com
"#;

#[test]
fn all_three_formats_parse_line_by_line() {
    let traffic = parse_traffic(MIXED, "mixed.txt").expect("valid traffic");
    assert_eq!(
        traffic.formats,
        FormatCounts {
            shapes: 1,
            access_log: 2,
            plain: 2
        }
    );
    assert_eq!(traffic.truncated_line, None);
    let mut checkout =
        RequestShape::new("POST", "shop.example.com", "/checkout/pay").with_header("X-Beta", "1");
    checkout.hash_key = Some("cart-7".into());
    let mut logged =
        RequestShape::new("GET", "shop.example.com", "/products/3").with_header("x-beta", "1");
    logged.hash_key = Some("c9".into());
    assert_eq!(
        traffic.requests,
        vec![
            RequestShape::new("GET", "shop.example.com", "/cart"),
            checkout,
            logged,
            RequestShape::new("GET", "", "/"),
            RequestShape::new("POST", "blog.example.com", "/"),
        ]
    );
}

#[test]
fn the_live_sample_round_trips() {
    // What `GET /traffic/sample` serves: RequestShape serialized as JSON lines.
    let mut shape =
        RequestShape::new("PUT", "api.example.com", "/v1/items/9").with_header("x-tenant", "acme");
    shape.hash_key = Some("user-1".into());
    let plain = RequestShape::new("GET", "api.example.com", "/");
    let text = [&shape, &plain]
        .iter()
        .map(|s| serde_json::to_string(s).expect("serializes"))
        .collect::<Vec<_>>()
        .join("\n");
    let traffic = parse_traffic(&text, "sample").expect("valid");
    assert_eq!(traffic.requests, vec![shape, plain]);
    assert_eq!(traffic.formats.shapes, 2);
}

fn bad_line(text: &str) -> (usize, String, String) {
    match parse_traffic(text, "traffic.jsonl") {
        Err(error @ TrafficError::BadLine { line, .. }) => {
            let shown = error.to_string();
            let TrafficError::BadLine { reason, .. } = error else {
                unreachable!()
            };
            (line, reason, shown)
        }
        other => panic!("expected a bad line, got {other:?}"),
    }
}

#[test]
fn a_bad_line_fails_with_file_and_line_number() {
    let (line, reason, shown) =
        bad_line("GET https://a.example/\n\n/just/a/path\nGET https://b.example/\n");
    assert_eq!(line, 3);
    assert!(shown.starts_with("traffic.jsonl:3: "), "{shown}");
    assert!(reason.contains("METHOD URL"), "{reason}");

    let cases = [
        ("{\"method\":\"GET\",\"host\":\"a\"}\n", "missing `path`"),
        (
            "{\"method\":\"GET\",\"host\":1,\"path\":\"/\"}\n",
            "`host` must be a string",
        ),
        (
            "{\"method\":\"GET\",\"host\":\"a\",\"path\":\"/\"\n",
            "bad JSON",
        ),
        ("[1,2]\n", "expected"),
        (
            "{\"method\":\"G T\",\"host\":\"a\",\"path\":\"/\"}\n",
            "bad method",
        ),
        (
            "{\"method\":\"GET\",\"host\":\"a\",\"path\":\"/\",\"headers\":[[\"x\"]]}\n",
            "[name, value] pair",
        ),
        (
            "{\"method\":\"GET\",\"host\":\"a\",\"path\":\"/\",\"headers\":{\"x\":1}}\n",
            "header `x` must have a string value",
        ),
        (
            "{\"method\":\"GET\",\"host\":\"a\",\"path\":\"/\",\"hash_key\":5}\n",
            "`hash_key` must be a string",
        ),
        ("GET ftp://a.example/\n", "needs a scheme"),
    ];
    for (text, expected) in cases {
        let (line, reason, _) = bad_line(&format!("# header\n{text}"));
        assert_eq!(line, 2, "{text}");
        assert!(reason.contains(expected), "{text}: {reason}");
    }
}

#[test]
fn a_partial_last_line_is_skipped_and_reported() {
    let text = "GET https://a.example/\n{\"method\":\"GET\",\"host\":\"a.ex";
    let traffic = parse_traffic(text, "live.log").expect("partial last line is not an error");
    assert_eq!(traffic.requests.len(), 1);
    assert_eq!(traffic.truncated_line, Some(2));

    // With its newline, the same line is complete, and wrong.
    let (line, _, _) = bad_line(&format!("{text}\n"));
    assert_eq!(line, 2);
    // A good last line without a newline is kept.
    let traffic =
        parse_traffic("GET https://a.example/\nGET https://b.example/x", "t").expect("ok");
    assert_eq!(traffic.requests.len(), 2);
    assert_eq!(traffic.truncated_line, None);
}

#[test]
fn bytes_that_are_not_text_name_their_line() {
    let error = parse_traffic_bytes(b"GET https://a.example/\nGET https://\xff/\n", "bin")
        .expect_err("not UTF-8");
    assert_eq!(error.to_string(), "bin:2: line is not valid UTF-8");
    let long = format!(
        "GET https://a.example/{}\n",
        "a".repeat(keel_impact::MAX_LINE_BYTES)
    );
    let (line, reason, _) = bad_line(&long);
    assert_eq!(line, 1);
    assert!(reason.contains("bytes long"), "{reason}");
}

#[test]
fn files_are_read_from_disk_with_crlf_and_bom() {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(
        b"\xef\xbb\xbfGET https://a.example/one\r\n# note\r\nGET https://a.example/two\r\n",
    )
    .expect("write");
    let traffic = read_traffic(file.path()).expect("readable");
    assert_eq!(
        traffic.requests,
        vec![
            RequestShape::new("GET", "a.example", "/one"),
            RequestShape::new("GET", "a.example", "/two"),
        ]
    );

    let missing = file.path().with_extension("missing");
    let error = read_traffic(&missing).expect_err("no such file");
    assert!(matches!(error, TrafficError::Read { .. }));
    assert!(
        error.to_string().contains("cannot read traffic file"),
        "{error}"
    );
}

#[test]
fn the_listener_and_tls_facts_of_a_sample_or_log_line_are_read_back() {
    let mut shape = RequestShape::new("GET", "api.example.com", "/");
    shape.listener = Some("https".into());
    shape.tls = Some(keel_route::TlsShape {
        sni: Some("api.example.com".into()),
        version: "1.3".into(),
    });
    let sampled = serde_json::to_string(&shape).expect("json");
    let logged = r#"{"time":"2026-12-07T10:00:00Z","request_id":"r","method":"GET","host":"api.example.com","path":"/","status":200,"scheme":"https","listener":"https","tls":{"sni":"api.example.com","version":"1.3"}}"#;
    let text = format!("{sampled}\n{logged}\n");
    let traffic = parse_traffic(&text, "tls.jsonl").expect("valid traffic");
    assert_eq!(traffic.requests, vec![shape.clone(), shape]);
    let bad = "{\"method\":\"GET\",\"host\":\"a\",\"path\":\"/\",\"tls\":\"1.3\"}\n";
    let error = parse_traffic(bad, "bad.jsonl").expect_err("a tls that is no object");
    assert!(error.to_string().contains("bad.jsonl"), "{error}");
}
