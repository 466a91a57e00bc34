//! The admin API: every guarded route answers 401 without the token and 403 with a
//! wrong one; `/healthz` needs none; bodies are bounded; answers are JSON. First through
//! `oneshot` without a socket, then through the real client over a real socket.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use keel_control::admin::{AdminState, AdminToken, router};
use keel_control::api::{ApplyBody, MAX_APPLY_BODY_BYTES, MAX_SMALL_BODY_BYTES, RollbackBody};
use keel_control::client::{AdminClient, ClientError};
use keel_control::{ApplyRequest, ApplyStatus, Controller, Hooks};
use keel_store::MemoryStore;
use tower::ServiceExt;

const TOKEN: &str = "s3cret-token";

/// Every guarded route: method, path, body.
const GUARDED: &[(&str, &str, &str)] = &[
    ("GET", "/status", ""),
    ("GET", "/generations", ""),
    ("GET", "/generations/1", ""),
    ("POST", "/apply", r#"{"config": ""}"#),
    ("POST", "/rollback", "{}"),
    ("GET", "/config", ""),
    ("GET", "/traffic/sample", ""),
];

fn backend() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9001))
}

async fn state() -> AdminState {
    let controller = support::controller(Arc::new(MemoryStore::new()), Hooks::default());
    let outcome = controller
        .apply(ApplyRequest {
            config_text: support::config(backend(), "[safety]\nknown_good_after = \"0s\""),
            author: "alice".into(),
            ..ApplyRequest::default()
        })
        .await
        .expect("apply");
    assert_eq!(outcome.status, ApplyStatus::Applied);
    AdminState {
        controller,
        token: AdminToken::new(TOKEN, "test").expect("token"),
    }
}

async fn call(
    state: &AdminState,
    method: &str,
    path: &str,
    body: impl Into<Body>,
    auth: Option<&str>,
) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(auth) = auth {
        request = request.header(header::AUTHORIZATION, auth);
    }
    let request = request
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("request");
    let response = router(state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("JSON body")
}

#[tokio::test]
async fn every_guarded_route_needs_the_token() {
    let state = state().await;
    for (method, path, body) in GUARDED {
        let (status, headers, answer) = call(&state, method, path, *body, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(
            headers.get(header::WWW_AUTHENTICATE).map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
        assert!(json(&answer)["error"].is_string());
        let (status, ..) = call(&state, method, path, *body, Some("Basic czNjcmV0")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} basic");
        let (status, _, answer) = call(&state, method, path, *body, Some("Bearer wrong")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(json(&answer)["error"], "wrong admin token");
        let (status, ..) = call(&state, method, path, *body, Some("Bearer s3cret-tokeN")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} near miss");
        let (status, ..) = call(
            &state,
            method,
            path,
            *body,
            Some(&format!("Bearer {TOKEN}")),
        )
        .await;
        assert!(
            status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            "{method} {path}: {status}"
        );
    }
    // Nothing was changed by the refused mutations.
    assert_eq!(
        state
            .controller
            .store()
            .generations(10)
            .expect("store")
            .len(),
        2
    );
    let (status, _, body) = call(&state, "GET", "/healthz", Body::empty(), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["generation"], 1);
}

#[tokio::test]
async fn healthz_is_503_before_anything_serves() {
    let controller = support::controller(Arc::new(MemoryStore::new()), Hooks::default());
    let state = AdminState {
        controller,
        token: AdminToken::new(TOKEN, "test").expect("token"),
    };
    let (status, _, body) = call(&state, "GET", "/healthz", Body::empty(), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(&body)["status"], "starting");
}

#[tokio::test]
async fn bodies_are_bounded() {
    let state = state().await;
    let auth = Some(format!("Bearer {TOKEN}"));
    let huge = format!(r#"{{"config": "{}"}}"#, "#".repeat(MAX_APPLY_BODY_BYTES));
    let (status, _, body) = call(&state, "POST", "/apply", huge, auth.as_deref()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json(&body)["error"].is_string());
    let big = format!(r#"{{"reason": "{}"}}"#, "x".repeat(MAX_SMALL_BODY_BYTES));
    let (status, ..) = call(&state, "POST", "/rollback", big, auth.as_deref()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // A 2 MiB config is fine: the limit is for abuse, not for big configs.
    let text = support::config(backend(), &format!("# {}\n", "x".repeat(2 << 20)));
    let body = serde_json::to_vec(&ApplyBody {
        config: text,
        ..ApplyBody::default()
    })
    .expect("json");
    let (status, _, answer) = call(&state, "POST", "/apply", body, auth.as_deref()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn answers_are_json_with_fitting_statuses() {
    let state = state().await;
    let auth = Some(format!("Bearer {TOKEN}"));
    let auth = auth.as_deref();
    let (status, _, body) = call(&state, "POST", "/apply", "{not json", auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        json(&body)["error"]
            .as_str()
            .is_some_and(|e| e.contains("bad request body"))
    );
    let refused = serde_json::to_vec(&ApplyBody {
        config: "[listeners.web]\naddr = 5".into(),
        file_name: "bad.toml".into(),
        ..ApplyBody::default()
    })
    .expect("json");
    let (status, _, body) = call(&state, "POST", "/apply", refused, auth).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = json(&body);
    assert_eq!(body["status"], "refused");
    assert_eq!(body["report"]["file"], "bad.toml");
    assert!(
        body["report_text"]
            .as_str()
            .is_some_and(|t| t.contains("bad.toml:2"))
    );
    let (status, _, body) = call(&state, "POST", "/rollback", Body::empty(), auth).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(json(&body)["hint"].is_string());
    let (status, ..) = call(&state, "GET", "/generations/99", Body::empty(), auth).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, ..) = call(&state, "GET", "/generations/abc", Body::empty(), auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, body) = call(&state, "GET", "/generations/1", Body::empty(), auth).await;
    assert_eq!(status, StatusCode::OK);
    let body = json(&body);
    assert_eq!(
        (
            body["id"].as_u64(),
            body["author"].as_str(),
            body["state"].as_str()
        ),
        (Some(1), Some("alice"), Some("active"))
    );
    assert!(
        body["config"]
            .as_str()
            .is_some_and(|c| c.contains("[pools.app]"))
    );
    assert!(body["check_report"]["diagnostics"].is_array());
    let (_, _, body) = call(&state, "GET", "/generations?limit=1", Body::empty(), auth).await;
    assert_eq!(json(&body).as_array().map(Vec::len), Some(1));
    let (_, _, body) = call(&state, "GET", "/config", Body::empty(), auth).await;
    assert_eq!(json(&body)["generation"], 1);
    let (_, headers, _) = call(&state, "GET", "/traffic/sample", Body::empty(), auth).await;
    assert_eq!(
        headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/x-ndjson"[..])
    );
}

#[tokio::test]
async fn the_client_drives_a_real_admin_socket() {
    let state = state().await;
    let controller: Controller = state.controller.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(keel_control::admin::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let url = format!("http://{addr}");
    let client = AdminClient::new(&url, Some(AdminToken::new(TOKEN, "test").expect("token")))
        .expect("client");

    assert_eq!(
        client.status().await.expect("status").active.map(|a| a.id),
        Some(1)
    );
    controller.promote_known_good().await.expect("promote");
    let applied = client
        .apply(&ApplyBody {
            config: support::config(SocketAddr::from(([127, 0, 0, 1], 9002)), ""),
            author: "bob".into(),
            message: "new backend".into(),
            ..ApplyBody::default()
        })
        .await
        .expect("apply");
    assert_eq!(
        (applied.status, applied.generation),
        (ApplyStatus::Applied, Some(2))
    );
    let refused = client
        .apply(&ApplyBody {
            config: "nonsense = [".into(),
            ..ApplyBody::default()
        })
        .await
        .expect("apply");
    assert_eq!(refused.status, ApplyStatus::Refused);
    let history = client.history(10).await.expect("history");
    assert_eq!(
        history
            .iter()
            .map(|g| (g.id, g.state.as_str()))
            .collect::<Vec<_>>(),
        vec![(3, "rejected"), (2, "active"), (1, "superseded")]
    );
    assert!(history[1].in_memory && history[2].known_good);
    assert_eq!(
        client.generation(2).await.expect("show").summary.message,
        "new backend"
    );
    let rolled = client
        .rollback(&RollbackBody::default())
        .await
        .expect("rollback");
    assert_eq!((rolled.from, rolled.to, rolled.persisted), (2, 1, true));
    assert_eq!(client.config().await.expect("config").generation, 1);
    assert!(client.traffic_sample().await.expect("sample").is_empty());
    let no_target = client
        .rollback(&RollbackBody {
            to: Some(3),
            ..RollbackBody::default()
        })
        .await;
    assert!(
        matches!(&no_target, Err(ClientError::Api { status: 409, .. })),
        "{no_target:?}"
    );

    let wrong = AdminClient::new(&url, Some(AdminToken::new("wrong", "test").expect("token")))
        .expect("client");
    assert_eq!(
        wrong.status().await.err().and_then(|e| e.status()),
        Some(403)
    );
    let anonymous = AdminClient::new(&url, None).expect("client");
    assert_eq!(
        anonymous
            .rollback(&RollbackBody::default())
            .await
            .err()
            .and_then(|e| e.status()),
        Some(401)
    );
    assert!(anonymous.healthz().await.is_ok());
    assert!(AdminClient::new("https://127.0.0.1:1", None).is_err());

    let _ = stop.send(());
    server.await.expect("join").expect("serve");
    let gone = client.status().await;
    assert!(
        matches!(gone, Err(ClientError::Unreachable { .. })),
        "{gone:?}"
    );
}

#[tokio::test]
async fn unknown_fields_in_a_body_are_refused_by_name_and_change_nothing() {
    let state = state().await;
    let auth = Some(format!("Bearer {TOKEN}"));
    let misspelled = serde_json::json!({
        "config": support::config(SocketAddr::from(([127, 0, 0, 1], 9002)), ""),
        "dryrun": true,
    })
    .to_string();
    let (status, _, body) = call(&state, "POST", "/apply", misspelled, auth.as_deref()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = json(&body)["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("unknown field `dryrun`"), "{error}");
    assert_eq!(state.controller.active().map(|a| a.id()), Some(1));

    let (status, _, body) = call(
        &state,
        "POST",
        "/rollback",
        r#"{"too": 1}"#,
        auth.as_deref(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = json(&body)["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("unknown field `too`"), "{error}");
    let (status, _, body) = call(
        &state,
        "GET",
        "/generations?limt=5",
        Body::empty(),
        auth.as_deref(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("limt"));
}

/// Waits (bounded) for the server to close `stream`; true when it did.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 512];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buffer))
            .await
        {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn the_admin_listener_caps_connections_and_closes_idle_ones() {
    use keel_control::admin::{AdminLimits, serve_with};
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

    let state = state().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let limits = AdminLimits {
        max_connections: 2,
        header_read_timeout: std::time::Duration::from_millis(300),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with(listener, state, limits, async {
        let _ = stopped.await;
    }));

    // Two idle connections fill the cap; the third is closed as soon as it is accepted.
    let mut first = TcpStream::connect(addr).await.expect("connect");
    let mut second = TcpStream::connect(addr).await.expect("connect");
    let mut third = TcpStream::connect(addr).await.expect("connect");
    assert!(closed_by_server(&mut third).await, "third connection kept");
    // The idle ones send no head in time and are closed; their slots come back.
    assert!(closed_by_server(&mut first).await, "idle connection kept");
    assert!(closed_by_server(&mut second).await, "idle connection kept");
    let mut fresh = TcpStream::connect(addr).await.expect("connect");
    fresh
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut fresh, &mut answer)
        .await
        .expect("read");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let _ = stop.send(());
    server.await.expect("join").expect("serve");
}
