//! A small shop on loopback behind a real controller: hyper backends that identify as
//! their service (or answer 500), a real data plane serving on 127.0.0.1:0, a real
//! SQLite store, and a bounded client load at a fixed request rate.
//!
//! Traffic mix (deterministic, per request number `n % 10`): `0, 1` → `/cart`,
//! `2` → `/checkout/pay`, `3, 4` → `/api/items`, the rest → `/products/N`; every
//! request for host `shop.example.com`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use keel_control::{ApplyOutcome, ApplyRequest, ApplyStatus, Controller};
use keel_proxy::{DataPlane, DataPlaneOptions, ListenerLimits};
use keel_store::{SqliteStore, Store};
use keel_testkit::{Answer, LoadReport};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The shop's backends.
#[derive(Clone, Copy, Debug)]
pub struct Backends {
    pub web: SocketAddr,
    pub legacy: SocketAddr,
    pub checkout: SocketAddr,
    pub api: SocketAddr,
    pub api_broken: SocketAddr,
}

impl Backends {
    pub async fn start() -> Self {
        Self {
            web: keel_testkit::start("web", Answer::Ok).await,
            legacy: keel_testkit::start("legacy-web", Answer::Ok).await,
            checkout: keel_testkit::start("checkout", Answer::Ok).await,
            api: keel_testkit::start("api", Answer::Ok).await,
            api_broken: keel_testkit::start("api", Answer::ServerError).await,
        }
    }
}

/// What a config variant changes, relative to [`Variant::Good`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `/cart` and `/checkout` → pool checkout, `/api` → pool api, the rest → pool web.
    Good,
    /// The same config, reformatted: other whitespace, comments, key order.
    Reformatted,
    /// The March-15 edit: `/cart` and `/checkout` re-pointed at the legacy pool (their
    /// routes now declare service legacy-web, so `keel check` has nothing to say).
    LegacyCheckout,
    /// A new route `sale` for `/cart` placed before `cart`: it takes all of its traffic
    /// (same service and pool, so only the route changes).
    ShadowCart,
    /// Route `web` splits 30 `web` / 70 `legacy` (backends of another service).
    Misroute,
    /// Route `api` → pool `api-broken` (every answer is a 500; same service).
    BrokenApi,
    /// Only the web route's timeout changed.
    Harmless,
}

/// The shop config text (listener and admin addresses fixed: the controller binds none).
pub fn shop_config(backends: &Backends, variant: Variant, extra: &str) -> String {
    if variant == Variant::Reformatted {
        return reformatted(backends, extra);
    }
    let (cart_service, cart_pool) = match variant {
        Variant::LegacyCheckout => ("legacy-web", "legacy"),
        _ => ("checkout", "checkout"),
    };
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
    let sale = if variant == Variant::ShadowCart {
        "[[routes]]\nname = \"sale\"\nhost = \"shop.example.com\"\npath_prefix = \"/cart\"\nservice = \"checkout\"\npool = \"checkout\"\n\n"
    } else {
        ""
    };
    format!(
        r#"[listeners.web]
addr = "127.0.0.1:18080"

[admin]
addr = "127.0.0.1:19901"

{extra}

[services.web]
identity = {{ header = "x-service", equals = "web" }}

[services.legacy-web]
identity = {{ header = "x-service", equals = "legacy-web" }}

[services.checkout]
identity = {{ header = "x-service", equals = "checkout" }}

[services.api]
identity = {{ header = "x-service", equals = "api" }}

[pools.web]
service = "web"
backends = [{{ addr = "{web}" }}]

[pools.legacy]
service = "legacy-web"
backends = [{{ addr = "{legacy}" }}]

[pools.checkout]
service = "checkout"
backends = [{{ addr = "{checkout}" }}]

[pools.api]
service = "api"
backends = [{{ addr = "{api}" }}]

[pools.api-broken]
service = "api"
backends = [{{ addr = "{api_broken}" }}]
outlier = {{ consecutive_failures = 0 }}

{sale}[[routes]]
name = "cart"
host = "shop.example.com"
path_prefix = "/cart"
service = "{cart_service}"
pool = "{cart_pool}"

[[routes]]
name = "checkout"
host = "shop.example.com"
path_prefix = "/checkout"
service = "{cart_service}"
pool = "{cart_pool}"

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
"#,
        web = backends.web,
        legacy = backends.legacy,
        checkout = backends.checkout,
        api = backends.api,
        api_broken = backends.api_broken,
    )
}

/// [`Variant::Good`] written differently: comments, spacing, inline tables, key order.
fn reformatted(backends: &Backends, extra: &str) -> String {
    format!(
        r#"# the same shop, tidied up
[listeners.web]
addr="127.0.0.1:18080"
[admin]
addr="127.0.0.1:19901"
{extra}
[services]
web = {{ identity = {{ equals = "web", header = "x-service" }} }}
legacy-web = {{ identity = {{ equals = "legacy-web", header = "x-service" }} }}
checkout = {{ identity = {{ equals = "checkout", header = "x-service" }} }}
api = {{ identity = {{ equals = "api", header = "x-service" }} }}

[pools]
web = {{ backends = [{{ addr = "{web}" }}], service = "web" }}
legacy = {{ backends = [{{ addr = "{legacy}" }}], service = "legacy-web" }}
checkout = {{ backends = [{{ addr = "{checkout}" }}], service = "checkout" }}
api = {{ backends = [{{ addr = "{api}" }}], service = "api" }}
api-broken = {{ backends = [{{ addr = "{api_broken}" }}], service = "api", outlier = {{ consecutive_failures = 0 }} }}

[[routes]]
pool = "checkout"
service = "checkout"
path_prefix = "/cart"
host = "shop.example.com"
name = "cart"
[[routes]]
pool = "checkout"
service = "checkout"
path_prefix = "/checkout"
host = "shop.example.com"
name = "checkout"
[[routes]]
retries = 0
pool = "api"
service = "api"
path_prefix = "/api"
host = "shop.example.com"
name = "api"
[[routes]]
timeout = "10s"
pool = "web"
service = "web"
host = "shop.example.com"
name = "web"
"#,
        web = backends.web,
        legacy = backends.legacy,
        checkout = backends.checkout,
        api = backends.api,
        api_broken = backends.api_broken,
    )
}

/// The path of request number `n` (see the module docs).
pub fn path_of(n: u64) -> String {
    match n % 10 {
        0 | 1 => "/cart".to_string(),
        2 => "/checkout/pay".to_string(),
        3 | 4 => "/api/items".to_string(),
        _ => format!("/products/{}", n % 97),
    }
}

/// A guarded controller (or not) over a real SQLite store, serving on 127.0.0.1:0.
/// Its controller, store and address are its [`GuardedPlane`]'s (`shop.controller`).
pub struct Shop {
    pub backends: Backends,
    plane: GuardedPlane,
}

impl std::ops::Deref for Shop {
    type Target = GuardedPlane;
    fn deref(&self) -> &GuardedPlane {
        &self.plane
    }
}

impl Shop {
    /// Starts the shop serving [`Variant::Good`] (with `extra` settings) as generation 1.
    pub async fn start(extra: &str) -> Shop {
        let backends = Backends::start().await;
        let plane =
            GuardedPlane::start(request(shop_config(&backends, Variant::Good, extra))).await;
        Shop { backends, plane }
    }

    /// The config text of `variant` with `extra` settings.
    pub fn config(&self, variant: Variant, extra: &str) -> String {
        shop_config(&self.backends, variant, extra)
    }

    /// Applies `variant`, with the request adjusted by `adjust`.
    pub async fn apply(
        &self,
        variant: Variant,
        extra: &str,
        adjust: impl FnOnce(ApplyRequest) -> ApplyRequest,
    ) -> ApplyOutcome {
        self.controller
            .apply(adjust(request(self.config(variant, extra))))
            .await
            .expect("apply")
    }

    /// The generation serving everything now.
    pub fn primary(&self) -> u64 {
        self.controller.plane().active().map_or(0, |a| a.primary.id)
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// An apply request by alice.
pub fn request(text: String) -> ApplyRequest {
    ApplyRequest {
        config_text: text,
        author: "alice".into(),
        message: "test".into(),
        ..ApplyRequest::default()
    }
}

/// Sends `total` shop requests one after another (the sample sees every one of them).
pub async fn sequential(addr: SocketAddr, total: u64) -> LoadReport {
    keel_testkit::sequential(total, |n| shop_request(addr, n)).await
}

/// Sends `rps` shop requests per second for `duration`: at most `rps × seconds` requests.
pub async fn load(addr: SocketAddr, rps: u32, duration: Duration) -> LoadReport {
    keel_testkit::load(rps, duration, |n| shop_request(addr, n)).await
}

/// Request number `n` of the traffic mix (see the module docs).
fn shop_request(addr: SocketAddr, n: u64) -> Request<Empty<Bytes>> {
    Request::builder()
        .uri(format!("http://{addr}{}", path_of(n)))
        .header("host", "shop.example.com")
        .body(Empty::new())
        .expect("request")
}

/// Makes a request a dry run.
pub fn dry_run(mut request: ApplyRequest) -> ApplyRequest {
    request.dry_run = true;
    request
}

/// A guarded controller (`Controller::new_guarded`) over a fresh SQLite store, its first
/// generation applied, its data plane serving a listener on 127.0.0.1:0 until `stop` is
/// sent or dropped. The plane samples generously (10,000 requests over 5 minutes) so
/// that the impact gate has traffic to replay.
pub struct GuardedPlane {
    pub controller: Controller,
    pub store: Arc<SqliteStore>,
    pub addr: SocketAddr,
    pub stop: watch::Sender<bool>,
    pub dir: tempfile::TempDir,
}

impl GuardedPlane {
    /// Applies `first` (which must be applied) and starts serving.
    pub async fn start(first: ApplyRequest) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (controller, plane, store) = guarded_controller(dir.path());
        let applied = controller.apply(first).await.expect("apply");
        assert_eq!(applied.status, ApplyStatus::Applied, "{applied:#?}");
        let (addr, stop) = serve(plane).await;
        GuardedPlane {
            controller,
            store,
            addr,
            stop,
            dir,
        }
    }
}

/// Serves `plane` on 127.0.0.1:0 until the returned sender sends or is dropped.
pub async fn serve(plane: Arc<DataPlane>) -> (SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, mut stopped) = watch::channel(false);
    let limits = ListenerLimits {
        max_header_bytes: 64 * 1024,
        max_headers: 100,
        header_read_timeout: Duration::from_secs(10),
        body_idle_timeout: keel_config::defaults::BODY_IDLE_TIMEOUT,
        drain_timeout: Duration::from_secs(2),
    };
    tokio::spawn(async move {
        let _ = plane
            .serve(listener, limits, async move {
                let _ = stopped.changed().await;
            })
            .await;
    });
    (addr, stop)
}

/// A guarded controller (`Controller::new_guarded`) over a fresh SQLite store in `state`,
/// with a data plane that samples generously (10,000 requests over 5 minutes) so that the
/// impact gate has traffic to replay.
pub fn guarded_controller(
    state: &std::path::Path,
) -> (Controller, Arc<DataPlane>, Arc<SqliteStore>) {
    let store = Arc::new(SqliteStore::open(state).expect("store"));
    let plane = DataPlane::new(DataPlaneOptions {
        sample_size: 10_000,
        sample_window: Duration::from_secs(300),
        access_log: None,
        generation_header: true,
    })
    .expect("data plane");
    let controller = Controller::new_guarded(store.clone() as Arc<dyn Store>, plane.clone());
    (controller, plane, store)
}
