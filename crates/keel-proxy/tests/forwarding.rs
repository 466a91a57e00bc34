//! What crosses the proxy: forwarding headers, request ids, hop-by-hop headers in both
//! directions, HTTP/2 clients, the generation header, the access log, and Keel's own
//! error answers (404/502/503/504 with a `keel-error` reason naming the route).

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::Full;
use support::*;

fn simple_config(backends: &[&TestBackend], route_extra: &str) -> String {
    with_listener(&format!(
        "[services.web]\n\n{}\n[[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\n{route_extra}\n",
        pool("web", "web", backends, "")
    ))
}

#[tokio::test]
async fn forwarding_headers_are_set_and_hop_by_hop_headers_never_cross() {
    let backend = TestBackend::with_handler("b1", |_request| async {
        Response::builder()
            .header("x-backend", "b1")
            .header("connection", "x-hop")
            .header("x-hop", "secret")
            .header("keep-alive", "timeout=5")
            .body(Full::new(Bytes::from_static(b"hello")))
            .unwrap_or_default()
    })
    .await;
    let proxy = TestProxy::start(&simple_config(&[&backend], "")).await;
    let client = client();
    let answer = get(
        &client,
        &proxy.url("/cart?item=7"),
        &[
            ("host", "Shop.Example.com"),
            ("connection", "x-secret"),
            ("x-secret", "1"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https-spoofed"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "hello");
    assert_eq!(answer.header("x-keel-generation"), Some("1"));
    assert_eq!(
        answer.header("x-hop"),
        None,
        "response headers named by Connection leak"
    );
    assert_eq!(answer.header("keep-alive"), None);

    let head = backend.last_head().expect("backend saw the request");
    assert_eq!(head.uri, "/cart?item=7");
    assert_eq!(head.version, Version::HTTP_11);
    let header = |name: &str| head.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("host"), Some("Shop.Example.com"));
    assert_eq!(
        header("x-secret"),
        None,
        "request headers named by Connection leak"
    );
    assert_eq!(header("x-forwarded-for"), Some("10.0.0.1, 127.0.0.1"));
    assert_eq!(header("x-forwarded-proto"), Some("http"));
    assert_eq!(header("x-forwarded-host"), Some("Shop.Example.com"));
    let id = header("x-request-id").expect("a request id is generated");
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test]
async fn a_client_request_id_is_kept_and_ids_differ_otherwise() {
    let backend = TestBackend::start("b1", None).await;
    let proxy = TestProxy::start(&simple_config(&[&backend], "")).await;
    let client = client();
    get(&client, &proxy.url("/"), &[("x-request-id", "abc-123")]).await;
    let kept = backend.last_head().expect("head");
    assert_eq!(kept.headers["x-request-id"], "abc-123");
    get(&client, &proxy.url("/"), &[]).await;
    let first = backend.last_head().expect("head").headers["x-request-id"].clone();
    get(&client, &proxy.url("/"), &[]).await;
    let second = backend.last_head().expect("head").headers["x-request-id"].clone();
    assert_ne!(first, second);
}

#[tokio::test]
async fn http2_prior_knowledge_clients_are_served_over_http1_backends() {
    let backend = TestBackend::start("b1", None).await;
    let proxy = TestProxy::start(&simple_config(&[&backend], "")).await;
    let client = h2c_client();
    let request = Request::get(format!("http://shop.example.com:{}/h2", proxy.addr.port()))
        .version(Version::HTTP_2)
        .body(Full::new(Bytes::new()))
        .expect("request");
    // The URL's authority is only the :authority pseudo-header; connect to the proxy.
    let (mut parts, body) = request.into_parts();
    parts.uri = format!("http://{}/h2", proxy.addr).parse().expect("uri");
    parts
        .headers
        .insert("x-check", http::HeaderValue::from_static("h2"));
    let answer = send(&client, Request::from_parts(parts, body)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "b1");
    let head = backend.last_head().expect("head");
    assert_eq!(head.version, Version::HTTP_11);
    assert_eq!(head.uri, "/h2");
    assert_eq!(head.headers["host"], proxy.addr.to_string().as_str());
    assert_eq!(head.headers["x-check"], "h2");
}

#[tokio::test]
async fn keel_errors_name_the_route_and_the_reason() {
    // A pool whose only backend refuses connections: 502.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    // A backend slower than its route's timeout: 504.
    let slow = TestBackend::with_handler("slow", |_request| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Response::new(Full::new(Bytes::from_static(b"late")))
    })
    .await;
    let text = with_listener(&format!(
        r#"[services.web]

[pools.dead]
service = "web"
backends = [{{ addr = "{dead_addr}" }}]

[pools.slow]
service = "web"
backends = [{{ addr = "{}" }}]

[pools.empty]
service = "web"
backends = [{{ addr = "{dead_addr}", weight = 0 }}]

[[routes]]
name = "to-dead"
path_prefix = "/dead"
service = "web"
pool = "dead"

[[routes]]
name = "to-slow"
path_prefix = "/slow"
service = "web"
pool = "slow"
timeout = "200ms"

[[routes]]
name = "to-empty"
path_prefix = "/empty"
service = "web"
pool = "empty"
"#,
        slow.addr
    ));
    let proxy = TestProxy::start(&text).await;
    let client = client();
    let cases = [
        ("/dead", 502, "upstream-connect-failed", "to-dead"),
        ("/slow", 504, "upstream-timeout", "to-slow"),
        ("/empty", 503, "no-healthy-backend", "to-empty"),
        ("/nowhere", 404, "no-route", "/nowhere"),
    ];
    for (path, status, reason, named) in cases {
        let answer = get(&client, &proxy.url(path), &[]).await;
        assert_eq!(answer.status.as_u16(), status, "{path}: {}", answer.text());
        assert_eq!(answer.header("keel-error"), Some(reason), "{path}");
        assert_eq!(
            answer.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        let body = answer.text();
        assert!(
            body.contains(reason) && body.contains(named),
            "{path}: {body}"
        );
        assert!(body.len() < 200, "error bodies stay short: {body}");
        assert_eq!(answer.header("x-keel-generation"), Some("1"));
    }
}

#[tokio::test]
async fn the_access_log_has_every_field_and_is_a_traffic_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("access.log");
    let backend = TestBackend::start("b1", None).await;
    let text = with_listener(&format!(
        r#"[access_log]
path = "{}"

[services.web]

{}
[[routes]]
name = "beta"
headers = {{ "x-beta" = "1" }}
service = "web"
pool = "web"

[[routes]]
name = "web"
service = "web"
pool = "web"
"#,
        log_path.display(),
        pool(
            "web",
            "web",
            &[&backend],
            "balance = \"consistent_hash\"\nhash_key = \"cookie:cart_id\""
        )
    ));
    let proxy = TestProxy::start(&text).await;
    let client = client();
    let answer = get(
        &client,
        &proxy.url("/basket?x=1"),
        &[
            ("host", "Shop.example.com:8080"),
            ("x-beta", "1"),
            ("cookie", "a=b; cart_id=c42"),
            ("x-request-id", "rid-1"),
            ("user-agent", "keel-test/1"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let mut line = String::new();
    eventually(WAIT, "the access-log line is written", || {
        let read = std::fs::read_to_string(&log_path).unwrap_or_default();
        line = read.lines().next().unwrap_or("").to_string();
        async move { !read.is_empty() }
    })
    .await;
    let record: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    for field in [
        "time",
        "request_id",
        "method",
        "host",
        "path",
        "status",
        "duration_ms",
        "ttfb_ms",
        "bytes",
        "route",
        "pool",
        "backend",
        "generation",
        "retries",
    ] {
        assert!(record.get(field).is_some(), "missing `{field}` in {line}");
    }
    assert_eq!(record["request_id"], "rid-1");
    assert_eq!(record["host"], "shop.example.com");
    assert_eq!(record["path"], "/basket");
    assert_eq!(record["status"], 200);
    assert_eq!(record["bytes"], 2, "the body really sent ({line})");
    assert_eq!(record["complete"], true);
    assert_eq!(record["route"], "beta");
    assert_eq!(record["pool"], "web");
    assert_eq!(record["backend"], backend.addr.to_string());
    assert_eq!(record["generation"], 1);
    assert_eq!(record["retries"], 0);
    assert_eq!(record["client"], "127.0.0.1");
    assert_eq!(record["user_agent"], "keel-test/1");
    // Microseconds at most: `0.444`, never `0.44406300000000004`.
    for field in ["duration_ms", "ttfb_ms"] {
        let ms = record[field].as_f64().expect("a number");
        assert_eq!((ms * 1000.0).round() / 1000.0, ms, "{field} in {line}");
    }
    let shape: keel_route::RequestShape =
        serde_json::from_str(&line).expect("a line is a traffic-file entry");
    assert_eq!(shape.method, "GET");
    assert_eq!(shape.headers, vec![("x-beta".to_string(), "1".to_string())]);
    assert_eq!(shape.hash_key.as_deref(), Some("c42"));
}

#[tokio::test]
async fn connection_cannot_remove_host_request_id_or_forwarding_headers() {
    let backend = TestBackend::start("b1", None).await;
    let proxy = TestProxy::start(&simple_config(&[&backend], "")).await;
    let (answer, _) = raw_exchange(
        proxy.addr,
        b"GET /cart HTTP/1.1\r\nHost: shop.example.com\r\n\
          Connection: host, x-request-id, x-forwarded-for, x-forwarded-host, x-secret, close\r\n\
          x-request-id: abc-123\r\nx-forwarded-for: 10.0.0.1\r\nx-secret: 1\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let head = backend.last_head().expect("backend saw the request");
    let header = |name: &str| head.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("host"), Some("shop.example.com"));
    assert_eq!(header("x-forwarded-host"), Some("shop.example.com"));
    assert_eq!(header("x-request-id"), Some("abc-123"));
    assert_eq!(header("x-forwarded-for"), Some("10.0.0.1, 127.0.0.1"));
    assert_eq!(header("x-secret"), None, "other named headers still go");
}

#[tokio::test]
async fn every_forwarded_for_line_is_kept_before_the_client_address() {
    let backend = TestBackend::start("b1", None).await;
    let proxy = TestProxy::start(&simple_config(&[&backend], "")).await;
    let (answer, _) = raw_exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\
          X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.9\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let head = backend.last_head().expect("backend saw the request");
    let lines: Vec<&str> = head
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(lines, ["6.6.6.6, 203.0.113.7, 10.0.0.9, 127.0.0.1"]);
}
