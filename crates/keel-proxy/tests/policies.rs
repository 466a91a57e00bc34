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
