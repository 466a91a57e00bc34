//! The loaded shop of `disguises.rs` and `evidence.rs`: identified backends behind the
//! real controller (`Controller::new_guarded`) serving a real data plane on 127.0.0.1:0
//! over a real SQLite store, with a bounded load counting wrong answers per service
//! (`keel_testkit::load_by_service`): a success given by another application.
//!
//! The shop: services `web` (2 backends), `legacy` (2), `checkout` (3), each with an
//! `x-service` identity, and two more servers that answer as `legacy` in no pool (the
//! old servers an edit may point a pool at); routes `/checkout-legacy` → legacy,
//! `/checkout/cart` (route `cart`) and `/checkout` → checkout, `/legacy` → legacy, the
//! rest → web, all for host `shop.example.com`. Pools have no health checks unless a test
//! adds them: identity must be proven anyway. Tests change the config with plain text
//! replacements of [`base`]; the loaded tests take turns ([`LOADED`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use keel_control::{ApplyOutcome, ApplyRequest, ApplyStatus, Controller};
use keel_store::{EventQuery, SqliteStore, Store, kind};
use keel_testkit::{IdentifiedShop, WrongAnswers, load_by_service, toml_list};
use tokio::sync::watch;

use super::eventually;

/// Requests per second of the test load (the issue's ~150 requests/s).
pub const RPS: u32 = 150;
/// Load before an apply, so the sample and the baseline have traffic.
pub const WARMUP: Duration = Duration::from_secs(2);
/// Short watch and known-good times, so a test sees the guard's verdict.
pub const SAFETY: &str = "[safety]\nwatch = \"4s\"\nknown_good_after = \"1s\"\n";

/// One loaded shop at a time.
pub static LOADED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Harness {
    pub backends: IdentifiedShop,
    pub controller: Controller,
    pub store: Arc<SqliteStore>,
    pub addr: SocketAddr,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// Starts the shop serving [`base`] (with `checkout_pool_extra` in the checkout pool)
    /// as generation 1.
    pub async fn start(checkout_pool_extra: &str) -> Self {
        let backends = IdentifiedShop::start(&[("web", 2), ("legacy", 4), ("checkout", 3)]).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let (controller, plane, store) = super::shop::guarded_controller(dir.path());
        let first = controller
            .apply(request(base(&backends, checkout_pool_extra)))
            .await
            .expect("apply");
        assert_eq!(first.status, ApplyStatus::Applied, "{first:#?}");
        let (addr, stop) = serve(plane).await;
        Harness {
            backends,
            controller,
            store,
            addr,
            _stop: stop,
            _dir: dir,
        }
    }

    pub fn base(&self, checkout_pool_extra: &str) -> String {
        base(&self.backends, checkout_pool_extra)
    }

    pub async fn apply(&self, request: ApplyRequest) -> ApplyOutcome {
        self.controller.apply(request).await.expect("apply")
    }

    /// The two servers that answer as `legacy` but are in no pool.
    pub fn stray(&self) -> String {
        toml_list(&self.backends.addrs("legacy")[2..])
    }

    pub fn primary(&self) -> u64 {
        self.controller.plane().active().map_or(0, |a| a.primary.id)
    }

    /// Starts the load in the background for `duration`.
    pub fn load(&self, duration: Duration) -> tokio::task::JoinHandle<WrongAnswers> {
        let addr = self.addr;
        tokio::spawn(load_by_service(RPS, duration, move |n| {
            shop_request(addr, n)
        }))
    }

    /// Starts a load of another request mix (`mix(addr, n)`: request `n` and the service
    /// that must answer it) in the background for `duration`.
    pub fn load_with(&self, duration: Duration, mix: Mix) -> tokio::task::JoinHandle<WrongAnswers> {
        let addr = self.addr;
        tokio::spawn(load_by_service(RPS, duration, move |n| mix(addr, n)))
    }

    /// The first alert event the store files on `generation`, waiting up to 5 s for it.
    pub async fn first_alert_on(&self, generation: u64) -> Option<keel_store::EventRecord> {
        eventually(Duration::from_secs(5), || async {
            self.store
                .events(EventQuery {
                    kinds: vec![kind::ALERT.to_string()],
                    generation: Some(generation),
                    ..EventQuery::default()
                })
                .ok()?
                .into_iter()
                .next()
        })
        .await
    }

    /// Alert events the store filed on `generation`.
    pub fn alerts_on(&self, generation: u64) -> usize {
        self.store
            .events(EventQuery {
                kinds: vec![kind::ALERT.to_string()],
                ..EventQuery::default()
            })
            .expect("events")
            .iter()
            .filter(|e| e.generation == Some(generation))
            .count()
    }
}

/// A request mix: request `n` to the shop at an address, and the service that must answer.
pub type Mix = fn(SocketAddr, u64) -> (Request<Empty<Bytes>>, &'static str);

pub use super::shop::serve;

/// Request `n` of the mix and the service that must answer it: 30% checkout (a third
/// of it `/checkout/cart`), 10% legacy, 60% web.
pub fn shop_request(addr: SocketAddr, n: u64) -> (Request<Empty<Bytes>>, &'static str) {
    let (path, service) = match n % 10 {
        0 | 1 => ("/checkout/pay".to_string(), "checkout"),
        2 => ("/checkout/cart".to_string(), "checkout"),
        3 => ("/legacy/old".to_string(), "legacy"),
        _ => (format!("/products/{}", n % 97), "web"),
    };
    let request = Request::builder()
        .uri(format!("http://{addr}{path}"))
        .header("host", "shop.example.com")
        .body(Empty::new())
        .expect("request");
    (request, service)
}

pub fn request(text: String) -> ApplyRequest {
    ApplyRequest {
        config_text: text,
        author: "alice".into(),
        message: "a change in disguise".into(),
        ..ApplyRequest::default()
    }
}

pub fn forced(text: String) -> ApplyRequest {
    ApplyRequest {
        force: true,
        ..request(text)
    }
}

/// The shop config. Tests change it with plain text replacements.
pub fn base(shop: &IdentifiedShop, checkout_pool_extra: &str) -> String {
    format!(
        r#"[listeners.web]
addr = "127.0.0.1:18080"

[admin]
addr = "127.0.0.1:19901"

{SAFETY}
[services.web]
identity = {{ header = "x-service", equals = "web" }}

[services.legacy]
identity = {{ header = "x-service", equals = "legacy" }}

[services.checkout]
identity = {{ header = "x-service", equals = "checkout" }}

[pools.web]
service = "web"
backends = {web}

[pools.legacy]
service = "legacy"
backends = {legacy}

[pools.checkout]
service = "checkout"
backends = {checkout}
{checkout_pool_extra}

[[routes]]
name = "legacy-checkout"
host = "shop.example.com"
path_prefix = "/checkout-legacy"
service = "legacy"
pool = "legacy"

[[routes]]
name = "cart"
host = "shop.example.com"
path_prefix = "/checkout/cart"
service = "checkout"
pool = "checkout"

[[routes]]
name = "checkout"
host = "shop.example.com"
path_prefix = "/checkout"
service = "checkout"
pool = "checkout"

[[routes]]
name = "legacy"
host = "shop.example.com"
path_prefix = "/legacy"
service = "legacy"
pool = "legacy"

[[routes]]
name = "main"
host = "shop.example.com"
service = "web"
pool = "web"
"#,
        web = shop.toml_addrs("web"),
        legacy = toml_list(&shop.addrs("legacy")[..2]),
        checkout = shop.toml_addrs("checkout"),
    )
}

pub fn refusal_text(outcome: &ApplyOutcome) -> String {
    outcome
        .refusals
        .iter()
        .map(|r| r.message.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}
/// Marks the active generation known-good once it may be (the timer `keel serve` runs).
pub async fn known_good(shop: &Harness) -> u64 {
    eventually(Duration::from_secs(10), || async {
        shop.controller.promote_known_good().await.ok().flatten()
    })
    .await
    .expect("the active generation never became known-good")
}
