//! A small shop on loopback for the watcher's integration tests and the `detect`
//! example: hyper backends that identify as a service (or fail), a real DataPlane
//! serving on 127.0.0.1:0, and a bounded client load at a fixed request rate.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body_util::Empty;
use keel_config::Config;
use keel_proxy::{DataPlane, DataPlaneOptions, Generation, ListenerLimits};
use keel_testkit::{Answer, Backend, LoadReport};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Starts a backend on 127.0.0.1:0 that identifies as `service` (body `hello`); a
/// healthy one answers after 0–2 ms of jitter.
pub async fn backend(service: &'static str, answer: Answer) -> SocketAddr {
    let backend = Backend::new(service).answer(answer).body("hello\n");
    match answer {
        Answer::Ok => backend.jitter(Duration::from_millis(2)),
        _ => backend,
    }
    .start()
    .await
}

/// The shop's backends.
#[derive(Clone, Debug)]
pub struct Backends {
    pub web: [SocketAddr; 2],
    pub legacy: SocketAddr,
    pub api: SocketAddr,
    pub api_broken: SocketAddr,
}

impl Backends {
    pub async fn start() -> Self {
        Self {
            web: [
                backend("web", Answer::Ok).await,
                backend("web", Answer::Ok).await,
            ],
            legacy: backend("legacy-web", Answer::Ok).await,
            api: backend("api", Answer::Ok).await,
            api_broken: backend("api", Answer::ServerError).await,
        }
    }
}

/// What a config variant changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Route `web` → pool `web`, route `api` → pool `api`.
    Good,
    /// Same routing; only the web route's timeout changed.
    Harmless,
    /// Route `web` splits 30 `web` / 70 `legacy` (backends of another service).
    Misroute,
    /// Route `api` → pool `api-broken` (every answer is a 500).
    BrokenApi,
}

/// The shop config; `verify` makes service `web` check every response's identity.
pub fn shop_config(
    backends: &Backends,
    variant: Variant,
    verify: bool,
    webhook: Option<SocketAddr>,
) -> Arc<Config> {
    let web_target = match variant {
        Variant::Misroute => {
            r#"split = [{ pool = "web", weight = 30 }, { pool = "legacy", weight = 70 }]"#
        }
        _ => r#"pool = "web""#,
    };
    let api_pool = if variant == Variant::BrokenApi {
        "api-broken"
    } else {
        "api"
    };
    let web_timeout = if variant == Variant::Harmless {
        "9s"
    } else {
        "10s"
    };
    let hooks = webhook
        .map(|addr| {
            format!(
                "[[alerts.webhooks]]\nurl = \"http://{addr}/hook\"\ntimeout = \"1s\"\nattempts = 3\n"
            )
        })
        .unwrap_or_default();
    let text = format!(
        r#"
[listeners.web]
addr = "127.0.0.1:8080"

[services.web]
identity = {{ header = "x-service", equals = "web" }}
verify_responses = {verify}

[services.legacy-web]
identity = {{ header = "x-service", equals = "legacy-web" }}

[services.api]
identity = {{ header = "x-service", equals = "api" }}

[pools.web]
service = "web"
backends = [{{ addr = "{web0}" }}, {{ addr = "{web1}" }}]

[pools.legacy]
service = "legacy-web"
backends = [{{ addr = "{legacy}" }}]

[pools.api]
service = "api"
backends = [{{ addr = "{api}" }}]

[pools.api-broken]
service = "api"
backends = [{{ addr = "{api_broken}" }}]
outlier = {{ consecutive_failures = 0 }}

[[routes]]
name = "api"
host = "shop.example.com"
path_prefix = "/api"
service = "api"
pool = "{api_pool}"
retries = 0

[[routes]]
name = "web"
host = "shop.example.com"
service = "web"
{web_target}
timeout = "{web_timeout}"

{hooks}
"#,
        web0 = backends.web[0],
        web1 = backends.web[1],
        legacy = backends.legacy,
        api = backends.api,
        api_broken = backends.api_broken,
    );
    let parsed = keel_config::parse(&text);
    assert!(!parsed.has_errors(), "{:#?}", parsed.diagnostics);
    Arc::new(parsed.config)
}

/// A data plane serving on 127.0.0.1:0 until the test ends.
pub struct Proxy {
    pub plane: Arc<DataPlane>,
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(config: &Config) -> Self {
        let mut options = DataPlaneOptions::from_config(config);
        options.access_log = None;
        let plane = DataPlane::new(options).expect("data plane");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (stop, mut stopped) = watch::channel(false);
        let serving = plane.clone();
        let limits = ListenerLimits::from_server(&config.server);
        tokio::spawn(async move {
            let _ = serving
                .serve(listener, limits, async move {
                    let _ = stopped.changed().await;
                })
                .await;
        });
        Self { plane, addr, stop }
    }

    pub fn compile(&self, id: u64, config: Arc<Config>) -> Arc<Generation> {
        self.plane.compile(id, config).expect("compile")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Sends `rps` requests per second for `duration` (at most `rps × seconds` requests),
/// 80% to `/` and 20% to `/api/items`, all for host shop.example.com.
pub async fn load(proxy: SocketAddr, rps: u32, duration: Duration) -> LoadReport {
    keel_testkit::load(rps, duration, |n| {
        let path = if n % 5 == 4 { "/api/items" } else { "/" };
        Request::builder()
            .uri(format!("http://{proxy}{path}"))
            .header("host", "shop.example.com")
            .header(
                "x-request-id",
                format!("load-{n:08}-{:08x}", fastrand::u32(..)),
            )
            .body(Empty::new())
            .expect("request")
    })
    .await
}

/// `eventually(within, || condition)` in these suites: keel-testkit's
/// [`eventually_holds`](keel_testkit::eventually_holds).
#[allow(unused_imports)] // not every suite uses every helper
pub use keel_testkit::{WAIT, eventually_holds, eventually_holds as eventually, wait_until};
