//! The console in a real browser against a real `keel serve`: headless Chromium driven
//! through chromedriver (WebDriver), signing in (a wrong token refused), seeing the
//! generation, the share chart and the alert a forced bad apply raises, the
//! misidentified backend on Topology with the service it claims to be, rolling back
//! from the Changes page and seeing `GET /status` change; a POST without the CSRF token
//! and a read-only session's rollback refused. Skips, saying so, when
//! chromedriver is missing (Debian packages `chromium` and `chromium-driver`; CI installs
//! them). Also `keel console` against the same process.
//!
//! The WebDriver calls are a handful of JSON requests over the hyper client the tests
//! already use, rather than a WebDriver crate and its TLS stack.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keel_control::admin::AdminToken;
use keel_control::api::ApplyBody;
use keel_control::client::AdminClient;
use keel_control::{ApplyStatus, Status};
use keel_testkit::{Backend, eventually, free_addr};
use serde_json::{Value, json};

const TOKEN: &str = "browser-test-token";
const READ_TOKEN: &str = "wall-token";
/// Environment variable naming the chromedriver binary (default: `chromedriver` on PATH).
const CHROMEDRIVER_ENV: &str = "KEEL_CHROMEDRIVER";
/// When set to a directory, the browser test saves screenshots of the main views there
/// (`docs/console-screenshots.sh` refreshes the ones in `docs/images/`).
const SCREENSHOTS_ENV: &str = "KEEL_CONSOLE_SCREENSHOTS";
/// Requests sent through the proxy between two looks at the share chart.
const LOAD_PER_CHECK: usize = 5;
/// Longest a look at the browser (or Keel's admin) waits for what it expects (20 s).
const BROWSER_WAIT: Duration = Duration::from_secs(20);
/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A child process killed (by its id) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two identified services, `app` and `catalog`, each with its pool and route; `app_pool`
/// is where the `app` pool points.
fn config(
    proxy: SocketAddr,
    admin: SocketAddr,
    app_pool: SocketAddr,
    catalog: SocketAddr,
) -> String {
    format!(
        "[listeners.web]\naddr = \"{proxy}\"\n\n[admin]\naddr = \"{admin}\"\nread_token = \"{READ_TOKEN}\"\n\n\
         [safety]\nknown_good_after = \"0s\"\n\n\
         [services.app]\nidentity = {{ header = \"x-service\", equals = \"app\" }}\n\n\
         [services.catalog]\nidentity = {{ header = \"x-service\", equals = \"catalog\" }}\n\n\
         [pools.app]\nservice = \"app\"\nbackends = [{{ addr = \"{app_pool}\" }}]\n\n\
         [pools.catalog]\nservice = \"catalog\"\nbackends = [{{ addr = \"{catalog}\" }}]\n\n\
         [[routes]]\nname = \"catalog\"\npath_prefix = \"/catalog\"\nservice = \"catalog\"\npool = \"catalog\"\nretries = 0\n\n\
         [[routes]]\nname = \"all\"\nservice = \"app\"\npool = \"app\"\nretries = 0\n"
    )
}

/// `keel serve` on free loopback ports: generation 1 routes `app` to its own backend;
/// generation 2, applied with `--force` and without the guard (as an operator in a hurry
/// would), points the `app` pool at the `catalog` backend, which answers as `catalog`.
async fn serve(dir: &Path) -> (Process, String, AdminClient, SocketAddr) {
    let app = Backend::new("app").start().await;
    let catalog = Backend::new("catalog").start().await;
    let (proxy, admin) = (free_addr(), free_addr());
    let file = dir.join("keel.toml");
    std::fs::write(&file, config(proxy, admin, app, catalog)).expect("config");
    let log = std::fs::File::create(dir.join("serve.log")).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["serve", "--config"])
        .arg(&file)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("KEEL_ADMIN_TOKEN", TOKEN)
        .env("KEEL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn keel serve");
    let process = Process(child);
    let url = format!("http://{admin}");
    let client = AdminClient::new(&url, Some(AdminToken::new(TOKEN, "test").expect("token")))
        .expect("client");
    eventually(BROWSER_WAIT, || async { client.healthz().await.ok() })
        .await
        .unwrap_or_else(|| panic!("keel serve never answered: {}", log_of(dir)));
    let applied = client
        .apply(&ApplyBody {
            config: config(proxy, admin, catalog, catalog),
            message: "app pool onto the catalog servers".into(),
            // The identity probe refuses this change (the backend answers as `catalog`);
            // forcing it without the guard leaves the bad generation serving, so that
            // the console, not the guard, is what notices and undoes it.
            force: true,
            no_guard: true,
            ..ApplyBody::default()
        })
        .await
        .expect("apply");
    assert_eq!(applied.status, ApplyStatus::Applied, "{applied:?}");
    (process, url, client, proxy)
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
}

async fn serving(client: &AdminClient) -> Option<u64> {
    let status: Status = client.status().await.ok()?;
    status.active.map(|a| a.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_console_prints_the_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_keel, url, _, _) = serve(dir.path()).await;
    let output = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["console", "--admin", &url])
        .output()
        .expect("run keel console");
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{url}/ui/\n")
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("generation 2 serves"));
    let nobody = format!("http://{}", free_addr());
    let output = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["console", "--admin", &nobody])
        .output()
        .expect("run keel console");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{nobody}/ui/\n")
    );
}

/// A WebDriver session on a chromedriver child.
struct Browser {
    http: Client<HttpConnector, Full<Bytes>>,
    base: String,
    _driver: Process,
}

impl Browser {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| e.to_string())?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let ok = response.status().is_success();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if ok {
            Ok(value["value"].clone())
        } else {
            Err(value["value"].to_string())
        }
    }

    async fn goto(&self, session: &str, url: &str) {
        self.call(
            "POST",
            &format!("/session/{session}/url"),
            Some(json!({ "url": url })),
        )
        .await
        .expect("navigate");
    }

    async fn find(&self, session: &str, css: &str) -> Option<String> {
        let found = self
            .call(
                "POST",
                &format!("/session/{session}/element"),
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .ok()?;
        found[ELEMENT].as_str().map(str::to_string)
    }

    async fn text(&self, session: &str, css: &str) -> Option<String> {
        let element = self.find(session, css).await?;
        let text = self
            .call(
                "GET",
                &format!("/session/{session}/element/{element}/text"),
                None,
            )
            .await
            .ok()?;
        text.as_str().map(str::to_string)
    }

    /// Saves the window as `NAME.png` in `$KEEL_CONSOLE_SCREENSHOTS`, when it is set.
    async fn screenshot(&self, session: &str, name: &str) {
        let Some(dir) = std::env::var_os(SCREENSHOTS_ENV) else {
            return;
        };
        let shot = self
            .call("GET", &format!("/session/{session}/screenshot"), None)
            .await
            .expect("screenshot");
        let png = base64_decode(shot.as_str().expect("base64 text"));
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// The page's HTML, to explain a failure.
    async fn source(&self, session: &str) -> String {
        match self
            .call("GET", &format!("/session/{session}/source"), None)
            .await
        {
            Ok(value) => value.as_str().unwrap_or_default().to_string(),
            Err(error) => error,
        }
    }

    async fn click(&self, session: &str, css: &str) {
        let Some(element) = self.find(session, css).await else {
            panic!("no {css} in {}", self.source(session).await);
        };
        self.call(
            "POST",
            &format!("/session/{session}/element/{element}/click"),
            Some(json!({})),
        )
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Runs `script` in the page as an async WebDriver script: it calls its last
    /// argument with the result.
    async fn run(&self, session: &str, script: &str) -> Value {
        self.call(
            "POST",
            &format!("/session/{session}/execute/async"),
            Some(json!({ "script": script, "args": [] })),
        )
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    async fn type_into(&self, session: &str, css: &str, text: &str) {
        let Some(element) = self.find(session, css).await else {
            panic!("no {css} in {}", self.source(session).await);
        };
        self.call(
            "POST",
            &format!("/session/{session}/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .expect("type");
    }
}

/// Standard base64 (WebDriver's screenshot encoding) to bytes.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0);
    for byte in text.bytes() {
        let Some(value) = ALPHABET.iter().position(|&c| c == byte) else {
            continue; // padding and line breaks
        };
        bits = (bits << 6) | value as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

fn chromedriver() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(CHROMEDRIVER_ENV) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromedriver"))
        .find(|candidate| candidate.is_file())
}

async fn browser() -> Option<(Browser, String)> {
    let Some(driver) = chromedriver() else {
        eprintln!(
            "SKIPPED: chromedriver not found (install the Debian packages `chromium` and \
             `chromium-driver`, or set {CHROMEDRIVER_ENV}); the console browser test did not run"
        );
        return None;
    };
    let port = free_addr().port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromedriver");
    let browser = Browser {
        http: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://127.0.0.1:{port}"),
        _driver: Process(child),
    };
    eventually(BROWSER_WAIT, || async {
        let status = browser.call("GET", "/status", None).await.ok()?;
        status["ready"].as_bool().filter(|r| *r)
    })
    .await
    .expect("chromedriver never became ready");
    let mut chrome = json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1000"] });
    if Path::new("/usr/bin/chromium").is_file() {
        chrome["binary"] = json!("/usr/bin/chromium");
    }
    let session = browser
        .call(
            "POST",
            "/session",
            Some(json!({ "capabilities": { "alwaysMatch": { "goog:chromeOptions": chrome } } })),
        )
        .await
        .expect("a browser session");
    let id = session["sessionId"]
        .as_str()
        .expect("session id")
        .to_string();
    Some((browser, id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_see_the_alert_of_a_bad_apply_and_roll_back_in_a_browser() {
    let Some((browser, session)) = browser().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (_keel, url, client, proxy) = serve(dir.path()).await;

    // Without a session the page is only the sign-in form; a wrong token is refused.
    browser.goto(&session, &format!("{url}/ui/now")).await;
    assert!(browser.find(&session, ".gen-id").await.is_none());
    browser.type_into(&session, "#token", "wrong").await;
    browser.click(&session, "button[type=submit]").await;
    let refused = eventually(BROWSER_WAIT, || async {
        browser.text(&session, ".error").await
    })
    .await;
    assert_eq!(refused.as_deref(), Some("wrong token"));

    browser.type_into(&session, "#token", TOKEN).await;
    browser.click(&session, "button[type=submit]").await;
    let shown = eventually(BROWSER_WAIT, || async {
        browser.text(&session, ".gen-id").await.filter(|t| t == "2")
    })
    .await;
    assert_eq!(
        shown.as_deref(),
        Some("2"),
        "the Now page shows generation 2"
    );
    // The event stream reached the page's script.
    let live = eventually(BROWSER_WAIT, || async {
        browser
            .text(&session, "#live")
            .await
            .filter(|t| t.starts_with("Live updates: on"))
    })
    .await;
    assert!(live.is_some(), "the live stream never arrived");

    // While a bounded load runs through the proxy, the script draws the share chart:
    // the one service takes the whole host.
    let proxied = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let share = eventually(BROWSER_WAIT, || async {
        for _ in 0..LOAD_PER_CHECK {
            let uri = format!("http://{proxy}/").parse::<http::Uri>().ok()?;
            let _ = proxied.get(uri).await;
        }
        browser
            .text(&session, "#shares li")
            .await
            .filter(|t| t == "\u{25a0} app: 100.0 %")
    })
    .await;
    assert!(
        share.is_some(),
        "no share drawn: {}",
        browser.source(&session).await
    );
    assert!(
        browser
            .find(&session, "#shares svg rect title")
            .await
            .is_some()
    );

    // The identity detector saw `catalog` answer for `app`: an alert appears on the
    // page, naming the generation it blames.
    let alert = eventually(BROWSER_WAIT, || async {
        browser
            .text(&session, "#alerts li.alert")
            .await
            .filter(|t| t.contains("blames generation 2"))
    })
    .await;
    assert!(
        alert.is_some(),
        "no alert on the page: {}",
        browser.source(&session).await
    );
    browser.screenshot(&session, "console-now").await;

    // An action without the CSRF token, sent by script with the session's cookie, is
    // refused and changes nothing.
    let status = browser
        .run(
            &session,
            "const done = arguments[arguments.length - 1];\
             fetch('/ui/changes/1/rollback', { method: 'POST', headers: { 'content-type': \
             'application/x-www-form-urlencoded' }, body: 'reason=no+csrf&force=yes' })\
             .then((r) => done(r.status), (e) => done(String(e)));",
        )
        .await;
    assert_eq!(status, json!(403));
    assert_eq!(
        serving(&client).await,
        Some(2),
        "the forged POST changed nothing"
    );

    // Topology: the `app` pool's backend is red, says `misidentified`, and names the
    // service it claims to be.
    browser.goto(&session, &format!("{url}/ui/topology")).await;
    let claim = eventually(BROWSER_WAIT, || async {
        browser
            .text(&session, "#live")
            .await
            .filter(|t| t.starts_with("Live updates: on"))?;
        browser
            .text(&session, ".backend.state-misidentified")
            .await
            .filter(|t| t.contains("claims to be service catalog"))
    })
    .await;
    assert!(
        claim
            .as_deref()
            .is_some_and(|t| t.starts_with("\u{25cf} misidentified")),
        "{claim:?}: {}",
        browser.source(&session).await
    );
    // `GET /status` says the same.
    let status: Status = client.status().await.expect("status");
    let app = status
        .health
        .pools
        .iter()
        .find(|p| p.name == "app")
        .and_then(|p| p.backends.first())
        .expect("the app pool's backend");
    assert_eq!(app.state, "misidentified");
    assert_eq!(app.identity_seen.as_deref(), Some("catalog"));
    assert_eq!(app.claims.as_deref(), Some("catalog"));
    let healthy = browser
        .text(&session, ".backend:not(.state-misidentified) strong")
        .await;
    assert!(
        matches!(healthy.as_deref(), Some("healthy" | "unknown")),
        "{healthy:?}"
    );
    browser.screenshot(&session, "console-topology").await;

    // Routes: every route, busiest first; the load went to `all`.
    browser.goto(&session, &format!("{url}/ui/routes")).await;
    let busiest = browser
        .text(&session, "#all-routes tr td:nth-child(2)")
        .await;
    assert_eq!(busiest.as_deref(), Some("all"));
    let count = browser.text(&session, "#routes-count").await;
    assert_eq!(count.as_deref(), Some("2 routes, 1–2 shown."));
    browser.screenshot(&session, "console-routes").await;

    // Changes → Roll back to 1 → confirm (ticking the force box if 1 is distrusted).
    browser.goto(&session, &format!("{url}/ui/changes")).await;
    browser.screenshot(&session, "console-changes").await;
    browser
        .click(&session, r#"a[href="/ui/changes/1/rollback"]"#)
        .await;
    let heading = browser.text(&session, "h1").await;
    assert_eq!(
        heading.as_deref(),
        Some("Roll back from generation 2 to 1?")
    );
    assert_eq!(
        serving(&client).await,
        Some(2),
        "the confirmation changed nothing"
    );
    browser
        .screenshot(&session, "console-rollback-confirm")
        .await;
    if browser.find(&session, "#force").await.is_some() {
        browser.click(&session, "#force").await;
    }
    browser.click(&session, "#confirm-rollback").await;
    let done = eventually(BROWSER_WAIT, || async {
        browser
            .text(&session, "h1")
            .await
            .filter(|t| t.contains("serves now"))
    })
    .await;
    assert_eq!(
        done.as_deref(),
        Some("Rolled back: generation 1 serves now")
    );
    assert_eq!(
        serving(&client).await,
        Some(1),
        "GET /status shows the rollback"
    );

    browser.goto(&session, &format!("{url}/ui/now")).await;
    let shown = eventually(BROWSER_WAIT, || async {
        browser.text(&session, ".gen-id").await.filter(|t| t == "1")
    })
    .await;
    assert_eq!(shown.as_deref(), Some("1"));
    let cleared = eventually(BROWSER_WAIT, || async {
        browser
            .text(&session, "#alerts")
            .await
            .filter(|t| t == "No open alerts.")
    })
    .await;
    assert!(cleared.is_some(), "generation 2's alert stays on the page");

    // A read-only session sees the confirmation without its button, and the rollback
    // POST, even with the session's own CSRF token, is refused.
    browser
        .call("DELETE", &format!("/session/{session}/cookie"), None)
        .await
        .expect("delete cookies");
    browser
        .goto(&session, &format!("{url}/ui/changes/2/rollback"))
        .await;
    browser.type_into(&session, "#token", READ_TOKEN).await;
    browser.click(&session, "button[type=submit]").await;
    let role = eventually(BROWSER_WAIT, || async {
        browser
            .text(&session, ".role")
            .await
            .filter(|t| t == "signed in: read-only")
    })
    .await;
    assert!(role.is_some(), "{}", browser.source(&session).await);
    browser
        .goto(&session, &format!("{url}/ui/changes/2/rollback"))
        .await;
    assert!(browser.find(&session, "h1").await.is_some());
    assert!(browser.find(&session, "#confirm-rollback").await.is_none());
    let status = browser
        .run(
            &session,
            "const done = arguments[arguments.length - 1];\
             const csrf = document.querySelector('meta[name=csrf]').content;\
             fetch('/ui/changes/2/rollback', { method: 'POST', headers: { 'content-type': \
             'application/x-www-form-urlencoded' }, body: 'force=yes&csrf=' + encodeURIComponent(csrf) })\
             .then((r) => done(r.status), (e) => done(String(e)));",
        )
        .await;
    assert_eq!(status, json!(403));
    assert_eq!(
        serving(&client).await,
        Some(1),
        "the read-only session rolled nothing back"
    );
    let _ = browser
        .call("DELETE", &format!("/session/{session}"), None)
        .await;
}
