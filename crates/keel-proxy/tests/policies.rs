//! Route traffic policies through a real data plane: `allow` / `deny` address lists
//! judged on the TCP peer, answered `403 client-not-allowed` and counted per route.

mod support;

use std::sync::atomic::Ordering::Relaxed;

use http::StatusCode;
use support::*;

fn routes_config(backend: &TestBackend) -> String {
    let route = |name: &str, rule: &str| {
        format!(
            "[[routes]]\nname = \"{name}\"\npath_prefix = \"/{name}\"\nservice = \"web\"\npool = \"web\"\n{rule}\n\n"
        )
    };
    with_listener(&format!(
        "[services.web]\n\n{}\n{}{}{}{}",
        pool("web", "web", &[backend], ""),
        route("allowed", "allow = [\"127.0.0.0/8\", \"::1\"]"),
        route("elsewhere", "allow = [\"10.0.0.0/8\", \"2001:db8::/32\"]"),
        route("denied", "deny = [\"192.0.2.0/24\", \"127.0.0.1/32\"]"),
        route("open", "deny = [\"10.0.0.0/8\"]"),
    ))
}

#[tokio::test]
async fn address_lists_refuse_clients_they_do_not_admit_with_403() {
    let backend = TestBackend::start("b1", None).await;
    let proxy = TestProxy::start(&routes_config(&backend)).await;
    let client = client();

    for path in ["/allowed", "/open"] {
        let answer = get(&client, &proxy.url(path), &[]).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{path} should serve 127.0.0.1"
        );
        assert_eq!(answer.text(), "b1");
    }
    let served = backend.requests();

    for path in ["/elsewhere", "/denied"] {
        // A client-sent x-forwarded-for is not believed: the TCP peer is judged.
        let answer = get(
            &client,
            &proxy.url(path),
            &[("x-forwarded-for", "10.1.2.3")],
        )
        .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(answer.header("keel-error"), Some("client-not-allowed"));
        assert_eq!(answer.header("x-keel-generation"), Some("1"));
        let route = &path[1..];
        assert!(
            answer.text().contains(&format!("route `{route}`")),
            "the answer names the route: {}",
            answer.text()
        );
    }
    assert_eq!(
        backend.requests(),
        served,
        "a refused request reached the backend"
    );

    let stats = &proxy.generation.stats;
    let refused = |route: usize| stats.routes[route].policy_refused.load(Relaxed);
    assert_eq!(
        [refused(0), refused(1), refused(2), refused(3)],
        [0, 1, 1, 0]
    );
    assert_eq!(stats.routes[1].totals().iter().sum::<u64>(), 1);
    assert_eq!(stats.requests(), 4, "every answer is counted once");
}

#[tokio::test]
async fn header_rules_set_and_remove_headers_both_ways() {
    let backend = TestBackend::with_handler("b1", |_request| async {
        http::Response::builder()
            .header("server", "backend/1.0")
            .header("x-internal", "secret")
            .header("x-kept", "yes")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"ok")))
            .unwrap_or_default()
    })
    .await;
    let config = with_listener(&format!(
        "[services.web]\n\n{}\n\
         [[routes]]\nname = \"ruled\"\npath_prefix = \"/ruled\"\nservice = \"web\"\npool = \"web\"\n\
         request_headers = {{ set = {{ \"x-shop\" = \"eu\", \"User-Agent\" = \"keel-edge\" }}, remove = [\"x-debug\"] }}\n\
         response_headers = {{ set = {{ \"strict-transport-security\" = \"max-age=31536000\" }}, remove = [\"server\", \"X-Internal\"] }}\n\n\
         [[routes]]\nname = \"plain\"\nservice = \"web\"\npool = \"web\"\n",
        pool("web", "web", &[&backend], "")
    ));
    let proxy = TestProxy::start(&config).await;
    let client = client();
    let sent = [("x-debug", "1"), ("user-agent", "curl/8"), ("x-shop", "us")];

    let answer = get(&client, &proxy.url("/ruled"), &sent).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    assert_eq!(answer.header("server"), None);
    assert_eq!(answer.header("x-internal"), None);
    assert_eq!(answer.header("x-kept"), Some("yes"));
    let head = backend.last_head().expect("backend saw the request");
    let header = |name: &str| head.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("x-debug"), None);
    assert_eq!(
        header("x-shop"),
        Some("eu"),
        "set replaces the client's value"
    );
    assert_eq!(header("user-agent"), Some("keel-edge"));
    assert!(header("x-request-id").is_some());
    assert_eq!(header("x-forwarded-for"), Some("127.0.0.1"));

    // A route without rules passes both ways untouched.
    let answer = get(&client, &proxy.url("/other"), &sent).await;
    assert_eq!(answer.header("server"), Some("backend/1.0"));
    assert_eq!(answer.header("strict-transport-security"), None);
    let head = backend.last_head().expect("backend saw the request");
    assert_eq!(
        head.headers.get("x-debug").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert_eq!(
        head.headers.get("x-shop").map(|v| v.as_bytes()),
        Some(&b"us"[..])
    );
}
