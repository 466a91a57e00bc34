//! The console (`/ui`) through the admin router with `oneshot` (no socket): sign-in,
//! sessions, CSRF, the read-only token, the Now page, its event stream, and a rollback
//! from the Changes page that moves what `GET /status` reports.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use keel_control::admin::{AdminState, AdminToken, router};
use keel_control::{ApplyRequest, ApplyStatus, Controller, Hooks};
use keel_proxy::stats::Outcome;
use keel_store::MemoryStore;
use tower::ServiceExt;

const TOKEN: &str = "s3cret-token";
const READ_TOKEN: &str = "wall-token";

/// A controller serving generation 2 (generation 1 known-good and kept in memory),
/// with `[admin] read_token`, and one console router (sessions live in it).
async fn console() -> (Router, Controller) {
    let controller = support::controller(Arc::new(MemoryStore::new()), Hooks::default());
    for (port, message) in [(9001, "first"), (9002, "second")] {
        let config = support::config(
            SocketAddr::from(([127, 0, 0, 1], port)),
            "[safety]\nknown_good_after = \"0s\"",
        )
        .replace(
            "[admin]\n",
            &format!("[admin]\nread_token = \"{READ_TOKEN}\"\n"),
        );
        let outcome = controller
            .apply(ApplyRequest {
                config_text: config,
                author: "alice".into(),
                message: message.into(),
                ..ApplyRequest::default()
            })
            .await
            .expect("apply");
        assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:?}");
    }
    let state = AdminState {
        controller: controller.clone(),
        token: AdminToken::new(TOKEN, "test").expect("token"),
    };
    (router(state), controller)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn send(
    router: &Router,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let body = match form {
        Some(form) => {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(form.to_string())
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Signs in with `token`: the `Cookie` header value and the page's CSRF token.
async fn sign_in(router: &Router, token: &str) -> (String, String) {
    let answer = send(
        router,
        "POST",
        "/ui/login",
        None,
        Some(&format!("token={token}")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let set_cookie = answer
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("cookie pair")
        .to_string();
    let page = send(router, "GET", "/ui/now", Some(&cookie), None).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page
        .body
        .split(r#"<meta name="csrf" content=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token on the page")
        .to_string();
    (cookie, csrf)
}

fn serving(controller: &Controller) -> Option<u64> {
    controller.status().active.map(|a| a.id)
}

fn is_sign_in_form(body: &str) -> bool {
    body.contains(r#"action="/ui/login""#) && !body.contains("gen-id")
}

#[tokio::test]
async fn without_a_session_every_page_is_the_sign_in_form() {
    let (router, controller) = console().await;
    for path in ["/ui", "/ui/now", "/ui/changes", "/ui/changes/1/rollback"] {
        let answer = send(&router, "GET", path, None, None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(is_sign_in_form(&answer.body), "{path}: {}", answer.body);
        let forged = send(&router, "GET", path, Some("keel_console=guessed"), None).await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let events = send(&router, "GET", "/ui/events", None, None).await;
    assert_eq!(events.status, StatusCode::UNAUTHORIZED);
    let post = send(
        &router,
        "POST",
        "/ui/changes/1/rollback",
        None,
        Some("csrf=x"),
    )
    .await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);
    assert_eq!(serving(&controller), Some(2));
    // The assets hold no data and load without a session.
    let script = send(&router, "GET", "/ui/assets/console.js", None, None).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.body.contains("EventSource"));
}

#[tokio::test]
async fn sign_in_is_refused_with_a_wrong_token() {
    let (router, _) = console().await;
    for wrong in ["wrong", "s3cret-tokeN", "", "wall-token2"] {
        let answer = send(
            &router,
            "POST",
            "/ui/login",
            None,
            Some(&format!("token={wrong}")),
        )
        .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{wrong:?}");
        assert!(answer.headers.get(header::SET_COOKIE).is_none());
        assert!(answer.body.contains("wrong token"));
        assert!(is_sign_in_form(&answer.body));
    }
    let malformed = send(&router, "POST", "/ui/login", None, Some("password=x")).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_signed_in_page_shows_the_generation_and_its_history() {
    let (router, _) = console().await;
    let (cookie, _) = sign_in(&router, TOKEN).await;
    let now = send(&router, "GET", "/ui/now", Some(&cookie), None).await;
    assert!(
        now.body
            .contains(r#"Generation <strong class="gen-id">2</strong> serves since"#),
        "{}",
        now.body
    );
    assert!(now.body.contains("“second”"));
    assert!(now.body.contains("signed in: operator"));
    assert_eq!(
        now.headers.get(header::CACHE_CONTROL).map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    let changes = send(&router, "GET", "/ui/changes", Some(&cookie), None).await;
    assert_eq!(changes.status, StatusCode::OK);
    assert!(
        changes.body.contains(r#"href="/ui/changes/1/rollback""#),
        "{}",
        changes.body
    );
}

#[tokio::test]
async fn the_event_stream_sends_the_serving_generation() {
    let (router, _) = console().await;
    let (cookie, _) = sign_in(&router, TOKEN).await;
    let request = Request::get("/ui/events")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(&b"text/event-stream"[..])
    );
    let mut body = response.into_body();
    let frame = body.frame().await.expect("a first event").expect("frame");
    let text = String::from_utf8_lossy(frame.data_ref().expect("data")).into_owned();
    let data = text
        .strip_prefix("event: now\ndata: ")
        .and_then(|rest| rest.strip_suffix("\n\n"))
        .expect("one `now` event");
    let value: serde_json::Value = serde_json::from_str(data).expect("JSON");
    assert_eq!(value["generation"]["id"], 2);
    assert_eq!(value["routes_total"], 1);
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused() {
    let (router, controller) = console().await;
    let (cookie, csrf) = sign_in(&router, TOKEN).await;
    let path = "/ui/changes/1/rollback";
    let missing = send(&router, "POST", path, Some(&cookie), Some("reason=x")).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(missing.body.contains("CSRF"));
    let wrong = send(&router, "POST", path, Some(&cookie), Some("csrf=0000")).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let logout = send(&router, "POST", "/ui/logout", Some(&cookie), None).await;
    assert_eq!(logout.status, StatusCode::FORBIDDEN);
    assert_eq!(serving(&controller), Some(2));

    // The confirmation shows the dry run and why generation 1 is distrusted (it never
    // served long enough here: no known-good runner ticks in this test), and changes
    // nothing; the confirmed POST needs the ticked box, then rolls back.
    let confirm = send(&router, "GET", path, Some(&cookie), None).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        confirm.body.contains("Roll back from generation 2 to 1?"),
        "{}",
        confirm.body
    );
    assert!(confirm.body.contains("Generation 1 is not known-good"));
    assert!(confirm.body.contains("it never became known-good"));
    assert!(confirm.body.contains(r#"name="force""#));
    assert!(confirm.body.contains(r#"id="confirm-rollback""#));
    assert_eq!(serving(&controller), Some(2));
    let form = format!("csrf={csrf}&author=bob&reason=checkout+errors");
    let unforced = send(&router, "POST", path, Some(&cookie), Some(&form)).await;
    assert_eq!(unforced.status, StatusCode::CONFLICT);
    assert!(unforced.body.contains("not known-good"));
    assert_eq!(serving(&controller), Some(2));
    let done = send(
        &router,
        "POST",
        path,
        Some(&cookie),
        Some(&format!("{form}&force=yes")),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(
        done.body
            .contains(r#"generation <span class="gen-id">1</span> serves now"#)
    );
    assert_eq!(serving(&controller), Some(1));
}

#[tokio::test]
async fn the_read_only_session_cannot_roll_back() {
    let (router, controller) = console().await;
    let (cookie, csrf) = sign_in(&router, READ_TOKEN).await;
    let now = send(&router, "GET", "/ui/now", Some(&cookie), None).await;
    assert!(now.body.contains("signed in: read-only"));
    assert!(now.body.contains(r#"class="gen-id">2<"#));
    let confirm = send(
        &router,
        "GET",
        "/ui/changes/1/rollback",
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(!confirm.body.contains("confirm-rollback"));
    assert!(confirm.body.contains("read-only session"));
    let post = send(
        &router,
        "POST",
        "/ui/changes/1/rollback",
        Some(&cookie),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(post.status, StatusCode::FORBIDDEN);
    assert!(post.body.contains("read-only"));
    assert_eq!(serving(&controller), Some(2));
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let (router, _) = console().await;
    let (cookie, csrf) = sign_in(&router, TOKEN).await;
    let out = send(
        &router,
        "POST",
        "/ui/logout",
        Some(&cookie),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        out.headers
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("Max-Age=0"))
    );
    let after = send(&router, "GET", "/ui/now", Some(&cookie), None).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert!(is_sign_in_form(&after.body));
}

#[tokio::test]
async fn the_timeline_shows_the_changes_and_downloads_as_markdown() {
    let (router, _) = console().await;
    let signed_out = send(&router, "GET", "/ui/timeline.md", None, None).await;
    assert_eq!(signed_out.status, StatusCode::UNAUTHORIZED);
    let (cookie, _) = sign_in(&router, READ_TOKEN).await;
    let page = send(&router, "GET", "/ui/timeline?since=1h", Some(&cookie), None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("second"), "{}", page.body);
    let download = send(
        &router,
        "GET",
        "/ui/timeline.md?since=1h",
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(download.status, StatusCode::OK);
    assert!(
        download
            .headers
            .get(header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("attachment"))
    );
    assert!(download.body.starts_with('#'), "{}", download.body);
    assert!(download.body.contains("second"));
    let bad = send(
        &router,
        "GET",
        "/ui/timeline?since=last+tuesday",
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_topology_names_each_backend_state_in_words() {
    let (router, controller) = console().await;
    let (cookie, _) = sign_in(&router, READ_TOKEN).await;
    let page = send(&router, "GET", "/ui/topology", Some(&cookie), None).await;
    assert_eq!(page.status, StatusCode::OK);
    let health = controller.status().health;
    assert!(!health.pools.is_empty());
    for pool in &health.pools {
        assert!(
            page.body
                .contains(&format!("pool <strong>{}</strong>", pool.name))
        );
        for backend in &pool.backends {
            assert!(
                page.body.contains(&format!(
                    "<strong>{}</strong> {} —",
                    backend.state, backend.addr
                )),
                "{}",
                page.body
            );
        }
    }
}

/// `text` as a form value.
fn form_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn apply_from_the_console_is_checked_and_refusals_are_shown() {
    let (router, controller) = console().await;
    let (viewer, viewer_csrf) = sign_in(&router, READ_TOKEN).await;
    let (cookie, csrf) = sign_in(&router, TOKEN).await;
    let good = support::config(
        SocketAddr::from(([127, 0, 0, 1], 9003)),
        "[safety]\nknown_good_after = \"0s\"",
    );
    let form = |csrf: &str, config: &str, extra: &str| {
        format!(
            "csrf={csrf}&config={}&message=from+the+console{extra}",
            form_value(config)
        )
    };

    let page = send(&router, "GET", "/ui/apply", Some(&viewer), None).await;
    assert!(page.body.contains("read-only session"));
    let refused = send(
        &router,
        "POST",
        "/ui/apply",
        Some(&viewer),
        Some(&form(&viewer_csrf, &good, "")),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let no_csrf = send(
        &router,
        "POST",
        "/ui/apply",
        Some(&cookie),
        Some(&form("", &good, "")),
    )
    .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    assert_eq!(serving(&controller), Some(2));

    let page = send(&router, "GET", "/ui/apply", Some(&cookie), None).await;
    assert!(page.body.contains(r#"id="apply""#));
    assert!(
        page.body.contains("[pools.app]"),
        "the form holds the active config"
    );

    let broken = send(
        &router,
        "POST",
        "/ui/apply",
        Some(&cookie),
        Some(&form(&csrf, "nonsense = [", "")),
    )
    .await;
    assert_eq!(broken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(broken.body.contains("REFUSED"), "{}", broken.body);
    assert!(
        broken.body.contains("<strong>check</strong>"),
        "{}",
        broken.body
    );
    assert!(
        broken.body.contains("nonsense = ["),
        "the form keeps the text to fix"
    );
    assert_eq!(serving(&controller), Some(2));

    let dry = send(
        &router,
        "POST",
        "/ui/apply",
        Some(&cookie),
        Some(&form(&csrf, &good, "&dry_run=yes")),
    )
    .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
    assert!(dry.body.contains("Dry run"));
    assert_eq!(serving(&controller), Some(2));

    let applied = send(
        &router,
        "POST",
        "/ui/apply",
        Some(&cookie),
        Some(&form(&csrf, &good, "")),
    )
    .await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    assert!(applied.body.contains("serves now"));
    let now = serving(&controller).expect("serving");
    assert!(now > 2, "a new generation serves: {now}");
    assert!(
        applied
            .body
            .contains(&format!(r#"<span class="gen-id">{now}</span>"#))
    );
}

#[tokio::test]
async fn a_generation_page_shows_its_diff_from_the_one_before() {
    let (router, _) = console().await;
    let (cookie, _) = sign_in(&router, READ_TOKEN).await;
    let page = send(&router, "GET", "/ui/changes/2", Some(&cookie), None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<h1>Generation 2</h1>"));
    assert!(page.body.contains("Changes from generation 1"));
    // The diff (not just the config text below it) names the backend that changed.
    let diff = page
        .body
        .split("Changes from generation 1")
        .nth(1)
        .and_then(|rest| rest.split("<details>").next())
        .expect("a diff section");
    assert!(diff.contains("127.0.0.1:9002"), "{diff}");
    assert!(page.body.contains("second"));
    let missing = send(&router, "GET", "/ui/changes/99", Some(&cookie), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let bad = send(&router, "GET", "/ui/changes/x", Some(&cookie), None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_event_carries_each_intent_band_for_its_host() {
    let controller = support::controller(Arc::new(MemoryStore::new()), Hooks::default());
    let config = support::config(
        SocketAddr::from(([127, 0, 0, 1], 9001)),
        "[[intents]]\nhost = \"shop.example.com\"\nservice = \"app\"\nmin_share = 0.9",
    );
    let outcome = controller
        .apply(ApplyRequest {
            config_text: config,
            ..ApplyRequest::default()
        })
        .await
        .expect("apply");
    assert_eq!(outcome.status, ApplyStatus::Applied, "{outcome:?}");
    let mut tracker = keel_control::console::LiveTracker::default();
    let event = tracker.tick(&controller);
    let hosts = event["hosts"].as_array().expect("hosts");
    let shop = hosts
        .iter()
        .find(|h| h["host"] == "shop.example.com")
        .expect("the intent's host is listed before any traffic");
    assert_eq!(shop["intents"][0]["service"], "app");
    assert_eq!(shop["intents"][0]["min"], 0.9);
    assert!(shop["intents"][0]["max"].is_null());
    assert_eq!(event["measured"], false);
    let second = tracker.tick(&controller);
    assert_eq!(second["measured"], true);
}

/// Longest the admin listener may take to shut down with a console stream open before
/// the test calls it hung (a guard against hanging, not a timing claim: it ends at the
/// next event, one second).
const SHUTDOWN_GUARD: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads from `stream` until `needle` arrived or the peer closed; everything read.
async fn read_until(stream: &mut tokio::net::TcpStream, needle: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if String::from_utf8_lossy(&seen).contains(needle) {
            break;
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn an_open_event_stream_does_not_hold_up_shutdown() {
    use tokio::io::AsyncWriteExt;
    let (_, controller) = console().await;
    let state = AdminState {
        controller,
        token: AdminToken::new(TOKEN, "test").expect("token"),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(keel_control::admin::serve(listener, state, async {
        let _ = stopped.await;
    }));

    let mut login = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = format!("token={TOKEN}");
    login
        .write_all(
            format!(
                "POST /ui/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let answer = read_until(&mut login, "\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    let cookie = answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();

    let mut events = tokio::net::TcpStream::connect(addr).await.expect("connect");
    events
        .write_all(
            format!("GET /ui/events HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("write");
    let first = read_until(&mut events, "event: now").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(first.contains("text/event-stream"), "{first}");

    let _ = stop.send(());
    let ended = tokio::time::timeout(SHUTDOWN_GUARD, server).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the admin listener did not shut down with a console stream open: {ended:?}"
    );
    // The stream was ended properly: the chunked body's last chunk arrived.
    let rest = read_until(&mut events, "0\r\n\r\n").await;
    assert!(rest.ends_with("0\r\n\r\n"), "{rest:?}");
}

/// Routes in the large config (as many as `bench/console_tick.rs` measures).
const MANY_ROUTES: usize = 10_000;
/// Pools of the large config, two backends each: 500 backends.
const MANY_POOLS: usize = 250;

/// 10,000 routes over 500 hosts and 250 pools of two backends each.
fn large_config() -> String {
    use std::fmt::Write;
    let mut text = String::from(
        "[listeners.web]\naddr = \"127.0.0.1:18080\"\n\n[admin]\naddr = \"127.0.0.1:19901\"\n\n[services.app]\nallow_no_identity = true\n\n[services.search]\nallow_no_identity = true\n\n",
    );
    for pool in 0..MANY_POOLS {
        let _ = write!(
            text,
            "[pools.p{pool}]\nservice = \"{}\"\nbackends = [{{ addr = \"127.0.0.{}:{}\" }}, {{ addr = \"127.0.0.{}:{}\" }}]\n\n",
            if pool == 0 { "search" } else { "app" },
            1 + pool % 200,
            10_000 + pool,
            1 + pool % 200,
            20_000 + pool
        );
    }
    for route in 0..MANY_ROUTES {
        let pool = route % MANY_POOLS;
        let _ = writeln!(
            text,
            "[[routes]]\nname = \"r{route}\"\nhost = \"h{}.example.com\"\npath_prefix = \"/api/v{route}/\"\nservice = \"{}\"\npool = \"p{pool}\"\nretries = 0\n",
            route % 500,
            if pool == 0 { "search" } else { "app" },
        );
    }
    text
}

/// The table rows of a Routes page, each as its cells' text.
fn table_rows(body: &str, tbody_id: &str) -> Vec<Vec<String>> {
    let Some(tbody) = body
        .split(&format!(r#"<tbody id="{tbody_id}">"#))
        .nth(1)
        .and_then(|rest| rest.split("</tbody>").next())
    else {
        return Vec::new();
    };
    tbody
        .split("<tr>")
        .skip(1)
        .map(|row| {
            row.split("<td>")
                .skip(1)
                .map(|cell| cell.split("</td>").next().unwrap_or_default().to_string())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn every_route_of_ten_thousand_is_found_a_page_at_a_time() {
    let controller = support::controller(Arc::new(MemoryStore::new()), Hooks::default());
    let outcome = controller
        .apply(ApplyRequest {
            config_text: large_config(),
            ..ApplyRequest::default()
        })
        .await
        .expect("apply");
    assert_eq!(
        outcome.status,
        ApplyStatus::Applied,
        "{:?}",
        outcome.refusals
    );
    let router = router(AdminState {
        controller: controller.clone(),
        token: AdminToken::new(TOKEN, "test").expect("token"),
    });
    let (cookie, _) = sign_in(&router, TOKEN).await;
    let per_page = keel_control::console::ROUTES_PER_PAGE;
    let pages = MANY_ROUTES / per_page;

    let signed_out = send(&router, "GET", "/ui/routes", None, None).await;
    assert_eq!(signed_out.status, StatusCode::UNAUTHORIZED);

    // File order: page 1 starts with the first route, the last page ends with the last.
    let first = send(&router, "GET", "/ui/routes?order=file", Some(&cookie), None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let rows = table_rows(&first.body, "all-routes");
    assert_eq!(rows.len(), per_page);
    assert_eq!(rows[0][1], "r0");
    assert_eq!(rows[0][2], "h0.example.com");
    assert_eq!(rows[0][5], "p0");
    assert!(
        first.body.contains(&format!("page 1 of {pages}")),
        "{}",
        first.body
    );
    assert!(first.body.contains(r#"rel="next""#));
    let last = send(
        &router,
        "GET",
        &format!("/ui/routes?order=file&page={pages}"),
        Some(&cookie),
        None,
    )
    .await;
    let rows = table_rows(&last.body, "all-routes");
    assert_eq!(rows.len(), per_page);
    assert_eq!(rows[per_page - 1][1], format!("r{}", MANY_ROUTES - 1));
    assert!(!last.body.contains(r#"rel="next""#));
    assert!(last.body.contains(r#"rel="prev""#));

    // Past the end, and nonsense, get clear answers.
    let beyond = format!("/ui/routes?page={}", pages + 1);
    for (path, status) in [
        (beyond.as_str(), StatusCode::NOT_FOUND),
        ("/ui/routes?page=0", StatusCode::NOT_FOUND),
        ("/ui/routes?page=x", StatusCode::BAD_REQUEST),
        ("/ui/routes?order=sideways", StatusCode::BAD_REQUEST),
    ] {
        let answer = send(&router, "GET", path, Some(&cookie), None).await;
        assert_eq!(answer.status, status, "{path}");
    }

    // A filter finds one route among 10,000 (and every route whose name starts so).
    let found = send(&router, "GET", "/ui/routes?q=r9999", Some(&cookie), None).await;
    let rows = table_rows(&found.body, "all-routes");
    assert_eq!(rows.len(), 1, "{}", found.body);
    assert_eq!(rows[0][3], "path_prefix = &quot;/api/v9999/&quot;");
    assert!(found.body.contains("page 1 of 1"));

    // Busiest first: a route far down the file that took requests leads page 1, and the
    // per-service sums count them (an error rate of 1 in 3).
    let generation = controller.plane().active().expect("active").primary.clone();
    let busy = 7777;
    let counters = &generation.stats.routes[busy].targets[0][0];
    for outcome in [Outcome::Success, Outcome::Success, Outcome::ServerError] {
        counters.record(outcome);
    }
    let page = send(&router, "GET", "/ui/routes", Some(&cookie), None).await;
    let rows = table_rows(&page.body, "all-routes");
    assert_eq!(rows[0][1], format!("r{busy}"));
    assert_eq!(rows[0][6], "3");
    assert_eq!(rows[0][7], "33.3 %");
    assert_eq!(rows[1][6], "0");
    let services = table_rows(&page.body, "per-service");
    assert_eq!(services.len(), 2);
    assert_eq!(services[0][0], "app");
    assert_eq!(
        services[0][1],
        (MANY_ROUTES - MANY_ROUTES / MANY_POOLS).to_string()
    );
    assert_eq!(services[0][2], "3");
    assert_eq!(services[1][0], "search");
    assert_eq!(services[1][1], (MANY_ROUTES / MANY_POOLS).to_string());
}

/// Backends in the large pool of the topology test.
const LARGE_POOL: usize = 40;

#[tokio::test]
async fn a_large_pool_is_summed_up_and_lists_its_backends_out_of_traffic() {
    let up = keel_testkit::Backend::new("app").start().await;
    let mut backends = vec![format!("{{ addr = \"{up}\" }}")];
    backends
        .extend((1..LARGE_POOL).map(|_| format!("{{ addr = \"{}\" }}", keel_testkit::free_addr())));
    let config = support::config(up, "").replace(
        &format!("backends = [{{ addr = \"{up}\" }}]"),
        &format!(
            "health = {{ path = \"/healthz\", interval = \"50ms\", timeout = \"200ms\", unhealthy_after = 1 }}\nbackends = [{}]",
            backends.join(", ")
        ),
    );
    let controller = support::controller(Arc::new(MemoryStore::new()), Hooks::default());
    let outcome = controller
        .apply(ApplyRequest {
            config_text: config,
            ..ApplyRequest::default()
        })
        .await
        .expect("apply");
    assert_eq!(
        outcome.status,
        ApplyStatus::Applied,
        "{:?}",
        outcome.refusals
    );
    let probed = support::eventually(std::time::Duration::from_secs(10), || async {
        let health = controller.status().health;
        (health.serving == 1 && health.out == LARGE_POOL - 1).then_some(())
    })
    .await;
    assert!(probed.is_some(), "{:?}", controller.status().health);
    let router = router(AdminState {
        controller: controller.clone(),
        token: AdminToken::new(TOKEN, "test").expect("token"),
    });
    let (cookie, _) = sign_in(&router, TOKEN).await;
    let page = send(&router, "GET", "/ui/topology", Some(&cookie), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(&format!(
            "— {LARGE_POOL} backends: 1 healthy, {} unhealthy; those out of traffic:",
            LARGE_POOL - 1
        )),
        "{}",
        page.body
    );
    assert_eq!(
        page.body
            .matches(r#"<li class="backend state-unhealthy">"#)
            .count(),
        LARGE_POOL - 1
    );
    assert!(
        !page
            .body
            .contains(&format!("<strong>healthy</strong> {up}"))
    );
    assert!(page.body.contains(&format!(
        r#"data-list-max="{}""#,
        keel_control::console::MAX_LISTED_BACKENDS
    )));
}

/// The `Set-Cookie` of a sign-in with `TOKEN` and `extra` request headers.
async fn sign_in_cookie(router: &Router, extra: &[(&str, &str)]) -> String {
    let mut request = Request::builder()
        .method("POST")
        .uri("/ui/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(
            request
                .body(Body::from(format!("token={TOKEN}")))
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_string()
}

#[tokio::test]
async fn the_session_cookie_is_secure_behind_https_and_off_loopback() {
    let (router, _) = console().await;
    for plain in [
        &[][..],
        &[("x-forwarded-proto", "http")],
        &[("forwarded", "for=192.0.2.1;proto=http")],
    ] {
        let cookie = sign_in_cookie(&router, plain).await;
        assert!(!cookie.contains("Secure"), "{plain:?}: {cookie}");
    }
    for https in [
        &[("x-forwarded-proto", "https")][..],
        &[("x-forwarded-proto", "HTTPS, http")],
        &[("forwarded", "for=192.0.2.1;proto=https")],
        &[("forwarded", "for=192.0.2.1, proto=\"https\"")],
    ] {
        let cookie = sign_in_cookie(&router, https).await;
        assert!(cookie.ends_with("; Secure"), "{https:?}: {cookie}");
    }

    // An admin listener on every interface: Secure whatever the request says.
    let controller = support::controller(Arc::new(MemoryStore::new()), Hooks::default());
    let config = support::config(SocketAddr::from(([127, 0, 0, 1], 9001)), "")
        .replace("127.0.0.1:19901", "0.0.0.0:19901");
    let outcome = controller
        .apply(ApplyRequest {
            config_text: config,
            ..ApplyRequest::default()
        })
        .await
        .expect("apply");
    assert_eq!(
        outcome.status,
        ApplyStatus::Applied,
        "{:?}",
        outcome.refusals
    );
    let exposed = router_of(&controller);
    let cookie = sign_in_cookie(&exposed, &[]).await;
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}

fn router_of(controller: &Controller) -> Router {
    router(AdminState {
        controller: controller.clone(),
        token: AdminToken::new(TOKEN, "test").expect("token"),
    })
}
